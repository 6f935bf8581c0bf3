//! What users declared about a source's collections beyond what introspection finds:
//! collection options (`simplePaginate`) and relation fields (`fields:create` with `type`
//! `belongsTo`, …). The service stores declarations in the main database; every refresh
//! of the source lays them over the introspected schema again, before relations are
//! derived from foreign keys, so a declared name wins over a derived one.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::schema::{Association, AssociationKind, Collection, FieldType};

/// The declarations for every collection of one data source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Declarations {
    /// Declarations by collection name.
    pub collections: BTreeMap<String, CollectionDeclarations>,
}

/// The declarations for one collection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectionDeclarations {
    /// Options as stored (`{"simplePaginate": true}`, `{"hiddenFields": ["password"]}`);
    /// unknown keys are kept and ignored.
    pub options: Map<String, Json>,
    /// Relation fields as declared, each a JSON object with `name`, `type`, `target`, ….
    pub fields: Vec<Json>,
}

impl Declarations {
    /// Lays the declarations over `collections`. A declaration that no longer fits the
    /// schema (its table or a key column is gone) is skipped; the returned messages say
    /// which and why.
    pub fn apply(&self, collections: &mut [Collection]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut declared: Vec<(usize, Association)> = Vec::new();
        for (name, declarations) in &self.collections {
            let Some(index) = collections.iter().position(|c| c.name() == name) else {
                problems.push(format!("collection {name} is declared but does not exist"));
                continue;
            };
            if let Some(simple) = declarations
                .options
                .get("simplePaginate")
                .and_then(Json::as_bool)
            {
                collections[index].options.simple_paginate = simple;
            }
            if let Some(Json::Array(hidden)) = declarations.options.get("hiddenFields") {
                for field in hidden.iter().filter_map(Json::as_str) {
                    if !collections[index].hide_field(field) {
                        problems.push(format!("collection {name}: no field {field} to hide"));
                    }
                }
            }
            for field in &declarations.fields {
                let association = if is_remote(field) {
                    remote_association(&collections[index], field, None, None)
                } else {
                    declared_association(&collections[index], field, collections)
                };
                match association {
                    Ok(a) => declared.push((index, a)),
                    Err(e) => problems.push(format!("collection {name}: {e}")),
                }
            }
        }
        for (index, association) in declared {
            if association.target_source.is_some() {
                collections[index].remote_associations.push(association);
            } else {
                collections[index].associations.push(association);
            }
        }
        problems
    }
}

/// A relation declaration's name, free on `source`, and its kind.
fn name_and_kind<'d>(
    source: &Collection,
    declaration: &'d Json,
) -> Result<(&'d str, AssociationKind)> {
    let text = |key: &str| declaration.get(key).and_then(Json::as_str);
    let name = text("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::bad_request("values.name: a field needs a name"))?;
    let kind = match text("type") {
        Some("belongsTo") => AssociationKind::BelongsTo,
        Some("hasOne") => AssociationKind::HasOne,
        Some("hasMany") => AssociationKind::HasMany,
        Some("belongsToMany") => AssociationKind::BelongsToMany,
        other => {
            return Err(Error::bad_request(format!(
                "values.type: {other:?} is not a relation type; use belongsTo, hasOne, hasMany or belongsToMany (other fields come from the database schema)"
            )));
        }
    };
    if source.has_name(name) {
        return Err(Error::conflict(format!(
            "Field name {name} already exists in collection {}",
            source.name()
        )));
    }
    Ok((name, kind))
}

/// The association a relation field declaration describes, checked against `source` and
/// the other collections: the target exists, every key names a real field, and the name
/// is free. Missing `sourceKey`/`targetKey` default to the primary key.
pub fn declared_association(
    source: &Collection,
    declaration: &Json,
    collections: &[Collection],
) -> Result<Association> {
    let text = |key: &str| declaration.get(key).and_then(Json::as_str);
    let (name, kind) = name_and_kind(source, declaration)?;
    let find = |key: &str| -> Result<&Collection> {
        let wanted = text(key).ok_or_else(|| {
            Error::bad_request(format!("values.{key}: a {} field needs {key}", kind.name()))
        })?;
        collections
            .iter()
            .find(|c| c.name() == wanted)
            .ok_or_else(|| {
                Error::bad_request(format!(
                    "values.{key}: collection {wanted} does not exist in this data source"
                ))
            })
    };
    let target = find("target")?;
    let key_of = |key: &str, on: &Collection, default_to_primary: bool| -> Result<String> {
        let name = match text(key) {
            Some(name) => name.to_owned(),
            None if default_to_primary => {
                on.single_key().map(|f| f.name.clone()).ok_or_else(|| {
                    Error::bad_request(format!(
                        "values.{key}: collection {} has no single primary key; name the key",
                        on.name()
                    ))
                })?
            }
            None => {
                return Err(Error::bad_request(format!(
                    "values.{key}: a {} field needs {key}",
                    kind.name()
                )));
            }
        };
        on.require_field(&name, &format!("values.{key}"))?;
        Ok(name)
    };
    let association = |foreign_key, source_key, target_key, through, other_key| Association {
        name: name.to_owned(),
        kind,
        target: target.name().to_owned(),
        foreign_key,
        source_key,
        target_key,
        through,
        other_key,
        target_source: None,
        through_source: None,
    };
    Ok(match kind {
        AssociationKind::BelongsTo => {
            let target_key = key_of("targetKey", target, true)?;
            association(
                key_of("foreignKey", source, false)?,
                target_key.clone(),
                target_key,
                None,
                None,
            )
        }
        AssociationKind::HasOne | AssociationKind::HasMany => {
            let source_key = key_of("sourceKey", source, true)?;
            association(
                key_of("foreignKey", target, false)?,
                source_key.clone(),
                source_key,
                None,
                None,
            )
        }
        AssociationKind::BelongsToMany => {
            let through = find("through")?;
            association(
                key_of("foreignKey", through, false)?,
                key_of("sourceKey", source, true)?,
                key_of("targetKey", target, true)?,
                Some(through.name().to_owned()),
                Some(key_of("otherKey", through, false)?),
            )
        }
    })
}

/// Whether a relation field declaration names a target in another data source.
pub fn is_remote(declaration: &Json) -> bool {
    declaration
        .get("targetDataSource")
        .and_then(Json::as_str)
        .is_some_and(|s| !s.is_empty())
}

/// The relation to a collection of another data source that `declaration` describes
/// (`{"name": "customer", "type": "belongsTo", "target": "customers",
/// "targetDataSource": "crm", "foreignKey": "customerId"}`), checked against `source` and,
/// when given, against `target`, the live collection in the other source, and `junction`,
/// a belongsToMany's live junction: every key names a real field and each pair of keys
/// can hold the same values.
///
/// A belongsToMany's junction lives in `source`'s data source, or in the target's when
/// `throughDataSource` names it. Without `target` (a refresh while the other source is
/// away) only what is at hand is checked, and every key must be named: the service
/// stores declarations with their keys filled in.
pub fn remote_association(
    source: &Collection,
    declaration: &Json,
    target: Option<&Collection>,
    junction: Option<&Collection>,
) -> Result<Association> {
    let text = |key: &str| {
        declaration
            .get(key)
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
    };
    let (name, kind) = name_and_kind(source, declaration)?;
    let target_source = text("targetDataSource")
        .ok_or_else(|| Error::bad_request("values.targetDataSource: name the data source"))?;
    let target_name = text("target")
        .ok_or_else(|| Error::bad_request("values.target: a relation field needs a target"))?;
    let required = |key: &str| {
        text(key).map(str::to_owned).ok_or_else(|| {
            Error::bad_request(format!("values.{key}: a {} field needs {key}", kind.name()))
        })
    };
    // A key as named, else (when `on` is known) its single primary key.
    let key = |key: &str, on: Option<&Collection>| -> Result<String> {
        match (text(key), on) {
            (Some(n), _) => Ok(n.to_owned()),
            (None, Some(c)) => c.single_key().map(|f| f.name.clone()).ok_or_else(|| {
                Error::bad_request(format!(
                    "values.{key}: collection {} has no single primary key; name the key",
                    c.name()
                ))
            }),
            (None, None) => Err(Error::bad_request(format!(
                "values.{key}: a {} field to another data source needs {key}",
                kind.name()
            ))),
        }
    };
    let mut association = Association {
        name: name.to_owned(),
        kind,
        target: target_name.to_owned(),
        foreign_key: String::new(),
        source_key: String::new(),
        target_key: String::new(),
        through: None,
        other_key: None,
        target_source: Some(target_source.to_owned()),
        through_source: None,
    };
    match kind {
        AssociationKind::BelongsTo => {
            association.foreign_key = required("foreignKey")?;
            association.target_key = key("targetKey", target)?;
            association.source_key = association.target_key.clone();
        }
        AssociationKind::HasOne | AssociationKind::HasMany => {
            association.foreign_key = required("foreignKey")?;
            association.source_key = key("sourceKey", Some(source))?;
            association.target_key = association.source_key.clone();
        }
        AssociationKind::BelongsToMany => {
            association.through = Some(required("through")?);
            association.foreign_key = required("foreignKey")?;
            association.other_key = Some(required("otherKey")?);
            association.source_key = key("sourceKey", Some(source))?;
            association.target_key = key("targetKey", target)?;
            association.through_source = match text("throughDataSource") {
                None => None,
                Some(s) if s == target_source => Some(s.to_owned()),
                Some(s) => {
                    return Err(Error::bad_request(format!(
                        "values.throughDataSource: the junction lives in this collection's data \
                         source or in the target's ({target_source}), not in {s}"
                    )));
                }
            };
        }
    }
    // This side always; the others when they are at hand.
    let (own, _) = remote_keys(&association);
    source.require_field(own.1, &format!("values.{}", own.0))?;
    if let Some(target) = target {
        check_remote(source, &association, target, junction)?;
    }
    Ok(association)
}

/// The keys of a relation to another source, each as (option name, field): the one on
/// the relation's own collection, then the one on its target.
fn remote_keys(a: &Association) -> ((&'static str, &str), (&'static str, &str)) {
    match a.kind {
        AssociationKind::BelongsTo => {
            (("foreignKey", &a.foreign_key), ("targetKey", &a.target_key))
        }
        AssociationKind::BelongsToMany => {
            (("sourceKey", &a.source_key), ("targetKey", &a.target_key))
        }
        _ => (("sourceKey", &a.source_key), ("foreignKey", &a.foreign_key)),
    }
}

/// Checks a relation of `source` to another source against `target`, its target's live
/// schema there, and for a belongsToMany against `junction` when at hand: every key names
/// a real field, and the keys that meet can hold the same values. Run when the relation
/// is declared and whenever its source refreshes with the other one serving.
pub fn check_remote(
    source: &Collection,
    a: &Association,
    target: &Collection,
    junction: Option<&Collection>,
) -> Result<()> {
    let ((own_option, own_key), (their_option, their_key)) = remote_keys(a);
    let own = source.require_field(own_key, &format!("values.{own_option}"))?;
    let theirs = target.require_field(their_key, &format!("values.{their_option}"))?;
    let side = |option, name, field: &crate::schema::Field| (option, name, Some(field.field_type));
    match (a.kind, junction, &a.other_key) {
        (AssociationKind::BelongsToMany, Some(junction), Some(other)) => {
            let fk = junction.require_field(&a.foreign_key, "values.foreignKey")?;
            let ok = junction.require_field(other, "values.otherKey")?;
            comparable(
                side(own_option, own_key, own),
                side("foreignKey", &a.foreign_key, fk),
            )?;
            comparable(
                side(their_option, their_key, theirs),
                side("otherKey", other, ok),
            )
        }
        _ => comparable(
            side(own_option, own_key, own),
            side(their_option, their_key, theirs),
        ),
    }
}

/// A key named `what` (`foreignKey`), its field, and the field's type when known.
type KeySide<'a> = (&'a str, &'a str, Option<FieldType>);

/// Refuses two keys that cannot hold the same values. Integers and text compare (a text
/// key of digits matches an integer one, an ObjectId's hex text its ObjectId); other
/// types would match nothing or by accident.
fn comparable(a: KeySide<'_>, b: KeySide<'_>) -> Result<()> {
    let key_like = |t: FieldType| {
        matches!(
            t,
            FieldType::Integer
                | FieldType::BigInt
                | FieldType::String
                | FieldType::Text
                | FieldType::Uuid
        )
    };
    for (what, name, field_type) in [a, b] {
        if let Some(t) = field_type.filter(|t| !key_like(*t)) {
            return Err(Error::bad_request(format!(
                "values.{what}: field {name} is of type {}, which cannot key a relation \
                 to another data source; use an integer, text or UUID field",
                t.name()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Field, FieldType, TableName};
    use serde_json::json;

    fn collection(name: &str, fields: &[&str]) -> Collection {
        let mut id = Field::new("id", FieldType::BigInt);
        id.primary_key = true;
        let mut all = vec![id];
        all.extend(fields.iter().map(|f| Field::new(*f, FieldType::BigInt)));
        Collection::new(name, TableName::new(name), all).expect("valid")
    }

    fn blog() -> Vec<Collection> {
        vec![
            collection("users", &[]),
            collection("posts", &["writer"]),
            collection("tags", &[]),
            collection("post_tag", &["p", "t"]),
        ]
    }

    #[test]
    fn declarations_become_associations_with_keys_defaulted_to_primary_keys() {
        let mut all = blog();
        let mut declarations = Declarations::default();
        declarations.collections.insert(
            "posts".into(),
            CollectionDeclarations {
                options: json!({"simplePaginate": true})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                fields: vec![
                    json!({"name": "author", "type": "belongsTo", "target": "users", "foreignKey": "writer"}),
                    json!({"name": "labels", "type": "belongsToMany", "target": "tags", "through": "post_tag", "foreignKey": "p", "otherKey": "t"}),
                ],
            },
        );
        declarations.collections.insert(
            "users".into(),
            CollectionDeclarations {
                fields: vec![
                    json!({"name": "writings", "type": "hasMany", "target": "posts", "foreignKey": "writer"}),
                ],
                ..CollectionDeclarations::default()
            },
        );
        assert_eq!(declarations.apply(&mut all), Vec::<String>::new());
        let posts = &all[1];
        assert!(posts.options.simple_paginate);
        let author = posts.association("author").expect("author");
        assert_eq!(
            (
                author.kind,
                author.foreign_key.as_str(),
                author.target_key.as_str()
            ),
            (AssociationKind::BelongsTo, "writer", "id")
        );
        let labels = posts.association("labels").expect("labels");
        assert_eq!(labels.through.as_deref(), Some("post_tag"));
        assert_eq!(labels.other_key.as_deref(), Some("t"));
        assert_eq!(
            all[0].association("writings").map(|a| a.kind),
            Some(AssociationKind::HasMany)
        );
    }

    #[test]
    fn bad_declarations_are_refused_naming_the_key() {
        let all = blog();
        let posts = &all[1];
        for (declaration, expected) in [
            (json!({"type": "belongsTo"}), "values.name"),
            (json!({"name": "x", "type": "string"}), "values.type"),
            (
                json!({"name": "writer", "type": "belongsTo", "target": "users", "foreignKey": "writer"}),
                "already exists",
            ),
            (
                json!({"name": "x", "type": "belongsTo", "foreignKey": "writer"}),
                "values.target",
            ),
            (
                json!({"name": "x", "type": "belongsTo", "target": "nope", "foreignKey": "writer"}),
                "collection nope",
            ),
            (
                json!({"name": "x", "type": "belongsTo", "target": "users"}),
                "values.foreignKey",
            ),
            (
                json!({"name": "x", "type": "belongsTo", "target": "users", "foreignKey": "nope"}),
                "unknown field \"nope\"",
            ),
            (
                json!({"name": "x", "type": "belongsToMany", "target": "tags", "foreignKey": "p", "otherKey": "t"}),
                "values.through",
            ),
        ] {
            let e = declared_association(posts, &declaration, &all).expect_err("refused");
            assert!(e.to_string().contains(expected), "{declaration}: {e}");
        }
    }

    #[test]
    fn declarations_that_no_longer_fit_are_skipped_and_reported() {
        let mut all = blog();
        let mut declarations = Declarations::default();
        declarations.collections.insert(
            "posts".into(),
            CollectionDeclarations {
                fields: vec![json!({"name": "author", "type": "belongsTo", "target": "gone", "foreignKey": "writer"})],
                ..CollectionDeclarations::default()
            },
        );
        declarations
            .collections
            .insert("vanished".into(), CollectionDeclarations::default());
        let problems = declarations.apply(&mut all);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(all[1].associations.is_empty());
    }
}
