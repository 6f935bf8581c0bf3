//! Hostile strings sent as values, field names, operators and sort keys, on every backend:
//! values are stored and matched as plain data, names are refused with a 400, and the
//! table is intact afterwards.

use manifold_tests::{TestApp, enc, every_backend, filter, posts_definition};
use serde_json::{Value as Json, json};

const PAYLOADS: &[&str] = &[
    "'",
    "''",
    "\"",
    "`",
    "]",
    "\\",
    "\\'",
    "' OR '1'='1",
    "' OR 1=1 --",
    "\" OR \"\"=\"",
    "1; DROP TABLE posts; --",
    "'); DROP TABLE posts; --",
    "/* comment */",
    "%",
    "_",
    "%_%",
    "$1",
    "?",
    "@P1",
    "${title}",
    "{{ctx.state}}",
    "ünïcødé ✓",
    "line\nbreak",
    "tab\tand\rreturn",
    "🙂",
];

every_backend! {
    async fn hostile_values_are_data_and_hostile_names_are_refused() {
        let t = TestApp::new().await;
        t.collection(posts_definition()).await;
        let rows: Vec<Json> = PAYLOADS.iter().map(|p| json!({"title": p, "score": 1})).collect();
        t.insert("posts", Json::Array(rows)).await;
        let total = PAYLOADS.len() as u64;

        for (i, payload) in PAYLOADS.iter().enumerate() {
            // A value: matched literally, exactly one row.
            let r = t.get(&format!("/api/posts:list?{}", filter(json!({"title": payload})))).await;
            assert_eq!(r.status, 200, "{payload:?}: {:?}", r.body);
            assert_eq!(r.column("id"), [json!(i + 1)], "{payload:?} as a value");
            let r = t
                .get(&format!("/api/posts:list?{}", filter(json!({"title": {"$includes": payload}}))))
                .await;
            assert_eq!(r.status, 200, "{payload:?}: {:?}", r.body);
            assert!(r.column("id").contains(&json!(i + 1)), "{payload:?} in $includes");

            // A name: refused before any SQL.
            for path in [
                format!("/api/posts:list?{}", filter(json!({ *payload: 1 }))),
                format!("/api/posts:list?{}", filter(json!({"title": { format!("${payload}"): 1 }}))),
                format!("/api/posts:list?sort={}", enc(&format!("-{payload}"))),
                format!("/api/posts:list?fields={}", enc(payload)),
                format!("/api/posts:list?except={}", enc(payload)),
            ] {
                let r = t.get(&path).await;
                assert_eq!(r.status, 400, "{path}: {:?}", r.body);
            }
        }
        assert_eq!(t.count("posts").await, total, "the table is intact");
    }
}
