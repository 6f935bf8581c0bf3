//! FindOptions, filters and writes compiled to parameterised SQL, once for every dialect.

use manifold_core::filter::{
    Comparison, FieldRef, Filter, JoinPath, LikePattern, Predicate, TextMatch, pins_one_row,
};
use manifold_core::query::{FindOptions, SortKey};
use manifold_core::repository::WriteValues;
use manifold_core::schema::{Collection, FieldType};
use manifold_core::value::Value;

use crate::builder::{Sql, SqlBuilder};
use crate::dialect::Dialect;
use crate::joins;

/// The fields a `SELECT` for `options` returns, in column order.
pub fn selected_fields(collection: &Collection, options: &FindOptions) -> Vec<FieldRef> {
    match &options.fields {
        Some(fields) => fields.clone(),
        None => FieldRef::visible(collection),
    }
}

/// `SELECT <fields> FROM <table> WHERE … ORDER BY … <window>`. Columns are qualified
/// when a sort or filter crosses associations.
pub fn select(dialect: Dialect, collection: &Collection, options: &FindOptions) -> Sql {
    select_columns(
        dialect,
        collection,
        options,
        &selected_fields(collection, options),
    )
}

/// [`select`], locking the rows it reads until the transaction ends (where the database
/// locks rows: PostgreSQL, MySQL).
pub fn select_for_update(dialect: Dialect, collection: &Collection, options: &FindOptions) -> Sql {
    let mut sql = select(dialect, collection, options);
    sql.text.push_str(dialect.row_lock());
    sql
}

/// [`select`] of `fields`, which the caller has already worked out with
/// [`selected_fields`] (a repository keeps its visible fields, and decodes by them).
pub fn select_columns(
    dialect: Dialect,
    collection: &Collection,
    options: &FindOptions,
    fields: &[FieldRef],
) -> Sql {
    let mut b = SqlBuilder::new(dialect);
    // Ordering a filter that keeps at most one row only adds a sort step to the plan.
    let sort: &[SortKey] = if pins_one_row(options.filter.as_ref(), collection) {
        &[]
    } else {
        &options.sort
    };
    let joins = (sort.iter().any(|k| k.field.via.is_some())
        || options.filter.as_ref().is_some_and(joins::has_paths))
    .then(|| joins::SortJoins::of(collection, sort));
    if let Some(joins) = &joins {
        b.set_qualifiers(Some(joins.qualifiers.clone()));
    }
    b.push("SELECT ");
    if fields.is_empty() {
        // Nothing was asked for; select a constant so each row still counts.
        b.push("1");
    } else {
        b.join(fields, ", ", column);
    }
    b.push(" FROM ").table(collection.table());
    if let Some(joins) = &joins {
        joins.write(&mut b);
    }
    where_clause(&mut b, collection, options.filter.as_ref());
    order_by(&mut b, sort);
    window(&mut b, options, !sort.is_empty());
    b.finish()
}

/// `SELECT t.<fields>, j.<source> FROM <target> t JOIN <junction> j ON j.<target column> =
/// t.<target key> WHERE j.<source> IN (…) ORDER BY t.<primary key>`: the rows linked to
/// `sources`, each with the source key it is linked to as the last column.
pub fn select_linked(
    dialect: Dialect,
    target: &Collection,
    fields: &[FieldRef],
    link: &manifold_core::repository::Link<'_>,
    sources: &[Value],
) -> Sql {
    let mut b = SqlBuilder::new(dialect);
    b.push("SELECT ");
    b.join(fields, ", ", |b, f| {
        b.push("t.").ident(&f.column);
    });
    if !fields.is_empty() {
        b.push(", ");
    }
    b.push("j.").ident(&link.source_column.column);
    b.push(" FROM ").table(target.table()).push(" t JOIN ");
    b.table(link.junction.table()).push(" j ON j.");
    b.ident(&link.target_column.column)
        .push(" = t.")
        .ident(&link.target_key.column);
    b.push(" WHERE j.")
        .ident(&link.source_column.column)
        .push(" IN (");
    b.join(sources, ", ", |b, v| {
        b.bind(v.clone());
    });
    b.push(")");
    let keys: Vec<&manifold_core::schema::Field> = target.primary_key().collect();
    if !keys.is_empty() {
        b.push(" ORDER BY ");
        b.join(keys, ", ", |b, k| {
            b.push("t.").ident(&k.column).push(" ASC");
        });
    }
    b.finish()
}

/// `SELECT COUNT(*) FROM <table> WHERE …` (`COUNT_BIG` on SQL Server).
pub fn count(dialect: Dialect, collection: &Collection, filter: Option<&Filter>) -> Sql {
    let mut b = SqlBuilder::new(dialect);
    b.push("SELECT ")
        .push(dialect.count_function())
        .push("(*) FROM ")
        .table(collection.table());
    where_clause(&mut b, collection, filter);
    b.finish()
}

/// `INSERT INTO <table> (…) VALUES (…)`, returning `returning` where given (`RETURNING`,
/// or `OUTPUT INSERTED` on SQL Server).
pub fn insert(
    dialect: Dialect,
    collection: &Collection,
    values: &WriteValues,
    returning: Option<&[FieldRef]>,
) -> Sql {
    let mut b = SqlBuilder::new(dialect);
    b.push("INSERT INTO ").table(collection.table());
    if !values.is_empty() {
        b.push(" (");
        b.join(&values.0, ", ", |b, (f, _)| {
            b.ident(&f.column);
        });
        b.push(")");
    }
    output_inserted(&mut b, returning);
    if values.is_empty() {
        b.push(if dialect == Dialect::MySql {
            " () VALUES ()"
        } else {
            " DEFAULT VALUES"
        });
    } else {
        b.push(" VALUES (");
        b.join(&values.0, ", ", |b, (_, v)| {
            b.bind(v.clone());
        });
        b.push(")");
    }
    returning_clause(&mut b, returning);
    b.finish()
}

/// `UPDATE <table> SET … WHERE …`, returning `returning` where given.
pub fn update(
    dialect: Dialect,
    collection: &Collection,
    values: &WriteValues,
    filter: Option<&Filter>,
    returning: Option<&[FieldRef]>,
) -> Sql {
    let mut b = SqlBuilder::new(dialect);
    b.push("UPDATE ").table(collection.table()).push(" SET ");
    b.join(&values.0, ", ", |b, (f, v)| {
        b.ident(&f.column).push(" = ").bind(v.clone());
    });
    output_inserted(&mut b, returning);
    where_clause(&mut b, collection, filter);
    returning_clause(&mut b, returning);
    b.finish()
}

/// SQL Server names returned columns before `VALUES`/`WHERE`.
fn output_inserted(b: &mut SqlBuilder, returning: Option<&[FieldRef]>) {
    if let Some(fields) = returning
        && b.dialect() == Dialect::Mssql
    {
        b.push(" OUTPUT ");
        b.join(fields, ", ", |b, f| {
            b.push("INSERTED.").ident(&f.column);
        });
    }
}

/// The other dialects name them at the end.
fn returning_clause(b: &mut SqlBuilder, returning: Option<&[FieldRef]>) {
    if let Some(fields) = returning
        && b.dialect() != Dialect::Mssql
    {
        b.push(" RETURNING ");
        b.join(fields, ", ", |b, f| {
            b.ident(&f.column);
        });
    }
}

/// `DELETE FROM <table> WHERE …`.
pub fn delete(dialect: Dialect, collection: &Collection, filter: Option<&Filter>) -> Sql {
    let mut b = SqlBuilder::new(dialect);
    b.push("DELETE FROM ").table(collection.table());
    where_clause(&mut b, collection, filter);
    b.finish()
}

fn where_clause(b: &mut SqlBuilder, collection: &Collection, filter: Option<&Filter>) {
    if let Some(filter) = filter {
        b.push(" WHERE ");
        if joins::has_paths(filter) {
            joins::exists(b, collection, filter);
        } else {
            condition(b, filter);
        }
    }
}

/// Appends one boolean expression for `filter`.
pub fn condition(b: &mut SqlBuilder, filter: &Filter) {
    match filter {
        Filter::And(items) => group(b, items, " AND ", "1=1"),
        Filter::Or(items) => group(b, items, " OR ", "1=0"),
        Filter::Condition(c) => predicate(b, &c.field, &c.predicate),
    }
}

fn group(b: &mut SqlBuilder, items: &[Filter], sep: &str, empty: &str) {
    if items.is_empty() {
        b.push(empty);
        return;
    }
    b.push("(");
    b.join_balanced(items, sep, condition);
    b.push(")");
}

fn column(b: &mut SqlBuilder, f: &FieldRef) {
    b.column(f.via.as_deref().map(JoinPath::key), &f.column);
}

/// The column as compared for equality and order. PostgreSQL has no `=` on `json`, so
/// JSON columns are compared as `jsonb` there. MySQL and MariaDB read JSON through
/// `JSON_EXTRACT(…, '$')`: a JSON value on MySQL, and on MariaDB (whose JSON is text) the
/// text in one canonical spelling, so `[1,2]` equals `[1, 2]`.
fn compared(b: &mut SqlBuilder, f: &FieldRef) {
    match (b.dialect(), f.field_type) {
        (Dialect::Postgres, FieldType::Json) => {
            b.push("CAST(");
            column(b, f);
            b.push(" AS JSONB)");
        }
        (Dialect::MySql, FieldType::Json) => {
            b.push("JSON_EXTRACT(");
            column(b, f);
            b.push(", '$')");
        }
        _ => {
            column(b, f);
        }
    }
}

/// A value compared with `f`. PostgreSQL would widen a `real` column to double and compare
/// with the exact double, so `real = 0.1` never held; the value is narrowed instead.
/// MySQL 8 compares a native JSON column with text as text, so JSON operands go through
/// `JSON_EXTRACT(…, '$')` as the column does (not `CAST(… AS JSON)`, which MariaDB lacks).
fn operand(b: &mut SqlBuilder, f: &FieldRef, v: &Value) {
    match (b.dialect(), f.field_type) {
        (Dialect::Postgres, FieldType::Float) => {
            b.push("CAST(").bind(v.clone()).push(" AS REAL)");
        }
        (Dialect::MySql, FieldType::Json) => {
            b.push("JSON_EXTRACT(").bind(v.clone()).push(", '$')");
        }
        _ => {
            b.bind(v.clone());
        }
    }
}

fn predicate(b: &mut SqlBuilder, f: &FieldRef, p: &Predicate) {
    let is_null = |b: &mut SqlBuilder| {
        column(b, f);
        b.push(" IS NULL");
    };
    match p {
        Predicate::IsNull => is_null(b),
        Predicate::IsNotNull => {
            column(b, f);
            b.push(" IS NOT NULL");
        }
        Predicate::Eq(v) => {
            compared(b, f);
            b.push(" = ");
            operand(b, f, v);
        }
        Predicate::Ne(v) => {
            b.push("(");
            compared(b, f);
            b.push(" <> ");
            operand(b, f, v);
            b.push(" OR ");
            is_null(b);
            b.push(")");
        }
        Predicate::In(values) if values.is_empty() => {
            b.push("1=0");
        }
        Predicate::In(values) => in_list(b, f, values, false),
        Predicate::NotIn(values) if values.is_empty() => {
            b.push("1=1");
        }
        Predicate::NotIn(values) => {
            b.push("(");
            in_list(b, f, values, true);
            b.push(" OR ");
            is_null(b);
            b.push(")");
        }
        Predicate::Compare(cmp, v) => {
            compared(b, f);
            b.push(match cmp {
                Comparison::Ne => " <> ",
                Comparison::Gt => " > ",
                Comparison::Gte => " >= ",
                Comparison::Lt => " < ",
                Comparison::Lte => " <= ",
            });
            operand(b, f, v);
        }
        Predicate::Between(lo, hi) | Predicate::NotBetween(lo, hi) => {
            column(b, f);
            b.push(if matches!(p, Predicate::Between(..)) {
                " BETWEEN "
            } else {
                " NOT BETWEEN "
            })
            .bind(lo.clone())
            .push(" AND ")
            .bind(hi.clone());
        }
        Predicate::Text {
            mode,
            operands,
            negated,
        } => text_match(b, f, *mode, operands, *negated),
        Predicate::Like {
            pattern,
            case_insensitive,
            negated,
        } => like_match(b, f, pattern, *case_insensitive, *negated),
        Predicate::Empty => {
            if is_text(f) {
                b.push("(");
                is_null(b);
                b.push(" OR ");
                column(b, f);
                b.push(" = ").bind(Value::Text(String::new())).push(")");
            } else {
                is_null(b);
            }
        }
        Predicate::NotEmpty => {
            if is_text(f) {
                b.push("(");
                column(b, f);
                b.push(" IS NOT NULL AND ");
                column(b, f);
                b.push(" <> ").bind(Value::Text(String::new())).push(")");
            } else {
                column(b, f);
                b.push(" IS NOT NULL");
            }
        }
        Predicate::IsTrue => {
            column(b, f);
            b.push(" = ").bind(Value::Bool(true));
        }
        Predicate::IsFalsy => {
            b.push("(");
            is_null(b);
            b.push(" OR ");
            column(b, f);
            b.push(" = ").bind(Value::Bool(false)).push(")");
        }
        Predicate::ArrayAny(values) => array_any(b, f, values),
        Predicate::ArrayNone(values) => {
            b.push("(NOT ");
            array_any(b, f, values);
            b.push(" OR ");
            is_null(b);
            b.push(")");
        }
        Predicate::ArraySet { values, negated } => {
            if *negated {
                b.push("(NOT ");
                array_set(b, f, values);
                b.push(" OR ");
                is_null(b);
                b.push(")");
            } else {
                array_set(b, f, values);
            }
        }
        Predicate::ArrayEmpty => {
            array_length(b, f);
            b.push(" = 0");
        }
        Predicate::ArrayNotEmpty => {
            array_length(b, f);
            b.push(" > 0");
        }
    }
}

/// The JSON array in `f` as each dialect can take it apart.
fn array_length(b: &mut SqlBuilder, f: &FieldRef) {
    let (open, close) = match b.dialect() {
        Dialect::Postgres => ("COALESCE(jsonb_array_length(to_jsonb(", ")), 0)"),
        Dialect::MySql => ("COALESCE(JSON_LENGTH(", "), 0)"),
        Dialect::Sqlite => ("COALESCE(json_array_length(", "), 0)"),
        Dialect::Mssql => ("(SELECT COUNT(*) FROM OPENJSON(", "))"),
    };
    b.push(open);
    column(b, f);
    b.push(close);
}

/// A JSON array literal of `values`, bound as one parameter.
fn json_array(values: &[Value]) -> Value {
    Value::Json(serde_json::Value::Array(
        values.iter().map(Value::to_json).collect(),
    ))
}

/// The elements of the array in `f` as a table of `value`s (SQLite, SQL Server).
fn elements(b: &mut SqlBuilder, f: &FieldRef) {
    b.push(if b.dialect() == Dialect::Mssql {
        "OPENJSON("
    } else {
        "json_each("
    });
    column(b, f);
    b.push(")");
}

/// `f` holds at least one of `values` (false for none).
fn array_any(b: &mut SqlBuilder, f: &FieldRef, values: &[Value]) {
    if values.is_empty() {
        b.push("1=0");
        return;
    }
    match b.dialect() {
        Dialect::Postgres => {
            b.push("(");
            b.join_balanced(values, " OR ", |b, v| {
                b.push("to_jsonb(");
                column(b, f);
                b.push(") @> ").bind(json_array(std::slice::from_ref(v)));
            });
            b.push(")");
        }
        Dialect::MySql => {
            b.push("JSON_OVERLAPS(");
            column(b, f);
            b.push(", ").bind(json_array(values)).push(")");
        }
        Dialect::Sqlite | Dialect::Mssql => {
            b.push("EXISTS (SELECT 1 FROM ");
            elements(b, f);
            b.push(" WHERE value IN (");
            b.join(values, ", ", |b, v| {
                b.bind(v.clone());
            });
            b.push("))");
        }
    }
}

/// `f` holds exactly the set `values`: every element of `f` is in `values`, and every
/// value is in `f`.
fn array_set(b: &mut SqlBuilder, f: &FieldRef, values: &[Value]) {
    match b.dialect() {
        Dialect::Postgres => {
            let set = json_array(values);
            b.push("(to_jsonb(");
            column(b, f);
            b.push(") @> ").bind(set.clone()).push(" AND to_jsonb(");
            column(b, f);
            b.push(") <@ ").bind(set).push(")");
        }
        Dialect::MySql => {
            let set = json_array(values);
            b.push("(JSON_CONTAINS(");
            column(b, f);
            b.push(", ")
                .bind(set.clone())
                .push(") AND JSON_CONTAINS(")
                .bind(set)
                .push(", ");
            column(b, f);
            b.push("))");
        }
        Dialect::Sqlite | Dialect::Mssql => {
            let mut distinct: Vec<&Value> = Vec::new();
            for v in values {
                if !distinct.contains(&v) {
                    distinct.push(v);
                }
            }
            b.push("(");
            column(b, f);
            b.push(" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ");
            elements(b, f);
            if distinct.is_empty() {
                b.push("))");
                return;
            }
            b.push(" WHERE value NOT IN (");
            b.join(&distinct, ", ", |b, v| {
                b.bind((*v).clone());
            });
            b.push(")) AND (SELECT COUNT(DISTINCT value) FROM ");
            elements(b, f);
            b.push(" WHERE value IN (");
            b.join(&distinct, ", ", |b, v| {
                b.bind((*v).clone());
            });
            b.push(")) = ").push_u64(distinct.len() as u64).push(")");
        }
    }
}

/// Whether `''` is a value of `f` (not of uuids, which PostgreSQL cannot compare with it).
fn is_text(f: &FieldRef) -> bool {
    matches!(f.field_type, FieldType::String | FieldType::Text)
}

/// Above this many values, SQL Server gets one JSON parameter instead of one parameter per
/// value: it allows 2,100 parameters a statement, and tiberius slows sharply past a few
/// hundred.
const MSSQL_JSON_LIST: usize = 100;

/// The SQL Server type a JSON list element is cast to before comparing with `f`.
fn mssql_type(f: &FieldRef) -> &'static str {
    match f.field_type {
        FieldType::Integer | FieldType::BigInt => "BIGINT",
        FieldType::Float | FieldType::Double => "FLOAT",
        FieldType::Decimal => "DECIMAL(38, 10)",
        FieldType::Boolean => "BIT",
        FieldType::Date => "DATE",
        FieldType::DateTime => "DATETIMEOFFSET",
        FieldType::DateTimeNoTz => "DATETIME2",
        FieldType::Time => "TIME",
        FieldType::Uuid => "UNIQUEIDENTIFIER",
        _ => "NVARCHAR(4000)",
    }
}

/// `c IN (…)`, split into OR-ed (or, negated, AND-ed) chunks under the dialect's
/// parameter limit; on SQL Server a long list is one JSON parameter.
fn in_list(b: &mut SqlBuilder, f: &FieldRef, values: &[Value], negated: bool) {
    if b.dialect() == Dialect::Mssql && values.len() > MSSQL_JSON_LIST {
        compared(b, f);
        b.push(if negated { " NOT IN " } else { " IN " })
            .push("(SELECT CAST([value] AS ")
            .push(mssql_type(f))
            .push(") FROM OPENJSON(")
            .bind(json_array(values))
            .push("))");
        return;
    }
    let chunk = b.dialect().max_params().min(1000);
    let chunks: Vec<&[Value]> = values.chunks(chunk).collect();
    if chunks.len() > 1 {
        b.push("(");
    }
    b.join_balanced(
        &chunks,
        if negated { " AND " } else { " OR " },
        |b, part| {
            compared(b, f);
            b.push(if negated { " NOT IN (" } else { " IN (" });
            b.join(*part, ", ", |b, v| {
                operand(b, f, v);
            });
            b.push(")");
        },
    );
    if values.len() > chunk {
        b.push(")");
    }
}

/// Escapes `%`, `_` and the escape character itself (and `[` for SQL Server, where it
/// opens a character class) so a user's text matches literally.
pub fn escape_like(dialect: Dialect, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') || (c == '[' && dialect == Dialect::Mssql) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn text_match(
    b: &mut SqlBuilder,
    f: &FieldRef,
    mode: TextMatch,
    operands: &[String],
    negated: bool,
) {
    let dialect = b.dialect();
    b.push("(");
    if negated {
        // NocoBase's negative string operators never match NULL rows.
        column(b, f);
        b.push(" IS NOT NULL AND ");
    }
    b.join_balanced(
        operands,
        if negated { " AND " } else { " OR " },
        |b, text| {
            text_column(b, f);
            b.push(if negated { " NOT " } else { " " })
                .push(dialect.ilike())
                .push(" ");
            let escaped = escape_like(dialect, text);
            let pattern = match mode {
                TextMatch::Contains => format!("%{escaped}%"),
                TextMatch::StartsWith => format!("{escaped}%"),
                TextMatch::EndsWith => format!("%{escaped}"),
            };
            b.bind(Value::Text(pattern)).push(dialect.like_escape());
        },
    );
    b.push(")");
}

/// MySQL's binary collation, so that `$like` compares characters exactly whatever the
/// column's collation (MariaDB's default ignores case and accents).
const MYSQL_EXACT: &str = "utf8mb4_bin";
/// SQL Server's binary (code point) collation, for the same reason.
const MSSQL_EXACT: &str = "Latin1_General_100_BIN2";

/// `$like` and friends: the client's pattern, re-rendered from its parsed form so that
/// `%`, `_` and `\` mean the same on every database, and always bound.
///
/// Case-sensitive: PostgreSQL's `LIKE` is; SQLite's is not, so it gets `GLOB` (which is);
/// MySQL and SQL Server compare under a binary collation. Case-insensitive: PostgreSQL's
/// `ILIKE` and SQLite's `LIKE` (ASCII case, as for `$includes`); MySQL and SQL Server
/// lower both sides and compare them under the binary collation, so neither the column's
/// collation nor accents change the answer.
fn like_match(
    b: &mut SqlBuilder,
    f: &FieldRef,
    pattern: &LikePattern,
    case_insensitive: bool,
    negated: bool,
) {
    let dialect = b.dialect();
    let not = if negated { " NOT " } else { " " };
    let like = |b: &mut SqlBuilder, op: &str| {
        let text = pattern.render("%", "_", |t| escape_like(dialect, t));
        b.push(not).push(op).push(" ");
        if case_insensitive && matches!(dialect, Dialect::MySql | Dialect::Mssql) {
            b.push("LOWER(").bind(Value::Text(text)).push(")");
        } else {
            b.bind(Value::Text(text));
        }
        b.push(dialect.like_escape());
    };
    match dialect {
        Dialect::Sqlite if !case_insensitive => {
            text_column(b, f);
            b.push(not)
                .push("GLOB ")
                .bind(Value::Text(pattern.render("*", "?", glob_literal)));
        }
        Dialect::Postgres if case_insensitive => {
            text_column(b, f);
            like(b, "ILIKE");
        }
        Dialect::Postgres | Dialect::Sqlite => {
            text_column(b, f);
            like(b, "LIKE");
        }
        Dialect::MySql | Dialect::Mssql => {
            let (open, close, collation) = if dialect == Dialect::MySql {
                ("CONVERT(", " USING utf8mb4)", MYSQL_EXACT)
            } else {
                ("CAST(", " AS NVARCHAR(MAX))", MSSQL_EXACT)
            };
            if case_insensitive {
                b.push("LOWER(");
            }
            b.push(open);
            column(b, f);
            b.push(close);
            if case_insensitive {
                b.push(")");
            }
            b.push(" COLLATE ").push(collation);
            like(b, "LIKE");
        }
    }
}

/// `f` as text: non-text columns (and uuids, which PostgreSQL will not `LIKE`) are cast.
fn text_column(b: &mut SqlBuilder, f: &FieldRef) {
    if f.field_type.is_textual() && f.field_type != FieldType::Uuid {
        column(b, f);
    } else {
        b.push("CAST(");
        column(b, f);
        let text_type = b.dialect().text_type();
        b.push(" AS ").push(text_type).push(")");
    }
}

/// Literal text in a SQLite `GLOB` pattern, which has no escape character: each wildcard
/// character becomes a one-character class.
fn glob_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' | '?' | '[' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            other => out.push(other),
        }
    }
    out
}

fn order_by(b: &mut SqlBuilder, sort: &[SortKey]) {
    if sort.is_empty() {
        return;
    }
    let dialect = b.dialect();
    b.push(" ORDER BY ");
    b.join(sort, ", ", |b, key| {
        let dir = if key.descending { " DESC" } else { " ASC" };
        // A column that cannot be NULL needs no NULL placement, and without it the
        // database can walk an index in either direction instead of sorting. A column
        // reached through a relation can be NULL all the same: the relation may be empty.
        if !key.field.nullable && key.field.via.is_none() {
            column(b, &key.field);
            b.push(dir);
            return;
        }
        match dialect {
            Dialect::Postgres | Dialect::Sqlite => {
                column(b, &key.field);
                b.push(dir).push(" NULLS LAST");
            }
            Dialect::MySql => {
                column(b, &key.field);
                b.push(" IS NULL, ");
                column(b, &key.field);
                b.push(dir);
            }
            Dialect::Mssql => {
                b.push("CASE WHEN ");
                column(b, &key.field);
                b.push(" IS NULL THEN 1 ELSE 0 END, ");
                column(b, &key.field);
                b.push(dir);
            }
        }
    });
}

fn window(b: &mut SqlBuilder, options: &FindOptions, ordered: bool) {
    let (limit, offset) = (options.limit, options.offset.filter(|o| *o > 0));
    if limit.is_none() && offset.is_none() {
        return;
    }
    match b.dialect() {
        Dialect::Mssql => {
            if !ordered {
                // OFFSET … FETCH is only valid after an ORDER BY.
                b.push(" ORDER BY (SELECT NULL)");
            }
            b.push(" OFFSET ")
                .push_u64(offset.unwrap_or(0))
                .push(" ROWS");
            if let Some(limit) = limit {
                b.push(" FETCH NEXT ").push_u64(limit).push(" ROWS ONLY");
            }
        }
        dialect => {
            // SQLite and MySQL need a LIMIT before any OFFSET; these are their "no limit".
            let no_limit = if dialect == Dialect::Sqlite {
                "-1"
            } else {
                "18446744073709551615"
            };
            b.push(" LIMIT ");
            match limit {
                Some(n) => b.push_u64(n),
                None => b.push(no_limit),
            };
            if let Some(offset) = offset {
                b.push(" OFFSET ").push_u64(offset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use manifold_core::filter::parse_filter;
    use manifold_core::params::Params;
    use manifold_core::schema::{Field, TableName};
    use serde_json::json;

    fn posts() -> Collection {
        let mut id = Field::new("id", FieldType::BigInt);
        id.primary_key = true;
        Collection::new(
            "posts",
            TableName::new("posts"),
            vec![
                id,
                Field::new("title", FieldType::String),
                Field::new("score", FieldType::Integer),
            ],
        )
        .expect("valid collection")
    }

    fn find(filter: serde_json::Value, params: serde_json::Value) -> FindOptions {
        let c = posts();
        let params = Params::from_map(params.as_object().cloned().unwrap_or_default());
        let mut o = FindOptions::from_params(&c, &params).expect("valid params");
        o.filter = parse_filter(&c, &filter).expect("valid filter");
        o
    }

    #[test]
    fn select_is_parameterised_in_every_dialect() {
        let o = FindOptions {
            limit: Some(20),
            offset: Some(40),
            ..find(
                json!({"score": {"$gt": 3}, "title": {"$ne": "x"}}),
                json!({"sort": "-score"}),
            )
        };
        let c = posts();
        let sqlite = select(Dialect::Sqlite, &c, &o);
        assert_eq!(
            sqlite.text,
            "SELECT \"id\", \"title\", \"score\" FROM \"posts\" WHERE (\"score\" > ? AND (\"title\" <> ? OR \"title\" IS NULL)) ORDER BY \"score\" DESC NULLS LAST, \"id\" ASC LIMIT 20 OFFSET 40"
        );
        assert_eq!(sqlite.params, vec![Value::Int(3), Value::Text("x".into())]);
        assert_eq!(
            select(Dialect::Postgres, &c, &o).text,
            "SELECT \"id\", \"title\", \"score\" FROM \"posts\" WHERE (\"score\" > $1 AND (\"title\" <> $2 OR \"title\" IS NULL)) ORDER BY \"score\" DESC NULLS LAST, \"id\" ASC LIMIT 20 OFFSET 40"
        );
        assert_eq!(
            select(Dialect::MySql, &c, &o).text,
            "SELECT `id`, `title`, `score` FROM `posts` WHERE (`score` > ? AND (`title` <> ? OR `title` IS NULL)) ORDER BY `score` IS NULL, `score` DESC, `id` ASC LIMIT 20 OFFSET 40"
        );
        assert_eq!(
            select(Dialect::Mssql, &c, &o).text,
            "SELECT [id], [title], [score] FROM [posts] WHERE ([score] > @P1 AND ([title] <> @P2 OR [title] IS NULL)) ORDER BY CASE WHEN [score] IS NULL THEN 1 ELSE 0 END, [score] DESC, [id] ASC OFFSET 40 ROWS FETCH NEXT 20 ROWS ONLY"
        );
    }

    #[test]
    fn a_filter_that_keeps_one_row_is_not_ordered() {
        let c = posts();
        let by_key = FindOptions {
            limit: Some(1),
            ..find(
                json!({"id": 7, "score": {"$gt": 3}}),
                json!({"sort": "-score"}),
            )
        };
        let sql = select(Dialect::Postgres, &c, &by_key);
        assert!(!sql.text.contains("ORDER BY"), "{}", sql.text);
        // T-SQL still needs an ORDER BY before OFFSET … FETCH.
        let sql = select(Dialect::Mssql, &c, &by_key);
        assert!(sql.text.contains("ORDER BY (SELECT NULL)"), "{}", sql.text);
        let by_keys = FindOptions {
            limit: Some(1),
            ..find(json!({"id": {"$in": [7, 8]}}), json!({"sort": "-score"}))
        };
        let sql = select(Dialect::Postgres, &c, &by_keys);
        assert!(sql.text.contains("ORDER BY \"score\" DESC"), "{}", sql.text);
    }

    #[test]
    fn empty_membership_lists_follow_the_target_semantics() {
        let c = posts();
        let sql = select(
            Dialect::Sqlite,
            &c,
            &find(json!({"title.$in": []}), json!({})),
        );
        assert!(sql.text.contains("WHERE 1=0"), "{}", sql.text);
        let sql = select(
            Dialect::Sqlite,
            &c,
            &find(json!({"title.$notIn": []}), json!({})),
        );
        assert!(sql.text.contains("WHERE 1=1"), "{}", sql.text);
    }

    #[test]
    fn like_operands_are_escaped_and_bound() {
        let c = posts();
        let sql = select(
            Dialect::Sqlite,
            &c,
            &find(json!({"title.$includes": "50%_off\\"}), json!({})),
        );
        assert!(
            sql.text.contains("\"title\" LIKE ? ESCAPE '\\'"),
            "{}",
            sql.text
        );
        assert_eq!(sql.params, vec![Value::Text("%50\\%\\_off\\\\%".into())]);
        assert_eq!(escape_like(Dialect::Mssql, "[a]"), "\\[a]");
    }

    #[test]
    fn like_patterns_keep_their_wildcards_and_bind_in_every_dialect() {
        let c = posts();
        let where_of = |dialect, filter| {
            let sql = select(dialect, &c, &find(filter, json!({})));
            let text = sql
                .text
                .split(" WHERE ")
                .nth(1)
                .and_then(|w| w.split(" ORDER BY ").next())
                .map(str::to_owned);
            (text.unwrap_or(sql.text), sql.params)
        };
        let text = |s: &str| vec![Value::Text(s.into())];
        // `\%` is a literal percent sign; `*` and `[` are literal in GLOB classes.
        let pattern = json!({"title.$like": "%a*[\\%_"});
        assert_eq!(
            where_of(Dialect::Sqlite, pattern.clone()),
            ("\"title\" GLOB ?".into(), text("*a[*][[]%?"))
        );
        assert_eq!(
            where_of(Dialect::Postgres, pattern.clone()),
            ("\"title\" LIKE $1 ESCAPE '\\'".into(), text("%a*[\\%_"))
        );
        assert_eq!(
            where_of(Dialect::MySql, pattern),
            (
                "CONVERT(`title` USING utf8mb4) COLLATE utf8mb4_bin LIKE ?".into(),
                text("%a*[\\%_")
            )
        );
        let insensitive = json!({"score.$notILike": "1_"});
        assert_eq!(
            where_of(Dialect::Sqlite, insensitive.clone()),
            (
                "CAST(\"score\" AS TEXT) NOT LIKE ? ESCAPE '\\'".into(),
                text("1_")
            )
        );
        assert_eq!(
            where_of(Dialect::Postgres, insensitive.clone()),
            (
                "CAST(\"score\" AS TEXT) NOT ILIKE $1 ESCAPE '\\'".into(),
                text("1_")
            )
        );
        assert_eq!(
            where_of(Dialect::MySql, insensitive),
            (
                "LOWER(CONVERT(`score` USING utf8mb4)) COLLATE utf8mb4_bin NOT LIKE LOWER(?)"
                    .into(),
                text("1_")
            )
        );
    }

    #[test]
    fn linked_rows_come_back_with_their_source_key_in_one_join() {
        let c = posts();
        let mut post_id = Field::new("postId", FieldType::BigInt);
        post_id.primary_key = true;
        let mut tag_id = Field::new("tagId", FieldType::BigInt);
        tag_id.primary_key = true;
        let junction = Collection::new(
            "posts_tags",
            TableName::new("posts_tags"),
            vec![post_id, tag_id],
        )
        .expect("valid junction");
        let (source, target) = (
            FieldRef::new(junction.field("tagId").expect("tagId")),
            FieldRef::new(junction.field("postId").expect("postId")),
        );
        let key = FieldRef::new(c.field("id").expect("id"));
        let link = manifold_core::repository::Link {
            junction: &junction,
            source_column: &source,
            target_column: &target,
            target_key: &key,
        };
        let fields = vec![FieldRef::new(c.field("title").expect("title"))];
        let sql = select_linked(
            Dialect::Postgres,
            &c,
            &fields,
            &link,
            &[Value::Int(1), Value::Int(2)],
        );
        assert_eq!(
            sql.text,
            "SELECT t.\"title\", j.\"tagId\" FROM \"posts\" t JOIN \"posts_tags\" j ON j.\"postId\" = t.\"id\" WHERE j.\"tagId\" IN ($1, $2) ORDER BY t.\"id\" ASC"
        );
        assert_eq!(sql.params, vec![Value::Int(1), Value::Int(2)]);
    }

    #[test]
    fn hostile_identifiers_are_quoted_not_spliced() {
        let mut s = String::new();
        Dialect::Sqlite.quote_into("a\"; DROP TABLE x; --", &mut s);
        assert_eq!(s, "\"a\"\"; DROP TABLE x; --\"");
        let mut s = String::new();
        Dialect::Mssql.quote_into("a]b", &mut s);
        assert_eq!(s, "[a]]b]");
    }

    #[test]
    fn inserts_return_rows_in_each_dialect() {
        let c = posts();
        let values = WriteValues(vec![(
            FieldRef::new(c.field("title").expect("title")),
            Value::Text("t".into()),
        )]);
        let all = selected_fields(&c, &FindOptions::default());
        assert_eq!(
            insert(Dialect::Sqlite, &c, &values, Some(&all)).text,
            "INSERT INTO \"posts\" (\"title\") VALUES (?) RETURNING \"id\", \"title\", \"score\""
        );
        assert_eq!(
            insert(Dialect::Mssql, &c, &values, Some(&all)).text,
            "INSERT INTO [posts] ([title]) OUTPUT INSERTED.[id], INSERTED.[title], INSERTED.[score] VALUES (@P1)"
        );
        assert_eq!(
            insert(Dialect::MySql, &c, &WriteValues::default(), None).text,
            "INSERT INTO `posts` () VALUES ()"
        );
    }
}
