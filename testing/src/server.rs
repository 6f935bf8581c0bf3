//! The application under test and how it is started.

use std::sync::Arc;

use manifold_server::http::{HttpOptions, endpoint_with};
use manifold_server::{App, AppBuilder, Plugin, ServeConfig};
use poem::EndpointExt;
use serde_json::json;

use crate::agent::{Agent, Shared};
use crate::error::HarnessError;

/// The password of the user `root` in a [`MockServer`] (unless the configuration names
/// another).
pub const ROOT_PASSWORD: &str = "manifold-testing-root";

/// How a [`MockServer`] is started: its plugins, its main database and its options.
#[must_use]
pub struct MockServerBuilder {
    plugins: Vec<Arc<dyn Plugin>>,
    main_db: Option<String>,
    config: ServeConfig,
}

impl MockServerBuilder {
    /// Loads `plugin` after the built-in ones, in the order they are given.
    pub fn plugin(mut self, plugin: Arc<dyn Plugin>) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Uses the main database at `url` (`postgres://…`, `mysql://…`) instead of a
    /// temporary SQLite file. The database is used as it is: give each test its own.
    pub fn main_db(mut self, url: impl Into<String>) -> Self {
        self.main_db = Some(url.into());
        self
    }

    /// Changes the configuration the application starts with (`--…` options).
    pub fn configure(mut self, tweak: impl FnOnce(&mut ServeConfig)) -> Self {
        tweak(&mut self.config);
        self
    }

    /// Builds the application (migrations, plugins, sources) and signs `root` in.
    pub async fn start(self) -> Result<MockServer, HarnessError> {
        let dir = tempfile::tempdir().map_err(HarnessError::TempDir)?;
        let mut config = self.config;
        config.main_db = match self.main_db {
            Some(url) => url,
            None => format!("sqlite://{}", dir.path().join("main.sqlite").display()),
        };
        let root_password = config
            .auth
            .root_password
            .get_or_insert_with(|| manifold_server::auth::Secret(ROOT_PASSWORD.into()))
            .0
            .clone();
        let app = self
            .plugins
            .into_iter()
            .fold(AppBuilder::new(&config), AppBuilder::plugin)
            .build()
            .await
            .map_err(HarnessError::Start)?;
        let options = HttpOptions::from_config(&config)
            .map_err(|e| HarnessError::Start(manifold_core::Error::bad_request(e)))?;
        let endpoint = Arc::new(endpoint_with(app.clone(), options).boxed());
        let anonymous = Agent::new(Arc::new(Shared { endpoint }), None);
        let root = anonymous.sign_in("root", &root_password).await?;
        Ok(MockServer {
            app,
            anonymous,
            root,
            _dir: dir,
        })
    }
}

/// A running application with its own temporary main database, removed on drop.
pub struct MockServer {
    app: Arc<App>,
    anonymous: Agent,
    root: Agent,
    _dir: tempfile::TempDir,
}

impl MockServer {
    /// A builder, to add plugins or choose the main database.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder {
            plugins: Vec::new(),
            main_db: None,
            config: ServeConfig::default(),
        }
    }

    /// An application with `plugins` on a temporary SQLite main database.
    pub async fn start(plugins: Vec<Arc<dyn Plugin>>) -> Result<Self, HarnessError> {
        plugins
            .into_iter()
            .fold(Self::builder(), MockServerBuilder::plugin)
            .start()
            .await
    }

    /// The application: its data sources, cache, scheduler and events.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// An agent signed in as `root`, who may do everything.
    pub fn agent(&self) -> Agent {
        self.root.clone()
    }

    /// An agent that sends no credentials, as an anonymous caller.
    pub fn anonymous(&self) -> Agent {
        self.anonymous.clone()
    }

    /// Creates the user `username` with `password` and `roles` (as root), and an agent
    /// signed in as that user.
    pub async fn user(
        &self,
        username: &str,
        password: &str,
        roles: &[&str],
    ) -> Result<Agent, HarnessError> {
        let created = self
            .root
            .post(
                "/api/users:create",
                json!({ "username": username, "password": password, "roles": roles }),
            )
            .await?;
        if created.status != 200 {
            return Err(HarnessError::Request(format!(
                "users:create {username}: {} {}",
                created.status, created.body
            )));
        }
        self.anonymous.sign_in(username, password).await
    }

    /// Stops the application's jobs and closes its data sources.
    pub async fn close(self) {
        self.app.close().await;
    }
}
