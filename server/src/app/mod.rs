//! The application: the app-level middleware chain (level 1) around the data-source router,
//! and the data-source manager behind it.
//!
//! Built-in app middleware, in order: `errorHandler` (renders every error as
//! `{"errors":[{"message"}]}`), `dataWrapping` (the `{data, meta}` envelope), `dataSource`
//! (the router). Middleware added later without a position runs after the router, which for
//! a resource request means inside the action's `next`.

mod data_wrapping;
mod error_handler;

use std::sync::{Arc, RwLock};

use manifold_core::data_source::{DataSourceManager, DataSourceRouter};
use manifold_core::middleware::{Middleware, MiddlewareChain, MiddlewareError, Next, Placement};
use manifold_core::streamed::StreamedArray;
use manifold_core::{Context, RequestInfo};
use serde_json::{Value as Json, json};
use tracing::Instrument as _;

pub use error_handler::status_of;

/// The API path prefix.
pub const API_PREFIX: &str = "/api";

/// A finished response.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The JSON body (`null` when it is `streamed`).
    pub body: Json,
    /// The body as JSON text written chunk by chunk, for answers of many records.
    pub streamed: Option<StreamedArray>,
    /// The route template the request resolved to (`/api/posts:list`), if it resolved to
    /// an action; for the HTTP span and the metrics.
    pub route: Option<String>,
    /// The data source that served it, if one was picked.
    pub data_source: Option<String>,
    /// Headers middleware asked to send (`x-new-token`, …).
    pub headers: Vec<(String, String)>,
}

/// The app chain and the data sources it routes to.
pub struct App {
    manager: Arc<DataSourceManager>,
    cache: crate::cache::Cache,
    scheduler: crate::scheduler::Scheduler,
    i18n: Arc<crate::i18n::I18n>,
    chain: RwLock<MiddlewareChain>,
    auth: std::sync::OnceLock<Arc<crate::auth::Auth>>,
    budget: std::sync::OnceLock<Arc<crate::connection_budget::ReplicaBudget>>,
    events: crate::lifecycle::AppEvents,
}

impl App {
    /// An app over `manager` with the built-in middleware installed, sharing `cache`,
    /// running the jobs of `scheduler`, and answering errors in the client's language
    /// from `i18n`.
    pub fn new(
        manager: Arc<DataSourceManager>,
        cache: crate::cache::Cache,
        scheduler: crate::scheduler::Scheduler,
        i18n: Arc<crate::i18n::I18n>,
    ) -> Self {
        let mut chain = MiddlewareChain::new();
        let built_ins: [(Arc<dyn Middleware>, Placement); 3] = [
            (
                Arc::new(error_handler::ErrorHandler(i18n.clone())),
                Placement::tag("errorHandler"),
            ),
            (
                Arc::new(data_wrapping::DataWrapping),
                Placement::tag("dataWrapping").after("errorHandler"),
            ),
            (
                Arc::new(DataSourceRouter::new(manager.clone(), API_PREFIX)),
                Placement::tag("dataSource").after("dataWrapping"),
            ),
        ];
        for (mw, placement) in built_ins {
            if let Err(e) = chain.add(mw, placement) {
                unreachable!("built-in app chain is acyclic: {e}");
            }
        }
        Self {
            manager,
            cache,
            scheduler,
            i18n,
            chain: RwLock::new(chain),
            auth: std::sync::OnceLock::new(),
            budget: std::sync::OnceLock::new(),
            events: crate::lifecycle::AppEvents::default(),
        }
    }

    /// The handlers of the application events (`beforeStart`, `afterStop`, …), which
    /// [`crate::serve_until`] emits.
    pub fn events(&self) -> &crate::lifecycle::AppEvents {
        &self.events
    }

    /// The authentication service, where the app has one (`build_app` installs it).
    pub fn auth(&self) -> Option<&Arc<crate::auth::Auth>> {
        self.auth.get()
    }

    /// The cache (`--cache-url`), for Manifold's own components and for plugins; each
    /// takes a namespace of its own ([`crate::cache::Cache::namespace`]).
    pub fn cache(&self) -> &crate::cache::Cache {
        &self.cache
    }

    /// The scheduled jobs, for Manifold's own components and for plugins; each tick of a
    /// job runs once across the replicas sharing the main database.
    pub fn scheduler(&self) -> &crate::scheduler::Scheduler {
        &self.scheduler
    }

    /// The message catalogues (the built-in ones and the plugins'), for answers in the
    /// client's language.
    pub fn i18n(&self) -> &Arc<crate::i18n::I18n> {
        &self.i18n
    }

    /// Records the authentication service (once).
    pub fn set_auth(&self, auth: Arc<crate::auth::Auth>) {
        let _ = self.auth.set(auth);
    }

    /// Records this replica's share of the connection totals (once).
    pub fn set_connection_budget(&self, budget: Arc<crate::connection_budget::ReplicaBudget>) {
        let _ = self.budget.set(budget);
    }

    /// Stops the scheduled jobs (waiting for runs under way, which may use any source),
    /// then closes every source, main last: once the others' pools are closed, this
    /// replica's connection claims are given back, through main.
    pub async fn close(&self) {
        self.scheduler.stop().await;
        let sources = self.manager.list();
        for source in sources.iter().filter(|s| s.key() != "main") {
            source.close().await;
        }
        if let Some(budget) = self.budget.get() {
            budget.leave().await;
        }
        for source in sources.iter().filter(|s| s.key() == "main") {
            source.close().await;
        }
    }

    /// The data-source manager.
    pub fn data_sources(&self) -> &Arc<DataSourceManager> {
        &self.manager
    }

    /// Adds app-level middleware (level 1); it runs for every request.
    pub fn use_middleware(
        &self,
        middleware: Arc<dyn Middleware>,
        placement: Placement,
    ) -> Result<(), MiddlewareError> {
        self.chain
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .add(middleware, placement)
    }

    /// Runs one request through the app chain.
    pub async fn handle(&self, request: RequestInfo) -> Response {
        let chain = self
            .chain
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .sorted();
        let mut ctx = Context::new(request);
        let span = tracing::info_span!(
            target: "manifold::middleware",
            "manifold.app",
            enduser.id = tracing::field::Empty,
            manifold.role = tracing::field::Empty,
        );
        // The error handler is the outermost layer; anything that still escapes it (a
        // middleware placed before it) is rendered the same way here.
        if let Err(e) = Next::new(&chain).run(&mut ctx).instrument(span).await {
            error_handler::render(&mut ctx, &e, &self.i18n);
        }
        let route = ctx.route.take();
        let data_source = ctx.data_source.as_ref().map(|s| s.key().to_owned());
        let headers = std::mem::take(&mut ctx.response_headers);
        if let Some(streamed) = ctx.streamed.take() {
            return Response {
                status: ctx.status.unwrap_or(200),
                body: Json::Null,
                streamed: Some(streamed),
                route,
                data_source,
                headers,
            };
        }
        match ctx.body.take() {
            Some(body) => Response {
                status: ctx.status.unwrap_or(200),
                body,
                streamed: None,
                route,
                data_source,
                headers,
            },
            None => {
                let not_found = ctx.not_found_reason.take().unwrap_or_else(|| {
                    manifold_core::Error::not_found("Not Found")
                        .with_message_id("not-found", Vec::new())
                });
                let locale = crate::i18n::requested_locale(&ctx.request);
                let message = self
                    .i18n
                    .error_message(locale.as_deref(), &not_found)
                    .into_owned();
                Response {
                    status: 404,
                    body: json!({ "errors": [{ "message": message }] }),
                    streamed: None,
                    route,
                    data_source,
                    headers,
                }
            }
        }
    }
}
