//! Field paths through associations (`author.name`, `posts.comments.content`).
//!
//! A filter or sort that names a field of a related collection carries the walk from the
//! queried collection to it as a [`JoinPath`]. Compilers join one table (two for
//! belongsToMany) per hop; conditions that share a path refer to the same joined row, as
//! the spec's same-row semantics require.

use std::sync::Arc;

use crate::schema::{AssociationKind, Collection, TableName};

/// Finds the collections that associations point at, so a path can cross into them.
pub trait CollectionLookup: Sync {
    /// The collection called `name`, if the source has one.
    fn lookup(&self, name: &str) -> Option<Arc<Collection>>;
}

/// A lookup that knows no collection: paths cannot leave the queried one.
pub struct NoCollections;

impl CollectionLookup for NoCollections {
    fn lookup(&self, _name: &str) -> Option<Arc<Collection>> {
        None
    }
}

/// One association crossed: how the next table joins the previous one. All names are
/// physical columns taken from the schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hop {
    /// The association's name (the path segment).
    pub name: String,
    /// What kind of relation.
    pub kind: AssociationKind,
    /// The table joined.
    pub target: TableName,
    /// The column of the previous table the join starts from (its foreign key for
    /// belongsTo, its key otherwise).
    pub from_column: String,
    /// The column of the target (or, for belongsToMany, of the junction) that must equal
    /// `from_column`.
    pub to_column: String,
    /// belongsToMany: the junction table, its column pointing at the target, and the
    /// target's key that column refers to.
    pub through: Option<Through>,
}

/// The junction crossed by a belongsToMany hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Through {
    /// The junction table.
    pub table: TableName,
    /// Its column pointing at the target.
    pub other_column: String,
    /// The target's column that `other_column` refers to.
    pub target_column: String,
}

impl Hop {
    /// Whether one row of the previous table can meet several rows of this one.
    pub fn is_to_many(&self) -> bool {
        !self.kind.is_to_one()
    }
}

/// The associations walked from the queried collection to a field's collection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JoinPath {
    /// The hops, from the queried collection outwards.
    hops: Vec<Hop>,
    /// The path as the client wrote it (`posts.comments`), kept because compilers look
    /// it up for every column they qualify.
    key: String,
}

impl JoinPath {
    /// The path made of `hops`.
    pub fn new(hops: Vec<Hop>) -> Self {
        let key = hops
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(".");
        Self { hops, key }
    }

    /// The hops, from the queried collection outwards.
    pub fn hops(&self) -> &[Hop] {
        &self.hops
    }

    /// The path as the client wrote it (`posts.comments`), which identifies its joined row.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether any hop may multiply the queried rows.
    pub fn is_to_many(&self) -> bool {
        self.hops.iter().any(Hop::is_to_many)
    }

    /// Every proper prefix and the path itself, shortest first: the joins it needs.
    pub fn prefixes(&self) -> impl Iterator<Item = JoinPath> + '_ {
        (1..=self.hops.len()).map(|n| JoinPath::new(self.hops[..n].to_vec()))
    }
}

/// Walks `segments` (association names) from `collection`, returning the path and the
/// collection it ends in, or the first segment that is not an association.
pub fn walk(
    collection: &Collection,
    segments: &[&str],
    lookup: &dyn CollectionLookup,
) -> std::result::Result<(JoinPath, Arc<Collection>), WalkError> {
    let mut hops = Vec::with_capacity(segments.len());
    let mut here: Option<Arc<Collection>> = None;
    for (i, segment) in segments.iter().enumerate() {
        let current: &Collection = here.as_deref().unwrap_or(collection);
        let Some(a) = current.association(segment) else {
            if let Some(remote) = current.remote_association(segment) {
                return Err(WalkError::CrossSource {
                    association: remote.name.clone(),
                    source: remote.target_source.clone().unwrap_or_default(),
                });
            }
            return Err(WalkError::NotAnAssociation {
                segment: (*segment).to_owned(),
                collection: current.name().to_owned(),
                depth: i,
            });
        };
        let target = lookup
            .lookup(&a.target)
            .ok_or_else(|| WalkError::MissingTarget {
                association: a.name.clone(),
                target: a.target.clone(),
            })?;
        let column_of = |c: &Collection, name: &str| -> std::result::Result<String, WalkError> {
            c.field(name)
                .map(|f| f.column.clone())
                .ok_or_else(|| WalkError::MissingTarget {
                    association: a.name.clone(),
                    target: format!("{}.{name}", c.name()),
                })
        };
        let hop = match a.kind {
            AssociationKind::BelongsTo => Hop {
                name: a.name.clone(),
                kind: a.kind,
                target: target.table().clone(),
                from_column: column_of(current, &a.foreign_key)?,
                to_column: column_of(&target, &a.target_key)?,
                through: None,
            },
            AssociationKind::HasOne | AssociationKind::HasMany => Hop {
                name: a.name.clone(),
                kind: a.kind,
                target: target.table().clone(),
                from_column: column_of(current, &a.source_key)?,
                to_column: column_of(&target, &a.foreign_key)?,
                through: None,
            },
            AssociationKind::BelongsToMany => {
                let (Some(through), Some(other)) = (&a.through, &a.other_key) else {
                    return Err(WalkError::MissingTarget {
                        association: a.name.clone(),
                        target: "its junction".into(),
                    });
                };
                let junction = lookup
                    .lookup(through)
                    .ok_or_else(|| WalkError::MissingTarget {
                        association: a.name.clone(),
                        target: through.clone(),
                    })?;
                Hop {
                    name: a.name.clone(),
                    kind: a.kind,
                    target: target.table().clone(),
                    from_column: column_of(current, &a.source_key)?,
                    to_column: column_of(&junction, &a.foreign_key)?,
                    through: Some(Through {
                        table: junction.table().clone(),
                        other_column: column_of(&junction, other)?,
                        target_column: column_of(&target, &a.target_key)?,
                    }),
                }
            }
        };
        hops.push(hop);
        here = Some(target);
    }
    let end = here.ok_or(WalkError::Empty)?;
    Ok((JoinPath::new(hops), end))
}

/// Why a path could not be walked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkError {
    /// No segments.
    Empty,
    /// `segment` names neither an association of `collection`.
    NotAnAssociation {
        /// The segment.
        segment: String,
        /// The collection it was looked up in.
        collection: String,
        /// How many associations were crossed before it.
        depth: usize,
    },
    /// The association leads to another data source, which a join cannot reach.
    CrossSource {
        /// The association.
        association: String,
        /// The data source its target lives in.
        source: String,
    },
    /// The association's target (or junction, or key) is not in the source's schema.
    MissingTarget {
        /// The association.
        association: String,
        /// What is missing.
        target: String,
    },
}
