//! The `collections` resource of the main data source: create, list, read, configure and
//! drop tables.

use std::sync::Arc;

use manifold_core::connector::CollectionDefinition;
use manifold_core::middleware::{Middleware, Next};
use manifold_core::resource::ResourceDefinition;
use manifold_core::{Context, DataSource, Error, Result};

use crate::changes::{Change, ChangeFeed, kinds};
use crate::declarations::DeclarationStore;
use crate::relation_fields;
use serde_json::Value as Json;

/// Defines `collections:list|get|create|update|destroy` on `source`; options and
/// relation fields are kept in `declarations`, and every change is published on `changes`.
pub fn define(
    source: &DataSource,
    declarations: &Arc<DeclarationStore>,
    changes: &Arc<ChangeFeed>,
) {
    let stores = Stores {
        declarations: declarations.clone(),
        changes: changes.clone(),
    };
    let mut resource = ResourceDefinition::new("collections")
        .action("list", Arc::new(List))
        .action("get", Arc::new(Get))
        .action("create", Arc::new(Create(stores.clone())))
        .action("update", Arc::new(Update(stores.clone())))
        .action("destroy", Arc::new(Destroy(stores)));
    resource.only = vec![
        "list".into(),
        "get".into(),
        "create".into(),
        "update".into(),
        "destroy".into(),
    ];
    source.resource_manager().define(resource);
}

/// Where the actions that change collections keep and announce what they did.
#[derive(Clone)]
struct Stores {
    declarations: Arc<DeclarationStore>,
    changes: Arc<ChangeFeed>,
}

impl Stores {
    /// Tells the other replicas to read `source`'s schema and declarations again.
    async fn changed(&self, source: &DataSource, collection: &str) -> Result<()> {
        self.changes
            .publish(
                Change::new(kinds::SCHEMA)
                    .source(source.key())
                    .subject(collection),
            )
            .await
    }
}

fn source(ctx: &Context) -> Result<Arc<DataSource>> {
    ctx.data_source
        .clone()
        .ok_or_else(|| Error::internal("no data source on the request"))
}

fn name_param(ctx: &Context) -> Result<String> {
    let action = ctx.action()?;
    match action.params.get("filterByTk") {
        Some(Json::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(Error::bad_request(format!(
            "filterByTk: name the collection, e.g. /api/collections:{}/posts",
            action.action_name
        ))),
    }
}

struct List;

#[async_trait::async_trait]
impl Middleware for List {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let collections = source(ctx)?.collections();
        ctx.body_meta = Some(serde_json::json!({ "count": collections.len() }));
        ctx.body = Some(Json::Array(
            collections.iter().map(|c| c.to_json()).collect(),
        ));
        next.run(ctx).await
    }
}

struct Get;

#[async_trait::async_trait]
impl Middleware for Get {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let name = name_param(ctx)?;
        ctx.body = Some(
            source(ctx)?
                .collection(&name)
                .map(|(c, _)| c.to_json())
                .unwrap_or(Json::Null),
        );
        next.run(ctx).await
    }
}

fn values(ctx: &Context) -> Result<Json> {
    Ok(ctx
        .action()?
        .params
        .get("values")
        .cloned()
        .unwrap_or(Json::Null))
}

/// The collection options kept as declarations rather than in the table itself.
const STORED_OPTIONS: &[&str] = &["simplePaginate"];

struct Create(Stores);

#[async_trait::async_trait]
impl Middleware for Create {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let mut values = values(ctx)?;
        let source = source(ctx)?;
        let plan = relation_fields::plan(&source, &mut values)?;
        let definition = CollectionDefinition::from_json(&values)?;
        let mut created: Vec<String> = Vec::new();
        let outcome = self
            .create(&source, &definition, &plan, &values, &mut created)
            .await;
        if outcome.is_err() {
            // Leave the source as it was: drop what this request created.
            for name in created.iter().rev() {
                if let Err(e) = source.drop_collection(name).await {
                    tracing::warn!(collection = %name, "could not drop after a failed create: {e}");
                }
                let _ = self
                    .0
                    .declarations
                    .forget_collection(source.key(), name)
                    .await;
            }
            let _ = self.0.declarations.apply(&source).await;
        }
        ctx.body = Some(outcome?);
        self.0.changed(&source, &definition.name).await?;
        next.run(ctx).await
    }
}

impl Create {
    async fn create(
        &self,
        source: &DataSource,
        definition: &CollectionDefinition,
        plan: &relation_fields::RelationPlan,
        values: &Json,
        created: &mut Vec<String>,
    ) -> Result<Json> {
        for junction in &plan.junctions {
            source.define_collection(junction).await?;
            created.push(junction.name.clone());
        }
        let mut collection = source.define_collection(definition).await?.to_json();
        created.push(definition.name.clone());
        for declaration in &plan.declarations {
            self.0
                .declarations
                .create_field(source, &definition.name, declaration)
                .await?;
        }
        let options: serde_json::Map<String, Json> = STORED_OPTIONS
            .iter()
            .filter_map(|k| values.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        if !options.is_empty() || !plan.declarations.is_empty() {
            collection = self
                .0
                .declarations
                .update_collection(source, &definition.name, &Json::Object(options))
                .await?;
        }
        Ok(collection)
    }
}

struct Update(Stores);

#[async_trait::async_trait]
impl Middleware for Update {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let name = name_param(ctx)?;
        let values = values(ctx)?;
        let source = source(ctx)?;
        ctx.body = Some(
            self.0
                .declarations
                .update_collection(&source, &name, &values)
                .await?,
        );
        self.0.changed(&source, &name).await?;
        next.run(ctx).await
    }
}

struct Destroy(Stores);

#[async_trait::async_trait]
impl Middleware for Destroy {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let name = name_param(ctx)?;
        let source = source(ctx)?;
        source.drop_collection(&name).await?;
        self.0
            .declarations
            .forget_collection(source.key(), &name)
            .await?;
        // Declarations on other collections may have pointed at it.
        self.0.declarations.apply(&source).await?;
        self.0.changed(&source, &name).await?;
        ctx.body = Some(Json::from(1));
        next.run(ctx).await
    }
}
