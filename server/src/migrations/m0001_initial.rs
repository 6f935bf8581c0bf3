//! Migration 1: the schema as it was before versions were recorded — the data-source
//! records, the users' declarations about collections, the accounts and permissions, the
//! sign-in sessions and the service settings. Its definitions are a frozen copy: a later
//! change to any of these tables is a new migration.
//!
//! A table that already exists is adopted, not made: a database made by the version before
//! migrations is recognised as this version (its tables are all there, so the plan is
//! empty, or holds the columns a stopped first start never added), and a table made before
//! Manifold (a `users` table of the user's own, say) is never dropped or rewritten: when it
//! is compatible ([`lacking`]), the columns it lacks are added, nullable or with a default;
//! otherwise the migration fails with an error naming the table and the conflict. Every
//! existing table is checked before any statement is planned.

use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::schema::{Collection, FieldType};
use manifold_core::value::Value;
use manifold_core::{Error, Result};

use super::{Ddl, Migration};

/// The migration.
pub(super) const MIGRATION: Migration = Migration {
    version: 1,
    name: "initial schema",
    plan,
};

/// What accounts' tables are for, in a conflict's message.
const ACCOUNTS: &str = "accounts and permissions";
/// What Manifold's own tables are for.
const OWN_RECORDS: &str = "its own records";

/// Every table of the migration, in the order they are made, with what it is for.
fn tables() -> Vec<(CollectionDefinition, &'static str)> {
    let own = [
        data_source_records(),
        declarations("_manifold_collections", &[]),
        declarations("_manifold_fields", &["name"]),
    ];
    own.into_iter()
        .map(|d| (d, OWN_RECORDS))
        .chain(accounts().into_iter().map(|d| (d, ACCOUNTS)))
        .chain(accounts_internal().into_iter().map(|d| (d, ACCOUNTS)))
        .collect()
}

/// The plan: each missing table made, each existing one checked and completed.
fn plan(existing: &[Collection], ddl: &Ddl) -> Result<Vec<String>> {
    let tables = tables();
    let found = |name: &str| existing.iter().find(|c| c.name() == name);
    if found("_manifold_data_sources").is_some() {
        tracing::info!(
            "the main database was made before schema versions were recorded; checking it \
             against version 1 and recording it"
        );
    }
    let mut adopted = Vec::with_capacity(tables.len());
    for (definition, purpose) in &tables {
        adopted.push(match found(&definition.name) {
            Some(table) => Some((table, lacking(table, definition, purpose)?)),
            None => None,
        });
    }
    let mut statements = Vec::new();
    for ((definition, _), adopted) in tables.iter().zip(adopted) {
        let Some((table, missing)) = adopted else {
            statements.extend(ddl.create_table(definition)?);
            continue;
        };
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|f| f.name.as_str()).collect();
            tracing::info!(
                table = %definition.name,
                columns = %names.join(", "),
                "adding the columns Manifold needs to an existing table"
            );
        }
        for field in &missing {
            statements.extend(ddl.add_column(table.table(), field)?);
        }
    }
    Ok(statements)
}

/// The data sources registered through the API (`_manifold_data_sources`).
fn data_source_records() -> CollectionDefinition {
    let mut enabled = FieldDefinition::new("enabled", FieldType::Boolean);
    enabled.default_value = Some(Value::Bool(true));
    CollectionDefinition {
        name: "_manifold_data_sources".into(),
        auto_gen_id: false,
        timestamps: true,
        fields: vec![
            key("key", FieldType::String),
            required("type", FieldType::String),
            field("displayName", FieldType::String),
            field("options", FieldType::Json),
            enabled,
        ],
    }
}

/// A table of users' declarations (collection options, or relation fields with `extra`
/// columns), keyed by `key`.
fn declarations(name: &str, extra: &[&str]) -> CollectionDefinition {
    let mut fields = vec![key("key", FieldType::String)];
    for column in ["dataSourceKey", "collectionName"].iter().chain(extra) {
        fields.push(required(column, FieldType::String));
    }
    fields.push(field("options", FieldType::Json));
    CollectionDefinition {
        name: name.into(),
        auto_gen_id: false,
        timestamps: true,
        fields,
    }
}

fn field(name: &str, field_type: FieldType) -> FieldDefinition {
    FieldDefinition::new(name, field_type)
}

fn key(name: &str, field_type: FieldType) -> FieldDefinition {
    FieldDefinition {
        primary_key: true,
        allow_null: false,
        ..FieldDefinition::new(name, field_type)
    }
}

fn required(name: &str, field_type: FieldType) -> FieldDefinition {
    FieldDefinition {
        allow_null: false,
        ..FieldDefinition::new(name, field_type)
    }
}

fn unique(name: &str) -> FieldDefinition {
    FieldDefinition {
        unique: true,
        ..FieldDefinition::new(name, FieldType::String)
    }
}

fn flag(name: &str) -> FieldDefinition {
    FieldDefinition {
        default_value: Some(Value::Bool(false)),
        ..FieldDefinition::new(name, FieldType::Boolean)
    }
}

fn source_key() -> FieldDefinition {
    FieldDefinition {
        default_value: Some(Value::Text("main".into())),
        ..FieldDefinition::new("dataSourceKey", FieldType::String)
    }
}

fn collection(name: &str, auto_gen_id: bool, fields: Vec<FieldDefinition>) -> CollectionDefinition {
    CollectionDefinition {
        name: name.into(),
        auto_gen_id,
        timestamps: true,
        fields,
    }
}

/// The accounts' and permissions' tables, which become collections of `main`.
fn accounts() -> Vec<CollectionDefinition> {
    use FieldType::*;
    vec![
        collection(
            "users",
            true,
            vec![
                field("nickname", String),
                unique("username"),
                unique("email"),
                field("phone", String),
                field("password", String),
                field("passwordChangeTz", BigInt),
                field("createdById", Integer),
                field("updatedById", Integer),
            ],
        ),
        collection(
            "roles",
            false,
            vec![
                key("name", String),
                field("title", String),
                field("description", Text),
                field("strategy", Json),
                flag("default"),
                flag("hidden"),
                flag("allowConfigure"),
                field("snippets", Json),
            ],
        ),
        collection(
            "rolesUsers",
            false,
            vec![
                key("userId", Integer),
                key("roleName", String),
                flag("default"),
            ],
        ),
        collection(
            "dataSourcesRoles",
            true,
            vec![
                required("dataSourceKey", String),
                required("roleName", String),
                field("strategy", Json),
            ],
        ),
        collection(
            "dataSourcesRolesResources",
            true,
            vec![
                source_key(),
                field("roleName", String),
                field("name", String),
                flag("usingActionsConfig"),
            ],
        ),
        collection(
            "dataSourcesRolesResourcesActions",
            true,
            vec![
                field("rolesResourceId", Integer),
                field("name", String),
                field("fields", Json),
                field("scopeId", Integer),
            ],
        ),
        collection(
            "dataSourcesRolesResourcesScopes",
            true,
            vec![
                field("key", String),
                source_key(),
                field("name", String),
                field("resourceName", String),
                field("scope", Json),
            ],
        ),
        collection(
            "apiKeys",
            true,
            vec![
                field("name", String),
                field("roleName", String),
                unique("jti"),
                field("expiresAt", DateTime),
                field("createdById", Integer),
            ],
        ),
    ]
}

/// The sign-in sessions and the service settings.
fn accounts_internal() -> [CollectionDefinition; 2] {
    [
        CollectionDefinition {
            name: "_manifold_issued_tokens".into(),
            auto_gen_id: false,
            timestamps: false,
            fields: vec![
                key("jti", FieldType::String),
                required("userId", FieldType::Integer),
                required("signInTime", FieldType::BigInt),
                required("expiresAt", FieldType::BigInt),
            ],
        },
        CollectionDefinition {
            name: "_manifold_settings".into(),
            auto_gen_id: false,
            timestamps: false,
            fields: vec![
                key("key", FieldType::String),
                field("value", FieldType::Text),
            ],
        },
    ]
}

/// Whether a column of type `found` can hold what Manifold keeps in a field of type
/// `wanted`: text in any text column, 32-bit integers in any integer column, everything
/// else only in its own type (what Manifold writes and compares depends on it).
fn fits(wanted: FieldType, found: FieldType) -> bool {
    use FieldType::*;
    match wanted {
        String | Text => matches!(found, String | Text),
        Integer => matches!(found, Integer | BigInt),
        _ => found == wanted,
    }
}

/// What the existing table of `definition` (needed for `purpose`) lacks: the fields to
/// add, each nullable unless it has a default, so the rows already there stay valid. A table Manifold cannot use
/// as it is — a view, another primary key, a column of the same name and another type, a
/// NOT NULL column without a default that Manifold does not fill — is an error naming the
/// table and the conflict.
fn lacking(
    existing: &Collection,
    definition: &CollectionDefinition,
    purpose: &str,
) -> Result<Vec<FieldDefinition>> {
    let conflict = |what: String| {
        Error::conflict(format!(
            "the main database has a table {} that Manifold needs for {purpose}, but {what}; \
             Manifold never changes existing columns or rows: change the table or rename it",
            definition.name
        ))
    };
    if existing.is_view {
        return Err(conflict("it is a view, not a table".into()));
    }
    check_key(existing, definition).map_err(conflict)?;
    let mut wanted: Vec<FieldDefinition> = definition
        .fields
        .iter()
        .filter(|f| !f.primary_key)
        .cloned()
        .collect();
    if definition.timestamps {
        for name in ["createdAt", "updatedAt"] {
            wanted.push(FieldDefinition::new(name, FieldType::DateTime));
        }
    }
    let mut missing = Vec::new();
    for field in &wanted {
        match existing.field(&field.name) {
            Some(found) if !fits(field.field_type, found.field_type) => {
                return Err(conflict(format!(
                    "its column {} is {} ({}) where Manifold needs {}",
                    found.name, found.field_type, found.raw_type, field.field_type
                )));
            }
            Some(_) => {}
            None => missing.push(FieldDefinition {
                allow_null: field.allow_null || field.default_value.is_none(),
                ..field.clone()
            }),
        }
    }
    // Manifold fills its keys, its required fields and the timestamps on every insert;
    // any other NOT NULL column without a default would make those inserts fail.
    let filled = |name: &str| {
        definition
            .fields
            .iter()
            .any(|f| f.name == name && (f.primary_key || !f.allow_null))
            || (definition.timestamps && matches!(name, "createdAt" | "updatedAt"))
    };
    if let Some(found) = existing
        .fields()
        .iter()
        .find(|f| !f.allow_null && !f.primary_key && !filled(&f.name))
    {
        return Err(conflict(format!(
            "its column {} is NOT NULL without a default, and Manifold adds {} rows without \
             it; allow NULL there or give it a default",
            found.name, definition.name
        )));
    }
    Ok(missing)
}

/// Whether `existing` has the primary key Manifold addresses `definition`'s rows by:
/// `id`, an integer the database fills, or the definition's own key.
fn check_key(
    existing: &Collection,
    definition: &CollectionDefinition,
) -> std::result::Result<(), String> {
    let key: Vec<&manifold_core::schema::Field> = existing.primary_key().collect();
    let names = || {
        if key.is_empty() {
            "it has no primary key".to_owned()
        } else {
            let names: Vec<&str> = key.iter().map(|f| f.name.as_str()).collect();
            format!("its primary key is ({})", names.join(", "))
        }
    };
    if definition.auto_gen_id {
        let [id] = key.as_slice() else {
            return Err(format!("{} where Manifold needs a single key id", names()));
        };
        if id.name != "id" {
            return Err(format!("{} where Manifold needs a single key id", names()));
        }
        if !fits(FieldType::Integer, id.field_type) {
            return Err(format!(
                "its primary key id is {} ({}) where Manifold needs an integer",
                id.field_type, id.raw_type
            ));
        }
        if !id.auto_increment {
            return Err(
                "its primary key id is not filled by the database (no auto-increment or \
                 identity), and Manifold adds rows without an id"
                    .into(),
            );
        }
        return Ok(());
    }
    let wanted: Vec<&FieldDefinition> =
        definition.fields.iter().filter(|f| f.primary_key).collect();
    let same = key.len() == wanted.len()
        && key.iter().zip(&wanted).all(|(found, want)| {
            found.name == want.name && fits(want.field_type, found.field_type)
        });
    if !same {
        let wanted: Vec<String> = wanted
            .iter()
            .map(|f| format!("{} {}", f.name, f.field_type))
            .collect();
        let found: Vec<String> = key
            .iter()
            .map(|f| format!("{} {}", f.name, f.field_type))
            .collect();
        return Err(if found.is_empty() {
            format!(
                "it has no primary key where Manifold needs ({})",
                wanted.join(", ")
            )
        } else {
            format!(
                "its primary key is ({}) where Manifold needs ({})",
                found.join(", "),
                wanted.join(", ")
            )
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_database_gets_every_table_once_in_each_dialect() {
        let dialects = [
            Ddl::Sqlite,
            Ddl::Postgres {
                schema: "public".into(),
            },
            Ddl::MySql,
        ];
        for ddl in &dialects {
            let statements = plan(&[], ddl).expect("a plan");
            assert_eq!(statements.len(), tables().len(), "{statements:#?}");
            for (definition, _) in tables() {
                let made = statements
                    .iter()
                    .filter(|s| s.starts_with("CREATE TABLE") && s.contains(&definition.name))
                    .count();
                assert!(
                    made >= 1,
                    "{} is not made: {statements:#?}",
                    definition.name
                );
            }
        }
        let names: Vec<String> = tables().into_iter().map(|(d, _)| d.name).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }
}
