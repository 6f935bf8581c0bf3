//! `CREATE TABLE` for a collection definition: the shape every dialect shares (an
//! auto-increment `id`, the fields, `createdAt`/`updatedAt`, a composite key), with the
//! per-column rendering left to the connector, which knows its type names and literals;
//! and `ALTER TABLE … ADD COLUMN` for a field added to an existing table.

use manifold_core::connector::{CollectionDefinition, FieldDefinition, validate_identifier};
use manifold_core::error::{Error, Result};
use manifold_core::schema::{FieldType, TableName};

use crate::{Dialect, SqlBuilder};

/// How one connector writes its columns.
pub trait ColumnWriter {
    /// The dialect.
    fn dialect(&self) -> Dialect;

    /// The whole definition of the auto-increment `id` key, name included.
    fn id_column(&self) -> String;

    /// One column; `inline_key` asks for `PRIMARY KEY` on it (a single-field key).
    fn column(&self, field: &FieldDefinition, inline_key: bool) -> Result<String>;

    /// What follows the closing parenthesis (MySQL's engine and character set).
    fn table_options(&self) -> &str {
        ""
    }
}

/// `"name" TYPE [PRIMARY KEY] [NOT NULL] [UNIQUE] [DEFAULT literal]`: the column form
/// SQLite and PostgreSQL share. `default_literal` is the default already written as SQL.
pub fn standard_column(
    dialect: Dialect,
    field: &FieldDefinition,
    inline_key: bool,
    declared_type: &str,
    default_literal: Option<String>,
) -> String {
    let mut col = SqlBuilder::new(dialect);
    col.ident(&field.name).push(" ").push(declared_type);
    if inline_key {
        col.push(" PRIMARY KEY");
    }
    if !field.allow_null {
        col.push(" NOT NULL");
    }
    if field.unique && !field.primary_key {
        col.push(" UNIQUE");
    }
    if let Some(default) = default_literal {
        col.push(" DEFAULT ").push(&default);
    }
    col.finish().text
}

/// A single-column foreign key of a new table: `column` references `target_column` of
/// table `target`, which lives in the same schema as the new table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKeyDefinition {
    /// The referencing column of the new table.
    pub column: String,
    /// The referenced table, in the new table's schema.
    pub target: String,
    /// The referenced column of `target`.
    pub target_column: String,
}

/// Checks that `fk` names a column of the table being created, and that every name it holds
/// has the strict shape of [`validate_identifier`]: these names may come from a request.
fn check_foreign_key(
    fk: &ForeignKeyDefinition,
    definition: &CollectionDefinition,
    at: usize,
) -> Result<()> {
    validate_identifier(&fk.column, "foreign key column")?;
    validate_identifier(&fk.target, "foreign key target")?;
    validate_identifier(&fk.target_column, "foreign key target column")?;
    let declared = definition.fields.iter().any(|f| f.name == fk.column)
        || (definition.auto_gen_id && fk.column == "id")
        || (definition.timestamps && matches!(fk.column.as_str(), "createdAt" | "updatedAt"));
    if !declared {
        return Err(Error::bad_request(format!(
            "foreignKeys.{at}.column: {:?} is not a field of collection {}",
            fk.column, definition.name
        )));
    }
    Ok(())
}

/// The `CREATE TABLE` statement for `definition` (already validated by the core), with a
/// table-level `FOREIGN KEY … REFERENCES` clause for each of `foreign_keys`.
///
/// The clauses are table constraints rather than inline `REFERENCES` on the column because
/// MySQL parses and silently ignores the inline form.
pub fn create_table(
    writer: &impl ColumnWriter,
    table: &TableName,
    definition: &CollectionDefinition,
    foreign_keys: &[ForeignKeyDefinition],
) -> Result<String> {
    let keys: Vec<&FieldDefinition> = definition.fields.iter().filter(|f| f.primary_key).collect();
    let mut columns: Vec<String> = Vec::with_capacity(definition.fields.len() + 4);
    if definition.auto_gen_id {
        columns.push(writer.id_column());
    }
    for field in &definition.fields {
        let inline_key = field.primary_key && keys.len() == 1 && !definition.auto_gen_id;
        columns.push(writer.column(field, inline_key)?);
    }
    if definition.timestamps {
        for name in ["createdAt", "updatedAt"] {
            columns.push(writer.column(&FieldDefinition::new(name, FieldType::DateTime), false)?);
        }
    }
    if keys.len() > 1 && !definition.auto_gen_id {
        let mut pk = SqlBuilder::new(writer.dialect());
        pk.push("PRIMARY KEY (");
        pk.join(&keys, ", ", |b, f| {
            b.ident(&f.name);
        });
        pk.push(")");
        columns.push(pk.finish().text);
    }
    for (at, fk) in foreign_keys.iter().enumerate() {
        check_foreign_key(fk, definition, at)?;
        let target = TableName {
            schema: table.schema.clone(),
            name: fk.target.clone(),
        };
        let mut clause = SqlBuilder::new(writer.dialect());
        clause
            .push("FOREIGN KEY (")
            .ident(&fk.column)
            .push(") REFERENCES ")
            .table(&target)
            .push(" (")
            .ident(&fk.target_column)
            .push(")");
        columns.push(clause.finish().text);
    }
    let mut b = SqlBuilder::new(writer.dialect());
    b.push("CREATE TABLE ")
        .table(table)
        .push(" (")
        .push(&columns.join(", "))
        .push(")")
        .push(writer.table_options());
    Ok(b.finish().text)
}

/// The statements that add `field` to the existing `table`: `ALTER TABLE … ADD COLUMN`,
/// then, for a unique field, `CREATE UNIQUE INDEX` (SQLite refuses `UNIQUE` in `ADD
/// COLUMN`, so every dialect takes the same two steps). The rows already in the table must
/// stay valid, so a key, or a NOT NULL field without a default, is refused.
pub fn add_column(
    writer: &impl ColumnWriter,
    table: &TableName,
    field: &FieldDefinition,
) -> Result<Vec<String>> {
    validate_identifier(&field.name, "field name")?;
    if field.primary_key || (!field.allow_null && field.default_value.is_none()) {
        return Err(Error::bad_request(format!(
            "field {}: a column added to an existing table must allow NULL or have a default, \
             and cannot be part of the primary key",
            field.name
        )));
    }
    let plain = FieldDefinition {
        unique: false,
        ..field.clone()
    };
    let mut add = SqlBuilder::new(writer.dialect());
    add.push("ALTER TABLE ")
        .table(table)
        .push(if writer.dialect() == Dialect::Mssql {
            " ADD "
        } else {
            " ADD COLUMN "
        })
        .push(&writer.column(&plain, false)?);
    let mut statements = vec![add.finish().text];
    if field.unique {
        let mut index_name = format!("{}_{}_unique", table.name, field.name);
        // PostgreSQL truncates longer names and MySQL refuses them.
        index_name.truncate(63);
        let mut index = SqlBuilder::new(writer.dialect());
        index
            .push("CREATE UNIQUE INDEX ")
            .ident(&index_name)
            .push(" ON ")
            .table(table)
            .push(" (")
            .ident(&field.name)
            .push(")");
        statements.push(index.finish().text);
    }
    Ok(statements)
}

/// `DROP TABLE` or `DROP VIEW` for `table`.
pub fn drop_table(dialect: Dialect, table: &TableName, is_view: bool) -> String {
    let mut b = SqlBuilder::new(dialect);
    b.push(if is_view { "DROP VIEW " } else { "DROP TABLE " })
        .table(table);
    b.finish().text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal writer for any dialect: the clause under test does not depend on it.
    struct Plain(Dialect);

    impl ColumnWriter for Plain {
        fn dialect(&self) -> Dialect {
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
        let cases = [
            (
                Dialect::Sqlite,
                None,
                "CREATE TABLE \"posts\" (\"id\" BIGINT PRIMARY KEY, \"authorId\" INTEGER, \"editor_id\" INTEGER, \
                 FOREIGN KEY (\"authorId\") REFERENCES \"users\" (\"id\"), \
                 FOREIGN KEY (\"editor_id\") REFERENCES \"users\" (\"id\"))",
            ),
            (
                Dialect::Postgres,
                Some("app"),
                "CREATE TABLE \"app\".\"posts\" (\"id\" BIGINT PRIMARY KEY, \"authorId\" INTEGER, \"editor_id\" INTEGER, \
                 FOREIGN KEY (\"authorId\") REFERENCES \"app\".\"users\" (\"id\"), \
                 FOREIGN KEY (\"editor_id\") REFERENCES \"app\".\"users\" (\"id\"))",
            ),
            (
                Dialect::MySql,
                None,
                "CREATE TABLE `posts` (`id` BIGINT PRIMARY KEY, `authorId` INTEGER, `editor_id` INTEGER, \
                 FOREIGN KEY (`authorId`) REFERENCES `users` (`id`), \
                 FOREIGN KEY (`editor_id`) REFERENCES `users` (`id`))",
            ),
            (
                Dialect::Mssql,
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
                &Plain(Dialect::Sqlite),
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
            add_column(&Plain(Dialect::Postgres), &table, &username).expect("valid"),
            [
                "ALTER TABLE \"app\".\"users\" ADD COLUMN \"username\" INTEGER",
                "CREATE UNIQUE INDEX \"users_username_unique\" ON \"app\".\"users\" (\"username\")",
            ]
        );
        let mut flag = FieldDefinition::new("hidden", FieldType::Boolean);
        flag.allow_null = false;
        flag.default_value = Some(manifold_core::value::Value::Bool(false));
        assert_eq!(
            add_column(&Plain(Dialect::MySql), &TableName::new("roles"), &flag).expect("valid"),
            ["ALTER TABLE `roles` ADD COLUMN `hidden` INTEGER NOT NULL"]
        );
        let mut required = FieldDefinition::new("name", FieldType::String);
        required.allow_null = false;
        let mut key = FieldDefinition::new("code", FieldType::String);
        key.primary_key = true;
        for field in [required, key] {
            let err = add_column(&Plain(Dialect::Sqlite), &table, &field).expect_err("refused");
            assert_eq!(err.kind(), manifold_core::ErrorKind::BadRequest);
            assert!(err.message().contains(&field.name), "{}", err.message());
        }
    }

    #[test]
    fn without_foreign_keys_nothing_is_added() {
        assert_eq!(
            create_table(
                &Plain(Dialect::Postgres),
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
            let err = create_table(&Plain(Dialect::MySql), &table, &posts(), &[key])
                .expect_err("refused");
            assert_eq!(err.kind(), manifold_core::ErrorKind::BadRequest);
            assert!(err.message().contains(needle), "{}", err.message());
        }
    }
}
