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
    fn dialect(&self) -> &'static dyn Dialect;

    /// The whole definition of the auto-increment `id` key, name included.
    fn id_column(&self) -> String;

    /// One column; `inline_key` asks for `PRIMARY KEY` on it (a single-field key).
    fn column(&self, field: &FieldDefinition, inline_key: bool) -> Result<String>;

    /// What adds a column after `ALTER TABLE <table>`.
    fn add_column_keyword(&self) -> &str {
        " ADD COLUMN "
    }

    /// What follows the closing parenthesis (MySQL's engine and character set).
    fn table_options(&self) -> &str {
        ""
    }
}

/// `"name" TYPE [PRIMARY KEY] [NOT NULL] [UNIQUE] [DEFAULT literal]`: the column form
/// SQLite and PostgreSQL share. `default_literal` is the default already written as SQL.
pub fn standard_column(
    dialect: &'static dyn Dialect,
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
        .push(writer.add_column_keyword())
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
pub fn drop_table(dialect: &'static dyn Dialect, table: &TableName, is_view: bool) -> String {
    let mut b = SqlBuilder::new(dialect);
    b.push(if is_view { "DROP VIEW " } else { "DROP TABLE " })
        .table(table);
    b.finish().text
}
