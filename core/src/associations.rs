//! Relations derived from foreign keys, named by one documented rule.
//!
//! For a foreign key `a.c → t.k` (single column):
//! * `a` **belongsTo** `t`, named after `c` without its `_id`/`Id`/`_ID` suffix (`author_id` →
//!   `author`); when `c` has no such suffix, or the name is taken by a field, it is named
//!   after `t`.
//! * `t` **hasMany** `a`, named after `a` (`users.posts`); **hasOne** when `c` is unique
//!   in `a`. When `a` points at `t` twice, the second is `<a>_<belongsTo name>`
//!   (`posts_editor`).
//!
//! A **junction** is a table whose primary key is exactly two single-column foreign keys,
//! to `s` and to `t`: then `s` **belongsToMany** `t` through it, named after `t`
//! (`posts.tags`), and `t` belongsToMany `s`, named after `s`. Its other columns are pivot
//! attributes. A name that would collide with a field or an earlier association is skipped
//! (and logged); composite foreign keys are not related.

use crate::schema::{Association, AssociationKind, Collection, ForeignKey};

/// Fills `associations` of every collection from the foreign keys of all of them.
/// Associations already present (declared by users) are kept and win name conflicts.
pub fn derive(collections: &mut [Collection]) {
    let mut found: Vec<(usize, Association)> = Vec::new();
    let index =
        |name: &str, collections: &[Collection]| collections.iter().position(|c| c.name() == name);
    for (ai, a) in collections.iter().enumerate() {
        let single: Vec<&ForeignKey> = a
            .foreign_keys
            .iter()
            .filter(|fk| fk.columns.len() == 1 && fk.target_columns.len() == 1)
            .collect();
        for fk in &single {
            let Some(ti) = index(&fk.target, collections) else {
                continue;
            };
            let (column, target_key) = (&fk.columns[0], &fk.target_columns[0]);
            let stripped = strip_id(column);
            let belongs_name = match stripped {
                Some(name) if a.field(name).is_none() => name.to_owned(),
                _ => fk.target.clone(),
            };
            found.push((
                ai,
                Association {
                    name: belongs_name.clone(),
                    kind: AssociationKind::BelongsTo,
                    target: fk.target.clone(),
                    foreign_key: column.clone(),
                    source_key: target_key.clone(),
                    target_key: target_key.clone(),
                    through: None,
                    other_key: None,
                    target_source: None,
                    through_source: None,
                },
            ));
            let unique = a.field(column).is_some_and(|f| f.unique);
            let taken = found.iter().any(|(i, x)| *i == ti && x.name == a.name());
            let has_name = if taken {
                format!("{}_{belongs_name}", a.name())
            } else {
                a.name().to_owned()
            };
            found.push((
                ti,
                Association {
                    name: has_name,
                    kind: if unique {
                        AssociationKind::HasOne
                    } else {
                        AssociationKind::HasMany
                    },
                    target: a.name().to_owned(),
                    foreign_key: column.clone(),
                    source_key: target_key.clone(),
                    target_key: a
                        .single_key()
                        .map(|k| k.name.clone())
                        .unwrap_or_else(|| column.clone()),
                    through: None,
                    other_key: None,
                    target_source: None,
                    through_source: None,
                },
            ));
        }
        // A junction: its primary key is exactly the columns of two single-column keys.
        let key: Vec<&str> = a.primary_key().map(|f| f.name.as_str()).collect();
        if let [one, two] = single.as_slice()
            && key.len() == 2
            && key.contains(&one.columns[0].as_str())
            && key.contains(&two.columns[0].as_str())
            && one.columns[0] != two.columns[0]
        {
            for (from, to) in [(one, two), (two, one)] {
                let Some(si) = index(&from.target, collections) else {
                    continue;
                };
                found.push((
                    si,
                    Association {
                        name: to.target.clone(),
                        kind: AssociationKind::BelongsToMany,
                        target: to.target.clone(),
                        foreign_key: from.columns[0].clone(),
                        source_key: from.target_columns[0].clone(),
                        target_key: to.target_columns[0].clone(),
                        through: Some(a.name().to_owned()),
                        other_key: Some(to.columns[0].clone()),
                        target_source: None,
                        through_source: None,
                    },
                ));
            }
        }
    }
    for (i, association) in found {
        let c = &mut collections[i];
        let clash =
            c.field(&association.name).is_some() || c.association(&association.name).is_some();
        if clash {
            tracing::warn!(
                collection = c.name(),
                association = association.name,
                "not relating: the name is taken"
            );
            continue;
        }
        c.associations.push(association);
    }
}

/// `author_id` → `author`, `authorId` → `author`; `None` without such a suffix (a bare
/// `ID` suffix is not one: `UUID` is no `UU`).
fn strip_id(column: &str) -> Option<&str> {
    ["_id", "Id", "_ID"]
        .iter()
        .find_map(|suffix| column.strip_suffix(suffix))
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Field, FieldType, TableName};

    fn table(name: &str, fields: &[(&str, bool)], fks: &[(&str, &str)]) -> Collection {
        let fields = fields
            .iter()
            .map(|(f, key)| {
                let mut field = Field::new(*f, FieldType::Integer);
                field.primary_key = *key;
                field
            })
            .collect();
        let mut c = Collection::new(name, TableName::new(name), fields).expect("valid");
        c.foreign_keys = fks
            .iter()
            .map(|(col, target)| ForeignKey {
                columns: vec![(*col).to_owned()],
                target: (*target).to_owned(),
                target_columns: vec!["id".into()],
            })
            .collect();
        c
    }

    fn names(c: &Collection) -> Vec<(String, &'static str, String)> {
        c.associations
            .iter()
            .map(|a| (a.name.clone(), a.kind.name(), a.target.clone()))
            .collect()
    }

    #[test]
    fn the_blog_schema_relates_as_nocobase_names_it() {
        let mut all = vec![
            table("users", &[("id", true)], &[]),
            table(
                "posts",
                &[("id", true), ("authorId", false), ("editor_id", false)],
                &[("authorId", "users"), ("editor_id", "users")],
            ),
            table(
                "comments",
                &[("id", true), ("postId", false)],
                &[("postId", "posts")],
            ),
            table("tags", &[("id", true)], &[]),
            table(
                "posts_tags",
                &[("postId", true), ("tagId", true)],
                &[("postId", "posts"), ("tagId", "tags")],
            ),
        ];
        derive(&mut all);
        let s = |n: &str| n.to_owned();
        assert_eq!(
            names(&all[1]),
            [
                (s("author"), "belongsTo", s("users")),
                (s("editor"), "belongsTo", s("users")),
                (s("comments"), "hasMany", s("comments")),
                (s("posts_tags"), "hasMany", s("posts_tags")),
                (s("tags"), "belongsToMany", s("tags")),
            ]
        );
        assert_eq!(
            names(&all[0]),
            [
                (s("posts"), "hasMany", s("posts")),
                (s("posts_editor"), "hasMany", s("posts"))
            ]
        );
        assert_eq!(
            names(&all[3]),
            [
                (s("posts_tags"), "hasMany", s("posts_tags")),
                (s("posts"), "belongsToMany", s("posts"))
            ]
        );
        let tags = all[1].association("tags").expect("tags");
        assert_eq!(tags.through.as_deref(), Some("posts_tags"));
        assert_eq!(
            (tags.foreign_key.as_str(), tags.other_key.as_deref()),
            ("postId", Some("tagId"))
        );
    }

    #[test]
    fn a_column_without_an_id_suffix_is_named_after_its_target() {
        let mut all = vec![
            table("users", &[("id", true)], &[]),
            table(
                "posts",
                &[("id", true), ("owner", false)],
                &[("owner", "users")],
            ),
        ];
        derive(&mut all);
        assert_eq!(all[1].associations[0].name, "users");
    }
}
