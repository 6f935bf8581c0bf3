//! A reference evaluator: decides in Rust whether a record matches a filter, and in which
//! order records sort, with the SQL semantics the compiler promises (NULL handling,
//! case-insensitive text matching, NULLs last).
//!
//! The differential tests hold every database to it. It works on records as the API
//! renders them, so it sees exactly what a client sees.

use std::cmp::Ordering;

use serde_json::Value as Json;

use super::{Comparison, Filter, Predicate, TextMatch};
use crate::query::SortKey;
use crate::repository::Record;
use crate::schema::FieldType;
use crate::value::Value;

/// Whether `record` satisfies `filter`.
pub fn matches(filter: &Filter, record: &Record) -> bool {
    match filter {
        Filter::And(items) => items.iter().all(|f| matches(f, record)),
        Filter::Or(items) => items.iter().any(|f| matches(f, record)),
        Filter::Condition(c) => {
            let value = record.get(&c.field.name).unwrap_or(&Json::Null);
            holds(&c.predicate, value, c.field.field_type)
        }
    }
}

/// The order of two records under `sort` (NULLs last in both directions).
pub fn compare_records(a: &Record, b: &Record, sort: &[SortKey]) -> Ordering {
    for key in sort {
        let (x, y) = (
            a.get(&key.field.name).unwrap_or(&Json::Null),
            b.get(&key.field.name).unwrap_or(&Json::Null),
        );
        let order = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let o = compare_json(x, y, key.field.field_type);
                if key.descending { o.reverse() } else { o }
            }
        };
        if order.is_ne() {
            return order;
        }
    }
    Ordering::Equal
}

fn holds(p: &Predicate, v: &Json, ty: FieldType) -> bool {
    let null = v.is_null();
    let cmp = |other: &Value| compare_json(v, &other.to_json(), ty);
    let equal = |other: &Value| !null && cmp(other).is_eq();
    match p {
        Predicate::IsNull => null,
        Predicate::IsNotNull => !null,
        Predicate::Eq(x) => equal(x),
        Predicate::Ne(x) => null || !equal(x),
        Predicate::In(xs) => xs.iter().any(equal),
        Predicate::NotIn(xs) => null || !xs.iter().any(equal),
        Predicate::Compare(c, x) => {
            !null
                && match c {
                    Comparison::Ne => cmp(x).is_ne(),
                    Comparison::Gt => cmp(x).is_gt(),
                    Comparison::Gte => cmp(x).is_ge(),
                    Comparison::Lt => cmp(x).is_lt(),
                    Comparison::Lte => cmp(x).is_le(),
                }
        }
        Predicate::Between(lo, hi) => !null && cmp(lo).is_ge() && cmp(hi).is_le(),
        Predicate::NotBetween(lo, hi) => !null && (cmp(lo).is_lt() || cmp(hi).is_gt()),
        Predicate::Text {
            mode,
            operands,
            negated,
        } => {
            if null {
                return false;
            }
            let text = as_text(v).to_lowercase();
            let hit = |operand: &String| {
                let o = operand.to_lowercase();
                match mode {
                    TextMatch::Contains => text.contains(&o),
                    TextMatch::StartsWith => text.starts_with(&o),
                    TextMatch::EndsWith => text.ends_with(&o),
                }
            };
            if *negated {
                !operands.iter().any(hit)
            } else {
                operands.iter().any(hit)
            }
        }
        Predicate::Like {
            pattern,
            case_insensitive,
            negated,
        } => {
            if null {
                return false;
            }
            let hit = if *case_insensitive {
                pattern.lowercase().matches(&as_text(v).to_lowercase())
            } else {
                pattern.matches(&as_text(v))
            };
            hit != *negated
        }
        Predicate::Empty => null || (is_text(ty) && v.as_str() == Some("")),
        Predicate::NotEmpty => !null && (!is_text(ty) || v.as_str() != Some("")),
        Predicate::IsTrue => v == &Json::Bool(true),
        Predicate::IsFalsy => null || v == &Json::Bool(false),
        Predicate::ArrayAny(xs) => {
            elements(v).is_some_and(|e| xs.iter().any(|x| e.contains(&x.to_json())))
        }
        Predicate::ArrayNone(xs) => {
            elements(v).is_none_or(|e| !xs.iter().any(|x| e.contains(&x.to_json())))
        }
        Predicate::ArraySet { values, negated } => {
            let same = elements(v).is_some_and(|e| {
                let wanted: Vec<Json> = values.iter().map(Value::to_json).collect();
                e.iter().all(|x| wanted.contains(x)) && wanted.iter().all(|w| e.contains(w))
            });
            if *negated { null || !same } else { same }
        }
        Predicate::ArrayEmpty => elements(v).is_none_or(|e| e.is_empty()),
        Predicate::ArrayNotEmpty => elements(v).is_some_and(|e| !e.is_empty()),
    }
}

fn is_text(ty: FieldType) -> bool {
    matches!(ty, FieldType::String | FieldType::Text)
}

fn elements(v: &Json) -> Option<&Vec<Json>> {
    v.as_array()
}

fn as_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Orders two non-NULL rendered values of a field of type `ty`: numbers (decimals and
/// big integers arrive as strings) numerically, booleans false first, everything else
/// (text, ISO dates and instants, uuids) by its text.
fn compare_json(a: &Json, b: &Json, ty: FieldType) -> Ordering {
    let number = |v: &Json| match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.parse::<f64>().ok(),
        _ => None,
    };
    if ty.is_numeric() {
        if let (Some(Json::Number(x)), Some(Json::Number(y))) = (Some(a), Some(b))
            && let (Some(x), Some(y)) = (x.as_i64(), y.as_i64())
        {
            return x.cmp(&y);
        }
        if let (Some(x), Some(y)) = (number(a), number(b)) {
            return x.partial_cmp(&y).unwrap_or(Ordering::Equal);
        }
    }
    match (a, b) {
        (Json::Bool(x), Json::Bool(y)) => x.cmp(y),
        (Json::String(x), Json::String(y)) => x.cmp(y),
        _ => as_text(a).cmp(&as_text(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse_filter;
    use crate::schema::{Collection, Field, TableName};
    use serde_json::json;

    fn items() -> Collection {
        let mut id = Field::new("id", FieldType::Integer);
        id.primary_key = true;
        Collection::new(
            "items",
            TableName::new("items"),
            vec![
                id,
                Field::new("name", FieldType::String),
                Field::new("score", FieldType::Integer),
                Field::new("tags", FieldType::Array),
            ],
        )
        .expect("valid")
    }

    fn check(filter: Json, record: Json) -> bool {
        let f = parse_filter(&items(), &filter)
            .expect("valid")
            .expect("some filter");
        matches(&f, record.as_object().expect("record"))
    }

    #[test]
    fn null_rows_follow_the_sql_rules() {
        let row = json!({"id": 1, "name": null, "score": null, "tags": null});
        assert!(check(json!({"name.$ne": "a"}), row.clone()));
        assert!(check(json!({"name.$notIn": ["a"]}), row.clone()));
        assert!(!check(json!({"name.$notIncludes": "a"}), row.clone()));
        assert!(!check(json!({"score.$gt": 1}), row.clone()));
        assert!(check(json!({"tags.$noneOf": ["a"]}), row.clone()));
        assert!(check(json!({"tags.$empty": true}), row));
    }

    #[test]
    fn like_patterns_match_the_whole_value() {
        let row = json!({"id": 1, "name": "Async Rust", "score": 12, "tags": null});
        assert!(check(json!({"name.$like": "Async Rust"}), row.clone()));
        assert!(!check(json!({"name.$like": "async rust"}), row.clone()));
        assert!(check(json!({"name.$iLike": "async rust"}), row.clone()));
        assert!(check(json!({"name.$like": "%Rust"}), row.clone()));
        assert!(!check(json!({"name.$like": "Rust"}), row.clone()));
        assert!(check(json!({"name.$notILike": "%go%"}), row.clone()));
        assert!(!check(json!({"name.$notLike": "Async_Rust"}), row.clone()));
        assert!(check(json!({"score.$like": "1_"}), row));
        let null = json!({"id": 2, "name": null, "score": null, "tags": null});
        assert!(!check(json!({"name.$notLike": "x"}), null.clone()));
        assert!(!check(json!({"name.$like": "%"}), null));
    }

    #[test]
    fn text_matching_is_case_insensitive_and_literal() {
        let row = json!({"id": 1, "name": "50%_Off", "score": 3, "tags": ["a", 1]});
        assert!(check(json!({"name.$includes": "%_o"}), row.clone()));
        assert!(!check(json!({"name.$includes": "5_%"}), row.clone()));
        assert!(check(json!({"tags.$match": [1, "a", "a"]}), row.clone()));
        assert!(!check(json!({"tags.$anyOf": ["1"]}), row));
    }
}
