//! The built-in plugins the stock `manifold` binary is composed of: the default actions,
//! authentication and access control, the `collections` resource, the data-source
//! manager (`dataSources`), the OpenAPI document and the account commands. Each is a
//! [`Plugin`] like any other; what sets them apart is [`Services`], the application's
//! own stores, which only plugins of this crate reach.

use std::sync::{Arc, OnceLock};

use manifold_core::actions::register_default_actions;
use manifold_core::{DataSource, Error, Result};

use crate::auth::Auth;
use crate::changes::ChangeFeed;
use crate::data_sources::{self, HostPolicy, Registry};
use crate::declarations::DeclarationStore;
use crate::{Plugin, PluginContext};

/// The plugins every application loads, in this order, before any a caller adds.
/// Authentication comes first: its guard sets every source's base permissions, which the
/// later plugins' grants are added to.
pub fn plugins() -> Vec<Arc<dyn Plugin>> {
    vec![
        Arc::new(AuthPlugin),
        Arc::new(DefaultActions),
        Arc::new(Collections),
        Arc::new(DataSources),
        Arc::new(crate::openapi::OpenApiPlugin),
        Arc::new(crate::auth::commands::AccountCommands),
    ]
}

/// The application's own stores, shared by the built-in plugins, and what they leave
/// for the application to pick up once every plugin is loaded.
pub(crate) struct Services {
    /// The host rules of `--allowed-hosts`/`--denied-hosts`, read before anything starts.
    pub hosts: HostPolicy,
    pub declarations: Arc<DeclarationStore>,
    pub changes: Arc<ChangeFeed>,
    pub auth: OnceLock<Arc<Auth>>,
    pub registry: OnceLock<Arc<Registry>>,
}

impl Services {
    fn of<'a>(app: &'a PluginContext<'_>, plugin: &str) -> Result<&'a Services> {
        app.services.ok_or_else(|| {
            Error::internal(format!(
                "the built-in plugin {plugin} is loaded outside the application builder"
            ))
        })
    }
}

/// `list`, `get`, `create`, … on every collection of every source.
pub struct DefaultActions;

#[async_trait::async_trait]
impl Plugin for DefaultActions {
    fn name(&self) -> &str {
        "actions"
    }

    async fn load(&self, app: &mut PluginContext<'_>) -> Result<()> {
        app.data_sources()
            .after_add_data_source(Arc::new(|source: &Arc<DataSource>| {
                register_default_actions(source);
            }));
        Ok(())
    }
}

/// Users, roles, sessions, API keys and their permissions: the `auth`, `users`, `roles`
/// resources, the guard every source is added through, and the middleware that names
/// the caller.
pub struct AuthPlugin;

#[async_trait::async_trait]
impl Plugin for AuthPlugin {
    fn name(&self) -> &str {
        "auth"
    }

    async fn load(&self, app: &mut PluginContext<'_>) -> Result<()> {
        let services = Services::of(app, self.name())?;
        let auth = Auth::install(
            app.data_sources(),
            app.main(),
            &services.declarations,
            &app.config().auth,
            &services.changes,
            app.cache(),
        )
        .await?;
        let _ = services.auth.set(auth.clone());
        let (middleware, placement) = auth.middleware();
        app.use_middleware(middleware, placement);
        Ok(())
    }
}

/// `collections:*` on every source: what it holds, and creating or dropping one where its
/// connector can.
pub struct Collections;

#[async_trait::async_trait]
impl Plugin for Collections {
    fn name(&self) -> &str {
        "collections"
    }

    async fn load(&self, app: &mut PluginContext<'_>) -> Result<()> {
        let services = Services::of(app, self.name())?;
        let (declarations, changes) = (services.declarations.clone(), services.changes.clone());
        app.data_sources()
            .after_add_data_source(Arc::new(move |source: &Arc<DataSource>| {
                crate::collections::define(source, &declarations, &changes);
            }));
        Ok(())
    }
}

/// The data-source manager's resource: `dataSources:*` on main, the registered sources'
/// records, and the host rules every connection is checked against. The sources
/// themselves load once every plugin is loaded, so the plugins' hooks reach them.
pub struct DataSources;

#[async_trait::async_trait]
impl Plugin for DataSources {
    fn name(&self) -> &str {
        "data-sources"
    }

    async fn load(&self, app: &mut PluginContext<'_>) -> Result<()> {
        let services = Services::of(app, self.name())?;
        let config = app.config();
        let registry = Registry::open(
            app.data_sources().clone(),
            app.main(),
            services.hosts.clone(),
            config.source_settings(),
            crate::sqlite_sources_dir(config),
            services.declarations.clone(),
            services.changes.clone(),
        )
        .await?;
        data_sources::define(app.main(), &registry);
        let _ = services.registry.set(registry);
        Ok(())
    }
}
