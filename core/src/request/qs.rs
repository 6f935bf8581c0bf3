//! Query-string parsing with the semantics of the `qs` library as NocoBase configures it
//! (`strictNullHandling`, depth 5, array limit 100; http-api.md §4.2), followed by NocoBase's
//! `filter` / `filterByTk` JSON conveniences.
//!
//! The parse mirrors `qs` in three steps: split into `key=value` pairs and group repeated keys,
//! turn each key's bracket chain into a small tree, then merge the trees in order of first
//! appearance with `qs`'s merge rules.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::path::{excerpt, percent_decode_strict};

/// `qs` ignores everything after the first 1000 `&`-separated parts (its `parameterLimit`), which
/// also bounds the work a hostile query string can cause.
const PARAMETER_LIMIT: usize = 1000;

/// Bracket levels turned into nesting; anything deeper stays one literal key (`qs`'s `depth`).
const DEPTH: usize = 5;

/// Highest `a[N]` index that builds an array; larger ones build an object (`qs`'s `arrayLimit`
/// as NocoBase's spec states it).
const ARRAY_LIMIT: usize = 100;

/// Why a query string cannot be parsed; the caller answers 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    /// A key or value has a `%` not followed by two hex digits, or escapes that decode to invalid
    /// UTF-8 (`qs` would silently keep such text undecoded).
    #[error("malformed percent-encoding in query parameter {0:?}")]
    MalformedEncoding(String),
}

/// Parses a raw query string (without `?`) into a JSON object whose keys keep their order of first
/// appearance: scalars are strings, `key` without `=` is `null`, brackets build arrays and objects.
/// A string `filter` is JSON-parsed when it is valid JSON (otherwise left as the string, which the
/// caller reports as an invalid filter); `filterByTk` is JSON-parsed when it is a JSON object or
/// array, and an indexed `filterByTk[N]` object becomes an array.
pub fn parse_query(raw: &str) -> Result<Map<String, Value>, QueryError> {
    let mut query = match parse_plain(raw) {
        Some(query) => query,
        None => parse_qs(raw)?,
    };
    parse_json_params(&mut query);
    Ok(query)
}

/// Most query strings are a few plain `key=value` pairs (`filterByTk=7&page=2`): with no
/// bracket, escape, `+` or repeated key, `qs` reads each pair as it stands, and so does this,
/// without the trees. `None` sends anything else through [`parse_qs`].
fn parse_plain(raw: &str) -> Option<Map<String, Value>> {
    if raw.bytes().any(|b| matches!(b, b'[' | b']' | b'%' | b'+')) {
        return None;
    }
    let mut query = Map::new();
    for part in raw.split('&').take(PARAMETER_LIMIT) {
        let (key, value) = match part.split_once('=') {
            Some((key, value)) => (key, Value::String(value.to_owned())),
            None => (part, Value::Null),
        };
        if key.is_empty() {
            continue;
        }
        // A repeated key builds an array: `qs`'s grouping decides its shape.
        if query.contains_key(key) {
            return None;
        }
        query.insert(key.to_owned(), value);
    }
    Some(query)
}

/// The whole of `qs`'s parse, before the JSON conveniences.
fn parse_qs(raw: &str) -> Result<Map<String, Value>, QueryError> {
    let mut top: Vec<(String, Node)> = Vec::new();
    for (key, leaf) in parse_pairs(raw)? {
        let entries = match build_node(&split_key(&key), leaf) {
            Node::List(items) => list_entries(items),
            Node::Obj(entries) => entries,
            // Only an empty bracket chain yields a scalar, and a non-empty key always has a chain;
            // the plain-key reading is still the right one if that ever changes.
            scalar => vec![(key, scalar)],
        };
        top = merge_entries(top, entries);
    }
    Ok(top
        .into_iter()
        .map(|(key, node)| (key, node.into_value()))
        .collect())
}

/// Turns an object whose keys are all decimal numbers into an array ordered by those numbers, and
/// leaves any other value alone. `qs` builds such objects for indexed keys beyond its array limit
/// (`filterByTk[0]=…&…&filterByTk[119]=…`), where the client clearly meant an array (UTL-02).
pub fn numeric_object_to_array(value: &mut Value) {
    let Value::Object(map) = value else {
        return;
    };
    let all_numeric = map
        .keys()
        .all(|key| !key.is_empty() && key.bytes().all(|byte| byte.is_ascii_digit()));
    if map.is_empty() || !all_numeric {
        return;
    }
    let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
    entries.sort_by(|(a, _), (b, _)| compare_decimal(a, b));
    *value = Value::Array(entries.into_iter().map(|(_, item)| item).collect());
}

/// Compares digit strings by numeric value without parsing them, so that keys too long for any
/// integer type cannot fail or overflow.
fn compare_decimal(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn parse_json_params(query: &mut Map<String, Value>) {
    if let Some(filter) = query.get_mut("filter")
        && let Value::String(text) = filter
        && let Ok(parsed) = serde_json::from_str::<Value>(text)
    {
        *filter = parsed;
    }
    if let Some(filter_by_tk) = query.get_mut("filterByTk") {
        numeric_object_to_array(filter_by_tk);
        if let Value::String(text) = filter_by_tk
            && text.trim_start().starts_with(['{', '['])
            && let Ok(parsed @ (Value::Object(_) | Value::Array(_))) =
                serde_json::from_str::<Value>(text)
        {
            *filter_by_tk = parsed;
        }
    }
}

/// The intermediate tree. Unlike JSON, arrays are sparse, as JavaScript arrays are while `qs`
/// merges: `a[1]=y&a[0]=x` must fill index 0 after index 1 exists.
#[derive(Debug)]
enum Node {
    Null,
    Str(String),
    List(BTreeMap<usize, Node>),
    Obj(Vec<(String, Node)>),
}

impl Node {
    /// JavaScript truthiness: `qs`'s merge ignores falsy sources.
    fn is_falsy(&self) -> bool {
        match self {
            Node::Null => true,
            Node::Str(text) => text.is_empty(),
            Node::List(_) | Node::Obj(_) => false,
        }
    }

    fn is_container(&self) -> bool {
        matches!(self, Node::List(_) | Node::Obj(_))
    }

    /// Drops the holes of sparse arrays, as `qs`'s final `compact` does.
    fn into_value(self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Str(text) => Value::String(text),
            Node::List(items) => Value::Array(items.into_values().map(Node::into_value).collect()),
            Node::Obj(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(key, node)| (key, node.into_value()))
                    .collect(),
            ),
        }
    }
}

/// Splits on `&`, decodes, and groups values of the same decoded key in order of first appearance
/// (`qs` combines repeated keys into an array before looking at brackets).
fn parse_pairs(raw: &str) -> Result<Vec<(String, Node)>, QueryError> {
    let cleaned = unescape_brackets(raw);
    let mut grouped: Vec<(String, Vec<Node>)> = Vec::new();
    let mut positions: HashMap<String, usize> = HashMap::new();
    for part in cleaned.split('&').take(PARAMETER_LIMIT) {
        if part.is_empty() {
            continue;
        }
        // `]=` wins over the first `=` so that a bracketed key may itself contain `=`.
        let split_at = part.find("]=").map(|at| at + 1).or_else(|| part.find('='));
        let (raw_key, raw_value) = match split_at {
            Some(at) => (&part[..at], Some(&part[at + 1..])),
            None => (part, None),
        };
        let key = decode_component(raw_key)?;
        let value = match raw_value {
            Some(raw_value) => Node::Str(decode_component(raw_value)?),
            None => Node::Null,
        };
        if key.is_empty() {
            continue;
        }
        match positions.get(&key) {
            Some(&position) => grouped[position].1.push(value),
            None => {
                positions.insert(key.clone(), grouped.len());
                grouped.push((key, vec![value]));
            }
        }
    }
    Ok(grouped
        .into_iter()
        .map(|(key, values)| {
            let leaf = match <[Node; 1]>::try_from(values) {
                Ok([single]) => single,
                Err(values) => Node::List(values.into_iter().enumerate().collect()),
            };
            (key, leaf)
        })
        .collect())
}

/// `qs` treats `%5B` / `%5D` (any case) as literal brackets before splitting, because browsers and
/// `qs.stringify` encode the brackets of `filter[title]`.
fn unescape_brackets(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        let bracket = match escape {
            Some("%5B" | "%5b") => Some('['),
            Some("%5D" | "%5d") => Some(']'),
            _ => None,
        };
        match bracket {
            Some(bracket) => {
                out.push(bracket);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_component(raw: &str) -> Result<String, QueryError> {
    percent_decode_strict(&raw.replace('+', " "))
        .ok_or_else(|| QueryError::MalformedEncoding(excerpt(raw)))
}

/// Splits `a[b][c]` into `["a", "[b]", "[c]"]` like `qs`'s `parseKeys`: groups are `[` + non-bracket
/// text + `]`, text between groups is dropped, and past [`DEPTH`] groups the remainder becomes one
/// literal `[…]` root.
fn split_key(key: &str) -> Vec<String> {
    let mut chain = Vec::new();
    let parent = match find_group(key, 0) {
        Some((start, _)) => &key[..start],
        None => key,
    };
    if !parent.is_empty() {
        chain.push(parent.to_owned());
    }
    let mut from = 0;
    let mut levels = 0;
    while let Some((start, end)) = find_group(key, from) {
        if levels == DEPTH {
            chain.push(format!("[{}]", &key[start..]));
            break;
        }
        chain.push(key[start..end].to_owned());
        levels += 1;
        from = end;
    }
    chain
}

/// The leftmost `[…]` group at or after `from` whose content has no brackets (the regex
/// `\[[^[\]]*]`), as a byte range.
fn find_group(key: &str, from: usize) -> Option<(usize, usize)> {
    let mut open = None;
    for (at, byte) in key.bytes().enumerate().skip(from) {
        match byte {
            b'[' => open = Some(at),
            b']' => {
                if let Some(start) = open {
                    return Some((start, at + 1));
                }
            }
            _ => {}
        }
    }
    None
}

/// Wraps `leaf` in one level per root, innermost last (`qs`'s `parseObject`).
fn build_node(chain: &[String], leaf: Node) -> Node {
    chain.iter().rev().fold(leaf, |inner, root| {
        if root == "[]" {
            // `[].concat(leaf)`: an already-combined list of values is not nested again.
            return match inner {
                Node::List(items) => Node::List(items),
                other => Node::List(BTreeMap::from([(0, other)])),
            };
        }
        match root.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            Some(clean) => match array_index(clean) {
                Some(index) => Node::List(BTreeMap::from([(index, inner)])),
                None => Node::Obj(vec![(clean.to_owned(), inner)]),
            },
            // Only the parent (text before the first group) is unbracketed, and it never builds
            // an array.
            None => Node::Obj(vec![(root.clone(), inner)]),
        }
    })
}

/// `Some(n)` for a canonical decimal `n <= ARRAY_LIMIT` (no sign, no leading zero), the only
/// bracket contents `qs` turns into array indices.
fn array_index(text: &str) -> Option<usize> {
    let canonical = !text.is_empty()
        && text.bytes().all(|byte| byte.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical || text.len() > 3 {
        return None;
    }
    text.parse().ok().filter(|index| *index <= ARRAY_LIMIT)
}

/// `qs`'s `utils.merge`, except that a scalar merged into an object yields `[object, scalar]`
/// instead of adding the key `scalar: true`, so that every scalar the caller sees is a string or
/// null.
fn merge(target: Node, source: Node) -> Node {
    if source.is_falsy() {
        return target;
    }
    match (target, source) {
        (Node::List(mut items), Node::List(incoming)) => {
            for (index, item) in incoming {
                match items.remove(&index) {
                    Some(existing) if existing.is_container() && item.is_container() => {
                        items.insert(index, merge(existing, item));
                    }
                    Some(existing) => {
                        items.insert(index, existing);
                        push(&mut items, item);
                    }
                    None => {
                        items.insert(index, item);
                    }
                }
            }
            Node::List(items)
        }
        (Node::List(items), Node::Obj(incoming)) => {
            Node::Obj(merge_entries(list_entries(items), incoming))
        }
        (Node::Obj(entries), Node::List(incoming)) => {
            Node::Obj(merge_entries(entries, list_entries(incoming)))
        }
        (Node::Obj(entries), Node::Obj(incoming)) => Node::Obj(merge_entries(entries, incoming)),
        (Node::List(mut items), scalar) => {
            push(&mut items, scalar);
            Node::List(items)
        }
        (object @ Node::Obj(_), scalar) => list_of([object, scalar]),
        (scalar, Node::List(items)) => list_of(std::iter::once(scalar).chain(items.into_values())),
        (scalar, source) => list_of([scalar, source]),
    }
}

/// Merges `incoming` into `entries` key by key, keeping the position of keys already present.
fn merge_entries(
    mut entries: Vec<(String, Node)>,
    incoming: Vec<(String, Node)>,
) -> Vec<(String, Node)> {
    for (key, value) in incoming {
        match entries.iter_mut().find(|(existing, _)| *existing == key) {
            Some((_, slot)) => {
                let existing = std::mem::replace(slot, Node::Null);
                *slot = merge(existing, value);
            }
            None => entries.push((key, value)),
        }
    }
    entries
}

/// An array seen as an object (`qs`'s `arrayToObject`): indices become string keys, holes vanish.
fn list_entries(items: BTreeMap<usize, Node>) -> Vec<(String, Node)> {
    items
        .into_iter()
        .map(|(index, node)| (index.to_string(), node))
        .collect()
}

fn list_of(nodes: impl IntoIterator<Item = Node>) -> Node {
    Node::List(nodes.into_iter().enumerate().collect())
}

/// JavaScript `push`: appends after the highest index, holes included.
fn push(items: &mut BTreeMap<usize, Node>, node: Node) {
    let next = items.last_key_value().map_or(0, |(index, _)| index + 1);
    items.insert(next, node);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(raw: &str) -> Value {
        match parse_query(raw) {
            Ok(map) => Value::Object(map),
            Err(error) => panic!("{raw:?} should parse, got {error}"),
        }
    }

    #[test]
    fn plain_query_strings_read_as_qs_reads_them() {
        for raw in [
            "",
            "filterByTk=7",
            "filterByTk=7&page=2&pageSize=20",
            "a&b=&=c&&d=1",
            "sort=-id,title&fields=id",
            "a==b&c=d=e",
            "filter={\"id\":1}",
            "filterByTk=[1,2]",
            "x=1&x=2",
        ] {
            let full = parse_qs(raw).map(Value::Object).ok();
            let plain = parse_plain(raw).map(Value::Object);
            match plain {
                Some(plain) => assert_eq!(Some(plain), full, "{raw:?}"),
                // A repeated key or a bracket anywhere leaves the plain reading.
                None => assert!(["x=1&x=2", "filterByTk=[1,2]"].contains(&raw), "{raw:?}"),
            }
        }
        assert!(parse_plain("a[b]=1").is_none());
        assert!(parse_plain("a=%20").is_none());
        assert!(parse_plain("a=b+c").is_none());
    }

    fn encode(text: &str) -> String {
        percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    fn keys(value: &Value) -> Vec<&str> {
        value
            .as_object()
            .map(|map| map.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    #[test]
    fn plain_value_is_a_string() {
        assert_eq!(parse("sort=-id"), json!({"sort": "-id"}));
        assert_eq!(parse("page=2"), json!({"page": "2"}));
    }

    #[test]
    fn key_without_equals_is_null() {
        assert_eq!(parse("flag"), json!({"flag": null}));
    }

    #[test]
    fn key_with_empty_value_is_empty_string() {
        assert_eq!(parse("flag="), json!({"flag": ""}));
    }

    #[test]
    fn repeated_key_becomes_array() {
        assert_eq!(parse("x=1&x=2"), json!({"x": ["1", "2"]}));
        assert_eq!(parse("x=1&x=2&x"), json!({"x": ["1", "2", null]}));
        assert_eq!(parse("x=1&x[]=2"), json!({"x": ["1", "2"]}));
    }

    #[test]
    fn empty_brackets_build_array() {
        assert_eq!(
            parse("sort[]=-id&sort[]=name"),
            json!({"sort": ["-id", "name"]})
        );
        assert_eq!(parse("a[]=&a[]=b"), json!({"a": ["", "b"]}));
        assert_eq!(parse("a[]"), json!({"a": [null]}));
    }

    #[test]
    fn indexed_keys_build_array_ordered_by_index() {
        assert_eq!(parse("a[0]=x&a[1]=y"), json!({"a": ["x", "y"]}));
        assert_eq!(parse("a[1]=y&a[0]=x"), json!({"a": ["x", "y"]}));
        assert_eq!(parse("a[0]=b&a[1]=&a[2]=c"), json!({"a": ["b", "", "c"]}));
        // Holes are compacted away.
        assert_eq!(parse("a[1]=b&a[15]=c"), json!({"a": ["b", "c"]}));
        assert_eq!(parse("a[0]=x&a[]=y"), json!({"a": ["x", "y"]}));
    }

    #[test]
    fn index_above_array_limit_builds_object() {
        assert_eq!(parse("a[100]=x"), json!({"a": ["x"]}));
        assert_eq!(parse("a[101]=x"), json!({"a": {"101": "x"}}));
        assert_eq!(
            parse("a[0]=x&a[101]=y"),
            json!({"a": {"0": "x", "101": "y"}})
        );
    }

    #[test]
    fn non_canonical_indices_are_object_keys() {
        assert_eq!(parse("a[01]=x"), json!({"a": {"01": "x"}}));
        assert_eq!(parse("a[-1]=x"), json!({"a": {"-1": "x"}}));
        assert_eq!(parse("0=x"), json!({"0": "x"}));
    }

    #[test]
    fn brackets_build_nested_objects() {
        assert_eq!(
            parse("filter[title][$eq]=x&filter[id]=1"),
            json!({"filter": {"title": {"$eq": "x"}, "id": "1"}})
        );
        assert_eq!(
            parse("a[0][b]=1&a[0][c]=2&a[1][b]=3"),
            json!({"a": [{"b": "1", "c": "2"}, {"b": "3"}]})
        );
    }

    #[test]
    fn levels_beyond_depth_five_stay_one_literal_key() {
        assert_eq!(
            parse("a[b][c][d][e][f][g]=x"),
            json!({"a": {"b": {"c": {"d": {"e": {"f": {"[g]": "x"}}}}}}})
        );
        assert_eq!(
            parse("a[b][c][d][e][f][g][h]=x"),
            json!({"a": {"b": {"c": {"d": {"e": {"f": {"[g][h]": "x"}}}}}}})
        );
    }

    #[test]
    fn filter_json_string_is_parsed_with_json_types() {
        // UTL-01
        let filter = json!({
            "number": -1.1,
            "string": "str=a",
            "boolean": true,
            "null": null,
            "array": [5],
            "object": {"member": {}}
        });
        let raw = format!("filter={}&sort=-col", encode(&filter.to_string()));
        assert_eq!(parse(&raw), json!({"filter": filter, "sort": "-col"}));
    }

    #[test]
    fn invalid_filter_json_is_left_as_string() {
        assert_eq!(parse("filter=%7Bnope"), json!({"filter": "{nope"}));
        assert_eq!(parse("filter="), json!({"filter": ""}));
    }

    #[test]
    fn filter_by_tk_json_object_or_array_is_parsed() {
        assert_eq!(
            parse(&format!("filterByTk={}", encode(r#" {"a":1,"b":"x"}"#))),
            json!({"filterByTk": {"a": 1, "b": "x"}})
        );
        assert_eq!(
            parse(&format!("filterByTk={}", encode("[1,2]"))),
            json!({"filterByTk": [1, 2]})
        );
    }

    #[test]
    fn filter_by_tk_plain_or_invalid_json_stays_string() {
        assert_eq!(parse("filterByTk=12"), json!({"filterByTk": "12"}));
        assert_eq!(parse("filterByTk=%7Bx"), json!({"filterByTk": "{x"}));
        assert_eq!(parse("filterByTk=true"), json!({"filterByTk": "true"}));
        assert_eq!(parse("filterByTk=%22a%22"), json!({"filterByTk": "\"a\""}));
    }

    #[test]
    fn filter_by_tk_indexed_beyond_array_limit_is_still_an_array() {
        // UTL-02
        let raw = (0..120)
            .map(|i| format!("filterByTk[{i}]={}", i + 1))
            .collect::<Vec<_>>()
            .join("&");
        let expected: Vec<String> = (1..=120).map(|i| i.to_string()).collect();
        assert_eq!(parse(&raw), json!({"filterByTk": expected}));
    }

    #[test]
    fn numeric_object_to_array_orders_by_numeric_value() {
        let mut value = json!({"10": "c", "2": "b", "0": "a"});
        numeric_object_to_array(&mut value);
        assert_eq!(value, json!(["a", "b", "c"]));

        let mut huge = json!({"99999999999999999999999": "b", "1": "a"});
        numeric_object_to_array(&mut huge);
        assert_eq!(huge, json!(["a", "b"]));
    }

    #[test]
    fn numeric_object_to_array_leaves_other_values_alone() {
        for original in [
            json!({"0": "a", "x": "b"}),
            json!({}),
            json!("1"),
            json!(["a"]),
        ] {
            let mut value = original.clone();
            numeric_object_to_array(&mut value);
            assert_eq!(value, original);
        }
    }

    #[test]
    fn numeric_keys_of_other_params_stay_objects() {
        assert_eq!(parse("a[101]=x"), json!({"a": {"101": "x"}}));
    }

    #[test]
    fn encoded_ampersand_in_bracket_filter_value() {
        // PAR-01's query string
        let query = parse("filter[col2]=%26val2&filter[col3]=val3&other=other1&sort=-id");
        assert_eq!(
            query,
            json!({
                "filter": {"col2": "&val2", "col3": "val3"},
                "other": "other1",
                "sort": "-id"
            })
        );
        assert_eq!(keys(&query), ["filter", "other", "sort"]);
    }

    #[test]
    fn plus_means_space_and_encoded_plus_is_plus() {
        assert_eq!(parse("q=a+b%2Bc"), json!({"q": "a b+c"}));
        assert_eq!(parse("a+b=1"), json!({"a b": "1"}));
    }

    #[test]
    fn keys_and_values_are_percent_decoded() {
        assert_eq!(
            parse("%E7%9A%84=%E6%B3%95&title%24=x%3Dy"),
            json!({"的": "法", "title$": "x=y"})
        );
    }

    #[test]
    fn encoded_brackets_count_as_brackets() {
        assert_eq!(
            parse("filter%5Btitle%5D%5B%24eq%5D=x&sort%5b%5d=-id"),
            json!({"filter": {"title": {"$eq": "x"}}, "sort": ["-id"]})
        );
    }

    #[test]
    fn keys_keep_order_of_first_appearance() {
        let query = parse("b[x]=1&a=2&b[y]=3&c");
        assert_eq!(keys(&query), ["b", "a", "c"]);
        assert_eq!(query["b"], json!({"x": "1", "y": "3"}));
    }

    #[test]
    fn malformed_escapes_are_errors() {
        assert_eq!(
            parse_query("a=%"),
            Err(QueryError::MalformedEncoding("%".to_owned()))
        );
        assert_eq!(
            parse_query("a=1&b%zz=2"),
            Err(QueryError::MalformedEncoding("b%zz".to_owned()))
        );
        assert_eq!(
            parse_query("a=%FF"),
            Err(QueryError::MalformedEncoding("%FF".to_owned()))
        );
        assert_eq!(
            parse_query("a=%E7%9A"),
            Err(QueryError::MalformedEncoding("%E7%9A".to_owned()))
        );
    }

    #[test]
    fn empty_parts_and_empty_keys_are_ignored() {
        assert_eq!(parse(""), json!({}));
        assert_eq!(parse("&&&"), json!({}));
        assert_eq!(parse("=x"), json!({}));
        assert_eq!(parse("=x&a=1&"), json!({"a": "1"}));
    }

    #[test]
    fn unbalanced_brackets_are_plain_keys() {
        assert_eq!(parse("a[b=1"), json!({"a[b": "1"}));
        assert_eq!(parse("]]]"), json!({"]]]": null}));
        assert_eq!(parse("a]=1"), json!({"a]": "1"}));
        assert_eq!(parse("a[[b]=1"), json!({"a[": {"b": "1"}}));
    }

    #[test]
    fn key_starting_with_a_bracket_uses_the_bracket_content() {
        assert_eq!(parse("[x]=1"), json!({"x": "1"}));
        assert_eq!(parse("[]=1"), json!({"0": "1"}));
    }

    #[test]
    fn text_between_bracket_groups_is_dropped_like_qs() {
        assert_eq!(parse("a[b]c[d]=1"), json!({"a": {"b": {"d": "1"}}}));
    }

    #[test]
    fn bracketed_key_may_contain_equals() {
        assert_eq!(parse("a[b=c]=d"), json!({"a": {"b=c": "d"}}));
    }

    #[test]
    fn scalar_and_nested_forms_of_one_key_combine() {
        assert_eq!(parse("a=1&a[b]=2"), json!({"a": ["1", {"b": "2"}]}));
        assert_eq!(parse("a[b]=2&a=1"), json!({"a": [{"b": "2"}, "1"]}));
        assert_eq!(parse("a[]=1&a[b]=2"), json!({"a": {"0": "1", "b": "2"}}));
        assert_eq!(parse("a[b]=1&a[]=2"), json!({"a": {"b": "1", "0": "2"}}));
    }

    #[test]
    fn parameters_beyond_the_limit_are_ignored() {
        let raw = (0..1001)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join("&");
        let query = parse(&raw);
        let map = query.as_object().map(Map::len);
        assert_eq!(map, Some(1000));
        assert!(query.get("k1000").is_none());
    }

    #[test]
    fn hostile_query_strings_never_panic() {
        const PIECES: &[&str] = &[
            "&",
            "=",
            "[",
            "]",
            "[]",
            "[0]",
            "[101]",
            "]=",
            "%",
            "%5B",
            "%5d",
            "%25",
            "%zz",
            "%FF",
            "%E7%9A%84",
            "+",
            "a",
            "b",
            "0",
            "1",
            "filter",
            "filterByTk",
            "{",
            "}",
            "\"",
            ":",
            "的",
            " ",
            "__proto__",
            "\u{0}",
        ];
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            // xorshift64: deterministic, good enough to shuffle the pieces.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..500 {
            let len = (next() % 40) as usize;
            let raw: String = (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            let _ = parse_query(&raw);
        }
        let long_inputs = [
            "[".repeat(100_000),
            "]".repeat(100_000),
            "a[".repeat(50_000),
            "a[b]".repeat(25_000),
            "a[]=1&".repeat(5_000),
            "a=1&a[b]=2&a[0]=3&a=&".repeat(1_000),
            format!("filter={}", "[".repeat(50_000)),
            format!("filterByTk={}", "[".repeat(50_000)),
            "%".repeat(10_000),
            "&".repeat(100_000),
        ];
        for raw in &long_inputs {
            let _ = parse_query(raw);
        }
    }
}
