//! NocoBase's forms for what a role may do on one data source:
//! `dataSources/<key>/roles:list|get|update` (the role's strategy there and its collection
//! grants, `{"strategy": {...}, "resources": [...]}`) and
//! `dataSources/<key>/rolesResourcesScopes:list|create` (the source's row filters). They
//! read and write the same rows as the plain collections, in one transaction per request,
//! and the ACLs are reloaded before the answer.

use std::sync::Arc;

use manifold_core::filter::parse_filter;
use manifold_core::middleware::{Middleware, Next};
use manifold_core::query::FindOptions;
use manifold_core::repository::{Record, Repository, WriteFilter, WriteKind, WriteValues};
use manifold_core::resource::ResourceDefinition;
use manifold_core::{Context, DataSource, Error, Result};
use serde_json::{Map, Value as Json, json};

use super::actions::values;
use super::permissions::json_of;
use super::store::{ACTIONS, RESOURCES, ROLES, SCOPES, SOURCE_ROLES};
use super::{Auth, as_i64};

/// Defines both resources on `main`.
pub fn define(auth: &Arc<Auth>, main: &Arc<DataSource>) {
    let roles = Arc::new(SourceRoles {
        auth: auth.clone(),
        main: main.clone(),
    });
    let scopes = Arc::new(SourceScopes {
        auth: auth.clone(),
        main: main.clone(),
    });
    let rm = main.resource_manager();
    rm.define(
        ResourceDefinition::new("dataSources.roles")
            .action("list", roles.clone())
            .action("get", roles.clone())
            .action("update", roles),
    );
    rm.define(
        ResourceDefinition::new("dataSources.rolesResourcesScopes")
            .action("list", scopes.clone())
            .action("create", scopes),
    );
}

/// The data source key of the path (`shop` in `dataSources/shop/roles`), which must name
/// a registered source.
fn source_key(ctx: &Context, auth: &Auth) -> Result<String> {
    let key = ctx
        .action()?
        .source_id
        .clone()
        .filter(|k| !k.is_empty() && k != "_")
        .ok_or_else(|| Error::bad_request("name the data source: dataSources/<key>/roles"))?;
    if auth.permissions.source_exists(&key) {
        Ok(key)
    } else {
        Err(Error::not_found(format!(
            "data source {key} does not exist"
        )))
    }
}

async fn find(repository: &Arc<dyn Repository>, filter: &Json) -> Result<Vec<Record>> {
    let options = FindOptions {
        filter: parse_filter(repository.collection(), filter)?,
        ..FindOptions::default()
    };
    repository.find(&options).await
}

async fn insert(repository: &Arc<dyn Repository>, row: &Json, at: &str) -> Result<Record> {
    let values = WriteValues::from_json(
        repository.collection(),
        row,
        WriteKind::Create,
        &WriteFilter::default(),
        at,
    )?;
    repository
        .create(&[values])
        .await?
        .pop()
        .ok_or_else(|| Error::internal("the created row was not returned"))
}

async fn update(repository: &Arc<dyn Repository>, filter: &Json, row: &Json) -> Result<()> {
    let values = WriteValues::from_json(
        repository.collection(),
        row,
        WriteKind::Update,
        &WriteFilter::default(),
        "values",
    )?;
    let filter = parse_filter(repository.collection(), filter)?;
    repository.update(filter.as_ref(), &values).await?;
    Ok(())
}

struct SourceRoles {
    auth: Arc<Auth>,
    main: Arc<DataSource>,
}

impl SourceRoles {
    /// The records of `roles` on source `key`: each one's strategy there and its
    /// collection grants. Three reads, however many roles and grants.
    async fn present(&self, key: &str, roles: &[String]) -> Result<Vec<Json>> {
        let store = &self.auth.store;
        let which = json!({ "dataSourceKey": key, "roleName": { "$in": roles } });
        let strategies = store.find(SOURCE_ROLES, &which, &[]).await?;
        let resources = store.find(RESOURCES, &which, &[]).await?;
        let ids: Vec<Json> = resources
            .iter()
            .filter_map(|r| r.get("id").cloned())
            .collect();
        let actions = if ids.is_empty() {
            Vec::new()
        } else {
            store
                .find(ACTIONS, &json!({ "rolesResourceId": { "$in": ids } }), &[])
                .await?
        };
        let of_role =
            |row: &Record, role: &str| row.get("roleName").and_then(Json::as_str) == Some(role);
        Ok(roles
            .iter()
            .map(|role| {
                let strategy = strategies
                    .iter()
                    .find(|row| of_role(row, role))
                    .map(|row| json_of(row, "strategy"))
                    .unwrap_or(Json::Null);
                let granted: Vec<Json> = resources
                    .iter()
                    .filter(|row| of_role(row, role))
                    .map(|resource| {
                        let id = as_i64(resource.get("id"));
                        let actions: Vec<Json> = actions
                            .iter()
                            .filter(|a| as_i64(a.get("rolesResourceId")) == id)
                            .map(|a| {
                                json!({
                                    "name": a.get("name"), "fields": json_of(a, "fields"),
                                    "scopeId": a.get("scopeId"),
                                })
                            })
                            .collect();
                        json!({
                            "name": resource.get("name"),
                            "usingActionsConfig": resource.get("usingActionsConfig"),
                            "actions": actions,
                        })
                    })
                    .collect();
                json!({
                    "roleName": role, "dataSourceKey": key, "strategy": strategy,
                    "resources": granted,
                })
            })
            .collect())
    }

    /// The record of one role on source `key`.
    async fn present_one(&self, key: &str, role: &str) -> Result<Json> {
        let mut all = self.present(key, &[role.to_owned()]).await?;
        Ok(all.pop().unwrap_or(Json::Null))
    }

    /// Writes `values` (`strategy` and/or `resources`) for `role` on `key`, all or nothing.
    async fn write(&self, key: &str, role: &str, values: &Map<String, Json>) -> Result<()> {
        let unit = self.main.begin().await?;
        if let Some(strategy) = values.get("strategy") {
            let actions_ok = strategy
                .get("actions")
                .and_then(Json::as_array)
                .is_some_and(|a| a.iter().all(Json::is_string));
            if !actions_ok {
                return Err(Error::bad_request(
                    "values.strategy: expected {\"actions\": [\"view\", \"create\", …]}",
                ));
            }
            let rows = unit.repository(SOURCE_ROLES)?;
            let which = json!({ "dataSourceKey": key, "roleName": role });
            if find(&rows, &which).await?.is_empty() {
                let row = json!({ "dataSourceKey": key, "roleName": role, "strategy": strategy });
                insert(&rows, &row, "values").await?;
            } else {
                update(&rows, &which, &json!({ "strategy": strategy })).await?;
            }
        }
        if let Some(resources) = values.get("resources") {
            let resources = resources.as_array().ok_or_else(|| {
                Error::bad_request("values.resources: expected a list of collection grants")
            })?;
            for (i, resource) in resources.iter().enumerate() {
                self.write_resource(&unit, key, role, resource, &format!("values.resources.{i}"))
                    .await?;
            }
        }
        unit.commit().await
    }

    async fn write_resource(
        &self,
        unit: &manifold_core::data_source::Unit,
        key: &str,
        role: &str,
        resource: &Json,
        at: &str,
    ) -> Result<()> {
        let name = resource
            .get("name")
            .and_then(Json::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Error::bad_request(format!("{at}.name: name the collection")))?;
        let using = resource
            .get("usingActionsConfig")
            .and_then(Json::as_bool)
            .unwrap_or(true);
        let rows = unit.repository(RESOURCES)?;
        let which = json!({ "dataSourceKey": key, "roleName": role, "name": name });
        let id = match find(&rows, &which).await?.into_iter().next() {
            Some(existing) => {
                update(&rows, &which, &json!({ "usingActionsConfig": using })).await?;
                existing.get("id").cloned().unwrap_or(Json::Null)
            }
            None => {
                let row = json!({
                    "dataSourceKey": key, "roleName": role, "name": name,
                    "usingActionsConfig": using,
                });
                insert(&rows, &row, at)
                    .await?
                    .get("id")
                    .cloned()
                    .unwrap_or(Json::Null)
            }
        };
        let Some(actions) = resource.get("actions") else {
            return Ok(());
        };
        let actions = actions
            .as_array()
            .ok_or_else(|| Error::bad_request(format!("{at}.actions: expected a list")))?;
        // The list given is the whole list: earlier grants not in it are withdrawn.
        let grants = unit.repository(ACTIONS)?;
        let filter = parse_filter(grants.collection(), &json!({ "rolesResourceId": id }))?;
        grants.destroy(filter.as_ref()).await?;
        for (i, action) in actions.iter().enumerate() {
            let at = format!("{at}.actions.{i}");
            let action_name = action
                .get("name")
                .and_then(Json::as_str)
                .ok_or_else(|| Error::bad_request(format!("{at}.name: name the action")))?;
            let fields = match action.get("fields") {
                None | Some(Json::Null) => Json::Null,
                Some(Json::Array(f)) if f.iter().all(Json::is_string) => Json::Array(f.clone()),
                Some(_) => {
                    return Err(Error::bad_request(format!(
                        "{at}.fields: expected a list of field names"
                    )));
                }
            };
            let scope = action
                .get("scopeId")
                .or_else(|| action.get("scope"))
                .map(|s| s.get("id").unwrap_or(s));
            let row = json!({
                "rolesResourceId": id, "name": action_name, "fields": fields,
                "scopeId": as_i64(scope),
            });
            insert(&grants, &row, &at).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Middleware for SourceRoles {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let key = source_key(ctx, &self.auth)?;
        let action = ctx.action()?;
        let role = action
            .params
            .get("filterByTk")
            .and_then(Json::as_str)
            .map(str::to_owned);
        let body = match (action.action_name.as_str(), role) {
            ("list", _) => {
                let names: Vec<String> = self
                    .auth
                    .store
                    .find(ROLES, &json!({}), &[])
                    .await?
                    .iter()
                    .filter_map(|row| row.get("name").and_then(Json::as_str).map(str::to_owned))
                    .collect();
                Json::Array(self.present(&key, &names).await?)
            }
            (_, None) => {
                return Err(Error::bad_request(
                    "filterByTk: name the role (dataSources/<key>/roles:get?filterByTk=<role>)",
                ));
            }
            (name, Some(role)) => {
                if self
                    .auth
                    .store
                    .find_one(ROLES, &json!({ "name": role }), &[])
                    .await?
                    .is_none()
                {
                    return Err(Error::not_found(format!("role {role} does not exist")));
                }
                if name == "update" {
                    self.write(&key, &role, &values(ctx)?).await?;
                    self.auth.permissions_changed().await?;
                }
                self.present_one(&key, &role).await?
            }
        };
        ctx.body = Some(body);
        next.run(ctx).await
    }
}

struct SourceScopes {
    auth: Arc<Auth>,
    main: Arc<DataSource>,
}

#[async_trait::async_trait]
impl Middleware for SourceScopes {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let key = source_key(ctx, &self.auth)?;
        let body = if ctx.action()?.action_name == "create" {
            let mut row = values(ctx)?;
            row.insert("dataSourceKey".into(), json!(key));
            let rows = self.main.begin().await?;
            let created = insert(&rows.repository(SCOPES)?, &Json::Object(row), "values").await?;
            rows.commit().await?;
            self.auth.permissions_changed().await?;
            Json::Object(created)
        } else {
            let rows = self
                .auth
                .store
                .find(SCOPES, &json!({ "dataSourceKey": key }), &[])
                .await?;
            Json::Array(rows.into_iter().map(Json::Object).collect())
        };
        ctx.body = Some(body);
        next.run(ctx).await
    }
}
