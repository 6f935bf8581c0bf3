//! FindOptions, filters and writes compiled to parameterised SQL, once for every dialect.

use manifold_core::filter::{
    Comparison, FieldRef, Filter, LikePattern, Predicate, TextMatch, pins_one_row,
};
use manifold_core::query::{FindOptions, SortKey};
use manifold_core::repository::WriteValues;
use manifold_core::schema::{Collection, FieldType};
use manifold_core::value::Value;

use crate::builder::{Sql, SqlBuilder};
use crate::dialect::{Dialect, Returning};
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
pub fn select(
    dialect: &'static dyn Dialect,
    collection: &Collection,
    options: &FindOptions,
) -> Sql {
    select_columns(
        dialect,
        collection,
        options,
        &selected_fields(collection, options),
    )
}

/// [`select`], locking the rows it reads until the transaction ends (where the database
/// locks rows: PostgreSQL, MySQL).
pub fn select_for_update(
    dialect: &'static dyn Dialect,
    collection: &Collection,
    options: &FindOptions,
) -> Sql {
    let mut sql = select(dialect, collection, options);
    sql.text.push_str(dialect.row_lock());
    sql
}

/// [`select`] of `fields`, which the caller has already worked out with
/// [`selected_fields`] (a repository keeps its visible fields, and decodes by them).
pub fn select_columns(
    dialect: &'static dyn Dialect,
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
    dialect: &'static dyn Dialect,
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
pub fn count(
    dialect: &'static dyn Dialect,
    collection: &Collection,
    filter: Option<&Filter>,
) -> Sql {
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
    dialect: &'static dyn Dialect,
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
        b.push(dialect.insert_defaults());
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
    dialect: &'static dyn Dialect,
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

/// `OUTPUT INSERTED.…`, where the dialect names returned columns before `VALUES`/`WHERE`.
fn output_inserted(b: &mut SqlBuilder, returning: Option<&[FieldRef]>) {
    if let Some(fields) = returning
        && b.dialect().returning() == Returning::OutputInserted
    {
        b.push(" OUTPUT ");
        b.join(fields, ", ", |b, f| {
            b.push("INSERTED.").ident(&f.column);
        });
    }
}

/// `RETURNING …`, where the dialect names them at the end.
fn returning_clause(b: &mut SqlBuilder, returning: Option<&[FieldRef]>) {
    if let Some(fields) = returning
        && b.dialect().returning() == Returning::Clause
    {
        b.push(" RETURNING ");
        b.join(fields, ", ", |b, f| {
            b.ident(&f.column);
        });
    }
}

/// `DELETE FROM <table> WHERE …`.
pub fn delete(
    dialect: &'static dyn Dialect,
    collection: &Collection,
    filter: Option<&Filter>,
) -> Sql {
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
    b.field(f);
}

fn compared(b: &mut SqlBuilder, f: &FieldRef) {
    b.dialect().compared(b, f);
}

fn operand(b: &mut SqlBuilder, f: &FieldRef, v: &Value) {
    b.dialect().operand(b, f, v);
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

fn array_length(b: &mut SqlBuilder, f: &FieldRef) {
    b.dialect().array_length(b, f);
}

/// `f` holds at least one of `values` (false for none).
fn array_any(b: &mut SqlBuilder, f: &FieldRef, values: &[Value]) {
    if values.is_empty() {
        b.push("1=0");
        return;
    }
    b.dialect().array_any(b, f, values);
}

fn array_set(b: &mut SqlBuilder, f: &FieldRef, values: &[Value]) {
    b.dialect().array_set(b, f, values);
}

/// A JSON array literal of `values`, to bind as one parameter.
pub fn json_array(values: &[Value]) -> Value {
    Value::Json(serde_json::Value::Array(
        values.iter().map(Value::to_json).collect(),
    ))
}

/// The elements of the array in `f` as a table of `value`s.
fn elements(b: &mut SqlBuilder, f: &FieldRef) {
    let function = b.dialect().json_elements_function();
    b.push(function).push("(").field(f).push(")");
}

/// `f` holds at least one of `values`, by looking for them among its elements: the
/// default of [`Dialect::array_any`].
pub fn array_any_by_elements(b: &mut SqlBuilder, f: &FieldRef, values: &[Value]) {
    b.push("EXISTS (SELECT 1 FROM ");
    elements(b, f);
    b.push(" WHERE value IN (");
    b.join(values, ", ", |b, v| {
        b.bind(v.clone());
    });
    b.push("))");
}

/// `f` holds exactly the set `values`: every element of `f` is in `values`, and every
/// value is in `f`. The default of [`Dialect::array_set`].
pub fn array_set_by_elements(b: &mut SqlBuilder, f: &FieldRef, values: &[Value]) {
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

/// Whether `''` is a value of `f` (not of uuids, which PostgreSQL cannot compare with it).
fn is_text(f: &FieldRef) -> bool {
    matches!(f.field_type, FieldType::String | FieldType::Text)
}

fn in_list(b: &mut SqlBuilder, f: &FieldRef, values: &[Value], negated: bool) {
    b.dialect().in_list(b, f, values, negated);
}

/// `c IN (…)`, split into OR-ed (or, negated, AND-ed) chunks under the dialect's
/// parameter limit: the default of [`Dialect::in_list`].
pub fn in_list_chunked(b: &mut SqlBuilder, f: &FieldRef, values: &[Value], negated: bool) {
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

/// Escapes what is special in a `LIKE` pattern of `dialect` (`%`, `_`, the escape
/// character itself, and whatever else the dialect says) so a user's text matches
/// literally.
pub fn escape_like(dialect: &dyn Dialect, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if dialect.like_special(c) {
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
                .push(dialect.case_insensitive_like())
                .push(" ");
            let escaped = escape_like(dialect, text);
            let pattern = match mode {
                TextMatch::Contains => format!("%{escaped}%"),
                TextMatch::StartsWith => format!("{escaped}%"),
                TextMatch::EndsWith => format!("%{escaped}"),
            };
            b.bind(Value::Text(pattern))
                .push(dialect.like_escape_clause());
        },
    );
    b.push(")");
}

/// `$like` and friends: the client's pattern, re-rendered from its parsed form so that
/// `%`, `_` and `\` mean the same on every database, and always bound. Each dialect
/// decides how case is matched ([`Dialect::like`]).
fn like_match(
    b: &mut SqlBuilder,
    f: &FieldRef,
    pattern: &LikePattern,
    case_insensitive: bool,
    negated: bool,
) {
    b.dialect().like(b, f, pattern, case_insensitive, negated);
}

/// Appends ` [NOT] <op> <pattern> [ESCAPE …]` for the text already written: `pattern`
/// rendered with the dialect's escapes and bound, lowered on the server when `lower`.
pub fn like_operand(
    b: &mut SqlBuilder,
    pattern: &LikePattern,
    op: &str,
    lower: bool,
    negated: bool,
) {
    let dialect = b.dialect();
    let text = pattern.render("%", "_", |t| escape_like(dialect, t));
    b.push(if negated { " NOT " } else { " " })
        .push(op)
        .push(" ");
    if lower {
        b.push("LOWER(").bind(Value::Text(text)).push(")");
    } else {
        b.bind(Value::Text(text));
    }
    b.push(dialect.like_escape_clause());
}

/// `$like` under a binary collation, for databases whose default collation ignores case
/// or accents: `open` and `close` wrap the column to convert it to the collation's
/// character set. Case-insensitive matching lowers both sides, so neither the column's
/// collation nor accents change the answer.
pub fn like_under_collation(
    b: &mut SqlBuilder,
    f: &FieldRef,
    (open, close, collation): (&str, &str, &str),
    pattern: &LikePattern,
    case_insensitive: bool,
    negated: bool,
) {
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
    like_operand(b, pattern, "LIKE", case_insensitive, negated);
}

/// `f` as text: non-text columns (and uuids, which PostgreSQL will not `LIKE`) are cast
/// to the dialect's [`text_type`](Dialect::text_type).
pub fn text_column(b: &mut SqlBuilder, f: &FieldRef) {
    if f.field_type.is_textual() && f.field_type != FieldType::Uuid {
        column(b, f);
    } else {
        b.push("CAST(");
        column(b, f);
        let text_type = b.dialect().text_type();
        b.push(" AS ").push(text_type).push(")");
    }
}

fn order_by(b: &mut SqlBuilder, sort: &[SortKey]) {
    if sort.is_empty() {
        return;
    }
    let dialect = b.dialect();
    b.push(" ORDER BY ");
    b.join(sort, ", ", |b, key| {
        // A column that cannot be NULL needs no NULL placement, and without it the
        // database can walk an index in either direction instead of sorting. A column
        // reached through a relation can be NULL all the same: the relation may be empty.
        if !key.field.nullable && key.field.via.is_none() {
            column(b, &key.field);
            b.push(if key.descending { " DESC" } else { " ASC" });
            return;
        }
        dialect.order_nulls_last(b, &key.field, key.descending);
    });
}

fn window(b: &mut SqlBuilder, options: &FindOptions, ordered: bool) {
    let (limit, offset) = (options.limit, options.offset.filter(|o| *o > 0));
    if limit.is_none() && offset.is_none() {
        return;
    }
    b.dialect().page(b, limit, offset, ordered);
}
