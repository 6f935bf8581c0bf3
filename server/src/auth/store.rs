//! The accounts and permissions as collections of the main database (made by its
//! migrations, `crate::migrations`): the relations between them, the built-in roles and
//! scopes, the user `root`, and the signing secret.

use std::sync::Arc;

use manifold_core::declarations::{CollectionDeclarations, Declarations};
use manifold_core::filter::{FieldRef, key_filter, parse_filter};
use manifold_core::query::FindOptions;
use manifold_core::repository::{Record, Repository, WriteFilter, WriteKind, WriteValues};
use manifold_core::schema::Collection;
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

/// The relations between the accounts' collections and what they never show, laid over
/// the main source's schema.
pub fn declarations() -> Declarations {
    let mut declarations = Declarations::default();
    let mut declare = |name: &str, options: Json, fields: Vec<Json>| {
        declarations.collections.insert(
            name.to_owned(),
            CollectionDeclarations {
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
    declarations
}

/// Reads and writes the accounts' rows on behalf of the service (no ACL, no request).
#[derive(Clone)]
pub struct Store {
    main: Arc<DataSource>,
}

impl Store {
    /// The store on `main`, whose collections its migrations have made.
    pub fn new(main: Arc<DataSource>) -> Self {
        Self { main }
    }

    /// The repository of `name`, visible or internal.
    pub async fn repository(&self, name: &str) -> Result<Arc<dyn Repository>> {
        if name.starts_with('_') {
            return self.main.internal_table(name);
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
