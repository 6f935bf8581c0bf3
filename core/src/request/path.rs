//! The URL grammar of http-api.md §2: prefix matching, the four path shapes, the `:action` suffix,
//! percent-decoding of segments and the REST-method table for auto-defined resources.

use std::borrow::Cow;

/// An API path has at most this many segments after the prefix (S4: `assoc/index/res/index`).
const MAX_SEGMENTS: usize = 4;

/// Error payloads quote the offending input, but never more than this many bytes of it, so that a
/// hostile multi-kilobyte segment does not end up verbatim in logs and error bodies.
const EXCERPT_LIMIT: usize = 100;

/// A parsed API path: `/api/<res>[:<action>][/<index>]` or
/// `/api/<assoc>/<assocIndex>/<res>[:<action>][/<index>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// `posts` or, for association paths, `posts.comments`.
    pub resource_name: String,
    /// Bare last resource segment name (`comments` for `posts/1/comments`).
    pub bare_resource_name: String,
    /// Action from the `:action` suffix, if any.
    pub action_name: Option<String>,
    /// Index after the resource segment (becomes `filterByTk`), percent-decoded once.
    pub resource_index: Option<String>,
    /// `posts` in `posts/1/comments`.
    pub associated_name: Option<String>,
    /// `1` in `posts/1/comments`, percent-decoded, and decoded a second time when the first pass
    /// still leaves `%XX` escapes (NocoBase decodes it twice, see URL-11).
    pub associated_index: Option<String>,
}

/// Why a path that has the API shape cannot be used; the caller answers 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    /// A segment has a `%` not followed by two hex digits, or its escapes decode to invalid UTF-8.
    #[error("malformed percent-encoding in path segment {0:?}")]
    MalformedEncoding(String),
}

/// Parses `path` (raw, still percent-encoded, without the query string) against the API `prefix`
/// (like `"/api"`). Returns `Ok(None)` when the path does not match the grammar (not under the
/// prefix, 0 or 5+ segments, `/api` alone, empty segments): the caller answers 404.
pub fn parse_resource_path(prefix: &str, path: &str) -> Result<Option<ResourcePath>, PathError> {
    let Some(segments) = split_segments(prefix, path) else {
        return Ok(None);
    };
    let (associated, name_segment, index) = match segments.as_slice() {
        [name] => (None, *name, None),
        [name, index] => (None, *name, Some(*index)),
        [assoc, assoc_index, name] => (Some((*assoc, *assoc_index)), *name, None),
        [assoc, assoc_index, name, index] => (Some((*assoc, *assoc_index)), *name, Some(*index)),
        _ => return Ok(None),
    };

    // The action suffix is split on the raw text, so an encoded `%3A` is part of the name (as in
    // NocoBase, whose first decoding pass keeps reserved characters encoded).
    let mut name_parts = name_segment.split(':');
    let raw_name = name_parts.next().unwrap_or_default();
    let raw_action = name_parts.next().filter(|action| !action.is_empty());
    let bare_resource_name = decode_segment(raw_name)?;
    if bare_resource_name.is_empty() {
        return Ok(None);
    }
    let action_name = raw_action.map(decode_segment).transpose()?;
    let resource_index = index.map(decode_segment).transpose()?;

    let (resource_name, associated_name, associated_index) = match associated {
        None => (bare_resource_name.clone(), None, None),
        Some((raw_assoc, raw_assoc_index)) => {
            let assoc = decode_segment(raw_assoc)?;
            let assoc_index = decode_associated_index(raw_assoc_index)?;
            (
                format!("{assoc}.{bare_resource_name}"),
                Some(assoc),
                Some(assoc_index),
            )
        }
    };

    Ok(Some(ResourcePath {
        resource_name,
        bare_resource_name,
        action_name,
        resource_index,
        associated_name,
        associated_index,
    }))
}

impl ResourcePath {
    /// The action NocoBase's "single" REST table (http-api.md §2.2) gives `method` for this path's
    /// shape, or `None` when the table has no entry (the caller answers 404).
    ///
    /// The method is matched case-insensitively; `HEAD` is treated as `GET` because HEAD must
    /// behave like GET without a body (http-api.md §5).
    pub fn default_action(&self, method: &str) -> Option<&'static str> {
        let method = method.to_ascii_uppercase();
        let method = if method == "HEAD" { "GET" } else { &method };
        let has_index = self.resource_index.is_some();
        let is_association = self.associated_name.is_some();
        match (method, has_index) {
            ("GET", false) => Some("list"),
            ("GET", true) => Some("get"),
            ("POST", false) => Some("create"),
            // S4 `POST /posts/1/comments/2` creates; S2 `POST /posts/1` has no entry.
            ("POST", true) if is_association => Some("create"),
            ("PUT" | "PATCH", true) => Some("update"),
            ("DELETE", _) => Some("destroy"),
            _ => None,
        }
    }

    /// The action to run: the explicit `:action` suffix when present (the method is then
    /// ignored), otherwise [`ResourcePath::default_action`] for `method`.
    pub fn action_for(&self, method: &str) -> Option<String> {
        match &self.action_name {
            Some(action) => Some(action.clone()),
            None => self.default_action(method).map(str::to_owned),
        }
    }
}

/// Strips the prefix and splits the rest into 1..=4 raw, non-empty segments, or `None` when the
/// path is not an API path.
fn split_segments<'a>(prefix: &str, path: &'a str) -> Option<Vec<&'a str>> {
    let prefix = normalize_prefix(prefix);
    // `get` instead of slicing: a multi-byte character may straddle the prefix length.
    let head = path.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(&prefix) {
        return None;
    }
    let rest = path.get(prefix.len()..)?.strip_prefix('/')?;
    // path-to-regexp's non-strict mode tolerates exactly one trailing slash.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return None;
    }
    // One more than allowed is enough to reject the path without collecting hostile input.
    let segments: Vec<&str> = rest.split('/').take(MAX_SEGMENTS + 1).collect();
    let well_formed = segments.len() <= MAX_SEGMENTS
        && segments
            .iter()
            .all(|segment| !segment.is_empty() && !segment.contains(['#', '?']));
    well_formed.then_some(segments)
}

/// Applies NocoBase's prefix normalisation (trim, drop one trailing `/`, ensure a leading `/`), so
/// that `"api/"`, `"/api/"` and `"/api"` all mean the same prefix.
fn normalize_prefix(prefix: &str) -> Cow<'_, str> {
    let trimmed = prefix.trim();
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() || trimmed.starts_with('/') {
        Cow::Borrowed(trimmed)
    } else {
        Cow::Owned(format!("/{trimmed}"))
    }
}

fn decode_segment(raw: &str) -> Result<String, PathError> {
    percent_decode_strict(raw).ok_or_else(|| PathError::MalformedEncoding(excerpt(raw)))
}

/// NocoBase runs `decodeURI` over the whole path and then `decodeURIComponent` over the associated
/// index, so a doubly-encoded index (`%25E7…`) comes out fully decoded. The second pass is only
/// attempted when the first one left a valid escape behind, and a second pass that fails keeps
/// the once-decoded text: the client did encode correctly, so that text is the best reading.
fn decode_associated_index(raw: &str) -> Result<String, PathError> {
    let once = decode_segment(raw)?;
    if !contains_escape(&once) {
        return Ok(once);
    }
    Ok(percent_decode_strict(&once).unwrap_or(once))
}

/// Decodes every `%XX` escape; `None` when a `%` is not followed by two hex digits or the decoded
/// bytes are not UTF-8. (`percent_encoding` alone silently keeps malformed escapes.)
pub(super) fn percent_decode_strict(raw: &str) -> Option<String> {
    // Most segments hold no escape at all (`posts:list`), and `raw` is already UTF-8.
    if !raw.contains('%') {
        return Some(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let all_escapes_valid = bytes
        .iter()
        .enumerate()
        .filter(|(_, byte)| **byte == b'%')
        .all(|(at, _)| is_escape_at(bytes, at));
    if !all_escapes_valid {
        return None;
    }
    percent_encoding::percent_decode(bytes)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

fn contains_escape(text: &str) -> bool {
    let bytes = text.as_bytes();
    (0..bytes.len()).any(|at| bytes[at] == b'%' && is_escape_at(bytes, at))
}

fn is_escape_at(bytes: &[u8], at: usize) -> bool {
    matches!(
        bytes.get(at + 1..at + 3),
        Some([high, low]) if high.is_ascii_hexdigit() && low.is_ascii_hexdigit()
    )
}

/// At most [`EXCERPT_LIMIT`] bytes of `text`, cut on a character boundary.
pub(super) fn excerpt(text: &str) -> String {
    if text.len() <= EXCERPT_LIMIT {
        return text.to_owned();
    }
    let mut end = EXCERPT_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &str) -> ResourcePath {
        match parse_resource_path("/api", path) {
            Ok(Some(parsed)) => parsed,
            other => panic!("{path} should parse, got {other:?}"),
        }
    }

    fn no_match(path: &str) -> bool {
        parse_resource_path("/api", path) == Ok(None)
    }

    fn single(name: &str, action: Option<&str>, index: Option<&str>) -> ResourcePath {
        ResourcePath {
            resource_name: name.to_owned(),
            bare_resource_name: name.to_owned(),
            action_name: action.map(str::to_owned),
            resource_index: index.map(str::to_owned),
            associated_name: None,
            associated_index: None,
        }
    }

    fn association(
        assoc: &str,
        assoc_index: &str,
        name: &str,
        action: Option<&str>,
        index: Option<&str>,
    ) -> ResourcePath {
        ResourcePath {
            resource_name: format!("{assoc}.{name}"),
            bare_resource_name: name.to_owned(),
            action_name: action.map(str::to_owned),
            resource_index: index.map(str::to_owned),
            associated_name: Some(assoc.to_owned()),
            associated_index: Some(assoc_index.to_owned()),
        }
    }

    #[test]
    fn collection_path_maps_get_to_list_and_post_to_create() {
        // URL-01, URL-02
        let parsed = parse("/api/posts");
        assert_eq!(parsed, single("posts", None, None));
        assert_eq!(parsed.action_for("GET").as_deref(), Some("list"));
        assert_eq!(parsed.action_for("POST").as_deref(), Some("create"));
    }

    #[test]
    fn record_path_maps_methods_to_get_update_and_destroy() {
        // URL-03 .. URL-06
        let parsed = parse("/api/posts/1");
        assert_eq!(parsed, single("posts", None, Some("1")));
        assert_eq!(parsed.action_for("GET").as_deref(), Some("get"));
        assert_eq!(parsed.action_for("PUT").as_deref(), Some("update"));
        assert_eq!(parsed.action_for("PATCH").as_deref(), Some("update"));
        assert_eq!(parsed.action_for("DELETE").as_deref(), Some("destroy"));
    }

    #[test]
    fn comma_separated_index_stays_one_string() {
        // URL-07
        let parsed = parse("/api/posts/1,2,3,4,5,6");
        assert_eq!(parsed.resource_index.as_deref(), Some("1,2,3,4,5,6"));
        assert_eq!(parsed.action_for("DELETE").as_deref(), Some("destroy"));
    }

    #[test]
    fn association_path_names_resource_assoc_dot_res() {
        // URL-08, URL-12
        let parsed = parse("/api/posts/1/comments");
        assert_eq!(parsed, association("posts", "1", "comments", None, None));
        assert_eq!(parsed.action_for("GET").as_deref(), Some("list"));
        assert_eq!(parsed.action_for("POST").as_deref(), Some("create"));
    }

    #[test]
    fn association_index_utf8_escapes_are_decoded() {
        // URL-09
        let parsed = parse("/api/posts/%E7%9A%84%E6%B3%95%E5%9B%BD%E9%98%9F/comments");
        assert_eq!(parsed.associated_index.as_deref(), Some("的法国队"));
        assert_eq!(parsed.action_for("POST").as_deref(), Some("create"));
    }

    #[test]
    fn encoded_slash_stays_inside_its_segment() {
        // URL-10
        let parsed = parse("/api/posts/a%2Fab/comments");
        assert_eq!(parsed, association("posts", "a/ab", "comments", None, None));
    }

    #[test]
    fn association_index_is_decoded_twice_like_nocobase() {
        // URL-11
        let parsed = parse(
            "/api/posts/%25E7%259A%2584%25E6%25B3%2595%252F%25E5%259B%25BD%25E9%2598%259F/comments",
        );
        assert_eq!(parsed.associated_index.as_deref(), Some("的法/国队"));
    }

    #[test]
    fn association_index_is_decoded_at_most_twice() {
        // `%252541` → `%2541` → `%41`: a third pass would give `A`.
        let parsed = parse("/api/posts/%252541/comments");
        assert_eq!(parsed.associated_index.as_deref(), Some("%41"));
    }

    #[test]
    fn association_index_with_a_literal_percent_is_decoded_once() {
        // `100%25` → `100%`: nothing left to decode, and no error for the lone `%`.
        assert_eq!(
            parse("/api/posts/100%25/comments")
                .associated_index
                .as_deref(),
            Some("100%")
        );
        // `%25zz%2541` → `%zz%41`: a second pass would fail on `%zz`, so the first pass stands.
        assert_eq!(
            parse("/api/posts/%25zz%2541/comments")
                .associated_index
                .as_deref(),
            Some("%zz%41")
        );
    }

    #[test]
    fn association_record_path_maps_methods_to_get_update_and_destroy() {
        // URL-13 .. URL-16
        let parsed = parse("/api/posts/1/comments/1");
        assert_eq!(
            parsed,
            association("posts", "1", "comments", None, Some("1"))
        );
        assert_eq!(parsed.action_for("GET").as_deref(), Some("get"));
        assert_eq!(parsed.action_for("PUT").as_deref(), Some("update"));
        assert_eq!(parsed.action_for("PATCH").as_deref(), Some("update"));
        assert_eq!(parsed.action_for("DELETE").as_deref(), Some("destroy"));
    }

    #[test]
    fn explicit_action_overrides_the_method() {
        // URL-17, URL-18, URL-21, URL-35
        for method in ["GET", "POST", "PUT", "DELETE"] {
            assert_eq!(
                parse("/api/posts:export").action_for(method).as_deref(),
                Some("export")
            );
        }
        assert_eq!(
            parse("/api/posts:export"),
            single("posts", Some("export"), None)
        );
        assert_eq!(
            parse("/api/posts:list"),
            single("posts", Some("list"), None)
        );
        let destroy = parse("/api/posts:destroy/1");
        assert_eq!(destroy, single("posts", Some("destroy"), Some("1")));
        assert_eq!(destroy.action_for("GET").as_deref(), Some("destroy"));
    }

    #[test]
    fn explicit_action_with_index() {
        // URL-19
        assert_eq!(
            parse("/api/posts:export/1"),
            single("posts", Some("export"), Some("1"))
        );
    }

    #[test]
    fn explicit_action_on_association_with_index() {
        // URL-20
        let parsed = parse("/api/posts/1/tags:attach/2");
        assert_eq!(
            parsed,
            association("posts", "1", "tags", Some("attach"), Some("2"))
        );
        assert_eq!(parsed.action_for("POST").as_deref(), Some("attach"));
    }

    #[test]
    fn path_outside_the_prefix_does_not_match() {
        // URL-22
        assert!(no_match("/posts"));
    }

    #[test]
    fn one_trailing_slash_is_tolerated() {
        // URL-25
        let parsed = parse("/api/posts/");
        assert_eq!(parsed, single("posts", None, None));
        assert_eq!(parsed.action_for("GET").as_deref(), Some("list"));
        assert!(no_match("/api/posts//"));
    }

    #[test]
    fn prefix_match_is_case_insensitive() {
        // URL-26
        let parsed = parse("/API/posts");
        assert_eq!(parsed, single("posts", None, None));
        assert_eq!(parsed.action_for("GET").as_deref(), Some("list"));
    }

    #[test]
    fn put_on_collection_has_no_action() {
        // URL-27
        assert_eq!(parse("/api/posts").action_for("PUT"), None);
        assert_eq!(parse("/api/posts").action_for("PATCH"), None);
        assert_eq!(parse("/api/posts/1").action_for("POST"), None);
    }

    #[test]
    fn colon_in_index_segment_is_not_an_action() {
        // URL-28
        let parsed = parse("/api/posts/1:get");
        assert_eq!(parsed, single("posts", None, Some("1:get")));
        assert_eq!(parsed.action_for("GET").as_deref(), Some("get"));
    }

    #[test]
    fn text_after_a_second_colon_is_ignored() {
        // URL-29
        assert_eq!(
            parse("/api/posts:list:extra"),
            single("posts", Some("list"), None)
        );
    }

    #[test]
    fn five_segments_do_not_match() {
        // URL-30
        assert!(no_match("/api/a/1/b/2/c"));
    }

    #[test]
    fn bare_prefix_and_lookalike_prefix_do_not_match() {
        // URL-31
        assert!(no_match("/api"));
        assert!(no_match("/api/"));
        assert!(no_match("/apix/posts"));
        assert!(no_match(""));
        assert!(no_match("/"));
    }

    #[test]
    fn resource_index_is_fully_decoded() {
        // URL-32 (Target, not NocoBase's `a%2Fb`)
        assert_eq!(
            parse("/api/posts:get/a%2Fb").resource_index.as_deref(),
            Some("a/b")
        );
        // Only once: an encoded percent sign stays a percent sign.
        assert_eq!(
            parse("/api/posts/100%2541").resource_index.as_deref(),
            Some("100%41")
        );
    }

    #[test]
    fn text_without_escapes_decodes_to_itself() {
        for raw in ["posts:list", "", "a+b", "日本語", "tags;x=1", "100"] {
            let full = percent_encoding::percent_decode(raw.as_bytes())
                .decode_utf8()
                .map(|text| text.into_owned())
                .ok();
            assert_eq!(percent_decode_strict(raw), full, "{raw}");
            assert_eq!(percent_decode_strict(raw).as_deref(), Some(raw));
        }
    }

    #[test]
    fn malformed_escape_is_an_error() {
        // URL-33 (Target 400)
        assert_eq!(
            parse_resource_path("/api", "/api/posts/%"),
            Err(PathError::MalformedEncoding("%".to_owned()))
        );
        assert_eq!(
            parse_resource_path("/api", "/api/posts/%zz"),
            Err(PathError::MalformedEncoding("%zz".to_owned()))
        );
        assert_eq!(
            parse_resource_path("/api", "/api/po%2"),
            Err(PathError::MalformedEncoding("po%2".to_owned()))
        );
        assert_eq!(
            parse_resource_path("/api", "/api/%E7%9A/1/comments"),
            Err(PathError::MalformedEncoding("%E7%9A".to_owned()))
        );
    }

    #[test]
    fn malformed_error_quotes_at_most_a_short_excerpt() {
        let long = format!("/api/posts/{}%", "é".repeat(500));
        match parse_resource_path("/api", &long) {
            Err(PathError::MalformedEncoding(quoted)) => assert!(quoted.len() <= 104),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn post_to_auto_defined_association_creates() {
        // URL-36: the "single" table, not belongsToMany's `set`.
        assert_eq!(
            parse("/api/posts/1/tags").action_for("POST").as_deref(),
            Some("create")
        );
        assert_eq!(
            parse("/api/posts/1/tags/2").action_for("POST").as_deref(),
            Some("create")
        );
        assert_eq!(
            parse("/api/posts/1/tags").action_for("DELETE").as_deref(),
            Some("destroy")
        );
        assert_eq!(parse("/api/posts/1/tags").action_for("PUT"), None);
    }

    #[test]
    fn method_is_matched_case_insensitively_and_head_acts_as_get() {
        assert_eq!(parse("/api/posts").default_action("get"), Some("list"));
        assert_eq!(parse("/api/posts/1").default_action("HEAD"), Some("get"));
        assert_eq!(parse("/api/posts").default_action("OPTIONS"), None);
    }

    #[test]
    fn spec_examples_table_parses() {
        // http-api.md §2.5
        assert_eq!(
            parse("/api/posts/1/comments:get/2"),
            association("posts", "1", "comments", Some("get"), Some("2"))
        );
        assert_eq!(
            parse("/api/posts/1/comments/2:get"),
            association("posts", "1", "comments", None, Some("2:get"))
        );
        assert_eq!(
            parse("/api/dataSources/main/collections:list"),
            association("dataSources", "main", "collections", Some("list"), None)
        );
        assert_eq!(
            parse("/api/dataSourcesCollections/ds1.posts/fields:list"),
            association(
                "dataSourcesCollections",
                "ds1.posts",
                "fields",
                Some("list"),
                None
            )
        );
        let composite = parse("/api/items/%7B%22a%22%3A1%2C%22b%22%3A2%7D/children:list");
        assert_eq!(
            composite.associated_index.as_deref(),
            Some(r#"{"a":1,"b":2}"#)
        );
    }

    #[test]
    fn empty_action_suffix_falls_back_to_the_method() {
        assert_eq!(parse("/api/posts:"), single("posts", None, None));
        assert_eq!(parse("/api/posts::x"), single("posts", None, None));
    }

    #[test]
    fn empty_resource_name_does_not_match() {
        assert!(no_match("/api/:list"));
        assert!(no_match("/api/posts/1/:list"));
    }

    #[test]
    fn encoded_colon_is_part_of_the_name() {
        assert_eq!(parse("/api/posts%3Alist"), single("posts:list", None, None));
    }

    #[test]
    fn empty_or_fragment_segments_do_not_match() {
        assert!(no_match("/api//posts"));
        assert!(no_match("/api/posts//1"));
        assert!(no_match("/api/posts/1?x=1"));
        assert!(no_match("/api/posts#frag"));
    }

    #[test]
    fn prefix_is_normalised_like_nocobase() {
        for prefix in ["/api", "/api/", "api", " /api/ ", "/API"] {
            assert_eq!(
                parse_resource_path(prefix, "/api/posts"),
                Ok(Some(single("posts", None, None))),
                "prefix {prefix:?}"
            );
        }
        assert_eq!(
            parse_resource_path("/", "/posts/1"),
            Ok(Some(single("posts", None, Some("1"))))
        );
        assert_eq!(
            parse_resource_path("/v1/api", "/V1/Api/posts"),
            Ok(Some(single("posts", None, None)))
        );
    }

    #[test]
    fn multibyte_text_around_the_prefix_boundary_does_not_panic() {
        assert!(no_match("/a的/posts"));
        assert!(no_match("的"));
        assert_eq!(
            parse("/api/的").resource_name,
            "的".to_owned(),
            "raw non-ASCII names are kept"
        );
    }

    #[test]
    fn hostile_paths_never_panic() {
        const PIECES: &[&str] = &[
            "/", "//", "%", "%2", "%2F", "%25", "%zz", "%FF", "%E7%9A", ":", "::", "a", "1", "的",
            "?", "#", "api", "API", "[", "]", "%3A", " ", "\u{0}", "é",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            // xorshift64: deterministic, good enough to shuffle the pieces.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..500 {
            let len = (next() % 16) as usize;
            let mut path = if next() % 4 == 0 {
                String::new()
            } else {
                "/api/".to_owned()
            };
            for _ in 0..len {
                path.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            if let Ok(Some(parsed)) = parse_resource_path("/api", &path) {
                for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "", "ü"] {
                    let _ = parsed.action_for(method);
                }
            }
        }
        let long = format!("/api/{}", "%25".repeat(100_000));
        assert!(parse_resource_path("/api", &long).is_ok());
        let slashes = format!("/api{}", "/".repeat(100_000));
        assert_eq!(parse_resource_path("/api", &slashes), Ok(None));
    }
}
