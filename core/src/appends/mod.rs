//! Embedding associated records (`appends=author,tags,comments.author`) without one query
//! per row: each association at each level is read with one batched `IN` query (two for
//! belongsToMany: the junction, then the targets), whatever the number of rows.
//!
//! `fields` and `except` reach inside appends: `fields=title,tags.name` shows only the
//! title and, inside each tag, only its name; `except=comments.id` drops the id inside
//! each comment. Keys needed to match rows are read even when not asked for, and removed
//! from the answer.

mod column;
mod key;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value as Json;

use crate::data_source::DataSource;
use crate::error::{Error, Result};
use crate::filter::{Condition, FieldRef, Filter, Predicate};
use crate::query::{FindOptions, SortKey, add_key_tiebreaker, parse_sort};
use crate::repository::{Record, Repository};
use crate::schema::{Association, AssociationKind, Collection};
use crate::value::Value;
use column::Column;
use key::{Key, KeyMap, KeySet};

/// Keys per `IN` query; more are read in several batches.
const BATCH: usize = 1000;

/// What to embed under one association, and inside it.
struct Node {
    association: Association,
    target: Arc<Collection>,
    repository: Arc<dyn Repository>,
    through: Option<Arc<dyn Repository>>,
    /// Whether the junction lives in the target's database, so one joined read finds
    /// the targets and their links.
    joinable: bool,
    /// The target's source when it is not the parent's (a relation to another source):
    /// what the target embeds is resolved there.
    peer: Option<Arc<DataSource>>,
    /// Target attributes asked for; `None` is all.
    fields: Option<Vec<String>>,
    except: Vec<String>,
    /// The order of an embedded list (`comments(sort=-id)`); empty keeps key order.
    sort: Vec<SortKey>,
    children: BTreeMap<String, Node>,
}

/// The embedding a request asks for, resolved against the schema, and what it changes
/// about the root query.
pub struct Shape {
    children: BTreeMap<String, Node>,
    /// Root attributes asked for (`None` is all); keys added for matching are stripped.
    requested: Option<Vec<String>>,
    except: Vec<String>,
    /// The most records the answer may embed (the source's `max_embedded_records`).
    limit: usize,
}

/// Splits `fields`/`except`/`appends` of a request on `collection` into the root's own
/// attributes and a tree of appends.
///
/// Returns the shape and the root `fields`/`except` lists to read. An unknown
/// association in `appends` is ignored, as NocoBase does; an unknown name in `fields` is
/// left for the root projection to refuse.
pub fn shape(
    source: &DataSource,
    collection: &Arc<Collection>,
    fields: Option<Vec<String>>,
    except: Vec<String>,
    appends: Vec<String>,
) -> Result<(Shape, Option<Vec<String>>, Vec<String>)> {
    let mut children: BTreeMap<String, Node> = BTreeMap::new();
    let mut root_fields: Option<Vec<String>> = fields.as_ref().map(|_| Vec::new());
    let mut root_except = Vec::new();

    for item in &appends {
        let (segments, options) = append_path(item)?;
        insert(source, collection, &mut children, &segments, false)?;
        for (depth, sort) in options {
            if let Some(node) = find_node(&mut children, &segments[..=depth]) {
                let mut keys = parse_sort(&node.target, &sort)
                    .map_err(|e| e.context(format!("appends {item}")))?;
                add_key_tiebreaker(&node.target, &mut keys);
                node.sort = keys;
            }
        }
    }
    for item in fields.iter().flatten() {
        let segments: Vec<&str> = item.split('.').collect();
        if collection.relation(segments[0]).is_some() {
            insert(source, collection, &mut children, &segments, true)?;
        } else if let Some(root) = root_fields.as_mut() {
            root.push(item.clone());
        }
    }
    for item in &except {
        let segments: Vec<&str> = item.split('.').collect();
        match segments.split_last() {
            Some((last, path)) if !path.is_empty() => {
                if collection.relation(path[0]).is_none() {
                    return Err(Error::bad_request(format!(
                        "except: unknown field {item:?} in collection {}",
                        collection.name()
                    )));
                }
                // An association that is not appended has nothing to drop.
                if let Some(node) = find_node(&mut children, path) {
                    node.except.push((*last).to_owned());
                }
            }
            _ => root_except.push(item.clone()),
        }
    }

    let requested = root_fields.clone();
    // Keys the appends match on must be read, even when not asked for or excepted.
    let needed: Vec<String> = children
        .values()
        .map(|n| n.columns().0.to_owned())
        .collect();
    if let Some(root) = root_fields.as_mut() {
        for key in &needed {
            if !root.contains(key) {
                root.push(key.clone());
            }
        }
    }
    let read_except = root_except
        .iter()
        .filter(|e| !needed.contains(e))
        .cloned()
        .collect();
    Ok((
        Shape {
            children,
            requested,
            except: root_except,
            limit: source.settings().max_embedded_records,
        },
        root_fields,
        read_except,
    ))
}

/// The sort keys an append asked for at one depth of its path.
type LevelSort = (usize, Vec<String>);

/// An `appends` item split into association names, with the sort each level asked for:
/// `comments(sort=-createdAt).author` → `[comments, author]`, `[(0, ["-createdAt"])]`.
/// Options use the query-string syntax (`sort=a,-b` or `sort[]=a&sort[]=-b`).
fn append_path(item: &str) -> Result<(Vec<&str>, Vec<LevelSort>)> {
    let mut segments = Vec::new();
    let mut options = Vec::new();
    let mut rest = item;
    while !rest.is_empty() {
        let end = rest.find(['.', '(']).unwrap_or(rest.len());
        segments.push(&rest[..end]);
        rest = &rest[end..];
        if let Some(inner) = rest.strip_prefix('(') {
            let close = inner.find(')').ok_or_else(|| {
                Error::bad_request(format!(
                    "appends {item:?}: an option list opened with ( is not closed"
                ))
            })?;
            let mut sort = Vec::new();
            for pair in inner[..close].split('&').filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
                match key {
                    "sort" | "sort[]" => sort.extend(
                        value
                            .split(',')
                            .map(str::trim)
                            .filter(|v| !v.is_empty())
                            .map(str::to_owned),
                    ),
                    other => {
                        return Err(Error::bad_request(format!(
                            "appends {item:?}: unknown option {other:?}; an append takes sort"
                        )));
                    }
                }
            }
            options.push((segments.len() - 1, sort));
            rest = &inner[close + 1..];
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    Ok((segments, options))
}

/// Adds the association path `segments` under `children`. With `as_field`, the last
/// segment may be an attribute of the association's target (`tags.name`).
fn insert(
    source: &DataSource,
    collection: &Collection,
    children: &mut BTreeMap<String, Node>,
    segments: &[&str],
    as_field: bool,
) -> Result<()> {
    let Some((first, rest)) = segments.split_first() else {
        return Ok(());
    };
    let Some(association) = collection.relation(first) else {
        if as_field {
            return Err(Error::bad_request(format!(
                "fields: {first:?} is not an association of collection {}",
                collection.name()
            )));
        }
        tracing::debug!(
            collection = collection.name(),
            append = first,
            "unknown append ignored"
        );
        return Ok(());
    };
    if !children.contains_key(*first) {
        let node = match &association.target_source {
            None => local_node(source, association),
            Some(key) => Some(
                remote_node(source, key, association)
                    .map_err(|e| e.context(format!("appends {first}")))?,
            ),
        };
        let Some(node) = node else {
            return Ok(());
        };
        children.insert((*first).to_owned(), node);
    }
    let Some(node) = children.get_mut(*first) else {
        return Ok(());
    };
    match rest {
        [] => Ok(()),
        [attribute] if as_field && node.target.relation(attribute).is_none() => {
            node.target.require_field(attribute, "fields")?;
            node.fields
                .get_or_insert_with(Vec::new)
                .push((*attribute).to_owned());
            Ok(())
        }
        _ => {
            let target = node.target.clone();
            let peer = node.peer.clone();
            let at = peer.as_deref().unwrap_or(source);
            insert(at, &target, &mut node.children, rest, as_field)
        }
    }
}

/// A node for a relation within `source`; `None` when its target or junction is gone
/// from the schema (the append is ignored, as an unknown one is).
fn local_node(source: &DataSource, association: &Association) -> Option<Node> {
    let (target, repository) = source.collection(&association.target)?;
    let through = match &association.through {
        Some(name) => Some(source.collection(name)?.1),
        None => None,
    };
    Some(Node::new(association, target, repository, through, None))
}

/// A node for a relation to the source called `key`: that source must be serving and
/// hold the target, or the request gets the reason (404 or 503) rather than an answer
/// silently missing the relation.
fn remote_node(source: &DataSource, key: &str, association: &Association) -> Result<Node> {
    let peer = source.peer(key)?;
    let (target, repository) = peer.collection(&association.target).ok_or_else(|| {
        Error::not_found(format!(
            "collection {} does not exist in data source {key}",
            association.target
        ))
    })?;
    // A belongsToMany's junction: with the target when declared so, else here.
    let through = match &association.through {
        Some(name) => {
            let at: &DataSource = if association.through_source.is_some() {
                &peer
            } else {
                source
            };
            let (_, junction) = at.collection(name).ok_or_else(|| {
                Error::not_found(format!(
                    "junction {name} does not exist in data source {}",
                    at.key()
                ))
            })?;
            Some(junction)
        }
        None => None,
    };
    let mut node = Node::new(association, target, repository, through, Some(peer));
    node.joinable = association.through_source.is_some();
    Ok(node)
}

impl Node {
    /// The parent column the node matches on, and the target column it matches.
    fn columns(&self) -> (&str, &str) {
        let a = &self.association;
        match a.kind {
            AssociationKind::BelongsTo => (a.foreign_key.as_str(), a.target_key.as_str()),
            AssociationKind::HasOne | AssociationKind::HasMany => {
                (a.source_key.as_str(), a.foreign_key.as_str())
            }
            AssociationKind::BelongsToMany => (a.source_key.as_str(), a.target_key.as_str()),
        }
    }

    fn new(
        association: &Association,
        target: Arc<Collection>,
        repository: Arc<dyn Repository>,
        through: Option<Arc<dyn Repository>>,
        peer: Option<Arc<DataSource>>,
    ) -> Self {
        Node {
            association: association.clone(),
            target,
            repository,
            through,
            joinable: true,
            peer,
            fields: None,
            except: Vec::new(),
            sort: Vec::new(),
            children: BTreeMap::new(),
        }
    }
}

fn find_node<'a>(children: &'a mut BTreeMap<String, Node>, path: &[&str]) -> Option<&'a mut Node> {
    let (first, rest) = path.split_first()?;
    let node = children.get_mut(*first)?;
    if rest.is_empty() {
        Some(node)
    } else {
        find_node(&mut node.children, rest)
    }
}

impl Shape {
    /// Whether anything is embedded.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// How many entries embedding adds to each root record ([`FindOptions::room`]).
    pub fn room(&self) -> usize {
        self.children.len()
    }

    /// Embeds the associations into `records` and removes keys read only for matching.
    ///
    /// Refuses with a 400, before building it, an answer that would embed more than the
    /// source's `max_embedded_records`: chained appends (`author.books.author.books`) can
    /// otherwise grow an answer several times over per level.
    pub async fn load(&self, records: &mut [Record]) -> Result<()> {
        load_level(&self.children, records, self.limit).await?;
        for record in records.iter_mut() {
            trim(
                record,
                self.requested.as_deref(),
                &self.except,
                &self.children,
            );
        }
        Ok(())
    }
}

/// Keeps the requested attributes (and the embedded associations) and drops excepted ones.
fn trim(
    record: &mut Record,
    requested: Option<&[String]>,
    except: &[String],
    children: &BTreeMap<String, Node>,
) {
    if let Some(wanted) = requested {
        record.retain(|k, _| wanted.contains(k) || children.contains_key(k));
    }
    for e in except {
        record.shift_remove(e);
    }
}

/// Embeds every association of `children` into `records`; returns, per record, how many
/// records it now embeds (each with what it embeds itself).
fn load_level<'a>(
    children: &'a BTreeMap<String, Node>,
    records: &'a mut [Record],
    limit: usize,
) -> BoxFuture<'a, Result<Vec<usize>>> {
    Box::pin(async move {
        let mut embedded = vec![0; records.len()];
        let keys: Vec<Vec<Json>> = children
            .values()
            .map(|node| distinct(records, node.columns().0))
            .collect();
        let fetched = fetch_all(children, keys, limit).await?;
        for ((name, node), fetched) in children.iter().zip(fetched) {
            place(name, node, fetched, records, &mut embedded, limit)?;
        }
        Ok(embedded)
    })
}

/// Reads the targets of every node (and what they embed), with `keys` the parent keys
/// each matches on. Nodes on different sources are read concurrently; nodes on one
/// source one after another, so a request holds at most one of a pool's connections.
async fn fetch_all(
    children: &BTreeMap<String, Node>,
    keys: Vec<Vec<Json>>,
    limit: usize,
) -> Result<Vec<Fetched>> {
    let nodes: Vec<&Node> = children.values().collect();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let same = groups.iter_mut().find(|g| same_source(nodes[g[0]], node));
        match same {
            Some(group) => group.push(i),
            None => groups.push(vec![i]),
        }
    }
    let keys = &keys;
    let nodes = &nodes;
    let reads = groups.into_iter().map(|group| async move {
        let mut out = Vec::with_capacity(group.len());
        for i in group {
            out.push((i, fetch(nodes[i], &keys[i], limit).await?));
        }
        Ok::<_, Error>(out)
    });
    let mut fetched: Vec<(usize, Fetched)> = futures_util::future::try_join_all(reads)
        .await?
        .into_iter()
        .flatten()
        .collect();
    fetched.sort_by_key(|(i, _)| *i);
    Ok(fetched.into_iter().map(|(_, f)| f).collect())
}

/// Whether two nodes read from the same source (its pool).
fn same_source(a: &Node, b: &Node) -> bool {
    match (&a.peer, &b.peer) {
        (None, None) => true,
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

/// The 400 for an answer that would embed more than `limit` records.
fn too_many_embedded(limit: usize) -> Error {
    Error::bad_request(format!(
        "appends: the answer would embed more than {limit} related records (the limit, \
         MANIFOLD_MAX_EMBEDDED_RECORDS); ask for fewer rows or fewer appends"
    ))
}

/// The distinct, non-null values of `column` in `records`, in first-seen order.
fn distinct(records: &[Record], column: &str) -> Vec<Json> {
    let mut seen = KeySet::with_capacity_and_hasher(records.len(), Default::default());
    let column = Column::new(column, records.first());
    records
        .iter()
        .filter_map(|r| column.of(r))
        .filter(|v| Key::of(v).is_some_and(|k| seen.insert(k)))
        .cloned()
        .collect()
}

/// Reads the rows of `repository` whose `column` is one of `keys`, in batches, ordered by
/// primary key, with `fields` (plus `column`) when given.
async fn rows_where_in(
    repository: &Arc<dyn Repository>,
    column: &str,
    keys: &[Json],
    fields: Option<Vec<String>>,
    room: usize,
) -> Result<Vec<Record>> {
    let collection = repository.collection();
    let field = collection
        .field(column)
        .ok_or_else(|| Error::internal(format!("{} has no column {column}", collection.name())))?;
    let projection = match fields {
        Some(mut names) => {
            if !names.iter().any(|n| n == column) {
                names.push(column.to_owned());
            }
            Some(
                names
                    .iter()
                    .map(|n| collection.require_field(n, "fields").map(FieldRef::new))
                    .collect::<Result<Vec<_>>>()?,
            )
        }
        None => None,
    };
    let mut out = Vec::new();
    for batch in keys.chunks(BATCH) {
        let values = batch
            .iter()
            .map(|k| Value::coerce(field.field_type, k, "appends"))
            .collect::<Result<Vec<_>>>()?;
        let mut options = FindOptions {
            filter: Some(Filter::Condition(Condition {
                field: FieldRef::new(field),
                predicate: Predicate::In(values),
            })),
            fields: projection.clone(),
            room,
            ..FindOptions::default()
        };
        add_key_tiebreaker(collection, &mut options.sort);
        out.extend(repository.find(&options).await?);
    }
    Ok(out)
}

/// The attributes to read of a node's targets: what was asked, plus the keys its own
/// appends and its parent match on.
fn node_fields(node: &Node, matched_by: &str) -> Option<Vec<String>> {
    let mut fields = node.fields.clone()?;
    let need = std::iter::once(matched_by.to_owned())
        .chain(node.children.values().map(|n| n.columns().0.to_owned()))
        .chain(node.sort.iter().map(|k| k.field.name.clone()));
    for n in need {
        if !fields.contains(&n) {
            fields.push(n);
        }
    }
    Some(fields)
}

async fn read_targets(node: &Node, column: &str, keys: &[Json]) -> Result<Vec<Record>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let room = node.children.len();
    rows_where_in(
        &node.repository,
        column,
        keys,
        node_fields(node, column),
        room,
    )
    .await
}

/// A belongsToMany link: the source key and the target key it joins.
type LinkPair = (Key, Key);

/// belongsToMany targets and their links in one joined query per batch, where the
/// connector can (`None` otherwise). Targets come back once each, in primary-key order.
async fn linked(
    node: &Node,
    through: &Arc<dyn Repository>,
    other: &str,
    sources: &[Json],
    target_column: &str,
) -> Result<Option<(Vec<LinkPair>, Vec<Record>)>> {
    let a = &node.association;
    let junction = through.collection();
    let target = &node.target;
    let source_column = FieldRef::new(junction.require_field(&a.foreign_key, "appends")?);
    let other_column = FieldRef::new(junction.require_field(other, "appends")?);
    let target_key = FieldRef::new(target.require_field(target_column, "appends")?);
    let fields = node_fields(node, target_column)
        .map(|names| {
            names
                .iter()
                .map(|n| target.require_field(n, "fields").map(FieldRef::new))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    let link = crate::repository::Link {
        junction,
        source_column: &source_column,
        target_column: &other_column,
        target_key: &target_key,
    };
    let mut pairs = Vec::new();
    let mut rows: Vec<Record> = Vec::new();
    let mut seen = KeySet::default();
    for batch in sources.chunks(BATCH) {
        let values = batch
            .iter()
            .map(|k| Value::coerce(source_column.field_type, k, "appends"))
            .collect::<Result<Vec<_>>>()?;
        let Some(found) = node
            .repository
            .find_linked(&link, &values, fields.as_deref())
            .await?
        else {
            return Ok(None);
        };
        let target = Column::new(target_column, found.first().map(|(_, row)| row));
        for (source, row) in found {
            let (Some(s), Some(t)) = (Key::of(&source), target.of(&row).and_then(Key::of)) else {
                continue;
            };
            if seen.insert(t.clone()) {
                rows.push(row);
            }
            pairs.push((s, t));
        }
    }
    // Each batch comes back in key order; several must be merged.
    if sources.len() > BATCH {
        let by_key: Vec<crate::query::SortKey> = target
            .primary_key()
            .map(|k| crate::query::SortKey {
                field: FieldRef::new(k),
                descending: false,
            })
            .collect();
        rows.sort_by(|x, y| crate::filter::compare_records(x, y, &by_key));
    }
    Ok(Some((pairs, rows)))
}

/// A node's targets, each with its weight (itself and what it embeds), in the order every
/// embedded list keeps, and for belongsToMany the links from parent keys to target keys.
struct Fetched {
    targets: Vec<(Record, usize)>,
    links: Vec<LinkPair>,
}

/// Reads the targets of `node` for the parent `keys`, with what they embed themselves.
async fn fetch(node: &Node, keys: &[Json], limit: usize) -> Result<Fetched> {
    let a = &node.association;
    let (_, target_column) = node.columns();

    // For belongsToMany, the junction says which targets belong to which source key.
    let mut links: Vec<LinkPair> = Vec::new();
    let mut targets = match (&a.kind, &node.through, &a.other_key) {
        (AssociationKind::BelongsToMany, Some(through), Some(other)) => {
            let joined = match node.joinable {
                true => linked(node, through, other, keys, target_column).await?,
                false => None,
            };
            match joined {
                Some((pairs, rows)) => {
                    links = pairs;
                    rows
                }
                None => {
                    let pairs = rows_where_in(
                        through,
                        &a.foreign_key,
                        keys,
                        Some(vec![a.foreign_key.clone(), other.clone()]),
                        0,
                    )
                    .await?;
                    let (source, target) = (
                        Column::new(&a.foreign_key, pairs.first()),
                        Column::new(other, pairs.first()),
                    );
                    links = pairs
                        .iter()
                        .filter_map(|p| Some((Key::of(source.of(p)?)?, Key::of(target.of(p)?)?)))
                        .collect();
                    let target_keys = distinct(&pairs, other);
                    read_targets(node, target_column, &target_keys).await?
                }
            }
        }
        _ => read_targets(node, target_column, keys).await?,
    };
    let inner = load_level(&node.children, &mut targets, limit).await?;
    // A target's weight: itself and what it embeds; each copy placed costs that much.
    let mut targets: Vec<(Record, usize)> = targets
        .into_iter()
        .zip(inner)
        .map(|(t, n)| (t, n.saturating_add(1)))
        .collect();
    if !node.sort.is_empty() {
        targets.sort_by(|x, y| crate::filter::compare_records(&x.0, &y.0, &node.sort));
    }
    Ok(Fetched { targets, links })
}

/// Embeds one node's fetched targets into `records`, adding to `embedded` (per record)
/// the number of records placed there with their own embedded records, and refusing
/// before anything is copied when the level's total would pass `limit`.
fn place(
    name: &str,
    node: &Node,
    fetched: Fetched,
    records: &mut [Record],
    embedded: &mut [usize],
    limit: usize,
) -> Result<()> {
    let a = &node.association;
    let (source_column, target_column) = node.columns();
    let Fetched { mut targets, links } = fetched;

    // Targets arrive in primary-key order, or the append's sort, which every embedded
    // list keeps; each is indexed by its key before trimming may drop that key.
    let mut by_key: KeyMap<Vec<usize>> =
        KeyMap::with_capacity_and_hasher(targets.len(), Default::default());
    let target = Column::new(target_column, targets.first().map(|(t, _)| t));
    for (i, (t, _)) in targets.iter().enumerate() {
        if let Some(k) = target.of(t).and_then(Key::of) {
            by_key.entry(k).or_default().push(i);
        }
    }
    for (t, _) in &mut targets {
        trim(t, node.fields.as_deref(), &node.except, &node.children);
    }
    let first = |k: &Key| by_key.get(k).and_then(|rows| rows.first().copied());
    // belongsToMany: each source key's targets, as positions in `targets`.
    let mut linked_to: KeyMap<Vec<usize>> = KeyMap::default();
    for (s, t) in links {
        if let Some(i) = first(&t) {
            linked_to.entry(s).or_default().push(i);
        }
    }
    for positions in linked_to.values_mut() {
        positions.sort_unstable();
        positions.dedup();
    }
    // What each record gets, as positions in `targets`; counted in full before any copy.
    let source = Column::new(source_column, records.first());
    let placed: Vec<Vec<usize>> = records
        .iter()
        .map(|record| {
            let Some(own) = source.of(record).and_then(Key::of) else {
                return Vec::new();
            };
            match a.kind {
                AssociationKind::BelongsTo | AssociationKind::HasOne => {
                    first(&own).into_iter().collect()
                }
                AssociationKind::HasMany => by_key.get(&own).cloned().unwrap_or_default(),
                AssociationKind::BelongsToMany => linked_to.get(&own).cloned().unwrap_or_default(),
            }
        })
        .collect();
    let mut total = embedded
        .iter()
        .fold(0usize, |sum, n| sum.saturating_add(*n));
    let mut uses = vec![0usize; targets.len()];
    for (count, positions) in embedded.iter_mut().zip(&placed) {
        let weight = positions.iter().fold(0usize, |sum, &i| {
            uses[i] += 1;
            sum.saturating_add(targets[i].1)
        });
        *count = count.saturating_add(weight);
        total = total.saturating_add(weight);
        if total > limit {
            return Err(too_many_embedded(limit));
        }
    }
    // A target placed once (every hasMany row, most to-one rows) is moved, not copied.
    let mut targets: Vec<Option<Record>> = targets.into_iter().map(|(t, _)| Some(t)).collect();
    let mut place = |i: usize| {
        uses[i] -= 1;
        let record = if uses[i] == 0 {
            targets[i].take()
        } else {
            targets[i].clone()
        };
        record.map(Json::Object).unwrap_or(Json::Null)
    };
    for (record, positions) in records.iter_mut().zip(placed) {
        let value = match a.kind {
            AssociationKind::BelongsTo | AssociationKind::HasOne => {
                positions.first().map_or(Json::Null, |&i| place(i))
            }
            AssociationKind::HasMany | AssociationKind::BelongsToMany => {
                Json::Array(positions.into_iter().map(&mut place).collect())
            }
        };
        record.insert(name.to_owned(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::append_path;

    #[test]
    fn append_options_attach_to_their_level() {
        let (segments, options) =
            append_path("posts(sort=-title).comments(sort[]=-id)").expect("valid");
        assert_eq!(segments, ["posts", "comments"]);
        assert_eq!(
            options,
            vec![(0, vec!["-title".to_owned()]), (1, vec!["-id".to_owned()])]
        );
        let (segments, options) = append_path("author.department").expect("valid");
        assert_eq!((segments, options), (vec!["author", "department"], vec![]));
        assert!(append_path("comments(sort=-id").is_err());
        assert!(append_path("comments(limit=1)").is_err());
    }
}
