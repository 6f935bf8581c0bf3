//! A test harness for Manifold and its plugins, after NocoBase's `createMockServer`: an
//! application with the given plugins on a temporary SQLite main database (or a given
//! URL), and an [`Agent`] that speaks the `:action` API, signed in, in a few lines:
//!
//! ```no_run
//! # async fn example(my_plugin: std::sync::Arc<dyn manifold_server::Plugin>) -> Result<(), manifold_testing::HarnessError> {
//! use manifold_testing::MockServer;
//! use serde_json::json;
//!
//! let server = MockServer::builder().plugin(my_plugin).start().await?;
//! let agent = server.agent();
//! agent
//!     .post("/api/collections:create", json!({"name": "posts", "fields": [{"name": "title", "type": "string"}]}))
//!     .await?;
//! let created = agent.resource("posts").create(json!({"title": "hello"})).await?;
//! assert_eq!(created.status, 200);
//! # Ok(()) }
//! ```
//!
//! Requests go to the application's endpoint in process, through the same middleware,
//! authentication and error rendering as over TCP; no port is opened.

mod agent;
mod error;
mod params;
mod reply;
mod server;

pub use agent::{Agent, Resource};
pub use error::HarnessError;
pub use reply::Reply;
pub use server::{MockServer, MockServerBuilder, ROOT_PASSWORD};
