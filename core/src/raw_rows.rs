//! A large top-level JSON array body kept as text, so a bulk `create` can convert and
//! insert it a batch at a time instead of holding every row as a `Json` tree.
//!
//! The router keeps an array body of more than [`RAW_ROWS_ABOVE`] elements this way, as
//! the `values` of [`crate::Params`]. Whoever reads `values` through `Params` still sees
//! the array: it is built from the text on first use, so middleware works unchanged and
//! only pays for the tree when it looks.

use std::ops::Range;
use std::sync::OnceLock;

use serde_json::Value as Json;
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// Arrays with more elements than this stay as text (one batch of a bulk `create`).
pub const RAW_ROWS_ABOVE: usize = crate::actions::BATCH_ROWS;

/// The elements of a JSON array body: the body's text and where each element lies in it.
pub struct RawRows {
    text: Vec<u8>,
    spans: Vec<Range<usize>>,
    /// The whole array as a tree, once something asked for it.
    tree: OnceLock<Json>,
}

impl RawRows {
    /// The elements of `body` when it is a JSON array of more than [`RAW_ROWS_ABOVE`]
    /// elements; otherwise the body back, for the ordinary parse.
    ///
    /// Every element is checked to be JSON that parses (nesting included) here, so reading
    /// one later cannot fail on syntax.
    pub fn split(body: Vec<u8>) -> std::result::Result<Self, Vec<u8>> {
        let spans = match serde_json::from_slice::<Vec<&RawValue>>(&body) {
            Ok(items) if items.len() > RAW_ROWS_ABOVE => {
                let start = body.as_ptr() as usize;
                let mut spans = Vec::with_capacity(items.len());
                for item in items {
                    // An element the array splitter accepted can still nest too deeply for
                    // the parser (the splitter does not count levels).
                    if serde_json::from_str::<Json>(item.get()).is_err() {
                        return Err(body);
                    }
                    let at = item.get().as_ptr() as usize - start;
                    spans.push(at..at + item.get().len());
                }
                spans
            }
            _ => return Err(body),
        };
        Ok(Self {
            text: body,
            spans,
            tree: OnceLock::new(),
        })
    }

    /// How many elements.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none (never, for rows the router kept).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The size of the body's text, in bytes.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Element `index` as a tree; `at` names it in errors (`values.90000`).
    pub fn row(&self, index: usize, at: &str) -> Result<Json> {
        let span = self
            .spans
            .get(index)
            .ok_or_else(|| Error::internal(format!("{at}: no such element")))?;
        serde_json::from_slice(&self.text[span.clone()])
            .map_err(|e| Error::bad_request(format!("{at}: {e}")))
    }

    /// The whole array as a tree, built once.
    pub fn tree(&self) -> &Json {
        self.tree.get_or_init(|| {
            Json::Array(
                (0..self.len())
                    // `split` parsed every element, so none fails here.
                    .map(|i| self.row(i, "values").unwrap_or(Json::Null))
                    .collect(),
            )
        })
    }
}

impl RawRows {
    /// The whole array as a tree, taking it.
    pub fn into_tree(self) -> Json {
        self.tree();
        self.tree.into_inner().unwrap_or(Json::Null)
    }
}

impl std::fmt::Debug for RawRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRows")
            .field("len", &self.len())
            .field("bytes", &self.text.len())
            .finish_non_exhaustive()
    }
}

impl PartialEq for RawRows {
    fn eq(&self, other: &Self) -> bool {
        self.tree() == other.tree()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(n: usize) -> Vec<u8> {
        let items: Vec<String> = (0..n).map(|i| format!("{{\"i\": {i}}}")).collect();
        format!(" [ {} ] ", items.join(" , ")).into_bytes()
    }

    #[test]
    fn small_arrays_and_other_bodies_are_given_back() {
        for body in [
            array(RAW_ROWS_ABOVE),
            b"{\"a\": 1}".to_vec(),
            b"[1,".to_vec(),
        ] {
            assert_eq!(RawRows::split(body.clone()).err(), Some(body));
        }
    }

    #[test]
    fn large_arrays_split_into_their_elements() {
        let rows = RawRows::split(array(RAW_ROWS_ABOVE + 2)).expect("split");
        assert_eq!(rows.len(), RAW_ROWS_ABOVE + 2);
        assert_eq!(
            rows.row(7, "values.7").expect("row"),
            serde_json::json!({"i": 7})
        );
        let tree = rows.tree().as_array().expect("array");
        assert_eq!(tree.len(), RAW_ROWS_ABOVE + 2);
        assert_eq!(
            tree[RAW_ROWS_ABOVE + 1],
            serde_json::json!({"i": RAW_ROWS_ABOVE + 1})
        );
    }

    #[test]
    fn an_element_nested_too_deeply_is_left_to_the_ordinary_parse() {
        let mut body = array(RAW_ROWS_ABOVE + 1);
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        body.splice(1..1, format!("{deep},").into_bytes());
        assert!(RawRows::split(body).is_err());
    }
}
