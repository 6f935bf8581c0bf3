//! Relation fields in `collections:create` (`{"name": "tags", "type": "belongsToMany",
//! "target": "tags"}`): the foreign-key columns and junction tables they need, created with
//! the collection, and the declarations that name the relations.
//!
//! Keys default as NocoBase's `db.defineCollection` names them: a belongsTo `author`
//! stores `authorId`; hasOne/hasMany on `posts` expect `postId` on the target; a
//! belongsToMany between `posts` and `tags` goes through `posts_tags` (the two names
//! sorted) with `postId` and `tagId`. Singular forms drop a final `s` (`ies` → `y`).

use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::schema::FieldType;
use manifold_core::{DataSource, Error, Result};
use serde_json::{Map, Value as Json, json};

const RELATION_TYPES: &[&str] = &["belongsTo", "hasOne", "hasMany", "belongsToMany"];

/// What a `collections:create` body asks for besides plain columns.
pub struct RelationPlan {
    /// The declarations to store once the tables exist, with every key filled in.
    pub declarations: Vec<Json>,
    /// Junction tables to create first (belongsToMany through tables that do not exist).
    pub junctions: Vec<CollectionDefinition>,
}

/// Takes the relation fields out of `values.fields`, adds the foreign-key columns they
/// need to `values`, and plans the junctions, checking everything against `source` before
/// anything is created.
pub fn plan(source: &DataSource, values: &mut Json) -> Result<RelationPlan> {
    let name = values
        .get("name")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(fields) = values.get_mut("fields").and_then(Json::as_array_mut) else {
        return Ok(RelationPlan {
            declarations: Vec::new(),
            junctions: Vec::new(),
        });
    };
    let (relations, mut plain): (Vec<Json>, Vec<Json>) = fields.drain(..).partition(|f| {
        f.get("type")
            .and_then(Json::as_str)
            .is_some_and(|t| RELATION_TYPES.contains(&t))
    });
    let own_key_type = own_key_type(&plain);
    let mut declarations = Vec::with_capacity(relations.len());
    let mut junctions = Vec::new();
    for (i, relation) in relations.iter().enumerate() {
        let at = format!("values.fields.{i}");
        let mut d = relation
            .as_object()
            .cloned()
            .ok_or_else(|| Error::bad_request(format!("{at}: expected a field object")))?;
        let text =
            |d: &Map<String, Json>, key: &str| d.get(key).and_then(Json::as_str).map(str::to_owned);
        let field_name = text(&d, "name")
            .ok_or_else(|| Error::bad_request(format!("{at}.name: a field name is required")))?;
        let kind = text(&d, "type").unwrap_or_default();
        let target = text(&d, "target").ok_or_else(|| {
            Error::bad_request(format!("{at}.target: a {kind} field needs a target"))
        })?;
        // The target's key type: its single key, or this new collection's own.
        let target_key_type = if target == name {
            own_key_type
        } else {
            let (c, _) = source.collection(&target).ok_or_else(|| {
                Error::bad_request(format!(
                    "{at}.target: collection {target} does not exist in data source {}; create it first",
                    source.key()
                ))
            })?;
            match text(&d, "targetKey") {
                Some(k) => c.require_field(&k, &format!("{at}.targetKey"))?.field_type,
                None => c.single_key().map_or(FieldType::BigInt, |f| f.field_type),
            }
        };
        match kind.as_str() {
            "belongsTo" => {
                let fk = text(&d, "foreignKey").unwrap_or_else(|| format!("{field_name}Id"));
                if !plain.iter().any(|f| f.get("name") == Some(&json!(fk))) {
                    plain.push(json!({"name": fk, "type": key_type_name(target_key_type)}));
                }
                d.insert("foreignKey".into(), json!(fk));
            }
            "hasOne" | "hasMany" => {
                let fk = text(&d, "foreignKey").unwrap_or_else(|| format!("{}Id", singular(&name)));
                if target != name
                    && let Some((c, _)) = source.collection(&target)
                    && c.field(&fk).is_none()
                {
                    return Err(Error::bad_request(format!(
                        "{at}.foreignKey: collection {target} has no column {fk}; add it (or create {target} with a belongsTo back to {name}) first"
                    )));
                }
                d.insert("foreignKey".into(), json!(fk));
            }
            _ => {
                let mut pair = [name.clone(), target.clone()];
                pair.sort();
                let through = text(&d, "through").unwrap_or_else(|| pair.join("_"));
                let fk = text(&d, "foreignKey").unwrap_or_else(|| format!("{}Id", singular(&name)));
                let other =
                    text(&d, "otherKey").unwrap_or_else(|| format!("{}Id", singular(&target)));
                if fk == other {
                    return Err(Error::bad_request(format!(
                        "{at}: foreignKey and otherKey are both {fk}; name them apart"
                    )));
                }
                match source.collection(&through) {
                    Some((c, _)) => {
                        for key in [&fk, &other] {
                            c.require_field(key, &format!("{at}.through {through}"))?;
                        }
                    }
                    None => junctions.push(junction(
                        &through,
                        &fk,
                        own_key_type,
                        &other,
                        target_key_type,
                    )?),
                }
                d.insert("through".into(), json!(through));
                d.insert("foreignKey".into(), json!(fk));
                d.insert("otherKey".into(), json!(other));
            }
        }
        declarations.push(Json::Object(d));
    }
    *fields = plain;
    Ok(RelationPlan {
        declarations,
        junctions,
    })
}

/// The type of the new collection's key: its one primaryKey field, else the generated id.
fn own_key_type(fields: &[Json]) -> FieldType {
    let keys: Vec<&Json> = fields
        .iter()
        .filter(|f| f.get("primaryKey") == Some(&Json::Bool(true)))
        .collect();
    match keys.as_slice() {
        [one] => one
            .get("type")
            .and_then(Json::as_str)
            .and_then(FieldType::parse)
            .unwrap_or(FieldType::BigInt),
        _ => FieldType::BigInt,
    }
}

/// A column type that can hold a key of `ty`.
fn key_type_name(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Integer => "integer",
        FieldType::String => "string",
        FieldType::Uuid => "uuid",
        _ => "bigInt",
    }
}

fn junction(
    name: &str,
    fk: &str,
    fk_type: FieldType,
    other: &str,
    other_type: FieldType,
) -> Result<CollectionDefinition> {
    let key = |column: &str, ty: FieldType| {
        let ty = FieldType::parse(key_type_name(ty)).unwrap_or(FieldType::BigInt);
        let mut f = FieldDefinition::new(column, ty);
        f.primary_key = true;
        f.allow_null = false;
        f
    };
    manifold_core::connector::validate_identifier(name, "through")?;
    manifold_core::connector::validate_identifier(fk, "foreignKey")?;
    manifold_core::connector::validate_identifier(other, "otherKey")?;
    Ok(CollectionDefinition {
        name: name.to_owned(),
        auto_gen_id: false,
        timestamps: true,
        fields: vec![key(fk, fk_type), key(other, other_type)],
    })
}

/// `posts` → `post`, `categories` → `category`; other names unchanged.
fn singular(name: &str) -> String {
    if let Some(stem) = name.strip_suffix("ies") {
        format!("{stem}y")
    } else if name.len() > 1 && name.ends_with('s') && !name.ends_with("ss") {
        name[..name.len() - 1].to_owned()
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::singular;

    #[test]
    fn singular_forms_follow_the_documented_rule() {
        for (plural, one) in [
            ("posts", "post"),
            ("categories", "category"),
            ("address", "address"),
            ("data", "data"),
        ] {
            assert_eq!(singular(plural), one);
        }
    }
}
