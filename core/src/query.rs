//! What a read asks for: filter, projection, order and window, checked against the schema.

use crate::error::{Error, Result};
use crate::filter::{FieldRef, Filter};
use crate::params::Params;
use crate::schema::Collection;

/// One sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// The field sorted by.
    pub field: FieldRef,
    /// `-field` in the request.
    pub descending: bool,
}

/// A read: which rows, which attributes, in which order, which window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindOptions {
    /// Rows to keep; `None` keeps all.
    pub filter: Option<Filter>,
    /// Attributes to output, in this order; `None` means all visible attributes.
    pub fields: Option<Vec<FieldRef>>,
    /// Order: the requested keys, then the primary key as tie-breaker. NULLs sort last.
    pub sort: Vec<SortKey>,
    /// Rows to skip.
    pub offset: Option<u64>,
    /// Rows to return at most.
    pub limit: Option<u64>,
}

impl FindOptions {
    /// Reads `fields`, `except` and `sort` from `params` against `collection`.
    ///
    /// Unknown names are a 400 that names them. `filter` and the window are set by the
    /// caller, which knows about `filterByTk` and pagination.
    pub fn from_params(collection: &Collection, params: &Params) -> Result<Self> {
        let mut options = Self {
            fields: projection(collection, params)?,
            sort: parse_sort(collection, params.list("sort")?.as_deref().unwrap_or(&[]))?,
            ..Self::default()
        };
        add_key_tiebreaker(collection, &mut options.sort);
        Ok(options)
    }
}

/// The output attributes: `fields` if given (even when empty after a merge), else every
/// visible attribute minus `except`. `except` is ignored when `fields` lists attributes,
/// as NocoBase does.
fn projection(collection: &Collection, params: &Params) -> Result<Option<Vec<FieldRef>>> {
    let visible = |name: &str, param: &str| -> Result<FieldRef> {
        collection
            .field(name)
            .filter(|f| !f.hidden)
            .map(FieldRef::new)
            .ok_or_else(|| {
                Error::bad_request(format!(
                    "{param}: unknown field {name:?} in collection {}",
                    collection.name()
                ))
            })
    };
    if let Some(fields) = params.list("fields")? {
        // A client that sent `fields=` asked for nothing in particular: all attributes.
        if !(fields.is_empty() && params.get("fields").is_some_and(|v| v.as_str() == Some(""))) {
            return fields
                .iter()
                .map(|name| visible(name, "fields"))
                .collect::<Result<Vec<_>>>()
                .map(Some);
        }
    }
    let except = params.list("except")?.unwrap_or_default();
    for name in &except {
        visible(name, "except")?;
    }
    if except.is_empty() && !collection.fields().iter().any(|f| f.hidden) {
        return Ok(None);
    }
    Ok(Some(
        collection
            .fields()
            .iter()
            .filter(|f| !f.hidden && !except.contains(&f.name))
            .map(FieldRef::new)
            .collect(),
    ))
}

/// Parses `sort` items (`title`, `-createdAt`) against `collection`.
pub fn parse_sort(collection: &Collection, items: &[String]) -> Result<Vec<SortKey>> {
    items
        .iter()
        .map(|item| {
            let (name, descending) = match item.strip_prefix('-') {
                Some(rest) => (rest, true),
                None => (item.strip_prefix('+').unwrap_or(item), false),
            };
            let field = collection
                .field(name)
                .filter(|f| !f.hidden)
                .ok_or_else(|| {
                    Error::bad_request(format!(
                        "sort: unknown field {name:?} in collection {}",
                        collection.name()
                    ))
                })?;
            Ok(SortKey {
                field: FieldRef::new(field),
                descending,
            })
        })
        .collect()
}

/// Appends every primary-key field not already sorted on, ascending, so pages are stable.
pub fn add_key_tiebreaker(collection: &Collection, sort: &mut Vec<SortKey>) {
    for key in collection.primary_key() {
        if !sort.iter().any(|s| s.field.name == key.name) {
            sort.push(SortKey {
                field: FieldRef::new(key),
                descending: false,
            });
        }
    }
}
