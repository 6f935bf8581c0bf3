//! The accounts and permissions as collections of the main database: their definitions
//! (made on first start, checked on every later one), the relations between them, the
//! built-in roles and scopes, the user `root`, and the signing secret.

use std::sync::Arc;

use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::filter::{FieldRef, key_filter, parse_filter};
use manifold_core::overlay::{CollectionOverlay, SchemaOverlay};
use manifold_core::query::FindOptions;
use manifold_core::repository::{Record, Repository, WriteFilter, WriteKind, WriteValues};
use manifold_core::schema::{Collection, FieldType};
use manifold_core::value::Value;
use manifold_core::{DataSource, Error, Result};
use serde_json::{Value as Json, json};

/// The accounts: people and the API keys' owners.
pub const USERS: &str = "users";
/// Roles and their strategy on the main data source.
pub const ROLES: &str = "roles";
/// Which user has which role (`default` marks the one used without `X-Role`).
pub const ROLES_USERS: &str = "rolesUsers";
/// A role's strategy on one data source.
pub const SOURCE_ROLES: &str = "dataSourcesRoles";
/// A role's explicit configuration of one collection of one data source.
pub const RESOURCES: &str = "dataSourcesRolesResources";
/// The actions of such a configuration, with their fields and scope.
pub const ACTIONS: &str = "dataSourcesRolesResourcesActions";
/// Named row filters that actions refer to.
pub const SCOPES: &str = "dataSourcesRolesResourcesScopes";
/// API keys (stored as their id only: the key itself is never kept).
pub const API_KEYS: &str = "apiKeys";
/// Sign-in sessions: a token is valid only while its `jti` is listed here.
pub const ISSUED_TOKENS: &str = "_manifold_issued_tokens";
/// Service settings, such as the generated signing secret.
pub const SETTINGS: &str = "_manifold_settings";

/// The collections only administration may touch (`allowConfigure` or `root`).
pub const ADMINISTERED: &[&str] = &[
    USERS,
    ROLES,
    ROLES_USERS,
    SOURCE_ROLES,
    RESOURCES,
    ACTIONS,
    SCOPES,
];

/// Every collection this module keeps in the main database: the administered ones and
/// `apiKeys`, which each signed-in user manages for themselves.
pub fn collections() -> impl Iterator<Item = &'static str> {
    ADMINISTERED.iter().copied().chain([API_KEYS])
}

/// The collections whose rows say what roles may do: a write to one reloads the ACLs.
pub const PERMISSION_COLLECTIONS: &[&str] = &[ROLES, SOURCE_ROLES, RESOURCES, ACTIONS, SCOPES];

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

/// The definitions of the visible collections, as made on first start.
pub fn definitions() -> Vec<CollectionDefinition> {
    use FieldType::*;
    vec![
        collection(
            USERS,
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
            ROLES,
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
            ROLES_USERS,
            false,
            vec![
                key("userId", Integer),
                key("roleName", String),
                flag("default"),
            ],
        ),
        collection(
            SOURCE_ROLES,
            true,
            vec![
                required("dataSourceKey", String),
                required("roleName", String),
                field("strategy", Json),
            ],
        ),
        collection(
            RESOURCES,
            true,
            vec![
                source_key(),
                field("roleName", String),
                field("name", String),
                flag("usingActionsConfig"),
            ],
        ),
        collection(
            ACTIONS,
            true,
            vec![
                field("rolesResourceId", Integer),
                field("name", String),
                field("fields", Json),
                field("scopeId", Integer),
            ],
        ),
        collection(
            SCOPES,
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
            API_KEYS,
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

fn internal_definitions() -> [CollectionDefinition; 2] {
    [
        CollectionDefinition {
            name: ISSUED_TOKENS.into(),
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
            name: SETTINGS.into(),
            auto_gen_id: false,
            timestamps: false,
            fields: vec![
                key("key", FieldType::String),
                field("value", FieldType::Text),
            ],
        },
    ]
}

/// The relations between the accounts' collections and what they never show, laid over
/// the main source's schema.
pub fn overlay() -> SchemaOverlay {
    let mut overlay = SchemaOverlay::default();
    let mut declare = |name: &str, options: Json, fields: Vec<Json>| {
        overlay.collections.insert(
            name.to_owned(),
            CollectionOverlay {
                options: options.as_object().cloned().unwrap_or_default(),
                fields,
            },
        );
    };
    declare(
        USERS,
        json!({ "hiddenFields": ["password", "passwordChangeTz"] }),
        vec![json!({
            "name": "roles", "type": "belongsToMany", "target": ROLES, "through": ROLES_USERS,
            "foreignKey": "userId", "otherKey": "roleName", "sourceKey": "id", "targetKey": "name"
        })],
    );
    let resources = |name: &str| {
        json!({
            "name": name, "type": "hasMany", "target": RESOURCES,
            "foreignKey": "roleName", "sourceKey": "name"
        })
    };
    declare(
        ROLES,
        json!({}),
        vec![
            json!({
                "name": "users", "type": "belongsToMany", "target": USERS, "through": ROLES_USERS,
                "foreignKey": "roleName", "otherKey": "userId", "sourceKey": "name", "targetKey": "id"
            }),
            resources("resources"),
            resources("dataSourceResources"),
        ],
    );
    declare(
        RESOURCES,
        json!({}),
        vec![json!({
            "name": "actions", "type": "hasMany", "target": ACTIONS,
            "foreignKey": "rolesResourceId", "sourceKey": "id"
        })],
    );
    declare(
        ACTIONS,
        json!({}),
        vec![json!({
            "name": "scope", "type": "belongsTo", "target": SCOPES,
            "foreignKey": "scopeId", "targetKey": "id"
        })],
    );
    declare(API_KEYS, json!({ "hiddenFields": ["jti"] }), vec![]);
    overlay
}

/// Makes the collections that are missing and adopts those that exist. A table of the
/// same name made before Manifold (a `users` table of the user's own, say) is never dropped
/// or rewritten: when it is compatible ([`plan`]), the columns it lacks are added, nullable
/// or with a default, and it is used; otherwise starting fails with an error naming the
/// table and the conflict. Every existing table is checked before any is changed.
pub async fn migrate(main: &DataSource) -> Result<()> {
    let definitions = definitions();
    for definition in &definitions {
        if let Some((existing, _)) = main.collection(&definition.name) {
            plan(&existing, definition)?;
        }
    }
    for definition in &definitions {
        if main.collection(&definition.name).is_none()
            && let Err(e) = main.define_collection(definition).await
        {
            // Another process sharing the main database may have made it first.
            main.refresh().await?;
            if main.collection(&definition.name).is_none() {
                return Err(e);
            }
        }
        adopt(main, definition).await?;
    }
    for definition in internal_definitions() {
        main.internal_table(&definition).await?;
    }
    Ok(())
}

/// Adds to the existing table of `definition` the columns it lacks.
async fn adopt(main: &DataSource, definition: &CollectionDefinition) -> Result<()> {
    let lacking = |main: &DataSource| -> Result<Vec<FieldDefinition>> {
        match main.collection(&definition.name) {
            Some((existing, _)) => plan(&existing, definition),
            None => Err(Error::internal(format!(
                "table {} vanished from the main database",
                definition.name
            ))),
        }
    };
    let missing = lacking(main)?;
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|f| f.name.as_str()).collect();
    tracing::info!(
        table = %definition.name,
        columns = %names.join(", "),
        "adding the columns Manifold needs to an existing table"
    );
    if let Err(e) = main.add_fields(&definition.name, &missing).await {
        // Another process sharing the main database may have added them first.
        if !lacking(main)?.is_empty() {
            return Err(Error::new(
                e.kind(),
                format!(
                    "the main database has a table {} that lacks the columns {} Manifold \
                     needs, and adding them failed: {}",
                    definition.name,
                    names.join(", "),
                    e.message()
                ),
            ));
        }
    }
    Ok(())
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

/// What the existing table of `definition` lacks: the fields to add, each nullable unless
/// it has a default, so the rows already there stay valid. A table Manifold cannot use
/// as it is — a view, another primary key, a column of the same name and another type, a
/// NOT NULL column without a default that Manifold does not fill — is an error naming the
/// table and the conflict.
fn plan(existing: &Collection, definition: &CollectionDefinition) -> Result<Vec<FieldDefinition>> {
    let conflict = |what: String| {
        Error::conflict(format!(
            "the main database has a table {} that Manifold needs for accounts and permissions, \
             but {what}; Manifold never changes existing columns or rows: change the table or \
             rename it",
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

/// Reads and writes the accounts' rows on behalf of the service (no ACL, no request).
#[derive(Clone)]
pub struct Store {
    main: Arc<DataSource>,
}

impl Store {
    /// The store on `main`, whose collections [`migrate`] has made.
    pub fn new(main: Arc<DataSource>) -> Self {
        Self { main }
    }

    /// The repository of `name`, visible or internal.
    pub async fn repository(&self, name: &str) -> Result<Arc<dyn Repository>> {
        if name.starts_with('_') {
            let definition = internal_definitions()
                .into_iter()
                .find(|d| d.name == name)
                .ok_or_else(|| Error::internal(format!("no internal table {name}")))?;
            return self.main.internal_table(&definition).await;
        }
        self.main
            .collection(name)
            .map(|(_, repository)| repository)
            .ok_or_else(|| Error::internal(format!("no table {name} on the main data source")))
    }

    /// Every row of `name` matching `filter` (all visible fields, and `extra` hidden ones).
    pub async fn find(&self, name: &str, filter: &Json, extra: &[&str]) -> Result<Vec<Record>> {
        let repository = self.repository(name).await?;
        let collection = repository.collection();
        let fields = (!extra.is_empty()).then(|| {
            collection
                .fields()
                .iter()
                .filter(|f| !f.hidden || extra.contains(&f.name.as_str()))
                .map(FieldRef::new)
                .collect()
        });
        let options = FindOptions {
            filter: parse_filter_any(collection, filter)?,
            fields,
            ..FindOptions::default()
        };
        repository.find(&options).await
    }

    /// The first row of `name` matching `filter`.
    pub async fn find_one(
        &self,
        name: &str,
        filter: &Json,
        extra: &[&str],
    ) -> Result<Option<Record>> {
        Ok(self.find(name, filter, extra).await?.into_iter().next())
    }

    /// Inserts `row` into `name`; returns it as stored.
    pub async fn insert(&self, name: &str, row: &Json) -> Result<Record> {
        let repository = self.repository(name).await?;
        let values = WriteValues::from_json(
            repository.collection(),
            row,
            WriteKind::Create,
            &WriteFilter::default(),
            "values",
        )?;
        repository
            .create(&[values])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::internal(format!("insert into {name} returned nothing")))
    }

    /// Inserts `row` unless a row with the same primary key exists (another process may
    /// be inserting it at the same moment: that is not an error).
    pub async fn insert_if_absent(&self, name: &str, key: &Json, row: &Json) -> Result<()> {
        let repository = self.repository(name).await?;
        let filter = key_filter(repository.collection(), key)?;
        if repository.count(filter.as_ref()).await? > 0 {
            return Ok(());
        }
        if let Err(e) = self.insert(name, row).await
            && repository.count(filter.as_ref()).await? == 0
        {
            return Err(e);
        }
        Ok(())
    }

    /// Writes `values` to the rows of `name` matching `filter`; returns how many.
    pub async fn update(&self, name: &str, filter: &Json, values: &Json) -> Result<usize> {
        let repository = self.repository(name).await?;
        let collection = repository.collection();
        let values = WriteValues::from_json(
            collection,
            values,
            WriteKind::Update,
            &WriteFilter::default(),
            "values",
        )?;
        let filter = parse_filter_any(collection, filter)?;
        Ok(repository.update(filter.as_ref(), &values).await?.len())
    }

    /// Deletes the rows of `name` matching `filter`; returns how many.
    pub async fn delete(&self, name: &str, filter: &Json) -> Result<u64> {
        let repository = self.repository(name).await?;
        let filter = parse_filter_any(repository.collection(), filter)?;
        repository.destroy(filter.as_ref()).await
    }
}

/// A filter that may name hidden fields (the service's own lookups).
fn parse_filter_any(
    collection: &Collection,
    filter: &Json,
) -> Result<Option<manifold_core::filter::Filter>> {
    if collection.fields().iter().any(|f| f.hidden) {
        let mut open = collection.clone();
        open.unhide_all();
        return parse_filter(&open, filter);
    }
    parse_filter(collection, filter)
}

/// Makes the built-in roles and scopes where they are missing.
pub async fn seed(store: &Store) -> Result<()> {
    let roles = [
        json!({ "name": "root", "title": "Root", "hidden": true, "strategy": { "actions": ["*"] } }),
        json!({
            "name": "admin", "title": "Admin", "allowConfigure": true,
            "strategy": { "actions": ["create", "view", "update", "destroy"] }
        }),
        json!({
            "name": "member", "title": "Member", "default": true,
            "strategy": { "actions": ["view:own", "create", "update:own", "destroy:own"] }
        }),
    ];
    for role in roles {
        store.insert_if_absent(ROLES, &role["name"], &role).await?;
    }
    for (key, name, scope) in [
        ("all", "All records", json!({})),
        (
            "own",
            "Own records",
            json!({ "createdById": "{{ ctx.state.currentUser.id }}" }),
        ),
    ] {
        let exists = store.find_one(SCOPES, &json!({ "key": key }), &[]).await?;
        if exists.is_none() {
            store
                .insert(SCOPES, &json!({ "key": key, "name": name, "scope": scope }))
                .await?;
        }
    }
    Ok(())
}

/// The built-in roles, which cannot be destroyed.
pub const BUILT_IN_ROLES: &[&str] = &["root", "admin", "member"];
