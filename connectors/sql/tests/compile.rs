//! The statements the shared compiler writes, in each connector's dialect.

use manifold_core::filter::{FieldRef, parse_filter};
use manifold_core::params::Params;
use manifold_core::query::FindOptions;
use manifold_core::repository::WriteValues;
use manifold_core::schema::{Collection, Field, FieldType, TableName};
use manifold_core::value::Value;
use manifold_mssql::MssqlDialect;
use manifold_mysql::MySqlDialect;
use manifold_postgres::PostgresDialect;
use manifold_sql::Dialect;
use manifold_sql::compile::*;
use manifold_sqlite::SqliteDialect;
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
    let sqlite = select(&SqliteDialect, &c, &o);
    assert_eq!(
        sqlite.text,
        "SELECT \"id\", \"title\", \"score\" FROM \"posts\" WHERE (\"score\" > ? AND (\"title\" <> ? OR \"title\" IS NULL)) ORDER BY \"score\" DESC NULLS LAST, \"id\" ASC LIMIT 20 OFFSET 40"
    );
    assert_eq!(sqlite.params, vec![Value::Int(3), Value::Text("x".into())]);
    assert_eq!(
        select(&PostgresDialect, &c, &o).text,
        "SELECT \"id\", \"title\", \"score\" FROM \"posts\" WHERE (\"score\" > $1 AND (\"title\" <> $2 OR \"title\" IS NULL)) ORDER BY \"score\" DESC NULLS LAST, \"id\" ASC LIMIT 20 OFFSET 40"
    );
    assert_eq!(
        select(&MySqlDialect, &c, &o).text,
        "SELECT `id`, `title`, `score` FROM `posts` WHERE (`score` > ? AND (`title` <> ? OR `title` IS NULL)) ORDER BY `score` IS NULL, `score` DESC, `id` ASC LIMIT 20 OFFSET 40"
    );
    assert_eq!(
        select(&MssqlDialect, &c, &o).text,
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
    let sql = select(&PostgresDialect, &c, &by_key);
    assert!(!sql.text.contains("ORDER BY"), "{}", sql.text);
    // T-SQL still needs an ORDER BY before OFFSET … FETCH.
    let sql = select(&MssqlDialect, &c, &by_key);
    assert!(sql.text.contains("ORDER BY (SELECT NULL)"), "{}", sql.text);
    let by_keys = FindOptions {
        limit: Some(1),
        ..find(json!({"id": {"$in": [7, 8]}}), json!({"sort": "-score"}))
    };
    let sql = select(&PostgresDialect, &c, &by_keys);
    assert!(sql.text.contains("ORDER BY \"score\" DESC"), "{}", sql.text);
}

#[test]
fn empty_membership_lists_follow_the_target_semantics() {
    let c = posts();
    let sql = select(
        &SqliteDialect,
        &c,
        &find(json!({"title.$in": []}), json!({})),
    );
    assert!(sql.text.contains("WHERE 1=0"), "{}", sql.text);
    let sql = select(
        &SqliteDialect,
        &c,
        &find(json!({"title.$notIn": []}), json!({})),
    );
    assert!(sql.text.contains("WHERE 1=1"), "{}", sql.text);
}

#[test]
fn like_operands_are_escaped_and_bound() {
    let c = posts();
    let sql = select(
        &SqliteDialect,
        &c,
        &find(json!({"title.$includes": "50%_off\\"}), json!({})),
    );
    assert!(
        sql.text.contains("\"title\" LIKE ? ESCAPE '\\'"),
        "{}",
        sql.text
    );
    assert_eq!(sql.params, vec![Value::Text("%50\\%\\_off\\\\%".into())]);
    assert_eq!(escape_like(&MssqlDialect, "[a]"), "\\[a]");
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
        where_of(&SqliteDialect, pattern.clone()),
        ("\"title\" GLOB ?".into(), text("*a[*][[]%?"))
    );
    assert_eq!(
        where_of(&PostgresDialect, pattern.clone()),
        ("\"title\" LIKE $1 ESCAPE '\\'".into(), text("%a*[\\%_"))
    );
    assert_eq!(
        where_of(&MySqlDialect, pattern),
        (
            "CONVERT(`title` USING utf8mb4) COLLATE utf8mb4_bin LIKE ?".into(),
            text("%a*[\\%_")
        )
    );
    let insensitive = json!({"score.$notILike": "1_"});
    assert_eq!(
        where_of(&SqliteDialect, insensitive.clone()),
        (
            "CAST(\"score\" AS TEXT) NOT LIKE ? ESCAPE '\\'".into(),
            text("1_")
        )
    );
    assert_eq!(
        where_of(&PostgresDialect, insensitive.clone()),
        (
            "CAST(\"score\" AS TEXT) NOT ILIKE $1 ESCAPE '\\'".into(),
            text("1_")
        )
    );
    assert_eq!(
        where_of(&MySqlDialect, insensitive),
        (
            "LOWER(CONVERT(`score` USING utf8mb4)) COLLATE utf8mb4_bin NOT LIKE LOWER(?)".into(),
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
        &PostgresDialect,
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
    SqliteDialect.quote_into("a\"; DROP TABLE x; --", &mut s);
    assert_eq!(s, "\"a\"\"; DROP TABLE x; --\"");
    let mut s = String::new();
    MssqlDialect.quote_into("a]b", &mut s);
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
        insert(&SqliteDialect, &c, &values, Some(&all)).text,
        "INSERT INTO \"posts\" (\"title\") VALUES (?) RETURNING \"id\", \"title\", \"score\""
    );
    assert_eq!(
        insert(&MssqlDialect, &c, &values, Some(&all)).text,
        "INSERT INTO [posts] ([title]) OUTPUT INSERTED.[id], INSERTED.[title], INSERTED.[score] VALUES (@P1)"
    );
    assert_eq!(
        insert(&MySqlDialect, &c, &WriteValues::default(), None).text,
        "INSERT INTO `posts` () VALUES ()"
    );
}

/// The example of docs/architecture.md ("A SQL connector on sqlx"), which shows this
/// function's middle lines and the text they give.
#[test]
fn the_architecture_pages_example_gives_the_text_it_shows() -> manifold_core::Result<()> {
    let mut fields = posts().fields().to_vec();
    fields.push(Field::new("createdAt", FieldType::DateTime));
    fields.push(Field::new("updatedAt", FieldType::DateTime));
    let collection = &Collection::new("posts", TableName::new("posts"), fields)?;

    let mut options = FindOptions::from_params(collection, &manifold_core::Params::default())?;
    options.filter = parse_filter(collection, &json!({"id": {"$in": [1, 2]}}))?;
    options.limit = Some(20);
    let sql = manifold_sql::compile::select(&PostgresDialect, collection, &options);

    assert_eq!(
        sql.text,
        "SELECT \"id\", \"title\", \"score\", \"createdAt\", \"updatedAt\" FROM \"posts\" \
         WHERE \"id\" IN ($1, $2) ORDER BY \"id\" ASC LIMIT 20"
    );
    assert_eq!(sql.params, vec![Value::Int(1), Value::Int(2)]);
    Ok(())
}
