//! What users declared about a source's collections beyond what introspection finds:
//! collection options (`simplePaginate`) and relation fields (`fields:create` with `type`
//! `belongsTo`, …). The service stores declarations in the main database; every refresh
//! of the source lays them over the introspected schema again, before relations are
//! derived from foreign keys, so a declared name wins over a derived one.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::schema::{Association, AssociationKind, Collection};

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
                match declared_association(&collections[index], field, collections) {
                    Ok(a) => declared.push((index, a)),
                    Err(e) => problems.push(format!("collection {name}: {e}")),
                }
            }
        }
        for (index, association) in declared {
            collections[index].associations.push(association);
        }
        problems
    }
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
    if source.field(name).is_some() || source.association(name).is_some() {
        return Err(Error::conflict(format!(
            "Field name {name} already exists in collection {}",
            source.name()
        )));
    }
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
