//! The `CREATE TABLE` and `ALTER TABLE` shapes every SQL connector shares, written in each
//! connector's dialect.

use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::error::Result;
use manifold_core::schema::{FieldType, TableName};
use manifold_mssql::MssqlDialect;
use manifold_mysql::MySqlDialect;
use manifold_postgres::PostgresDialect;
use manifold_sql::Dialect;
use manifold_sql::SqlBuilder;
use manifold_sql::ddl::*;
use manifold_sqlite::SqliteDialect;

/// A minimal writer for any dialect: the clause under test does not depend on it.
struct Plain(&'static dyn Dialect);

impl ColumnWriter for Plain {
    fn dialect(&self) -> &'static dyn Dialect {
        self.0
    }

    fn id_column(&self) -> String {
        let mut b = SqlBuilder::new(self.0);
        b.ident("id").push(" BIGINT PRIMARY KEY");
        b.finish().text
    }

    fn column(&self, field: &FieldDefinition, inline_key: bool) -> Result<String> {
        Ok(standard_column(self.0, field, inline_key, "INTEGER", None))
    }
}

fn posts() -> CollectionDefinition {
    CollectionDefinition {
        name: "posts".into(),
        auto_gen_id: true,
        timestamps: false,
        fields: vec![
            FieldDefinition::new("authorId", FieldType::Integer),
            FieldDefinition::new("editor_id", FieldType::Integer),
        ],
    }
}

fn fk(column: &str, target: &str, target_column: &str) -> ForeignKeyDefinition {
    ForeignKeyDefinition {
        column: column.into(),
        target: target.into(),
        target_column: target_column.into(),
    }
}

#[test]
fn foreign_keys_are_table_constraints_in_every_dialect() {
    let keys = [
        fk("authorId", "users", "id"),
        fk("editor_id", "users", "id"),
    ];
    let cases: [(&dyn Dialect, Option<&str>, &str); 4] = [
        (
            &SqliteDialect,
            None,
            "CREATE TABLE \"posts\" (\"id\" BIGINT PRIMARY KEY, \"authorId\" INTEGER, \"editor_id\" INTEGER, \
             FOREIGN KEY (\"authorId\") REFERENCES \"users\" (\"id\"), \
             FOREIGN KEY (\"editor_id\") REFERENCES \"users\" (\"id\"))",
        ),
        (
            &PostgresDialect,
            Some("app"),
            "CREATE TABLE \"app\".\"posts\" (\"id\" BIGINT PRIMARY KEY, \"authorId\" INTEGER, \"editor_id\" INTEGER, \
             FOREIGN KEY (\"authorId\") REFERENCES \"app\".\"users\" (\"id\"), \
             FOREIGN KEY (\"editor_id\") REFERENCES \"app\".\"users\" (\"id\"))",
        ),
        (
            &MySqlDialect,
            None,
            "CREATE TABLE `posts` (`id` BIGINT PRIMARY KEY, `authorId` INTEGER, `editor_id` INTEGER, \
             FOREIGN KEY (`authorId`) REFERENCES `users` (`id`), \
             FOREIGN KEY (`editor_id`) REFERENCES `users` (`id`))",
        ),
        (
            &MssqlDialect,
            Some("dbo"),
            "CREATE TABLE [dbo].[posts] ([id] BIGINT PRIMARY KEY, [authorId] INTEGER, [editor_id] INTEGER, \
             FOREIGN KEY ([authorId]) REFERENCES [dbo].[users] ([id]), \
             FOREIGN KEY ([editor_id]) REFERENCES [dbo].[users] ([id]))",
        ),
    ];
    for (dialect, schema, expected) in cases {
        let table = TableName {
            schema: schema.map(str::to_owned),
            name: "posts".into(),
        };
        assert_eq!(
            create_table(&Plain(dialect), &table, &posts(), &keys).expect("valid"),
            expected,
            "{dialect:?}"
        );
    }
}

#[test]
fn foreign_keys_follow_a_composite_primary_key() {
    let mut post = FieldDefinition::new("postId", FieldType::Integer);
    post.primary_key = true;
    let mut tag = FieldDefinition::new("tagId", FieldType::Integer);
    tag.primary_key = true;
    let junction = CollectionDefinition {
        name: "posts_tags".into(),
        auto_gen_id: false,
        timestamps: false,
        fields: vec![post, tag],
    };
    let keys = [fk("postId", "posts", "id"), fk("tagId", "tags", "id")];
    assert_eq!(
        create_table(
            &Plain(&SqliteDialect),
            &TableName::new("posts_tags"),
            &junction,
            &keys
        )
        .expect("valid"),
        "CREATE TABLE \"posts_tags\" (\"postId\" INTEGER, \"tagId\" INTEGER, \
         PRIMARY KEY (\"postId\", \"tagId\"), \
         FOREIGN KEY (\"postId\") REFERENCES \"posts\" (\"id\"), \
         FOREIGN KEY (\"tagId\") REFERENCES \"tags\" (\"id\"))"
    );
}

#[test]
fn an_added_column_is_nullable_or_defaulted_and_its_uniqueness_an_index() {
    let table = TableName {
        schema: Some("app".into()),
        name: "users".into(),
    };
    let mut username = FieldDefinition::new("username", FieldType::String);
    username.unique = true;
    assert_eq!(
        add_column(&Plain(&PostgresDialect), &table, &username).expect("valid"),
        [
            "ALTER TABLE \"app\".\"users\" ADD COLUMN \"username\" INTEGER",
            "CREATE UNIQUE INDEX \"users_username_unique\" ON \"app\".\"users\" (\"username\")",
        ]
    );
    let mut flag = FieldDefinition::new("hidden", FieldType::Boolean);
    flag.allow_null = false;
    flag.default_value = Some(manifold_core::value::Value::Bool(false));
    assert_eq!(
        add_column(&Plain(&MySqlDialect), &TableName::new("roles"), &flag).expect("valid"),
        ["ALTER TABLE `roles` ADD COLUMN `hidden` INTEGER NOT NULL"]
    );
    let mut required = FieldDefinition::new("name", FieldType::String);
    required.allow_null = false;
    let mut key = FieldDefinition::new("code", FieldType::String);
    key.primary_key = true;
    for field in [required, key] {
        let err = add_column(&Plain(&SqliteDialect), &table, &field).expect_err("refused");
        assert_eq!(err.kind(), manifold_core::ErrorKind::BadRequest);
        assert!(err.message().contains(&field.name), "{}", err.message());
    }
}

#[test]
fn without_foreign_keys_nothing_is_added() {
    assert_eq!(
        create_table(
            &Plain(&PostgresDialect),
            &TableName::new("posts"),
            &posts(),
            &[]
        )
        .expect("valid"),
        "CREATE TABLE \"posts\" (\"id\" BIGINT PRIMARY KEY, \"authorId\" INTEGER, \"editor_id\" INTEGER)"
    );
}

#[test]
fn a_foreign_key_on_an_unknown_column_or_with_a_malformed_name_is_refused() {
    let table = TableName::new("posts");
    for (key, needle) in [
        (fk("ownerId", "users", "id"), "ownerId"),
        (fk("authorId", "users\"; DROP TABLE x; --", "id"), "users"),
        (fk("authorId", "users", "id`"), "id`"),
    ] {
        let err =
            create_table(&Plain(&MySqlDialect), &table, &posts(), &[key]).expect_err("refused");
        assert_eq!(err.kind(), manifold_core::ErrorKind::BadRequest);
        assert!(err.message().contains(needle), "{}", err.message());
    }
}
