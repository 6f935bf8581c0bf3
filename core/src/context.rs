//! What a middleware or action handler sees: the request, the chosen data source, the
//! resolved action with its params, and the response being built.

use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::data_source::DataSource;
use crate::error::{Error, Result};
use crate::params::Params;
use crate::repository::Repository;
use crate::schema::Collection;

/// The parts of the HTTP request the core needs, without any HTTP library.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// Upper-case method (`GET`, `POST`, …).
    pub method: String,
    /// The percent-encoded path (`/api/posts:list`).
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Headers with lower-case names.
    pub headers: Vec<(String, String)>,
    /// The raw request body; empty once the router took a long JSON array out of it as
    /// the `values` to parse a batch at a time ([`crate::raw_rows`]).
    pub body: Vec<u8>,
    /// The client's address, where the transport knows it (sign-in throttling keys on it).
    pub peer: Option<std::net::IpAddr>,
}

impl RequestInfo {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The action a resource request resolved to.
#[derive(Clone)]
pub struct Action {
    /// `posts`, or `posts.comments` for association requests.
    pub resource_name: String,
    /// `list`, `get`, `create`, … or a custom name.
    pub action_name: String,
    /// Defaults merged with the query string, path and body.
    pub params: Params,
    /// The owning record's key in association requests (`1` in `posts/1/comments`).
    pub source_id: Option<String>,
    /// The collection behind the resource, when it is one.
    pub collection: Option<Arc<Collection>>,
    /// The repository of that collection.
    pub repository: Option<Arc<dyn Repository>>,
    /// For `/api/<source>/<id>/<association>` requests: the relation the rows are read
    /// through (`collection` and `repository` are then the target's).
    pub association: Option<AssociationScope>,
}

/// The source side of an association request.
#[derive(Clone)]
pub struct AssociationScope {
    /// The relation.
    pub association: crate::schema::Association,
    /// The source collection (`posts` in `posts/1/comments`).
    pub source: Arc<Collection>,
    /// The source collection's repository.
    pub source_repository: Arc<dyn Repository>,
    /// The junction's repository, for belongsToMany.
    pub through: Option<Arc<dyn Repository>>,
    /// The source record's key from the path; `_` means every target, unscoped.
    pub source_id: String,
    /// The target's data source, for a relation to another source: the request's own
    /// source holds the path's first collection, this one the rows read.
    pub target_source: Option<Arc<crate::data_source::DataSource>>,
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Action")
            .field("resource_name", &self.resource_name)
            .field("action_name", &self.action_name)
            .field("params", &self.params)
            .field("source_id", &self.source_id)
            .finish_non_exhaustive()
    }
}

/// Request state shared by every middleware layer and the action handler.
#[derive(Default)]
pub struct Context {
    /// The incoming request.
    pub request: RequestInfo,
    /// The data source chosen by `X-Data-Source` (set by the router).
    pub data_source: Option<Arc<DataSource>>,
    /// The resolved action (set by the router for resource requests).
    pub action: Option<Action>,
    /// The response body before data wrapping; `None` means the handler produced nothing
    /// (or produced [`Context::streamed`]).
    pub body: Option<Json>,
    /// A JSON array answer written chunk by chunk instead of `body`, for answers of many
    /// records (`list` with `paginate=false`, a bulk `create`). Middleware that runs after
    /// the action sees that there is a body ([`Context::has_body`]) but not its records.
    pub streamed: Option<crate::streamed::StreamedArray>,
    /// Extra `meta` to send beside `data`.
    pub body_meta: Option<Json>,
    /// An explicit status; `None` means 200 for handled requests and 404 otherwise.
    pub status: Option<u16>,
    /// Skip the `{data, meta}` envelope.
    pub without_data_wrapping: bool,
    /// Free-form state for middleware (current user, role, …), named as NocoBase names
    /// it (`currentUser`, `currentRole`), which ACL scopes refer to.
    pub state: Map<String, Json>,
    /// The low-cardinality route of a request that resolved to an action
    /// (`/api/posts:list`, `/api/posts/{associatedIndex}/tags:add`), set by the router for
    /// the HTTP span's `http.route` and the metrics.
    pub route: Option<String>,
    /// Why a request did not resolve to an action, set by the router for the 404 body
    /// (an error, so that it is answered in the caller's language).
    pub not_found_reason: Option<Error>,
    /// Headers to send with the response (`x-new-token`, `retry-after`, …).
    pub response_headers: Vec<(String, String)>,
}

impl Context {
    /// A context for `request`.
    pub fn new(request: RequestInfo) -> Self {
        Self {
            request,
            // Room for what the auth middleware records, so it never rehashes.
            state: Map::with_capacity(8),
            ..Self::default()
        }
    }

    /// Whether the handler produced an answer, held (`body`) or streamed (`streamed`).
    pub fn has_body(&self) -> bool {
        self.body.is_some() || self.streamed.is_some()
    }

    /// The resolved action, or an internal error when called outside a resource request.
    pub fn action(&self) -> Result<&Action> {
        self.action
            .as_ref()
            .ok_or_else(|| Error::internal("no action was resolved for this request"))
    }

    /// The resolved action, mutably (middleware may rewrite params).
    pub fn action_mut(&mut self) -> Result<&mut Action> {
        self.action
            .as_mut()
            .ok_or_else(|| Error::internal("no action was resolved for this request"))
    }

    /// The time zone and clock filters are read in: `X-Timezone` (`+08:00` or an IANA name
    /// such as `Asia/Shanghai`, taken at its current offset) and now.
    pub fn filter_context(&self) -> Result<crate::filter::FilterContext> {
        let now = chrono::Utc::now();
        let timezone = match self.request.header("x-timezone").map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(
                crate::dates::parse_offset(raw)
                    .or_else(|| {
                        use chrono::{Offset, TimeZone};
                        let zone: chrono_tz::Tz = raw.parse().ok()?;
                        Some(zone.offset_from_utc_datetime(&now.naive_utc()).fix())
                    })
                    .ok_or_else(|| {
                        Error::bad_request(format!(
                            "X-Timezone: unknown time zone {raw:?}; use an offset such as +08:00 or a name such as Asia/Shanghai"
                        ))
                    })?,
            ),
        };
        Ok(crate::filter::FilterContext {
            timezone,
            now,
            operators: self.operators(),
        })
    }

    /// The filter operators the request's data source runs (every one when the request
    /// reached no source).
    pub fn operators(&self) -> Arc<crate::filter::OperatorSupport> {
        self.data_source
            .as_ref()
            .map(|source| source.operators().clone())
            .unwrap_or_default()
    }

    /// The repository of the current resource's collection.
    pub fn current_repository(&self) -> Result<Arc<dyn Repository>> {
        let action = self.action()?;
        action.repository.clone().ok_or_else(|| {
            Error::not_found(format!(
                "resource {} is not backed by a collection",
                action.resource_name
            ))
        })
    }
}
