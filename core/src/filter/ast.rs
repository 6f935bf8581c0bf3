//! The filter AST: what a parsed filter is, and the few questions asked of one.

use crate::schema::{Collection, Field, FieldType};
use crate::value::Value;

use super::like::LikePattern;
use super::path::JoinPath;

/// A boolean expression over a collection's fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// All must hold.
    And(Vec<Filter>),
    /// At least one must hold.
    Or(Vec<Filter>),
    /// One condition on one field.
    Condition(Condition),
}

/// A field that a condition or sort refers to, resolved against the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRef {
    /// The attribute name.
    pub name: String,
    /// The physical column.
    pub column: String,
    /// The field's type.
    pub field_type: FieldType,
    /// Whether the column may hold NULL. Keys and `NOT NULL` columns may not, which lets
    /// a sort on them skip NULL placement and use an index.
    pub nullable: bool,
    /// The associations crossed to reach the field's collection; `None` for a field of
    /// the queried collection itself.
    pub via: Option<std::sync::Arc<JoinPath>>,
}

impl FieldRef {
    /// A reference to `field` of the queried collection.
    pub fn new(field: &Field) -> Self {
        Self {
            name: field.name.clone(),
            column: field.column.clone(),
            field_type: field.field_type,
            nullable: field.allow_null && !field.primary_key,
            via: None,
        }
    }

    /// Every visible (not hidden) field of `collection`, in schema order: what a read
    /// returns when it names no fields.
    pub fn visible(collection: &Collection) -> Vec<FieldRef> {
        collection
            .fields()
            .iter()
            .filter(|f| !f.hidden)
            .map(FieldRef::new)
            .collect()
    }

    /// A reference to `field` of the collection at the end of `path`.
    pub fn through(field: &Field, path: std::sync::Arc<JoinPath>) -> Self {
        Self {
            via: Some(path),
            ..Self::new(field)
        }
    }
}

/// One condition: a field and what it must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The field tested.
    pub field: FieldRef,
    /// The test.
    pub predicate: Predicate,
}

/// Ordering comparisons (NULL rows never match any of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `<>`, without the NULL rows that [`Predicate::Ne`] includes.
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
}

/// Where a string operand must occur in the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMatch {
    /// Anywhere (`$includes`).
    Contains,
    /// At the start (`$startsWith`).
    StartsWith,
    /// At the end (`$endWith`).
    EndsWith,
}

/// What a field must satisfy. NULL handling follows the spec's Target column.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `c IS NULL`.
    IsNull,
    /// `c IS NOT NULL`.
    IsNotNull,
    /// `c = v` (NULL rows never match).
    Eq(Value),
    /// `c <> v OR c IS NULL`.
    Ne(Value),
    /// `c IN (…)`; an empty list matches nothing.
    In(Vec<Value>),
    /// `c NOT IN (…) OR c IS NULL`; an empty list matches every row.
    NotIn(Vec<Value>),
    /// `c > v` and friends (NULL rows never match).
    Compare(Comparison, Value),
    /// `c BETWEEN a AND b`, inclusive.
    Between(Value, Value),
    /// `c NOT BETWEEN a AND b` (NULL rows never match).
    NotBetween(Value, Value),
    /// Case-insensitive match of any (or, negated, none) of the operands; `%` and `_` in
    /// the operands are literal. Negated matches exclude NULL rows, as NocoBase does.
    Text {
        /// Where the operand must occur.
        mode: TextMatch,
        /// The operands (OR-ed; AND-ed of their negations when `negated`).
        operands: Vec<String>,
        /// `$notIncludes` and friends.
        negated: bool,
    },
    /// A client's SQL pattern (`$like` and friends), matched against the whole value.
    /// NULL rows never match, negated or not.
    Like {
        /// The pattern.
        pattern: LikePattern,
        /// `$iLike`/`$notILike`; `$like` is case-sensitive on every backend.
        case_insensitive: bool,
        /// `$notLike`/`$notILike`.
        negated: bool,
    },
    /// NULL, or `''` for text fields.
    Empty,
    /// Neither NULL nor `''` for text fields.
    NotEmpty,
    /// `c = true`.
    IsTrue,
    /// `c IS NULL OR c = false`.
    IsFalsy,
    /// The array holds at least one of the values (`$anyOf`).
    ArrayAny(Vec<Value>),
    /// The array holds none of the values, or is NULL (`$noneOf`).
    ArrayNone(Vec<Value>),
    /// The array holds exactly the same set of values, order and repeats aside
    /// (`$match`); `negated` for `$notMatch`, which also matches NULL.
    ArraySet {
        /// The set to compare with.
        values: Vec<Value>,
        /// `$notMatch`.
        negated: bool,
    },
    /// The array is NULL or has no element (`$arrayEmpty`, `$empty` on arrays).
    ArrayEmpty,
    /// The array has at least one element (`$arrayNotEmpty`, `$notEmpty` on arrays).
    ArrayNotEmpty,
}

/// Whether `filter` keeps at most one row: it is, or ANDs in, an equality on the
/// collection's single primary key. Such a read needs no order, and cannot run long
/// enough to be worth cancelling.
pub fn pins_one_row(filter: Option<&Filter>, collection: &Collection) -> bool {
    let Some(key) = collection.single_key() else {
        return false;
    };
    match filter {
        Some(Filter::Condition(c)) => {
            c.field.via.is_none()
                && c.field.column == key.column
                && matches!(c.predicate, Predicate::Eq(_))
        }
        Some(Filter::And(all)) => all.iter().any(|f| pins_one_row(Some(f), collection)),
        _ => false,
    }
}

/// `a AND b`, either side optional.
pub fn and(a: Option<Filter>, b: Option<Filter>) -> Option<Filter> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Filter::And(vec![a, b])),
        (a, b) => a.or(b),
    }
}
