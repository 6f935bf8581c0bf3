//! Pure parsing of the request line of NocoBase's `:action` API: the resource path
//! (`/api/<res>[:<action>][/<index>]`, association paths, percent-decoding, the REST-method table)
//! and the query string (`qs` library semantics, including the `filter` / `filterByTk` JSON
//! conveniences). Nothing here knows about HTTP frameworks, resources or data sources: callers get
//! plain values back and decide which status to answer (404 for `Ok(None)` paths, 400 for errors).

mod path;
mod qs;

pub use path::{PathError, ResourcePath, parse_resource_path};
pub use qs::{QueryError, parse_query};
