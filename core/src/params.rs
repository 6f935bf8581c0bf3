//! Action params: defaults merged with the request, per NocoBase's merge strategies.
//!
//! `filter` is AND-ed, `fields`/`whitelist`/`blacklist` intersect, `appends`/`except` union,
//! `sort` overwrites and everything else deep-merges. The ACL and custom middleware use the
//! same [`Params::merge`], so a default can never be widened by a request.

use std::sync::Arc;

use serde_json::{Map, Value as Json, json};

use crate::error::{Error, Result};
use crate::raw_rows::RawRows;

/// The merged parameter object an action reads.
///
/// A large array body may be held as [`RawRows`] rather than as `values` in the map (the
/// router does that, [`crate::raw_rows`]); [`Params::get`] and [`Params::remove`] still
/// answer `values` with the array, built on first use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    map: Map<String, Json>,
    /// `values` while it is still text; the map then has no `values`.
    rows: Option<Arc<RawRows>>,
}

impl Params {
    /// Params holding exactly `map`.
    pub fn from_map(map: Map<String, Json>) -> Self {
        Self { map, rows: None }
    }

    /// The raw object, without `values` while that is held as [`RawRows`].
    pub fn as_map(&self) -> &Map<String, Json> {
        &self.map
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match &self.rows {
            Some(rows) if key == "values" => Some(rows.tree()),
            _ => self.map.get(key),
        }
    }

    /// Sets `key`, replacing any value.
    pub fn set(&mut self, key: impl Into<String>, value: Json) {
        let key = key.into();
        if key == "values" {
            self.rows = None;
        }
        self.map.insert(key, value);
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) -> Option<Json> {
        if key == "values"
            && let Some(rows) = self.rows.take()
        {
            return Some(match Arc::try_unwrap(rows) {
                Ok(rows) => rows.into_tree(),
                Err(shared) => shared.tree().clone(),
            });
        }
        self.map.remove(key)
    }

    /// Makes `rows` the `values`, replacing any.
    pub fn set_raw_values(&mut self, rows: RawRows) {
        self.map.remove("values");
        self.rows = Some(Arc::new(rows));
    }

    /// `values`, when it is still held as text (nothing has replaced it).
    pub fn raw_values(&self) -> Option<&Arc<RawRows>> {
        self.rows.as_ref()
    }

    /// Merges `incoming` into these params with the per-key strategies.
    pub fn merge(&mut self, incoming: Map<String, Json>) {
        if self.map.is_empty() && self.rows.is_none() {
            // Nothing to merge with, as for most requests (no action defaults): each
            // strategy keeps the incoming value as it is, bar the lists it normalises.
            // Taking the map whole spares hashing every key twice.
            self.map = incoming;
            for (key, value) in self.map.iter_mut() {
                match key.as_str() {
                    "appends" | "except" => *value = union(None, std::mem::take(value)),
                    "sort" => *value = overwrite_sort(std::mem::take(value)),
                    _ => {}
                }
            }
            return;
        }
        if incoming.contains_key("values")
            && let Some(values) = self.remove("values")
        {
            self.map.insert("values".into(), values);
        }
        for (key, y) in incoming {
            let x = self.map.remove(&key);
            let merged = match key.as_str() {
                "filter" => and_merge(x, y),
                "fields" | "whitelist" | "blacklist" => intersect(x, y),
                "appends" | "except" => union(x, y),
                "sort" => overwrite_sort(y),
                _ => match x {
                    Some(x) => deep_merge(x, y),
                    None => y,
                },
            };
            self.map.insert(key, merged);
        }
    }

    /// A list param (`fields`, `appends`, `sort`, …): an array of strings, or a
    /// comma-separated string. `None` when absent.
    pub fn list(&self, key: &str) -> Result<Option<Vec<String>>> {
        match self.map.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => to_list(v)
                .map(Some)
                .ok_or_else(|| Error::bad_request(format!("{key}: expected a list of names"))),
        }
    }

    /// A positive integer param (`page`, `pageSize`), `None` when absent or empty.
    pub fn positive_integer(&self, key: &str) -> Result<Option<u64>> {
        let raw = match self.map.get(key) {
            None | Some(Json::Null) => return Ok(None),
            Some(Json::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(v) => v,
        };
        let parsed = match raw {
            Json::Number(n) => n.as_u64(),
            Json::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        parsed.filter(|n| *n > 0).map(Some).ok_or_else(|| {
            Error::bad_request(format!("{key}: expected a positive integer, got {raw}"))
        })
    }

    /// A boolean flag given as `true`/`"true"`/`"1"`.
    pub fn flag(&self, key: &str) -> bool {
        match self.map.get(key) {
            Some(Json::Bool(b)) => *b,
            Some(Json::String(s)) => matches!(s.as_str(), "true" | "1"),
            Some(Json::Number(n)) => n.as_i64() == Some(1),
            _ => false,
        }
    }

    /// Whether the flag is explicitly false (`paginate=false`).
    pub fn is_false(&self, key: &str) -> bool {
        match self.map.get(key) {
            Some(Json::Bool(b)) => !*b,
            Some(Json::String(s)) => matches!(s.as_str(), "false" | "0"),
            _ => false,
        }
    }
}

/// Splits on commas that are not inside parentheses, so an append's options
/// (`comments(sort=-id,title)`) stay with it.
fn split_outside_parentheses(s: &str) -> impl Iterator<Item = &str> {
    let mut depth = 0usize;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter()
}

/// Splits a list param: strings on `,` (outside parentheses), arrays of strings, objects
/// by their values.
pub fn to_list(v: &Json) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut push = |s: &str| {
        out.extend(
            split_outside_parentheses(s)
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
        )
    };
    match v {
        Json::String(s) => push(s),
        Json::Array(items) => {
            for item in items {
                push(item.as_str()?);
            }
        }
        Json::Object(map) => {
            for item in map.values() {
                push(item.as_str()?);
            }
        }
        _ => return None,
    }
    Some(out)
}

fn and_merge(x: Option<Json>, y: Json) -> Json {
    let empty = |v: &Json| v.is_null() || v.as_object().is_some_and(Map::is_empty);
    match x {
        Some(x) if !empty(&x) && !empty(&y) => json!({ "$and": [x, y] }),
        Some(x) if empty(&y) => x,
        _ => y,
    }
}

fn intersect(x: Option<Json>, y: Json) -> Json {
    // Nothing to intersect with: keep the request's own form, so `fields=` (empty) can be
    // told apart from an intersection that came out empty.
    let Some(x) = x else {
        return y;
    };
    let x = Some(x);
    let xs = x.as_ref().and_then(to_list).unwrap_or_default();
    let ys = to_list(&y).unwrap_or_default();
    if xs.is_empty() {
        return Json::from(ys);
    }
    if ys.is_empty() {
        return Json::from(xs);
    }
    Json::from(
        xs.into_iter()
            .filter(|i| ys.contains(i))
            .collect::<Vec<_>>(),
    )
}

fn union(x: Option<Json>, y: Json) -> Json {
    let mut out = x.as_ref().and_then(to_list).unwrap_or_default();
    for item in to_list(&y).unwrap_or_default() {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    Json::from(out)
}

fn overwrite_sort(y: Json) -> Json {
    match y {
        Json::String(s) if s.contains(',') => {
            Json::from(to_list(&Json::String(s)).unwrap_or_default())
        }
        other => other,
    }
}

fn deep_merge(x: Json, y: Json) -> Json {
    match (x, y) {
        (Json::Object(mut a), Json::Object(b)) => {
            for (k, v) in b {
                let merged = match a.remove(&k) {
                    Some(old) => deep_merge(old, v),
                    None => v,
                };
                a.insert(k, merged);
            }
            Json::Object(a)
        }
        (_, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(defaults: Json, incoming: Json) -> Json {
        let mut p = Params::from_map(defaults.as_object().cloned().unwrap_or_default());
        p.merge(incoming.as_object().cloned().unwrap_or_default());
        Json::Object(p.map)
    }

    #[test]
    fn merge_strategies_follow_the_spec_examples() {
        assert_eq!(
            merged(json!({"sort": ["-id"]}), json!({"sort": "-id"})),
            json!({"sort": "-id"})
        );
        assert_eq!(
            merged(json!({"fields": ["id"]}), json!({"fields": ["id", "col1"]})),
            json!({"fields": ["id"]})
        );
        assert_eq!(
            merged(json!({"fields": ["id"]}), json!({"fields": "x"})),
            json!({"fields": []})
        );
        assert_eq!(
            merged(json!({"appends": ["col2"]}), json!({"appends": ["r1"]})),
            json!({"appends": ["col2", "r1"]})
        );
        assert_eq!(
            merged(json!({}), json!({"appends": "rel1,rel2"})),
            json!({"appends": ["rel1", "rel2"]})
        );
        assert_eq!(
            merged(
                json!({"values": {"col1": "val1"}}),
                json!({"values": {"aa": "aa"}})
            ),
            json!({"values": {"col1": "val1", "aa": "aa"}})
        );
        assert_eq!(
            merged(json!({"filter": {"a": 1}}), json!({"filter": {"b": 2}})),
            json!({"filter": {"$and": [{"a": 1}, {"b": 2}]}})
        );
    }

    #[test]
    fn merging_into_nothing_gives_what_merging_into_other_keys_gives() {
        let incoming = json!({
            "filter": {"a": 1}, "fields": "x", "appends": "r1,r2", "except": ["e"],
            "sort": "-a,b", "values": {"v": 1}, "filterByTk": "7", "page": "2"
        });
        // Defaults under another key take the general path; none take the shortcut.
        let mut general = merged(json!({"unrelated": true}), incoming.clone());
        general.as_object_mut().map(|m| m.shift_remove("unrelated"));
        let shortcut = merged(json!({}), incoming);
        assert_eq!(shortcut, general);
        assert_eq!(shortcut["appends"], json!(["r1", "r2"]));
        assert_eq!(shortcut["sort"], json!(["-a", "b"]));
        let keys: Vec<&String> = shortcut
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(
            keys[..3],
            ["filter", "fields", "appends"],
            "the request's order is kept"
        );
    }

    #[test]
    fn par_01_defaults_and_query_merge() {
        let out = merged(
            json!({"filter": {"col1": "val1", "col2": "val2"}, "fields": ["id"], "sort": ["-id"]}),
            json!({"filter": {"col2": "&val2", "col3": "val3"}, "other": "other1", "sort": "-id"}),
        );
        assert_eq!(
            out,
            json!({
                "filter": {"$and": [{"col1": "val1", "col2": "val2"}, {"col2": "&val2", "col3": "val3"}]},
                "fields": ["id"],
                "sort": "-id",
                "other": "other1"
            })
        );
    }

    #[test]
    fn page_params_must_be_positive_integers() {
        let p = Params::from_map(
            json!({"page": "2", "pageSize": "x", "z": 0})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        assert_eq!(p.positive_integer("page"), Ok(Some(2)));
        assert!(p.positive_integer("pageSize").is_err());
        assert!(p.positive_integer("z").is_err());
        assert_eq!(p.positive_integer("absent"), Ok(None));
    }
}
