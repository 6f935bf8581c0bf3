//! What every SQL connector must read from NocoBase's blog schema: its foreign keys, and
//! the relations the core derives from them. Included by each connector's
//! `tests/foreign_keys.rs`, so the three stay held to one expectation.

#![allow(dead_code)]

use manifold_core::schema::{Association, AssociationKind, Collection, ForeignKey};

pub fn fk(columns: &[&str], target: &str, target_columns: &[&str]) -> ForeignKey {
    ForeignKey {
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        target: target.to_owned(),
        target_columns: target_columns.iter().map(|c| (*c).to_owned()).collect(),
    }
}

pub fn find<'a>(all: &'a [Collection], name: &str) -> &'a Collection {
    all.iter()
        .find(|c| c.name() == name)
        .unwrap_or_else(|| panic!("collection {name} introspected"))
}

/// The foreign keys every SQL connector must read from the blog schema.
pub fn expected_foreign_keys() -> Vec<(&'static str, Vec<ForeignKey>)> {
    vec![
        ("a", vec![]),
        ("b", vec![fk(&["ax", "ay"], "a", &["x", "y"])]),
        ("comments", vec![fk(&["postId"], "posts", &["id"])]),
        (
            "posts",
            vec![
                fk(&["authorId"], "users", &["id"]),
                fk(&["editor_id"], "users", &["id"]),
            ],
        ),
        (
            "posts_tags",
            vec![
                fk(&["postId"], "posts", &["id"]),
                fk(&["tagId"], "tags", &["id"]),
            ],
        ),
        ("profiles", vec![fk(&["postId"], "posts", &["id"])]),
        ("tags", vec![]),
        ("users", vec![]),
    ]
}

/// An association whose keys on both sides are `id` unless changed by the caller.
pub fn assoc(name: &str, kind: AssociationKind, target: &str, foreign_key: &str) -> Association {
    Association {
        name: name.to_owned(),
        kind,
        target: target.to_owned(),
        foreign_key: foreign_key.to_owned(),
        source_key: "id".to_owned(),
        target_key: "id".to_owned(),
        through: None,
        other_key: None,
        target_source: None,
        through_source: None,
    }
}

/// A belongsToMany through `posts_tags`, whose `other_key` points at the target.
pub fn through_posts_tags(
    name: &str,
    target: &str,
    foreign_key: &str,
    other_key: &str,
) -> Association {
    Association {
        through: Some("posts_tags".to_owned()),
        other_key: Some(other_key.to_owned()),
        target_source: None,
        through_source: None,
        ..assoc(name, AssociationKind::BelongsToMany, target, foreign_key)
    }
}

/// The associations `derive` must build for each collection, sorted by name.
pub fn expected_associations() -> Vec<(&'static str, Vec<Association>)> {
    use AssociationKind::{BelongsTo, HasMany, HasOne};
    // The junction has no single-field key, so its key column stands in as target key.
    let junction_rows = |fk: &str| Association {
        target_key: fk.to_owned(),
        ..assoc("posts_tags", HasMany, "posts_tags", fk)
    };
    let post = || assoc("post", BelongsTo, "posts", "postId");
    vec![
        ("a", vec![]),
        // The composite key relates nothing.
        ("b", vec![]),
        ("comments", vec![post()]),
        (
            "posts",
            vec![
                assoc("author", BelongsTo, "users", "authorId"),
                assoc("comments", HasMany, "comments", "postId"),
                assoc("editor", BelongsTo, "users", "editor_id"),
                junction_rows("postId"),
                // profiles.postId is unique.
                assoc("profiles", HasOne, "profiles", "postId"),
                through_posts_tags("tags", "tags", "postId", "tagId"),
            ],
        ),
        (
            "posts_tags",
            vec![post(), assoc("tag", BelongsTo, "tags", "tagId")],
        ),
        ("profiles", vec![post()]),
        (
            "tags",
            vec![
                through_posts_tags("posts", "posts", "tagId", "postId"),
                junction_rows("tagId"),
            ],
        ),
        (
            "users",
            vec![
                assoc("posts", HasMany, "posts", "authorId"),
                assoc("posts_editor", HasMany, "posts", "editor_id"),
            ],
        ),
    ]
}
