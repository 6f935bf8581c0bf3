//! Action parameters as the NocoBase client sends them in a query string.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value as Json;

/// `params` (a JSON object) as a query string, the way NocoBase's SDK writes it: a list
/// as `key[]=…` per item, an object (`filter`) as JSON text, the rest as their text.
pub(crate) fn query_string(params: &Json) -> String {
    let Json::Object(map) = params else {
        return String::new();
    };
    let mut parts = Vec::with_capacity(map.len());
    for (key, value) in map {
        match value {
            Json::Array(items) => {
                for item in items {
                    parts.push(format!("{}[]={}", enc(key), enc(&text(item))));
                }
            }
            other => parts.push(format!("{}={}", enc(key), enc(&text(other)))),
        }
    }
    parts.join("&")
}

fn text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_repeat_objects_are_json_and_text_is_encoded() {
        let q = query_string(&json!({
            "filter": {"title": "a b"},
            "appends": ["tags", "author"],
            "pageSize": 5,
        }));
        assert_eq!(
            q,
            "filter=%7B%22title%22%3A%22a%20b%22%7D&appends[]=tags&appends[]=author&pageSize=5"
        );
        assert_eq!(query_string(&json!(null)), "");
    }
}
