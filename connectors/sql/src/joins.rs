//! Joins for fields reached through associations (`author.name`, `posts.comments.content`).
//!
//! Filters follow the spec's same-row semantics: every condition on one association path
//! refers to one joined row, and a root row matches when some combination of joined rows
//! satisfies the whole expression. That is written as
//! `EXISTS (SELECT 1 FROM root AS s LEFT JOIN … WHERE s.pk = root.pk AND <filter>)`, so the
//! root rows are never multiplied and pagination and COUNT see each root row once. Sorts
//! may only cross to-one associations (checked when parsing), which join the main query
//! directly.

use std::sync::Arc;

use manifold_core::filter::{Filter, JoinPath};
use manifold_core::query::SortKey;
use manifold_core::schema::Collection;

use crate::builder::{Qualifiers, SqlBuilder};

/// One table joined for an association path.
struct JoinStep {
    hop: manifold_core::filter::path::Hop,
    parent: String,
    alias: String,
}

/// The distinct association paths `filter` refers to.
pub(crate) fn filter_paths(filter: &Filter) -> Vec<Arc<JoinPath>> {
    fn collect(filter: &Filter, out: &mut Vec<Arc<JoinPath>>) {
        match filter {
            Filter::And(items) | Filter::Or(items) => {
                items.iter().for_each(|f| collect(f, out));
            }
            Filter::Condition(c) => {
                if let Some(path) = &c.field.via
                    && !out.iter().any(|p| p == path)
                {
                    out.push(path.clone());
                }
            }
        }
    }
    let mut out = Vec::new();
    collect(filter, &mut out);
    out
}

/// Whether `filter` needs joins.
pub(crate) fn has_paths(filter: &Filter) -> bool {
    match filter {
        Filter::And(items) | Filter::Or(items) => items.iter().any(has_paths),
        Filter::Condition(c) => c.field.via.is_some(),
    }
}

/// The distinct association paths `sort` refers to.
pub(crate) fn sort_paths(sort: &[SortKey]) -> Vec<Arc<JoinPath>> {
    let mut out: Vec<Arc<JoinPath>> = Vec::new();
    for path in sort.iter().filter_map(|k| k.field.via.as_ref()) {
        if !out.iter().any(|p| p == path) {
            out.push(path.clone());
        }
    }
    out
}

/// A prefix for aliases that the queried table's own name cannot start with, so an alias
/// never hides it.
fn alias_prefix(collection: &Collection) -> &'static str {
    if collection.table().name.starts_with("_j") {
        "_q"
    } else {
        "_j"
    }
}

/// One alias per distinct path prefix, each joined to its parent (`start` for the first
/// hop).
fn plan(
    start: &str,
    prefix: &str,
    paths: &[Arc<JoinPath>],
) -> (Vec<JoinStep>, Vec<(String, String)>) {
    let mut steps: Vec<JoinStep> = Vec::new();
    let mut aliases: Vec<(String, String)> = Vec::new();
    for path in paths {
        let mut parent = start.to_owned();
        for sub in path.prefixes() {
            let key = sub.key().to_owned();
            if let Some((_, alias)) = aliases.iter().find(|(k, _)| *k == key) {
                parent = alias.clone();
                continue;
            }
            let alias = format!("{prefix}{}", aliases.len() + 1);
            let hop = sub.hops().last().cloned();
            if let Some(hop) = hop {
                steps.push(JoinStep {
                    hop,
                    parent: parent.clone(),
                    alias: alias.clone(),
                });
            }
            aliases.push((key, alias.clone()));
            parent = alias;
        }
    }
    (steps, aliases)
}

/// `LEFT JOIN target AS a ON a.to = parent.from` for each step (two joins through a
/// junction).
fn emit(b: &mut SqlBuilder, steps: &[JoinStep]) {
    for step in steps {
        let hop = &step.hop;
        match &hop.through {
            None => {
                b.push(" LEFT JOIN ").table(&hop.target).push(" AS ");
                b.ident(&step.alias).push(" ON ");
                b.ident(&step.alias).push(".").ident(&hop.to_column);
                b.push(" = ").ident(&step.parent).push(".");
                b.ident(&hop.from_column);
            }
            Some(through) => {
                let junction = format!("{}t", step.alias);
                b.push(" LEFT JOIN ").table(&through.table).push(" AS ");
                b.ident(&junction).push(" ON ");
                b.ident(&junction).push(".").ident(&hop.to_column);
                b.push(" = ").ident(&step.parent).push(".");
                b.ident(&hop.from_column);
                b.push(" LEFT JOIN ").table(&hop.target).push(" AS ");
                b.ident(&step.alias).push(" ON ");
                b.ident(&step.alias).push(".").ident(&through.target_column);
                b.push(" = ").ident(&junction).push(".");
                b.ident(&through.other_column);
            }
        }
    }
}

/// The to-one joins a sort needs in the main query, and how columns are qualified there.
pub(crate) struct SortJoins {
    steps: Vec<JoinStep>,
    /// Qualifies root columns by the table's name and joined ones by their alias.
    pub qualifiers: Qualifiers,
}

impl SortJoins {
    /// Plans the joins for the association paths in `sort`.
    pub(crate) fn of(collection: &Collection, sort: &[SortKey]) -> Self {
        let root = collection.table().name.clone();
        let (steps, aliases) = plan(&root, alias_prefix(collection), &sort_paths(sort));
        Self {
            steps,
            qualifiers: Qualifiers { root, aliases },
        }
    }

    /// Writes the `LEFT JOIN`s (after `FROM root`).
    pub(crate) fn write(&self, b: &mut SqlBuilder) {
        emit(b, &self.steps);
    }
}

/// Writes `filter`, which crosses associations, as one correlated `EXISTS` over the
/// joined rows (see the module documentation). The collection must have a primary key to
/// correlate on; the parser refuses association paths on keyless collections.
pub(crate) fn exists(b: &mut SqlBuilder, collection: &Collection, filter: &Filter) {
    let prefix = alias_prefix(collection);
    let anchor = format!("{prefix}s");
    let paths = filter_paths(filter);
    let (steps, aliases) = plan(&anchor, &format!("{prefix}e"), &paths);
    let root = collection.table().name.clone();
    b.push("EXISTS (SELECT 1 FROM ").table(collection.table());
    b.push(" AS ").ident(&anchor);
    emit(b, &steps);
    b.push(" WHERE ");
    for key in collection.primary_key() {
        b.ident(&anchor).push(".").ident(&key.column);
        b.push(" = ").ident(&root).push(".").ident(&key.column);
        b.push(" AND ");
    }
    // Root conditions keep naming the outer row, which is the anchor row.
    let outer = b.set_qualifiers(Some(Qualifiers { root, aliases }));
    crate::compile::condition(b, filter);
    b.set_qualifiers(outer);
    b.push(")");
}
