//! Authentication and access control through the HTTP API (shared/spec/auth.md): sign-in,
//! tokens and their renewal, every 401 code, hostile tokens, API keys, `X-Role`, the admin
//! guard, stored grants with fields and scopes on every backend, `roles:check`, and two
//! processes sharing one main database.
//!
//! Accounts live in the main database, so the account tests run on the three main
//! backends; the grant tests also run against a registered MongoDB source.

use std::time::Duration;

use manifold_server::auth::Secret;
use manifold_tests::{ROOT_PASSWORD, Reply, TestApp, every_backend, filter, posts_definition};
use poem::http::Method;
use serde_json::{Value as Json, json};

/// The signing secret of the tests that forge tokens.
const SECRET: &str = "auth-tests-signing-secret-0123456789";

/// Signs in `account` anonymously; the whole answer.
async fn sign_in(t: &TestApp, account: &str, password: &str) -> Reply {
    t.main_as(
        "",
        Method::POST,
        "/api/auth:signIn",
        Some(json!({ "account": account, "password": password })),
    )
    .await
}

/// The token of a successful sign-in.
async fn token_of(t: &TestApp, account: &str, password: &str) -> String {
    let r = sign_in(t, account, password).await;
    assert_eq!(r.status, 200, "sign in {account}: {:?}", r.body);
    r.data()["token"].as_str().expect("a token").to_owned()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Asserts a 401 with `code`.
fn refused(r: &Reply, code: &str, what: &str) {
    assert_eq!(r.status, 401, "{what}: {:?}", r.body);
    assert_eq!(
        r.body["errors"][0]["code"],
        json!(code),
        "{what}: {:?}",
        r.body
    );
}

fn forged(claims: Json, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

every_backend! {
    // Accounts live in the main database: a registered source adds nothing here.
    #[skip(mongodb, mssql)]
    async fn sign_in_gives_a_token_and_one_answer_for_any_wrong_credentials() {
        let t = TestApp::new().await;
        let r = sign_in(&t, "root", ROOT_PASSWORD).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["user"]["username"], json!("root"));
        assert!(r.data()["user"].get("password").is_none(), "the hash is hidden");
        let token = r.data()["token"].as_str().expect("token").to_owned();
        assert_eq!(token.split('.').count(), 3, "a JWT");
        let me = t.main_as(&bearer(&token), Method::GET, "/api/auth:check", None).await;
        assert_eq!((me.status, &me.data()["username"]), (200, &json!("root")));
        assert_eq!(me.data()["roles"].as_array().map(Vec::len), Some(3), "{:?}", me.body);

        // NocoBase's older body names the account `email`.
        let by_email = t
            .main_as("", Method::POST, "/api/auth:signIn",
                Some(json!({"email": "root", "password": ROOT_PASSWORD})))
            .await;
        assert_eq!(by_email.status, 200, "{:?}", by_email.body);

        let wrong_password = sign_in(&t, "root", "not-the-password").await;
        let wrong_user = sign_in(&t, "nobody", ROOT_PASSWORD).await;
        assert_eq!(wrong_password.status, 401);
        assert_eq!(wrong_password.body, wrong_user.body, "no user enumeration");
        assert_eq!(
            wrong_password.error(),
            "The username/email or password is incorrect, please re-enter"
        );
        let empty = sign_in(&t, " ", "x").await;
        assert_eq!((empty.status, empty.error()), (400, "Please enter your username or email"));
        let r = t.main_as("", Method::POST, "/api/auth:signIn", Some(json!(["root"]))).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
    }
}

every_backend! {
    // Accounts live in the main database: a registered source adds nothing here.
    #[skip(mongodb, mssql)]
    async fn failed_sign_ins_are_refused_for_a_while() {
        let t = TestApp::with(|c| {
            c.auth.sign_in_max_failures = 3;
            c.auth.sign_in_lockout = Duration::from_secs(3600);
        })
        .await;
        for _ in 0..3 {
            assert_eq!(sign_in(&t, "root", "guess").await.status, 401);
        }
        let r = sign_in(&t, "root", ROOT_PASSWORD).await;
        assert_eq!(r.status, 429, "even the right password waits: {:?}", r.body);
        assert!(r.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n > 0)));
        assert!(r.error().starts_with("Too many failed sign-in attempts"), "{}", r.error());
        // Another account is not locked by root's failures (the tests have no client address).
        let ann = t.new_user("ann", &["member"]).await;
        assert!(!ann.is_empty());
    }
}

/// Redis for the tests that share a cache between replicas (scripts/test.sh starts one).
fn redis_url() -> String {
    std::env::var("MANIFOLD_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

#[tokio::test]
async fn failed_sign_ins_on_one_replica_lock_the_account_on_another_sharing_redis() {
    let redis = redis_url();
    let tweak = |c: &mut manifold_server::ServeConfig| {
        c.auth.sign_in_max_failures = 3;
        c.auth.sign_in_lockout = Duration::from_secs(3600);
        c.cache_url = redis.clone();
    };
    let a = TestApp::with(tweak).await;
    let b = a.replica_with(tweak).await;
    // An account of this test's own: the counts in Redis outlive the test.
    let name = format!("lockout-{}", uuid::Uuid::new_v4().simple());
    a.new_user(&name, &["member"]).await;
    let password = format!("{name}-password-1");
    for _ in 0..3 {
        assert_eq!(sign_in(&a, &name, "guess").await.status, 401);
    }
    let r = sign_in(&b, &name, &password).await;
    assert_eq!(
        r.status, 429,
        "the other replica counted them: {:?}",
        r.body
    );
    let seconds: u64 = r
        .header("retry-after")
        .and_then(|s| s.parse().ok())
        .expect("retry-after in seconds");
    assert!((3500..=3600).contains(&seconds), "{seconds}");
    // Root's record is its own.
    assert_eq!(sign_in(&b, "root", ROOT_PASSWORD).await.status, 200);
}

every_backend! {
    // Accounts live in the main database: a registered source adds nothing here.
    #[skip(mongodb, mssql)]
    async fn a_burst_of_sign_ins_waits_its_turn_and_every_one_succeeds() {
        // Hashes run one per core at a time; a burst of several times that queues for a
        // turn instead of failing or running all at once.
        let t = std::sync::Arc::new(TestApp::new().await);
        let burst = 4 * std::thread::available_parallelism().map_or(1, usize::from);
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..burst {
            let t = t.clone();
            callers.spawn(async move { sign_in(&t, "root", ROOT_PASSWORD).await });
        }
        let replies = callers.join_all().await;
        assert_eq!(replies.len(), burst);
        for r in replies {
            assert_eq!(r.status, 200, "{:?}", r.body);
            assert!(r.data()["token"].is_string(), "{:?}", r.body);
        }
    }
}

every_backend! {
    // Accounts live in the main database: a registered source adds nothing here.
    #[skip(mongodb, mssql)]
    async fn every_refused_token_is_a_401_with_its_code() {
        let t = TestApp::with(|c| c.auth.jwt_secret = Some(Secret(SECRET.into()))).await;
        t.collection(posts_definition()).await;
        let list = |auth: String| {
            let t = &t;
            async move { t.main_as(&auth, Method::GET, "/api/posts:list", None).await }
        };
        refused(&list(String::new()).await, "EMPTY_TOKEN", "no token");
        refused(&t.main_as("", Method::GET, "/api/auth:check", None).await, "EMPTY_TOKEN", "check");

        let good = token_of(&t, "root", ROOT_PASSWORD).await;
        assert_eq!(list(bearer(&good)).await.status, 200);
        let now = chrono::Utc::now().timestamp();
        let claims = json!({"userId": 1, "jti": "x", "iat": now, "exp": now + 600, "temp": true});
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut payload: Vec<char> = parts[1].chars().collect();
        payload[4] = if payload[4] == 'A' { 'B' } else { 'A' };
        parts[1] = payload.into_iter().collect();
        let hostile = [
            ("alg none", format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", good.split('.').nth(1).unwrap_or(""))),
            ("wrong secret", forged(claims, "another-secret-0123456789abcdef")),
            ("tampered payload", parts.join(".")),
            ("truncated", good[..good.len() - 5].to_owned()),
            ("non-ASCII", format!("{good}é")),
            ("100 kB", "a".repeat(100_000)),
            ("garbage", "not a token".to_owned()),
        ];
        for (what, token) in hostile {
            refused(&list(bearer(&token)).await, "INVALID_TOKEN", what);
        }
        let r = t.main_as(&bearer(&good), Method::GET, "/api/posts:list?token=nonsense", None).await;
        assert_eq!(r.status, 200, "the header wins over ?token=: {:?}", r.body);
        let r = t.main_as("", Method::GET, &format!("/api/posts:list?token={good}"), None).await;
        assert_eq!(r.status, 200, "?token= for links: {:?}", r.body);

        // A token the server never issued, though signed with its secret.
        let unknown = forged(json!({"userId": 1, "jti": "never-issued", "iat": now, "exp": now + 600, "temp": true}), SECRET);
        refused(&list(bearer(&unknown)).await, "BLOCKED_TOKEN", "never issued");

        // Signed out, the user gone, a role the user lacks.
        let ann = t.new_user("ann", &["member"]).await;
        let r = t.main_as(&bearer(&ann), Method::POST, "/api/auth:signOut", None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        refused(&t.main_as(&bearer(&ann), Method::GET, "/api/auth:check", None).await, "BLOCKED_TOKEN", "signed out");
        let bob = t.new_user("bob", &["member"]).await;
        let me = t.main_as(&bearer(&bob), Method::GET, "/api/auth:check", None).await;
        let id = me.data()["id"].clone();
        let r = t.main(Method::POST, &format!("/api/users:destroy/{id}"), None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        refused(&t.main_as(&bearer(&bob), Method::GET, "/api/auth:check", None).await, "NOT_EXIST_USER", "user gone");
        let cy = t.new_user("cy", &["member"]).await;
        let r = t
            .send_as(&bearer(&cy), Method::GET, "/api/auth:check", &[("x-role", "root")], None)
            .await;
        refused(&r, "ROLE_NOT_FOUND_FOR_USER", "X-Role root");
        assert_eq!(r.error(), "The role does not belong to the user");
    }
}

every_backend! {
    // Accounts live in the main database: a registered source adds nothing here.
    #[skip(mongodb, mssql)]
    async fn an_expired_token_renews_once_inside_its_window_and_not_after() {
        let t = TestApp::with(|c| {
            c.auth.token_lifetime = Duration::from_secs(1);
            c.auth.token_renewal_window = Duration::from_secs(3);
        })
        .await;
        let first = token_of(&t, "root", ROOT_PASSWORD).await;
        let second = token_of(&t, "root", ROOT_PASSWORD).await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let r = t.main_as(&bearer(&first), Method::GET, "/api/auth:check", None).await;
        assert_eq!(r.status, 200, "renewed: {:?}", r.body);
        let renewed = r.header("x-new-token").expect("x-new-token").to_owned();
        assert_ne!(renewed, first);
        refused(
            &t.main_as(&bearer(&first), Method::GET, "/api/auth:check", None).await,
            "BLOCKED_TOKEN",
            "a token renews once",
        );
        let r = t.main_as(&bearer(&renewed), Method::GET, "/api/auth:check", None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        refused(
            &t.main_as(&bearer(&second), Method::GET, "/api/auth:check", None).await,
            "EXPIRED_SESSION",
            "expired beyond the renewal window",
        );
    }
}

every_backend! {
    // Accounts live in the main database: a registered source adds nothing here.
    #[skip(mongodb, mssql)]
    async fn a_password_change_ends_older_sessions() {
        let t = TestApp::new().await;
        let ann = t.new_user("ann", &["member"]).await;
        let change = |body: Json| {
            let (t, ann) = (&t, ann.clone());
            async move {
                t.main_as(&bearer(&ann), Method::POST, "/api/auth:changePassword", Some(body)).await
            }
        };
        let r = change(json!({"oldPassword": "wrong", "newPassword": "ann-password-2"})).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().contains("oldPassword"), "{}", r.error());
        let r = change(json!({"oldPassword": "ann-password-1", "newPassword": "a", "confirmPassword": "b"})).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        let r = change(json!({"oldPassword": "ann-password-1", "newPassword": "ann-password-2"})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        refused(
            &t.main_as(&bearer(&ann), Method::GET, "/api/auth:check", None).await,
            "INVALID_TOKEN",
            "older than the password change",
        );
        assert_eq!(sign_in(&t, "ann", "ann-password-1").await.status, 401);
        let fresh = token_of(&t, "ann", "ann-password-2").await;
        let r = t.main_as(&bearer(&fresh), Method::GET, "/api/auth:check", None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        // The stored value is a hash, never the password, and never shown.
        let r = t.main(Method::GET, "/api/users:list?filter=%7B%22username%22%3A%22ann%22%7D", None).await;
        assert!(r.data()[0].get("password").is_none(), "{:?}", r.body);
        assert!(!r.body.to_string().contains("ann-password-2"));
    }
}

every_backend! {
    // Accounts live in the main database: a registered source adds nothing here.
    #[skip(mongodb, mssql)]
    async fn api_keys_act_in_their_pinned_role_until_destroyed() {
        let t = TestApp::new().await;
        let r = t
            .main(Method::POST, "/api/apiKeys:create",
                Some(json!({"name": "ci", "role": {"name": "member"}, "expiresIn": "30d"})))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let key = r.data()["token"].as_str().expect("the key, shown once").to_owned();
        let as_key = |path: &'static str, role: Option<&'static str>| {
            let (t, key) = (&t, key.clone());
            async move {
                let headers: Vec<(&str, &str)> = role.map(|r| vec![("x-role", r)]).unwrap_or_default();
                t.send_as(&bearer(&key), Method::POST, path, &headers,
                    Some(json!({"name": "from_key", "fields": []}))).await
            }
        };
        let r = as_key("/api/collections:create", None).await;
        assert_eq!((r.status, r.error()), (403, "No permissions"), "a member key: {:?}", r.body);
        let r = as_key("/api/collections:create", Some("root")).await;
        assert_eq!(r.status, 403, "X-Role cannot lift a pinned key: {:?}", r.body);
        let me = t.main_as(&bearer(&key), Method::GET, "/api/auth:check", None).await;
        assert_eq!((me.status, &me.data()["username"]), (200, &json!("root")));

        let listed = t.main(Method::GET, "/api/apiKeys:list", None).await;
        assert_eq!(listed.status, 200, "{:?}", listed.body);
        assert_eq!(listed.column("name"), [json!("ci")]);
        assert!(!listed.body.to_string().contains(&key), "the key is never shown again");
        let id = listed.data()[0]["id"].clone();

        // Another user sees none of root's keys and may pin only a role of their own.
        let ann = t.new_user("ann", &["member"]).await;
        let r = t.main_as(&bearer(&ann), Method::GET, "/api/apiKeys:list", None).await;
        assert_eq!((r.status, r.data().as_array().map(Vec::len)), (200, Some(0)), "{:?}", r.body);
        let r = t
            .main_as(&bearer(&ann), Method::POST, "/api/apiKeys:create",
                Some(json!({"name": "mine", "role": {"name": "admin"}, "expiresIn": "never"})))
            .await;
        assert_eq!((r.status, r.error()), (400, "Role not found"), "{:?}", r.body);
        for expires in [json!("soon"), json!(30), json!("0s")] {
            let r = t
                .main(Method::POST, "/api/apiKeys:create",
                    Some(json!({"name": "bad", "role": {"name": "member"}, "expiresIn": expires})))
                .await;
            assert_eq!(r.status, 400, "{expires}: {:?}", r.body);
            assert!(r.error().starts_with("values.expiresIn"), "{expires}: {}", r.error());
        }
        let r = t.main_as(&bearer(&ann), Method::POST, &format!("/api/apiKeys:destroy/{id}"), None).await;
        assert!(r.status == 200 || r.status == 403 || r.status == 404, "{:?}", r.body);
        let me = t.main_as(&bearer(&key), Method::GET, "/api/auth:check", None).await;
        assert_eq!(me.status, 200, "ann could not destroy root's key: {:?}", me.body);

        let r = t.main(Method::POST, &format!("/api/apiKeys:destroy/{id}"), None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        refused(
            &t.main_as(&bearer(&key), Method::GET, "/api/auth:check", None).await,
            "BLOCKED_TOKEN",
            "a destroyed key",
        );
    }
}

every_backend! {
    // Accounts live in the main database: a registered source adds nothing here.
    #[skip(mongodb, mssql)]
    async fn x_role_picks_the_role_and_administration_needs_allow_configure() {
        let t = TestApp::new().await;
        let bob = t.new_user("bob", &["member", "admin"]).await;
        let create = |role: &'static str, name: &'static str| {
            let (t, bob) = (&t, bob.clone());
            async move {
                t.send_as(&bearer(&bob), Method::POST, "/api/collections:create", &[("x-role", role)],
                    Some(json!({"name": name, "fields": [{"name": "n", "type": "integer"}]}))).await
            }
        };
        let r = create("member", "by_member").await;
        assert_eq!((r.status, r.error()), (403, "No permissions"), "{:?}", r.body);
        assert_eq!(create("admin", "by_admin").await.status, 200);
        assert_eq!(create("__union__", "by_union").await.status, 200);

        let ann = t.new_user("ann", &["member"]).await;
        for (method, path) in [
            (Method::POST, "/api/dataSources:create"),
            (Method::GET, "/api/users:list"),
            (Method::POST, "/api/roles:create"),
            (Method::POST, "/api/roles/member/resources:create"),
            (Method::POST, "/api/collections:destroy/by_admin"),
            (Method::POST, "/api/dataSourcesCollections/main.by_admin/fields:create"),
        ] {
            let r = t.main_as(&bearer(&ann), method.clone(), path, Some(json!({"name": "x"}))).await;
            assert_eq!(r.status, 403, "{method} {path}: {:?}", r.body);
        }
        // Anonymous callers get 401, never 403.
        let r = t.main_as("", Method::POST, "/api/collections:destroy/by_admin", None).await;
        refused(&r, "EMPTY_TOKEN", "anonymous destroy");
        let r = t.get("/api/collections:get/by_admin").await;
        assert_eq!(r.status, 200, "the table is still there: {:?}", r.body);

        // Any signed-in user lists the sources, without connection details.
        let r = t.post("/api/dataSources:create",
            json!({"key": "notes", "type": "sqlite", "options": {"path": "notes.sqlite"}})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = t.main_as(&bearer(&ann), Method::GET, "/api/dataSources:list", None).await;
        assert_eq!((r.status, r.column("key")), (200, vec![json!("main"), json!("notes")]), "{:?}", r.body);
        assert!(r.data().as_array().is_some_and(|all| all.iter().all(|s| s.get("options").is_none())), "{:?}", r.body);
        let r = t.main_as(&bearer(&ann), Method::GET, "/api/dataSources:get/notes", None).await;
        assert_eq!((r.status, r.data().get("options")), (200, None), "{:?}", r.body);
        let r = t.get("/api/dataSources:get/notes").await;
        assert_eq!(r.data()["options"]["path"], json!("notes.sqlite"), "root sees them");

        // A user created without roles gets the default one.
        let r = t.main(Method::POST, "/api/users:create",
            Some(json!({"username": "dan", "password": "dan-password-1"}))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let dan = token_of(&t, "dan", "dan-password-1").await;
        let me = t.main_as(&bearer(&dan), Method::GET, "/api/auth:check", None).await;
        assert_eq!(me.data()["roles"], json!(["member"]), "{:?}", me.body);

        // The built-in roles stay.
        for role in ["root", "admin", "member"] {
            let r = t.main(Method::POST, &format!("/api/roles:destroy/{role}"), None).await;
            assert_eq!(r.status, 400, "{role}: {:?}", r.body);
        }
    }
}

every_backend! {
    // Accounts live in the main database; every process reads the same secret and sessions.
    #[skip(mongodb, mssql)]
    async fn two_processes_on_one_main_database_accept_each_others_tokens() {
        let first = TestApp::new().await;
        let second = first.replica().await;
        let from_first = token_of(&first, "root", ROOT_PASSWORD).await;
        let from_second = token_of(&second, "root", ROOT_PASSWORD).await;
        for (app, token) in [(&second, &from_first), (&first, &from_second)] {
            let r = app.main_as(&bearer(token), Method::GET, "/api/auth:check", None).await;
            assert_eq!((r.status, &r.data()["username"]), (200, &json!("root")), "{:?}", r.body);
        }
        let r = second.main_as(&bearer(&from_first), Method::POST, "/api/auth:signOut", None).await;
        assert_eq!(r.status, 200);
        // The first process trusts what it verified for at most its cache's lifetime.
        first.app.auth().expect("auth").forget_verified_tokens();
        refused(
            &first.main_as(&bearer(&from_first), Method::GET, "/api/auth:check", None).await,
            "BLOCKED_TOKEN",
            "signed out on the other process",
        );
    }
}

every_backend! {
    // Grants are evaluated by every source's ACL: this runs against MongoDB too.
    async fn grants_limit_actions_fields_and_rows_and_apply_at_once() {
        let t = TestApp::new().await;
        let key = t.source_key();
        t.collection(posts_definition()).await;
        t.insert("posts", json!([
            {"title": "a", "score": 1, "status": "published"},
            {"title": "b", "score": 2, "status": "draft"},
            {"title": "c", "score": 3, "status": "published"}
        ])).await;
        let r = t.main(Method::POST, "/api/roles:create", Some(json!({"name": "editor", "title": "Editor"}))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = t
            .main(Method::POST, "/api/dataSourcesRolesResourcesScopes:create", Some(json!({
                "name": "published", "dataSourceKey": key, "resourceName": "posts",
                "scope": {"status": "published"}
            })))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let scope = r.data()["id"].clone();
        let r = t
            .main(Method::POST, "/api/roles/editor/resources:create", Some(json!({
                "name": "posts", "dataSourceKey": key, "usingActionsConfig": true,
                "actions": [
                    {"name": "view", "fields": ["title", "status"], "scope": scope},
                    {"name": "update", "fields": ["title"], "scope": scope}
                ]
            })))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let resource = r.data()["id"].clone();
        let ann = t.new_user("ann", &["editor"]).await;
        let as_ann = |method: Method, path: String, body: Option<Json>| {
            let (t, ann) = (&t, ann.clone());
            async move { t.send_as(&bearer(&ann), method, &path, &[], body).await }
        };

        let r = as_ann(Method::GET, "/api/posts:list?sort=id".into(), None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.column("title"), [json!("a"), json!("c")], "the scope: {:?}", r.body);
        assert_eq!(r.body["meta"]["count"], json!(2));
        for row in r.data().as_array().expect("rows") {
            let mut keys: Vec<&str> = row.as_object().expect("row").keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert!(
                keys.iter().all(|k| ["createdAt", "id", "status", "title", "updatedAt"].contains(k)),
                "only the granted fields: {keys:?}"
            );
            assert!(row.get("score").is_none());
        }
        let r = as_ann(Method::GET, "/api/posts:get/2".into(), None).await;
        assert_eq!((r.status, r.data()), (200, &Json::Null), "outside the scope: {:?}", r.body);
        let r = as_ann(Method::GET, format!("/api/posts:list?{}", filter(json!({"title": "b"}))), None).await;
        assert_eq!(r.column("title"), Vec::<Json>::new(), "a filter cannot widen the scope");

        // X-With-ACL-Meta: which of the answered rows each button works on.
        let r = t
            .send_as(&bearer(&ann), Method::GET, "/api/posts:list?sort=id", &[("x-with-acl-meta", "true")], None)
            .await;
        assert_eq!(
            r.body["meta"]["allowedActions"],
            json!({"view": [1, 3], "update": [1, 3], "destroy": []}),
            "{:?}", r.body
        );
        let r = t
            .send_as(&bearer(&ann), Method::GET, "/api/posts:get/1", &[("x-with-acl-meta", "true")], None)
            .await;
        assert_eq!(r.body["meta"]["allowedActions"]["update"], json!([1]), "{:?}", r.body);
        let r = t.get("/api/posts:list?sort=id").await;
        assert!(r.body["meta"].get("allowedActions").is_none(), "only when asked");

        // update: the scope limits the rows, the field list the columns.
        let r = as_ann(Method::POST, "/api/posts:update/2".into(), Some(json!({"title": "B"}))).await;
        assert!(r.status == 200 || r.status == 403, "{:?}", r.body);
        let r = as_ann(Method::POST, "/api/posts:update/1".into(), Some(json!({"title": "A", "score": 99}))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let rows = t.get("/api/posts:list?sort=id").await;
        assert_eq!(rows.column("title"), [json!("A"), json!("b"), json!("c")]);
        assert_eq!(rows.column("score"), [json!(1), json!(2), json!(3)], "score is not writable");

        // Not granted at all.
        let r = as_ann(Method::POST, "/api/posts:create".into(), Some(json!({"title": "d"}))).await;
        assert_eq!((r.status, r.error()), (403, "No permissions"), "{:?}", r.body);
        let r = as_ann(Method::POST, "/api/posts:destroy/1".into(), None).await;
        assert_eq!(r.status, 403, "{:?}", r.body);
        assert_eq!(t.count("posts").await, 3);

        // roles:check names the role and the configured collection.
        let r = t.main_as(&bearer(&ann), Method::GET, "/api/roles:check", None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["role"], json!("editor"));
        assert_eq!(r.data()["allowConfigure"], json!(false));
        assert!(
            r.data()["meta"]["dataSources"][key]["resources"]
                .as_array()
                .is_some_and(|names| names.contains(&json!("posts"))),
            "{:?}", r.body
        );

        // A new grant applies from the next request, without a restart.
        let r = t
            .main(Method::POST, "/api/dataSourcesRolesResourcesActions:create",
                Some(json!({"rolesResourceId": resource, "name": "create"})))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = as_ann(Method::POST, "/api/posts:create".into(), Some(json!({"title": "d", "status": "published"}))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(t.count("posts").await, 4);
    }
}

every_backend! {
    // Grants are evaluated by every source's ACL: this runs against MongoDB too.
    async fn or_create_looks_up_inside_the_create_scope_and_writes_only_granted_fields() {
        let t = TestApp::new().await;
        let key = t.source_key();
        t.collection(json!({
            "name": "posts",
            "fields": [
                {"name": "title", "type": "string"},
                {"name": "slug", "type": "string", "unique": true},
                {"name": "score", "type": "integer"},
                {"name": "status", "type": "string", "defaultValue": "draft"}
            ]
        }))
        .await;
        t.insert("posts", json!({"title": "x", "slug": "x-1", "score": 1, "status": "draft"})).await;
        let r = t.main(Method::POST, "/api/roles:create", Some(json!({"name": "writer", "title": "Writer"}))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = t
            .main(Method::POST, "/api/dataSourcesRolesResourcesScopes:create", Some(json!({
                "name": "published", "dataSourceKey": key, "resourceName": "posts",
                "scope": {"status": "published"}
            })))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let scope = r.data()["id"].clone();
        let r = t
            .main(Method::POST, "/api/roles/writer/resources:create", Some(json!({
                "name": "posts", "dataSourceKey": key, "usingActionsConfig": true,
                "actions": [{"name": "create", "fields": ["title", "slug", "status"], "scope": scope}]
            })))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let ann = bearer(&t.new_user("ann", &["writer"]).await);

        // The draft "x" is outside the scope: the lookup does not see it, so one new record
        // is made for every caller at once, without the score the grant leaves out.
        let mut callers = tokio::task::JoinSet::new();
        let t = std::sync::Arc::new(t);
        for i in 0..16 {
            let (t, ann) = (t.clone(), ann.clone());
            callers.spawn(async move {
                t.send_as(&ann, Method::POST, "/api/posts:firstOrCreate?filterKeys[]=title", &[],
                    Some(json!({"title": "x", "slug": format!("x-{}", i + 2), "status": "published", "score": 99})))
                    .await
            });
        }
        let replies = callers.join_all().await;
        for r in &replies {
            assert_eq!(r.status, 200, "{:?}", r.body);
            assert_eq!(r.data()["id"], json!(2), "{:?}", r.body);
            assert_eq!(r.data()["score"], json!(null), "score is not writable: {:?}", r.body);
        }

        // updateOrCreate finds the record inside the scope and writes only granted fields.
        let r = t
            .send_as(&ann, Method::POST, "/api/posts:updateOrCreate?filterKeys[]=title", &[],
                Some(json!({"title": "x", "slug": "x-new", "status": "published", "score": 7})))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!((&r.data()["id"], &r.data()["slug"], &r.data()["score"]), (&json!(2), &json!("x-new"), &json!(null)));

        // A unique value held by a record outside the scope: the create is refused and the
        // re-read after it stays inside the scope, so the other record is not answered.
        let r = t
            .send_as(&ann, Method::POST, "/api/posts:firstOrCreate?filterKeys[]=slug", &[],
                Some(json!({"title": "y", "slug": "x-1", "status": "published"})))
            .await;
        assert_eq!((r.status, r.error()), (400, "slug already exists"), "{:?}", r.body);

        let rows = t.get("/api/posts:list?sort=id").await;
        assert_eq!(rows.column("id"), [json!(1), json!(2)]);
        assert_eq!(rows.column("slug"), [json!("x-1"), json!("x-new")]);
        assert_eq!(rows.column("score"), [json!(1), json!(null)], "the draft is untouched");
    }
}

every_backend! {
    // Grants are evaluated by every source's ACL: this runs against MongoDB too.
    async fn anonymous_callers_get_only_what_an_operator_grants() {
        let t = TestApp::new().await;
        t.collection(posts_definition()).await;
        t.insert("posts", json!([{"title": "open", "status": "published"}])).await;
        let r = t.send_as("", Method::GET, "/api/posts:list", &[], None).await;
        refused(&r, "EMPTY_TOKEN", "before the grant");
        let r = t
            .main(Method::POST, "/api/dataSourcesRoles:create", Some(json!({
                "roleName": "anonymous", "dataSourceKey": t.source_key(),
                "strategy": {"actions": ["view"]}
            })))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = t.main(Method::POST, "/api/roles:create", Some(json!({"name": "anonymous"}))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = t.send_as("", Method::GET, "/api/posts:list", &[], None).await;
        assert_eq!((r.status, r.column("title")), (200, vec![json!("open")]), "{:?}", r.body);
        let r = t.send_as("", Method::POST, "/api/posts:create", &[], Some(json!({"title": "x"}))).await;
        refused(&r, "EMPTY_TOKEN", "view only");
    }
}

every_backend! {
    // NocoBase's forms for one data source's permissions: this runs against MongoDB too.
    async fn the_data_source_role_forms_grant_on_that_source() {
        let t = TestApp::new().await;
        let key = t.source_key();
        t.collection(posts_definition()).await;
        t.insert("posts", json!([
            {"title": "a", "status": "published"},
            {"title": "b", "status": "draft"}
        ])).await;
        let r = t.main(Method::POST, "/api/roles:create", Some(json!({"name": "viewer"}))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let ann = t.new_user("ann", &["viewer"]).await;
        let list = || {
            let (t, ann) = (&t, ann.clone());
            async move { t.send_as(&bearer(&ann), Method::GET, "/api/posts:list?sort=id", &[], None).await }
        };
        assert_eq!(list().await.status, 403, "nothing granted yet");

        let roles = format!("/api/dataSources/{key}/roles");
        let r = t
            .main(Method::POST, &format!("{roles}:update?filterByTk=viewer"),
                Some(json!({"strategy": {"actions": ["view"]}})))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["strategy"]["actions"], json!(["view"]));
        let r = list().await;
        assert_eq!((r.status, r.column("title")), (200, vec![json!("a"), json!("b")]), "{:?}", r.body);
        let r = t.main(Method::GET, &format!("{roles}:get?filterByTk=viewer"), None).await;
        assert_eq!(r.data()["strategy"]["actions"], json!(["view"]), "{:?}", r.body);

        let r = t
            .main(Method::POST, &format!("/api/dataSources/{key}/rolesResourcesScopes:create"),
                Some(json!({"name": "published", "resourceName": "posts", "scope": {"status": "published"}})))
            .await;
        assert_eq!((r.status, &r.data()["dataSourceKey"]), (200, &json!(key)), "{:?}", r.body);
        let scope = r.data()["id"].clone();
        let r = t
            .main(Method::POST, &format!("{roles}:update?filterByTk=viewer"), Some(json!({"resources": [{
                "name": "posts", "usingActionsConfig": true,
                "actions": [{"name": "view", "fields": ["title"], "scope": {"id": scope}}]
            }]})))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["resources"][0]["actions"][0]["fields"], json!(["title"]), "{:?}", r.body);
        let r = list().await;
        assert_eq!(r.column("title"), [json!("a")], "{:?}", r.body);
        assert!(r.data()[0].get("status").is_none(), "{:?}", r.body);

        // Only administration edits permissions; bad forms are 4xx.
        let r = t
            .main_as(&bearer(&ann), Method::POST, &format!("{roles}:update?filterByTk=viewer"),
                Some(json!({"strategy": {"actions": ["create"]}})))
            .await;
        assert_eq!(r.status, 403, "{:?}", r.body);
        let r = t.main(Method::GET, "/api/dataSources/nowhere/roles:get?filterByTk=viewer", None).await;
        assert_eq!(r.status, 404, "{:?}", r.body);
        let r = t.main(Method::GET, &format!("{roles}:get?filterByTk=nobody"), None).await;
        assert_eq!(r.status, 404, "{:?}", r.body);
        for (path, body, needle) in [
            (format!("{roles}:update?filterByTk=viewer"), json!({"strategy": {"actions": "everything"}}), "values.strategy"),
            (format!("{roles}:update?filterByTk=viewer"), json!({"resources": {"name": "posts"}}), "values.resources"),
            (format!("{roles}:update?filterByTk=viewer"), json!({"resources": [{"actions": []}]}), "values.resources.0.name"),
            (format!("{roles}:update?filterByTk=viewer"),
                json!({"resources": [{"name": "posts", "actions": [{"name": "view", "fields": "title"}]}]}),
                "values.resources.0.actions.0.fields"),
            (format!("{roles}:update"), json!({"strategy": {"actions": []}}), "filterByTk"),
        ] {
            let r = t.main(Method::POST, &path, Some(body.clone())).await;
            assert_eq!(r.status, 400, "{path} {body}: {:?}", r.body);
            assert!(r.error().contains(needle), "{path} {body}: {}", r.error());
        }
        let r = t.main(Method::GET, &format!("{roles}:list"), None).await;
        let viewer = r.data().as_array().and_then(|all| all.iter().find(|x| x["roleName"] == json!("viewer")));
        assert_eq!(
            viewer.map(|v| v["resources"][0]["actions"][0]["fields"].clone()),
            Some(json!(["title"])),
            "{:?}", r.body
        );
        assert_eq!(list().await.column("title"), [json!("a")], "a refused write changed nothing");
    }
}

every_backend! {
    // Scope variables are resolved by the ACL, whatever the source: this runs on MongoDB too.
    async fn scope_variables_name_the_caller_and_own_records_are_the_callers() {
        let t = TestApp::new().await;
        t.collection(json!({"name": "notes", "fields": [
            {"name": "title", "type": "string"},
            {"name": "role", "type": "string"},
            {"name": "createdById", "type": "integer"}
        ]})).await;
        let r = t.main(Method::POST, "/api/roles:create", Some(json!({"name": "writer"}))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let ann = t.new_user("ann", &["writer", "member"]).await;
        // Written by root: createdById is stamped with the writer, whatever the body says.
        t.insert("notes", json!([
            {"title": "ann", "role": "x"},
            {"title": "bo", "role": "writer", "createdById": 999},
            {"title": "cy", "role": "member"}
        ])).await;
        let r = t
            .main(Method::POST, "/api/dataSourcesRolesResourcesScopes:create", Some(json!({
                "name": "mine by name or role", "dataSourceKey": t.source_key(), "resourceName": "notes",
                "scope": {"$or": [{"title": "{{ $user.username }}"}, {"role": "{{ $nRole }}"}]}
            })))
            .await;
        let scope = r.data()["id"].clone();
        let r = t
            .main(Method::POST, &format!("/api/dataSources/{}/roles:update?filterByTk=writer", t.source_key()),
                Some(json!({"resources": [{"name": "notes", "usingActionsConfig": true,
                    "actions": [{"name": "view", "scope": scope}]}]})))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let list = |role: &'static str| {
            let (t, ann) = (&t, ann.clone());
            async move {
                t.send_as(&bearer(&ann), Method::GET, "/api/notes:list?sort=title", &[("x-role", role)], None).await
            }
        };
        let r = list("writer").await;
        assert_eq!(r.column("title"), [json!("ann"), json!("bo")], "$user.username and $nRole: {:?}", r.body);
        // member's built-in strategy: create, and view:own (records whose createdById is
        // the caller).
        assert_eq!(list("member").await.column("title"), Vec::<Json>::new(), "none are ann's");
        let r = t
            .send_as(&bearer(&ann), Method::POST, "/api/notes:create", &[("x-role", "member")],
                Some(json!({"title": "dan", "createdById": 1})))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = list("member").await;
        assert_eq!(r.column("title"), [json!("dan")], "own records: {:?}", r.body);
    }
}
