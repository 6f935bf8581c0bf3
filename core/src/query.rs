//! What a read asks for: filter, projection, order and window, checked against the schema.

use crate::error::{Error, Result};
use std::sync::Arc;

use crate::filter::path::walk;
use crate::filter::{CollectionLookup, FieldRef, Filter, NoCollections};
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
    /// How many entries the caller will add to each record it reads (the relations it
    /// embeds). A hint: a repository that can makes each record with room for them, so
    /// adding them does not grow every record's map again.
    pub room: usize,
}

impl FindOptions {
    /// Reads `fields`, `except` and `sort` from `params` against `collection`.
    ///
    /// Unknown names are a 400 that names them. `filter` and the window are set by the
    /// caller, which knows about `filterByTk` and pagination.
    pub fn from_params(collection: &Collection, params: &Params) -> Result<Self> {
        Self::from_params_across(collection, params, &NoCollections)
    }

    /// [`FindOptions::from_params`] where sort keys may cross to-one associations
    /// (`sort=author.name`) into the collections `lookup` finds.
    pub fn from_params_across(
        collection: &Collection,
        params: &Params,
        lookup: &dyn CollectionLookup,
    ) -> Result<Self> {
        let fields = match params.list("fields")? {
            // A client that sent `fields=` asked for nothing in particular: all attributes.
            Some(f)
                if f.is_empty() && params.get("fields").and_then(|v| v.as_str()) == Some("") =>
            {
                None
            }
            other => other,
        };
        let except = params.list("except")?.unwrap_or_default();
        Self::with_projection(collection, fields.as_deref(), &except, params, lookup)
    }

    /// [`FindOptions::from_params_across`] with `fields` and `except` given rather than read
    /// from `params` (which still give the sort): the root's own part of a projection that
    /// also names relations.
    pub fn with_projection(
        collection: &Collection,
        fields: Option<&[String]>,
        except: &[String],
        params: &Params,
        lookup: &dyn CollectionLookup,
    ) -> Result<Self> {
        let mut options = Self {
            fields: projection(collection, fields, except)?,
            sort: parse_sort_across(
                collection,
                params.list("sort")?.as_deref().unwrap_or(&[]),
                lookup,
            )?,
            ..Self::default()
        };
        add_key_tiebreaker(collection, &mut options.sort);
        Ok(options)
    }
}

/// The output attributes: `fields` if given (even when empty after a merge), else every
/// visible attribute minus `except`. `except` is ignored when `fields` lists attributes,
/// as NocoBase does.
fn projection(
    collection: &Collection,
    fields: Option<&[String]>,
    except: &[String],
) -> Result<Option<Vec<FieldRef>>> {
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
    if let Some(fields) = fields {
        return fields
            .iter()
            .map(|name| visible(name, "fields"))
            .collect::<Result<Vec<_>>>()
            .map(Some);
    }
    for name in except {
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
    parse_sort_across(collection, items, &NoCollections)
}

/// [`parse_sort`] where an item may name a field of a to-one association
/// (`author.name`), found through `lookup`.
pub fn parse_sort_across(
    collection: &Collection,
    items: &[String],
    lookup: &dyn CollectionLookup,
) -> Result<Vec<SortKey>> {
    items
        .iter()
        .map(|item| {
            let (name, descending) = match item.strip_prefix('-') {
                Some(rest) => (rest, true),
                None => (item.strip_prefix('+').unwrap_or(item), false),
            };
            Ok(SortKey {
                field: sort_field(collection, name, lookup)?,
                descending,
            })
        })
        .collect()
}

fn sort_field(
    collection: &Collection,
    name: &str,
    lookup: &dyn CollectionLookup,
) -> Result<FieldRef> {
    let segments: Vec<&str> = name.split('.').collect();
    let Some((last, associations)) = segments.split_last() else {
        return Err(Error::bad_request("sort: empty sort key"));
    };
    let unknown = |c: &Collection| {
        Error::bad_request(format!(
            "sort: unknown field {name:?} in collection {}",
            c.name()
        ))
    };
    if associations.is_empty() {
        return collection
            .field(last)
            .filter(|f| !f.hidden)
            .map(FieldRef::new)
            .ok_or_else(|| unknown(collection));
    }
    let (path, target) = walk(collection, associations, lookup).map_err(|e| match e {
        crate::filter::path::WalkError::CrossSource {
            association,
            source,
        } => Error::bad_request(format!(
            "sort: {name:?} crosses {association}, a relation to data source {source}; a page cannot be sorted by another data source's fields"
        )),
        _ => unknown(collection),
    })?;
    if path.is_to_many() {
        return Err(Error::bad_request(format!(
            "sort: {name:?} crosses a to-many association; only belongsTo and hasOne fields can be sorted by"
        )));
    }
    let field = target
        .field(last)
        .filter(|f| !f.hidden)
        .ok_or_else(|| unknown(&target))?;
    Ok(FieldRef::through(field, Arc::new(path)))
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
