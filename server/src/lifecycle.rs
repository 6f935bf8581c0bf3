//! Application events: handlers that run as the service starts and stops (NocoBase's
//! `app.on('beforeStart', …)`). Events of data sources being added or removed are the
//! manager's ([`manifold_core::DataSourceManager::after_add_data_source`],
//! [`manifold_core::DataSourceManager::after_remove_data_source`]).

use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;
use manifold_core::{Error, Result};

use crate::app::App;

/// A point in the service's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEvent {
    /// Every plugin is loaded; API requests are not served yet. A failing handler stops
    /// the start.
    BeforeStart,
    /// API requests are served.
    AfterStart,
    /// The service was told to stop; requests under way are still being served.
    BeforeStop,
    /// The last request is answered; the data sources' pools are still open and close
    /// right after.
    AfterStop,
}

impl AppEvent {
    /// The event's name (`beforeStart`).
    pub fn name(self) -> &'static str {
        match self {
            AppEvent::BeforeStart => "beforeStart",
            AppEvent::AfterStart => "afterStart",
            AppEvent::BeforeStop => "beforeStop",
            AppEvent::AfterStop => "afterStop",
        }
    }
}

/// A handler of one application event, given the application.
pub type AppEventHandler = Arc<dyn Fn(Arc<App>) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// The handlers of the application events, each with the name of who added it.
#[derive(Default)]
pub struct AppEvents {
    handlers: Mutex<Vec<(AppEvent, String, AppEventHandler)>>,
}

impl AppEvents {
    /// Runs `handler` at `event`; `owner` (a plugin's name) names it in errors and logs.
    pub fn on<F, Fut>(&self, event: AppEvent, owner: &str, handler: F)
    where
        F: Fn(Arc<App>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        let handler: AppEventHandler = Arc::new(move |app| Box::pin(handler(app)));
        self.add(event, owner, handler);
    }

    pub(crate) fn add(&self, event: AppEvent, owner: &str, handler: AppEventHandler) {
        self.handlers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((event, owner.to_owned(), handler));
    }

    /// Runs the handlers of `event` in the order they were added. At `beforeStart` the
    /// first failure stops them and is returned, naming its owner; at the other events a
    /// failure is logged and the rest still run, since the service is already up or going.
    pub async fn emit(&self, event: AppEvent, app: &Arc<App>) -> Result<()> {
        let handlers: Vec<_> = self
            .handlers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(e, _, _)| *e == event)
            .map(|(_, owner, handler)| (owner.clone(), handler.clone()))
            .collect();
        for (owner, handler) in handlers {
            if let Err(e) = handler(app.clone()).await {
                if event == AppEvent::BeforeStart {
                    return Err(Error::new(
                        e.kind(),
                        format!("{owner}: {}: {e}", event.name()),
                    ));
                }
                tracing::warn!(owner = %owner, event = event.name(), error = %e.message(), "an application event handler failed");
            }
        }
        Ok(())
    }
}
