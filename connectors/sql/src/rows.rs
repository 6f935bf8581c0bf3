//! What every SQL repository does with the rows it gets back, whatever its driver.

use std::cmp::Ordering;

use manifold_core::filter::FieldRef;
use manifold_core::repository::Record;
use serde_json::Value as Json;

/// Orders records by their primary key `keys`, as `update` results promise.
pub fn sort_by_keys(rows: &mut [Record], keys: &[FieldRef]) {
    rows.sort_by(|a, b| {
        keys.iter()
            .map(|k| compare_key_values(a.get(&k.name), b.get(&k.name)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
}

/// The order of two rendered key values. Big integers and decimals arrive as strings, so
/// strings are compared as numbers when both are; numbers come before strings.
fn compare_key_values(a: Option<&Json>, b: Option<&Json>) -> Ordering {
    match (a, b) {
        (Some(Json::Number(x)), Some(Json::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Json::String(x)), Some(Json::String(y))) => {
            match (x.parse::<i128>(), y.parse::<i128>()) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                _ => x.cmp(y),
            }
        }
        (Some(Json::Number(_)), Some(Json::String(_))) => Ordering::Less,
        (Some(Json::String(_)), Some(Json::Number(_))) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_compare_as_numbers_even_when_sent_as_strings() {
        let a = json!("9007199254740993");
        let b = json!("10");
        assert_eq!(compare_key_values(Some(&a), Some(&b)), Ordering::Greater);
        assert_eq!(
            compare_key_values(Some(&json!(2)), Some(&json!(10))),
            Ordering::Less
        );
        assert_eq!(
            compare_key_values(Some(&json!(2)), Some(&a)),
            Ordering::Less
        );
        assert_eq!(compare_key_values(None, Some(&a)), Ordering::Equal);
    }
}
