//! The keys appends match rows on, compared by value whatever JSON shape they arrived in.
//!
//! A key column read from one table may come back as a number while the same key read
//! from another arrives as a string (big integers, a text foreign key to an integer
//! key), so `7` and `"7"` must match; `"07"` and `7.0` must not. Integer keys, the common
//! case, are held without allocating, and hashed with foldhash: SipHash over their text
//! was a fifth of a `list` with appends.

use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;

/// A key in canonical form: two keys are equal when their JSON texts are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Key {
    /// A JSON integer that fits `i64`, or a string that is one written canonically.
    Int(i64),
    /// Any other key, as its text (a string's own text, anything else's JSON).
    Text(String),
}

/// Maps keyed by [`Key`]. The maps hold one request's rows, which
/// `max_embedded_records` bounds, so a fast seeded hash is enough.
pub(super) type KeyMap<V> = HashMap<Key, V, foldhash::fast::RandomState>;

/// A set of [`Key`]s; see [`KeyMap`].
pub(super) type KeySet = HashSet<Key, foldhash::fast::RandomState>;

impl Key {
    /// The key a value holds; `null` holds none.
    pub(super) fn of(value: &Json) -> Option<Key> {
        match value {
            Json::Null => None,
            Json::Number(n) => Some(match n.as_i64() {
                Some(i) => Key::Int(i),
                None => Key::Text(n.to_string()),
            }),
            Json::String(s) => Some(match canonical_int(s) {
                Some(i) => Key::Int(i),
                None => Key::Text(s.clone()),
            }),
            other => Some(Key::Text(other.to_string())),
        }
    }
}

/// `s` as an integer when `s` is exactly how that integer is written (no sign but a
/// leading `-`, no leading zero, not `-0`), so a string matches only the number whose
/// text it is.
fn canonical_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let canonical = match digits.as_bytes() {
        [b'0'] => digits.len() == s.len(),
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if canonical { s.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text_of(v: &Json) -> Option<String> {
        match v {
            Json::Null => None,
            Json::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    #[test]
    fn keys_are_equal_exactly_when_their_texts_are() {
        let values = [
            json!(7),
            json!("7"),
            json!("07"),
            json!("+7"),
            json!(7.0),
            json!(-7),
            json!("-7"),
            json!("-0"),
            json!(0),
            json!("0"),
            json!(u64::MAX),
            json!(u64::MAX.to_string()),
            json!("9223372036854775808"),
            json!(i64::MIN),
            json!(i64::MIN.to_string()),
            json!(true),
            json!("true"),
            json!("7a"),
            json!(""),
            json!("-"),
        ];
        for a in &values {
            for b in &values {
                assert_eq!(
                    Key::of(a) == Key::of(b),
                    text_of(a) == text_of(b),
                    "{a} against {b}"
                );
            }
        }
        assert_eq!(Key::of(&Json::Null), None);
    }
}
