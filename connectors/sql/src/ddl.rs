//! `CREATE TABLE` for a collection definition: the shape every dialect shares (an
//! auto-increment `id`, the fields, `createdAt`/`updatedAt`, a composite key), with the
//! per-column rendering left to the connector, which knows its type names and literals.

use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::error::Result;
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

/// The `CREATE TABLE` statement for `definition` (already validated by the core).
pub fn create_table(
    writer: &impl ColumnWriter,
    table: &TableName,
    definition: &CollectionDefinition,
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
    let mut b = SqlBuilder::new(writer.dialect());
    b.push("CREATE TABLE ")
        .table(table)
        .push(" (")
        .push(&columns.join(", "))
        .push(")")
        .push(writer.table_options());
    Ok(b.finish().text)
}

/// `DROP TABLE` or `DROP VIEW` for `table`.
pub fn drop_table(dialect: Dialect, table: &TableName, is_view: bool) -> String {
    let mut b = SqlBuilder::new(dialect);
    b.push(if is_view { "DROP VIEW " } else { "DROP TABLE " })
        .table(table);
    b.finish().text
}
