//! The T-SQL the compiler writes for SQL Server, checked without a server (none can be
//! had here): exact snapshots of representative statements, and every statement for every
//! operator parsed by sqlparser's `MsSqlDialect` and free of `LIMIT`.

use manifold_core::filter::{FieldRef, parse_filter};
use manifold_core::params::Params;
use manifold_core::query::FindOptions;
use manifold_core::repository::WriteValues;
use manifold_core::schema::{Collection, Field, FieldType, TableName};
use manifold_core::value::Value;
use manifold_mssql::MssqlDialect;
use manifold_sql::{Sql, compile};
use serde_json::{Value as Json, json};
use sqlparser::dialect::MsSqlDialect;
use sqlparser::parser::Parser;

fn orders() -> Collection {
    let mut id = Field::new("id", FieldType::BigInt);
    id.primary_key = true;
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
            Field::new("day", FieldType::Date),
            Field::new("tags", FieldType::Array),
        ],
    )
    .expect("valid")
}

fn find(filter: Json, params: Json, limit: Option<u64>, offset: Option<u64>) -> FindOptions {
    let c = orders();
    let params = Params::from_map(params.as_object().cloned().unwrap_or_default());
    let mut o = FindOptions::from_params(&c, &params).expect("valid params");
    o.filter = parse_filter(&c, &filter).expect("valid filter");
    o.limit = limit;
    o.offset = offset;
    o
}

/// Parses `sql` as T-SQL and checks it has no `LIMIT`.
fn assert_tsql(sql: &Sql) {
    let parsed = Parser::parse_sql(&MsSqlDialect {}, &sql.text);
    assert!(
        parsed.is_ok(),
        "not T-SQL ({:?}): {}",
        parsed.err(),
        sql.text
    );
    assert!(
        !sql.text.to_uppercase().contains("LIMIT"),
        "LIMIT in T-SQL: {}",
        sql.text
    );
}

#[test]
fn a_page_is_offset_fetch_after_an_order_by() {
    let c = orders();
    let sql = compile::select(
        &MssqlDialect,
        &c,
        &find(
            json!({"total": {"$gt": "10.5"}}),
            json!({"sort": "-at"}),
            Some(20),
            Some(40),
        ),
    );
    assert_eq!(
        sql.text,
        "SELECT [id], [customer], [total], [paid], [at], [day], [tags] FROM [sales].[orders] \
         WHERE [total] > @P1 \
         ORDER BY CASE WHEN [at] IS NULL THEN 1 ELSE 0 END, [at] DESC, \
         [id] ASC \
         OFFSET 40 ROWS FETCH NEXT 20 ROWS ONLY"
    );
    assert_eq!(sql.params, vec![Value::Decimal("10.5".into())]);
    assert_tsql(&sql);

    // Without a sort there is still an ORDER BY, which OFFSET … FETCH requires.
    let mut unsorted = find(json!({}), json!({}), Some(5), None);
    unsorted.sort.clear();
    let sql = compile::select(&MssqlDialect, &c, &unsorted);
    assert!(
        sql.text
            .ends_with("ORDER BY (SELECT NULL) OFFSET 0 ROWS FETCH NEXT 5 ROWS ONLY"),
        "{}",
        sql.text
    );
    assert_tsql(&sql);
}

#[test]
fn writes_return_rows_with_output_inserted() {
    let c = orders();
    let all: Vec<FieldRef> = c.fields().iter().map(FieldRef::new).collect();
    let customer = FieldRef::new(c.field("customer").expect("customer"));
    let values = WriteValues(vec![(customer, Value::Text("Ann".into()))]);
    let insert = compile::insert(&MssqlDialect, &c, &values, Some(&all));
    assert_eq!(
        insert.text,
        "INSERT INTO [sales].[orders] ([customer]) OUTPUT INSERTED.[id], INSERTED.[customer], \
         INSERTED.[total], INSERTED.[paid], INSERTED.[at], INSERTED.[day], INSERTED.[tags] VALUES (@P1)"
    );
    assert_tsql(&insert);
    let filter = parse_filter(&c, &json!({"id": 3})).expect("valid");
    let update = compile::update(&MssqlDialect, &c, &values, filter.as_ref(), Some(&all[..2]));
    assert_eq!(
        update.text,
        "UPDATE [sales].[orders] SET [customer] = @P1 OUTPUT INSERTED.[id], INSERTED.[customer] WHERE [id] = @P2"
    );
    assert_tsql(&update);
    let delete = compile::delete(&MssqlDialect, &c, filter.as_ref());
    assert_eq!(delete.text, "DELETE FROM [sales].[orders] WHERE [id] = @P1");
    assert_tsql(&delete);
    assert_tsql(&compile::insert(
        &MssqlDialect,
        &c,
        &WriteValues::default(),
        None,
    ));
}

#[test]
fn every_operator_compiles_to_parseable_tsql() {
    let c = orders();
    let filters = [
        json!({"customer": "a"}),
        json!({"customer": {"$ne": "a"}}),
        json!({"customer": {"$in": ["a", "b"]}}),
        json!({"customer": {"$notIn": ["a"]}}),
        json!({"customer": {"$in": []}}),
        json!({"customer": {"$notIn": []}}),
        json!({"total": {"$gte": "1", "$lt": "9"}}),
        json!({"total": {"$between": ["1", "2"]}}),
        json!({"total": {"$notBetween": ["1", "2"]}}),
        json!({"customer": {"$includes": ["50%", "a_b", "[x]"]}}),
        json!({"customer": {"$notIncludes": "x"}}),
        json!({"customer": {"$startsWith": "a"}}),
        json!({"customer": {"$notEndWith": "z"}}),
        json!({"customer": {"$like": "%a_[b]%"}}),
        json!({"customer": {"$notLike": "a%"}}),
        json!({"customer": {"$iLike": "A%"}}),
        json!({"total": {"$notILike": "1_"}}),
        json!({"customer": {"$empty": true}}),
        json!({"total": {"$notEmpty": true}}),
        json!({"paid": {"$isTruly": true}}),
        json!({"paid": {"$isFalsy": true}}),
        json!({"customer": null}),
        json!({"customer": {"$ne": null}}),
        json!({"at": {"$dateOn": "2023-01"}}),
        json!({"at": {"$dateNotOn": "2023"}}),
        json!({"day": {"$dateBefore": "2023-01-12T12"}}),
        json!({"tags": {"$anyOf": ["a", 1]}}),
        json!({"tags": {"$noneOf": ["a"]}}),
        json!({"tags": {"$match": ["a", "b"]}}),
        json!({"tags": {"$notMatch": ["a"]}}),
        json!({"tags": {"$arrayEmpty": true}}),
        json!({"tags": {"$arrayNotEmpty": true}}),
        json!({"$or": [{"customer": "a"}, {"$and": [{"total": {"$gt": "1"}}, {"paid": true}]}]}),
    ];
    for filter in filters {
        let options = find(
            filter.clone(),
            json!({"sort": "customer"}),
            Some(10),
            Some(0),
        );
        for sql in [
            compile::select(&MssqlDialect, &c, &options),
            compile::count(&MssqlDialect, &c, options.filter.as_ref()),
            compile::delete(&MssqlDialect, &c, options.filter.as_ref()),
        ] {
            assert_tsql(&sql);
            assert!(
                sql.text.contains("@P") || sql.params.is_empty(),
                "{filter}: {}",
                sql.text
            );
        }
    }
}

#[test]
fn like_operands_escape_brackets_for_sql_server() {
    let c = orders();
    let sql = compile::select(
        &MssqlDialect,
        &c,
        &find(
            json!({"customer": {"$includes": "[a]%"}}),
            json!({}),
            None,
            None,
        ),
    );
    assert!(
        sql.text.contains("[customer] LIKE @P1 ESCAPE '\\'"),
        "{}",
        sql.text
    );
    assert_eq!(sql.params, vec![Value::Text("%\\[a]\\%%".into())]);
}

#[test]
fn like_patterns_compare_under_a_binary_collation_in_tsql() {
    let c = orders();
    let tsql = |filter: Json| {
        let sql = compile::select(&MssqlDialect, &c, &find(filter, json!({}), None, None));
        assert_tsql(&sql);
        sql
    };
    // Case-sensitive whatever the column's collation; `[` would open a class, so it is
    // escaped, and `%`/`_` stay wildcards.
    let sql = tsql(json!({"customer": {"$like": "%[VIP]_\\%"}}));
    assert_eq!(
        sql.text,
        "SELECT [id], [customer], [total], [paid], [at], [day], [tags] FROM [sales].[orders] \
         WHERE CAST([customer] AS NVARCHAR(MAX)) COLLATE Latin1_General_100_BIN2 LIKE @P1 ESCAPE '\\' \
         ORDER BY [id] ASC"
    );
    assert_eq!(sql.params, vec![Value::Text("%\\[VIP]_\\%".into())]);
    // Case-insensitive: both sides lowered, then compared exactly.
    let sql = tsql(json!({"customer": {"$notILike": "Ann%"}}));
    assert_eq!(
        sql.text,
        "SELECT [id], [customer], [total], [paid], [at], [day], [tags] FROM [sales].[orders] \
         WHERE LOWER(CAST([customer] AS NVARCHAR(MAX))) COLLATE Latin1_General_100_BIN2 \
         NOT LIKE LOWER(@P1) ESCAPE '\\' ORDER BY [id] ASC"
    );
    assert_eq!(sql.params, vec![Value::Text("Ann%".into())]);
}

#[test]
fn a_long_in_list_is_one_json_parameter_on_sql_server() {
    let c = orders();
    let ids: Vec<i64> = (1..=5000).collect();
    let options = find(json!({"id": {"$in": ids}}), json!({}), Some(10), None);
    let sql = compile::select(&MssqlDialect, &c, &options);
    assert!(
        sql.text
            .contains("WHERE [id] IN (SELECT CAST([value] AS BIGINT) FROM OPENJSON(@P1))"),
        "{}",
        sql.text
    );
    assert_eq!(sql.params.len(), 1, "5,000 ids travel as one parameter");
    assert_tsql(&sql);
    let options = find(
        json!({"customer": {"$notIn": (0..200).map(|i| format!("c{i}")).collect::<Vec<_>>()}}),
        json!({}),
        None,
        None,
    );
    let sql = compile::select(&MssqlDialect, &c, &options);
    assert!(
        sql.text.contains(
            "[customer] NOT IN (SELECT CAST([value] AS NVARCHAR(4000)) FROM OPENJSON(@P1))"
        ),
        "{}",
        sql.text
    );
    assert_tsql(&sql);
    // Short lists keep one parameter per value, which SQL Server plans best.
    let short = compile::select(
        &MssqlDialect,
        &c,
        &find(json!({"id": {"$in": [1, 2, 3]}}), json!({}), None, None),
    );
    assert!(
        short.text.contains("[id] IN (@P1, @P2, @P3)"),
        "{}",
        short.text
    );
}

/// customers ← orders (customerId) ← lines (orderId), in schema `sales`, with relations
/// derived as introspection would.
fn shop() -> Vec<std::sync::Arc<Collection>> {
    use manifold_core::schema::ForeignKey;
    let table = |name: &str| TableName {
        schema: Some("sales".into()),
        name: name.into(),
    };
    let key = || {
        let mut id = Field::new("id", FieldType::BigInt);
        id.primary_key = true;
        id
    };
    let fk = |column: &str, target: &str| ForeignKey {
        columns: vec![column.into()],
        target: target.into(),
        target_columns: vec!["id".into()],
    };
    let customers = Collection::new(
        "customers",
        table("customers"),
        vec![key(), Field::new("name", FieldType::String)],
    )
    .expect("valid");
    let mut orders = Collection::new(
        "orders",
        table("orders"),
        vec![
            key(),
            Field::new("customerId", FieldType::BigInt),
            Field::new("total", FieldType::Decimal),
        ],
    )
    .expect("valid");
    orders.foreign_keys = vec![fk("customerId", "customers")];
    let mut lines = Collection::new(
        "lines",
        table("lines"),
        vec![
            key(),
            Field::new("orderId", FieldType::BigInt),
            Field::new("sku", FieldType::String),
        ],
    )
    .expect("valid");
    lines.foreign_keys = vec![fk("orderId", "orders")];
    let mut all = vec![customers, orders, lines];
    manifold_core::associations::derive(&mut all);
    all.into_iter().map(std::sync::Arc::new).collect()
}

struct Shop(Vec<std::sync::Arc<Collection>>);

impl Shop {
    fn get(&self, name: &str) -> std::sync::Arc<Collection> {
        use manifold_core::filter::CollectionLookup;
        self.lookup(name).expect("collection in the shop")
    }
}

impl manifold_core::filter::CollectionLookup for Shop {
    fn lookup(&self, name: &str) -> Option<std::sync::Arc<Collection>> {
        self.0.iter().find(|c| c.name() == name).cloned()
    }
}

#[test]
fn association_filters_are_one_correlated_exists_and_sorts_join_to_one() {
    let shop = Shop(shop());
    let orders = shop.get("orders");
    let params = Params::from_map(
        json!({"sort": "-customer.name"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let mut o = FindOptions::from_params_across(&orders, &params, &shop).expect("valid sort");
    o.filter = manifold_core::filter::parse_filter_across(
        &orders,
        &json!({"lines.sku": {"$startsWith": "A"}, "total": {"$gt": 5}}),
        &Default::default(),
        &shop,
    )
    .expect("valid filter");
    o.limit = Some(20);
    let sql = compile::select(&MssqlDialect, &orders, &o);
    assert_eq!(
        sql.text,
        "SELECT [orders].[id], [orders].[customerId], [orders].[total] FROM [sales].[orders] \
         LEFT JOIN [sales].[customers] AS [_j1] ON [_j1].[id] = [orders].[customerId] \
         WHERE EXISTS (SELECT 1 FROM [sales].[orders] AS [_js] \
         LEFT JOIN [sales].[lines] AS [_je1] ON [_je1].[orderId] = [_js].[id] \
         WHERE [_js].[id] = [orders].[id] AND \
         (([_je1].[sku] LIKE @P1 ESCAPE '\\') AND [orders].[total] > @P2)) \
         ORDER BY CASE WHEN [_j1].[name] IS NULL THEN 1 ELSE 0 END, [_j1].[name] DESC, \
         [orders].[id] ASC \
         OFFSET 0 ROWS FETCH NEXT 20 ROWS ONLY"
    );
    assert_tsql(&sql);
    let filter = o.filter.as_ref();
    for sql in [
        compile::count(&MssqlDialect, &orders, filter),
        compile::delete(&MssqlDialect, &orders, filter),
    ] {
        assert!(
            sql.text
                .contains("WHERE EXISTS (SELECT 1 FROM [sales].[orders] AS [_js]"),
            "{}",
            sql.text
        );
        assert_tsql(&sql);
    }
}
