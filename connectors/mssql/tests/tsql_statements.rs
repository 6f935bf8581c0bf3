//! The exact T-SQL the SQL Server connector sends for every action and for
//! introspection, checked without a server (none can be had here): each statement is
//! compared with its expected text and parsed by sqlparser's `MsSqlDialect`.
//!
//! sqlparser accepts `LIMIT`, which SQL Server does not, so every read is also checked
//! for `OFFSET … ROWS FETCH NEXT … ROWS ONLY` (or `TOP`) and the absence of `LIMIT`.
//! The shared compiler's operator coverage is in `connectors/sql/tests/tsql_generated.rs`;
//! this file covers what the connector itself sends.

use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::error::ErrorKind;
use manifold_core::filter::{FieldRef, key_filter, parse_filter};
use manifold_core::params::Params;
use manifold_core::query::FindOptions;
use manifold_core::repository::{WriteFilter, WriteKind, WriteValues};
use manifold_core::schema::{Collection, Field, FieldType, TableName};
use manifold_core::value::Value;
use manifold_mssql::MssqlDialect;
use manifold_mssql::repository::statements;
use manifold_mssql::{check_parameter_limit, ddl, introspect};
use manifold_sql::Sql;
use serde_json::{Value as Json, json};
use sqlparser::ast::{LimitClause, Statement};
use sqlparser::dialect::MsSqlDialect;
use sqlparser::parser::Parser;

fn orders() -> Collection {
    let mut id = Field::new("id", FieldType::BigInt);
    id.primary_key = true;
    id.auto_increment = true;
    Collection::new(
        "orders",
        TableName {
            schema: Some("sales".into()),
            name: "orders".into(),
        },
        vec![
            id,
            Field::new("customer", FieldType::String),
            Field::new("total", FieldType::Decimal),
            Field::new("paid", FieldType::Boolean),
            Field::new("at", FieldType::DateTime),
            Field::new("tags", FieldType::Array),
            Field::new("updatedAt", FieldType::DateTime),
        ],
    )
    .expect("valid")
}

fn all_fields(c: &Collection) -> Vec<FieldRef> {
    c.fields().iter().map(FieldRef::new).collect()
}

/// Parses `text` as one T-SQL statement.
fn parse(text: &str) -> Statement {
    let mut parsed = Parser::parse_sql(&MsSqlDialect {}, text)
        .unwrap_or_else(|e| panic!("not T-SQL ({e}): {text}"));
    assert_eq!(parsed.len(), 1, "one statement: {text}");
    parsed.remove(0)
}

/// Parses `sql`, checks it has no `LIMIT` and that its placeholders match its parameters.
fn assert_tsql(sql: &Sql) -> Statement {
    let statement = parse(&sql.text);
    assert!(
        !sql.text.to_uppercase().contains("LIMIT"),
        "LIMIT in T-SQL: {}",
        sql.text
    );
    for n in 1..=sql.params.len() {
        assert!(
            sql.text.contains(&format!("@P{n}")),
            "@P{n} missing: {}",
            sql.text
        );
    }
    assert!(
        !sql.text.contains(&format!("@P{}", sql.params.len() + 1)),
        "a placeholder without a parameter: {}",
        sql.text
    );
    assert!(check_parameter_limit(sql).is_ok());
    statement
}

/// A read with a window: `OFFSET n ROWS FETCH NEXT m ROWS ONLY` after an `ORDER BY`.
fn assert_paged(sql: &Sql, offset: u64, limit: u64) {
    assert_tsql(sql);
    let window = format!("OFFSET {offset} ROWS FETCH NEXT {limit} ROWS ONLY");
    assert!(sql.text.ends_with(&window), "{}", sql.text);
    let order = sql
        .text
        .find(" ORDER BY ")
        .expect("OFFSET needs an ORDER BY");
    assert!(
        order < sql.text.find(" OFFSET ").unwrap_or(0),
        "{}",
        sql.text
    );
}

fn list_options(c: &Collection, filter: Json, params: Json, page: u64, size: u64) -> FindOptions {
    let params = Params::from_map(params.as_object().cloned().unwrap_or_default());
    let mut o = FindOptions::from_params(c, &params).expect("valid params");
    o.filter = parse_filter(c, &filter).expect("valid filter");
    o.offset = Some((page - 1) * size);
    o.limit = Some(size);
    o
}

#[test]
fn list_pages_sort_with_nulls_last_and_filter_with_bound_values() {
    let c = orders();
    let options = list_options(
        &c,
        json!({"$or": [{"customer": {"$includes": "ann"}}, {"total": {"$gte": "10.50"}}], "paid": true}),
        json!({"sort": ["-at", "customer"], "fields": ["id", "customer", "total"]}),
        3,
        20,
    );
    let sql = statements::find(&c, &options);
    assert_eq!(
        sql.text,
        "SELECT [id], [customer], [total] FROM [sales].[orders] \
         WHERE ((([customer] LIKE @P1 ESCAPE '\\') OR [total] >= @P2) AND [paid] = @P3) \
         ORDER BY CASE WHEN [at] IS NULL THEN 1 ELSE 0 END, [at] DESC, \
         CASE WHEN [customer] IS NULL THEN 1 ELSE 0 END, [customer] ASC, \
         [id] ASC \
         OFFSET 40 ROWS FETCH NEXT 20 ROWS ONLY"
    );
    assert_eq!(
        sql.params,
        vec![
            Value::Text("%ann%".into()),
            Value::Decimal("10.50".into()),
            Value::Bool(true),
        ]
    );
    assert_paged(&sql, 40, 20);
    let Statement::Query(query) = parse(&sql.text) else {
        panic!("a SELECT");
    };
    // sqlparser keeps OFFSET in its limit clause; no LIMIT may be in it.
    match &query.limit_clause {
        Some(LimitClause::LimitOffset {
            limit: None,
            offset: Some(offset),
            ..
        }) => assert_eq!(offset.value.to_string(), "40"),
        other => panic!("expected OFFSET without LIMIT, got {other:?}"),
    }
    assert!(query.fetch.is_some(), "a FETCH clause");
}

#[test]
fn a_first_page_without_sort_still_orders_before_fetching() {
    let c = orders();
    let mut options = list_options(&c, json!({}), json!({}), 1, 50);
    options.sort.clear();
    let sql = statements::find(&c, &options);
    assert!(
        sql.text
            .ends_with(" ORDER BY (SELECT NULL) OFFSET 0 ROWS FETCH NEXT 50 ROWS ONLY"),
        "{}",
        sql.text
    );
    assert_paged(&sql, 0, 50);
}

#[test]
fn get_reads_one_row_by_key() {
    let c = orders();
    let mut options = list_options(&c, json!({}), json!({}), 1, 1);
    options.filter = key_filter(&c, &json!("7")).expect("valid key");
    let sql = statements::find(&c, &options);
    assert_eq!(
        sql.text,
        "SELECT [id], [customer], [total], [paid], [at], [tags], [updatedAt] FROM [sales].[orders] \
         WHERE [id] = @P1 ORDER BY (SELECT NULL) \
         OFFSET 0 ROWS FETCH NEXT 1 ROWS ONLY"
    );
    assert_eq!(sql.params, vec![Value::Int(7)]);
    assert_paged(&sql, 0, 1);
}

#[test]
fn count_uses_count_big() {
    let c = orders();
    let filter = parse_filter(&c, &json!({"tags": {"$anyOf": ["a", "b"]}})).expect("valid");
    let sql = statements::count(&c, filter.as_ref());
    assert_eq!(
        sql.text,
        "SELECT COUNT_BIG(*) FROM [sales].[orders] \
         WHERE EXISTS (SELECT 1 FROM OPENJSON([tags]) WHERE value IN (@P1, @P2))"
    );
    assert_tsql(&sql);
    assert_eq!(
        statements::count(&c, None).text,
        "SELECT COUNT_BIG(*) FROM [sales].[orders]"
    );
    assert_tsql(&statements::count(&c, None));
}

#[test]
fn create_returns_the_row_with_output_inserted() {
    let c = orders();
    let values = WriteValues::from_json(
        &c,
        &json!({"customer": "Ann", "total": "12.50", "tags": ["x"], "id": 5}),
        WriteKind::Create,
        &WriteFilter::default(),
        "values",
    )
    .expect("valid values");
    let sql = statements::insert(&c, &values, &all_fields(&c));
    assert_eq!(
        sql.text,
        "INSERT INTO [sales].[orders] ([customer], [total], [tags], [id], [updatedAt]) \
         OUTPUT INSERTED.[id], INSERTED.[customer], INSERTED.[total], INSERTED.[paid], \
         INSERTED.[at], INSERTED.[tags], INSERTED.[updatedAt] \
         VALUES (@P1, @P2, @P3, @P4, @P5)"
    );
    assert!(matches!(assert_tsql(&sql), Statement::Insert(_)));
    assert!(
        matches!(sql.params[4], Value::DateTime(_)),
        "updatedAt is filled"
    );

    // A row of defaults only. T-SQL puts OUTPUT before DEFAULT VALUES, as before VALUES;
    // sqlparser 0.63 parses OUTPUT only before VALUES or SELECT, so the statement is
    // checked without its OUTPUT clause.
    let sql = statements::insert(&c, &WriteValues::default(), &all_fields(&c)[..1]);
    assert_eq!(
        sql.text,
        "INSERT INTO [sales].[orders] OUTPUT INSERTED.[id] DEFAULT VALUES"
    );
    parse(&sql.text.replace(" OUTPUT INSERTED.[id]", ""));
}

#[test]
fn update_returns_the_rows_with_output_inserted() {
    let c = orders();
    let values = WriteValues::from_json(
        &c,
        &json!({"paid": true, "id": 99}),
        WriteKind::Update,
        &WriteFilter::default(),
        "values",
    )
    .expect("valid values");
    let filter = parse_filter(
        &c,
        &json!({"customer": {"$in": ["a", "b"]}, "paid": {"$isFalsy": true}}),
    )
    .expect("valid");
    let sql = statements::update(&c, &values, filter.as_ref(), &all_fields(&c)[..2]);
    assert_eq!(
        sql.text,
        "UPDATE [sales].[orders] SET [paid] = @P1, [updatedAt] = @P2 \
         OUTPUT INSERTED.[id], INSERTED.[customer] \
         WHERE ([customer] IN (@P3, @P4) AND ([paid] IS NULL OR [paid] = @P5))"
    );
    assert!(matches!(assert_tsql(&sql), Statement::Update { .. }));
    assert_eq!(sql.params[0], Value::Bool(true));
}

#[test]
fn destroy_deletes_what_the_filter_matches() {
    let c = orders();
    let filter = key_filter(&c, &json!([1, 2, 3])).expect("valid");
    let sql = statements::destroy(&c, filter.as_ref());
    assert_eq!(
        sql.text,
        "DELETE FROM [sales].[orders] WHERE [id] IN (@P1, @P2, @P3)"
    );
    assert!(matches!(assert_tsql(&sql), Statement::Delete(_)));
}

#[test]
fn introspection_reads_the_whole_schema_in_three_parameterised_queries() {
    let statements = introspect::statements("sales", None);
    assert_eq!(statements.len(), 3);
    for sql in &statements {
        assert_tsql(sql);
        assert_eq!(sql.params, vec![Value::Text("sales".into()), Value::Null]);
        assert!(sql.text.contains("s.name = @P1"), "{}", sql.text);
        assert!(
            sql.text.contains("(@P2 IS NULL OR o.name = @P2)"),
            "{}",
            sql.text
        );
        // Catalog views are lower case: in a case-sensitive database `SYS.OBJECTS` fails.
        assert!(!sql.text.contains("SYS."), "{}", sql.text);
    }
    let [columns, keys, foreign_keys] = statements;
    assert!(
        columns.text.contains("o.type IN ('U', 'V')"),
        "views are collections too"
    );
    assert!(columns.text.contains("ORDER BY o.name, c.column_id"));
    assert!(
        keys.text
            .contains("i.is_primary_key = 1 OR (i.is_unique = 1 AND (i.has_filter = 0")
    );
    assert!(
        keys.text.contains("N' IS NOT NULL)'"),
        "nullable unique columns count"
    );
    assert!(foreign_keys.text.contains("sys.foreign_key_columns"));
    let [one_table, ..] = introspect::statements("dbo", Some("posts"));
    assert_eq!(
        one_table.params,
        vec![Value::Text("dbo".into()), Value::Text("posts".into())]
    );

    for text in [introspect::SCHEMA_ID, introspect::UNIQUE_INDEX_COLUMNS] {
        parse(text);
    }
}

#[test]
fn create_collection_ddl_is_t_sql() {
    let mut title = FieldDefinition::new("title", FieldType::String);
    title.allow_null = false;
    title.unique = true;
    let mut price = FieldDefinition::new("price", FieldType::Decimal);
    price.precision = Some((12, 2));
    price.default_value = Some(Value::Decimal("0.00".into()));
    let definition = CollectionDefinition {
        name: "products".into(),
        auto_gen_id: true,
        timestamps: true,
        fields: FieldType::CREATABLE
            .iter()
            .map(|t| FieldDefinition::new(format!("f_{}", t.name()), *t))
            .chain([title, price])
            .collect(),
    };
    let text = ddl::create_table(&definition, "sales").expect("valid");
    assert!(
        text.starts_with(
            "CREATE TABLE [sales].[products] ([id] BIGINT IDENTITY(1,1) PRIMARY KEY, "
        )
    );
    for expected in [
        "[f_string] NVARCHAR(255)",
        "[f_text] NVARCHAR(MAX)",
        "[f_datetime] DATETIMEOFFSET(3)",
        "[f_uuid] UNIQUEIDENTIFIER",
        "[f_boolean] BIT",
        "[f_decimal] DECIMAL(38, 10)",
        "[f_json] NVARCHAR(MAX) CHECK (ISJSON([f_json]) = 1)",
        "[title] NVARCHAR(255) NOT NULL UNIQUE",
        "[price] DECIMAL(12, 2) DEFAULT 0.00",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    assert!(matches!(parse(&text), Statement::CreateTable(_)));
    // A nullable unique field gets a filtered index: a UNIQUE constraint admits one NULL.
    let mut email = FieldDefinition::new("email", FieldType::String);
    email.unique = true;
    let with_email = CollectionDefinition {
        fields: vec![email],
        ..definition.clone()
    };
    let indexes = ddl::unique_indexes(&with_email, "sales");
    assert_eq!(
        indexes,
        [
            "CREATE UNIQUE INDEX [uq_email] ON [sales].[products] ([email]) WHERE [email] IS NOT NULL"
        ]
    );
    assert!(matches!(parse(&indexes[0]), Statement::CreateIndex(_)));
    assert!(
        !ddl::create_table(&with_email, "sales")
            .expect("valid")
            .contains("UNIQUE")
    );
    let drop = manifold_sql::ddl::drop_table(
        &MssqlDialect,
        &TableName {
            schema: Some("sales".into()),
            name: "products".into(),
        },
        false,
    );
    assert_eq!(drop, "DROP TABLE [sales].[products]");
    parse(&drop);
}

#[test]
fn more_than_two_thousand_parameters_are_refused_naming_the_limit() {
    let c = orders();
    // A long IN list is one JSON parameter on SQL Server, so many parameters take many
    // conditions.
    let ids = |n: i64| json!({"$or": (0..n).map(|i| json!({"id": i})).collect::<Vec<_>>()});
    let at_limit = statements::count(&c, parse_filter(&c, &ids(2_000)).expect("valid").as_ref());
    assert_eq!(at_limit.params.len(), 2_000);
    assert_tsql(&at_limit);
    let long_in = json!({"id": {"$in": (0..5_000).collect::<Vec<i64>>()}});
    let one = statements::count(&c, parse_filter(&c, &long_in).expect("valid").as_ref());
    assert_eq!(one.params.len(), 1, "5,000 ids are one JSON parameter");
    assert!(check_parameter_limit(&one).is_ok());

    let over = statements::count(&c, parse_filter(&c, &ids(2_001)).expect("valid").as_ref());
    let err = check_parameter_limit(&over).expect_err("over the limit");
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(err.message().contains("2100"), "{}", err.message());
    assert!(err.message().contains("2001"), "{}", err.message());
}

/// T-SQL text only (no server runs here): what `begin_locked` sends right after
/// `BEGIN TRANSACTION`, so `firstOrCreate` and `updateOrCreate` on the same values queue up.
#[test]
fn key_lock_generated_tsql_only_is_an_exclusive_sp_getapplock_owned_by_the_transaction() {
    let key = "sales.orders\u{1f}customer=\"o'brien\"";
    let lock = statements::key_lock(key, std::time::Duration::from_millis(2_500));
    assert_eq!(
        lock.text,
        "DECLARE @result int; \
         EXEC @result = sp_getapplock @Resource = @P1, @LockMode = 'Exclusive', \
         @LockOwner = 'Transaction', @LockTimeout = @P2; \
         SELECT CAST(CASE WHEN @result >= 0 THEN 1 ELSE 0 END AS bigint) AS granted"
    );
    // The key is bound, as a fixed-length name well under sp_getapplock's 255 characters;
    // nothing of it reaches the text.
    assert_eq!(
        lock.params,
        vec![
            Value::Text(manifold_sql::lock::lock_name(key)),
            Value::Int(2_500)
        ]
    );
    assert!(!lock.text.contains("brien"));
    let Value::Text(name) = &lock.params[0] else {
        unreachable!("checked above")
    };
    assert!(name.len() <= 255, "{name}");
    // A zero statement timeout waits without a limit of its own (the request's deadline
    // still applies).
    assert_eq!(
        statements::key_lock(key, std::time::Duration::ZERO).params[1],
        Value::Int(-1)
    );
    // The batch is three T-SQL statements; sqlparser reads the declaration and the answer
    // (it has no grammar for `EXEC @var = procedure`).
    let parts: Vec<&str> = lock.text.split("; ").collect();
    assert_eq!(parts.len(), 3);
    assert!(matches!(parse(parts[0]), Statement::Declare { .. }));
    assert!(parts[1].starts_with("EXEC @result = sp_getapplock "));
    assert!(matches!(parse(parts[2]), Statement::Query(_)));
}
