//! Error messages in the client's language: `X-Locale` (or `?locale=`) picks the
//! catalogue, a region or a bare language falls back to its language, anything else gets
//! the English message; a plugin adds messages of its own, and a catalogue of its that
//! does not parse stops the start.

use std::sync::Arc;

use manifold_core::acl::AllowCondition;
use manifold_core::middleware::{Middleware, Next};
use manifold_core::resource::ResourceDefinition;
use manifold_core::{Context, Error, Result};
use manifold_server::i18n::{I18n, requested_locale};
use manifold_server::{Plugin, PluginContext};
use manifold_tests::{Extensions, MainDb, Reply, TestApp, filter, posts_definition};
use poem::http::Method;
use serde_json::json;

/// `GET path` with `X-Locale: locale` (none for `None`), as root.
async fn get_in(t: &TestApp, locale: Option<&str>, path: &str) -> Reply {
    let headers: Vec<(&str, &str)> = locale.map(|l| ("x-locale", l)).into_iter().collect();
    t.send(Method::GET, path, &headers, None).await
}

#[tokio::test]
async fn the_same_bad_request_is_answered_in_the_requested_language() {
    let t = TestApp::new().await;
    t.collection(posts_definition()).await;
    let path = format!("/api/posts:list?{}", filter(json!({ "score": "abc" })));

    let english = "filter.score: expected an integer, got \"abc\"";
    let chinese = "filter.score：应为整数，实际为 \"abc\"";
    let french = "filter.score : valeur attendue : un nombre entier, reçu : \"abc\"";
    let cases = [
        (None, english),
        (Some("en-US"), english),
        (Some("zh-CN"), chinese),
        (Some("fr-FR"), french),
        // A region of a language with a catalogue, or the bare language.
        (Some("fr-CA"), french),
        (Some("zh"), chinese),
        (Some("zh_cn"), chinese),
        (Some("fr-CA,fr;q=0.9,en;q=0.8"), french),
        // No catalogue, or not a language tag at all: English, never an error.
        (Some("de-DE"), english),
        (Some("*"), english),
        (Some("%%%"), english),
    ];
    for (locale, expected) in cases {
        let r = get_in(&t, locale, &path).await;
        assert_eq!(r.status, 400, "{locale:?}: {:?}", r.body);
        assert_eq!(r.error(), expected, "{locale:?}");
    }
    let long = "fr-FR".repeat(20);
    let r = get_in(&t, Some(&long), &path).await;
    assert_eq!(
        (r.status, r.error()),
        (400, english),
        "an overlong X-Locale"
    );

    // NocoBase also reads `?locale=` (for links); the header wins over it.
    let r = get_in(&t, None, &format!("{path}&locale=zh-CN")).await;
    assert_eq!(r.error(), chinese);
    let r = get_in(&t, Some("fr-FR"), &format!("{path}&locale=zh-CN")).await;
    assert_eq!(r.error(), french);
}

#[tokio::test]
async fn codes_stay_and_other_errors_are_translated_too() {
    let t = TestApp::new().await;
    t.collection(posts_definition()).await;

    // 401: the code is the same in every language.
    let r = t
        .anonymous(
            Method::GET,
            "/api/posts:list",
            &[("x-locale", "zh-CN")],
            None,
        )
        .await;
    assert_eq!(r.status, 401, "{:?}", r.body);
    assert_eq!(
        r.body,
        json!({ "errors": [{ "message": "尚未登录，请登录后继续。", "code": "EMPTY_TOKEN" }] })
    );
    let r = t.anonymous(Method::GET, "/api/posts:list", &[], None).await;
    assert_eq!(
        r.body,
        json!({ "errors": [{
            "message": "Unauthenticated. Please sign in to continue.",
            "code": "EMPTY_TOKEN"
        }] })
    );

    // 400 on a sign-in without an account.
    let r = t
        .anonymous(
            Method::POST,
            "/api/auth:signIn",
            &[("x-locale", "fr-FR"), ("content-type", "application/json")],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.error(),
        "Veuillez saisir votre nom d’utilisateur ou votre adresse e-mail"
    );

    // An unknown filter operator.
    let path = format!(
        "/api/posts:list?{}",
        filter(json!({ "score": { "$between2": [1, 2] } }))
    );
    let r = get_in(&t, Some("zh-CN"), &path).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(
        r.error()
            .starts_with("filter.score.$between2：未知的运算符 \"$between2\"；支持的运算符：$eq "),
        "{}",
        r.error()
    );

    // An unknown field.
    let path = format!("/api/posts:list?{}", filter(json!({ "scor": 1 })));
    let r = get_in(&t, Some("fr-FR"), &path).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.error(),
        "filter.scor : champ inconnu \"scor\" dans la collection posts"
    );

    // An error without an id stays English whatever the locale.
    let r = get_in(&t, Some("zh-CN"), "/api/posts:list?pageSize=5000").await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.error(),
        "pageSize 5000 is larger than the maximum of 1000; use page to walk further"
    );

    // A path outside the API.
    let r = get_in(&t, Some("fr-FR"), "/nothing-here").await;
    assert_eq!((r.status, r.error()), (404, "Introuvable"), "{:?}", r.body);

    // An unknown collection, through its fields.
    let r = get_in(
        &t,
        Some("zh-CN"),
        "/api/dataSourcesCollections/main.nothing/fields:list",
    )
    .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    assert_eq!(r.error(), "数据源 main 中不存在数据表 nothing");
}

/// Answers `quota:check` with a 429 of the plugin's own message, and `quota:status` with
/// a sentence from its catalogue.
struct Quota;

const QUOTA_EN: &str = "quota-exceeded = You have used all { $limit } requests of your plan\n\
                        quota-status = { $used } of { $limit } requests used\n";
const QUOTA_ZH: &str = "quota-exceeded = 您已用完套餐中的全部 { $limit } 次请求\n\
                        quota-status = 已使用 { $used }/{ $limit } 次请求\n";

#[async_trait::async_trait]
impl Plugin for Quota {
    fn name(&self) -> &str {
        "quota"
    }

    async fn load(&self, app: &mut PluginContext<'_>) -> Result<()> {
        // Only English and Chinese: French callers get the English message.
        app.i18n().add_messages("en-US", QUOTA_EN)?;
        app.i18n().add_messages("zh-CN", QUOTA_ZH)?;
        let i18n = app.i18n().clone();
        app.main().resource_manager().define(
            ResourceDefinition::new("quota")
                .action("check", Arc::new(Exceeded))
                .action("status", Arc::new(Status(i18n))),
        );
        app.main()
            .acl()
            .allow("quota", "check", AllowCondition::Public);
        app.main()
            .acl()
            .allow("quota", "status", AllowCondition::Public);
        app.data_sources().declare_read_action("check");
        app.data_sources().declare_read_action("status");
        Ok(())
    }
}

struct Exceeded;

#[async_trait::async_trait]
impl Middleware for Exceeded {
    async fn handle(&self, _ctx: &mut Context, _next: Next<'_>) -> Result<()> {
        Err(Error::new(
            manifold_core::ErrorKind::TooManyRequests,
            "You have used all 100 requests of your plan",
        )
        .with_message_id("quota-exceeded", vec![("limit", "100".into())]))
    }
}

struct Status(Arc<I18n>);

#[async_trait::async_trait]
impl Middleware for Status {
    async fn handle(&self, ctx: &mut Context, _next: Next<'_>) -> Result<()> {
        let locale = requested_locale(&ctx.request);
        let args = [("used", "7".to_owned()), ("limit", "100".to_owned())];
        let text = self
            .0
            .translate(locale.as_deref(), "quota-status", &args)
            .ok_or_else(|| Error::internal("quota-status is missing"))?;
        ctx.body = Some(json!({ "status": text }));
        Ok(())
    }
}

#[tokio::test]
async fn a_plugin_fails_and_answers_with_messages_of_its_own_catalogue() {
    let t = TestApp::with_plugins(vec![Arc::new(Quota)]).await;
    let check = |locale: &'static str| {
        let t = &t;
        async move {
            let r = t
                .anonymous(
                    Method::GET,
                    "/api/quota:check",
                    &[("x-locale", locale)],
                    None,
                )
                .await;
            assert_eq!(r.status, 429, "{:?}", r.body);
            r.error().to_owned()
        }
    };
    assert_eq!(check("zh-CN").await, "您已用完套餐中的全部 100 次请求");
    assert_eq!(check("zh-TW").await, "您已用完套餐中的全部 100 次请求");
    assert_eq!(
        check("fr-FR").await,
        "You have used all 100 requests of your plan"
    );
    assert_eq!(
        check("en-US").await,
        "You have used all 100 requests of your plan"
    );

    let status = |locale: &'static str| {
        let t = &t;
        async move {
            let r = t
                .anonymous(
                    Method::GET,
                    "/api/quota:status",
                    &[("x-locale", locale)],
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            r.data()["status"].as_str().unwrap_or_default().to_owned()
        }
    };
    assert_eq!(status("zh-CN").await, "已使用 7/100 次请求");
    // No French catalogue of the plugin's: its English one.
    assert_eq!(status("fr-FR").await, "7 of 100 requests used");

    // The built-in messages are still there beside the plugin's.
    assert_eq!(
        t.app.i18n().locales(),
        ["en-US", "zh-CN", "fr-FR"],
        "the plugin added to existing locales"
    );
}

/// Adds a French catalogue that does not parse (a placeable never closed, on line 2).
struct BadMessages;

#[async_trait::async_trait]
impl Plugin for BadMessages {
    fn name(&self) -> &str {
        "bad-messages"
    }

    async fn load(&self, app: &mut PluginContext<'_>) -> Result<()> {
        app.i18n().add_messages(
            "fr-FR",
            "bad-hello = Bonjour\nbad-bye = Au revoir { $name\n",
        )?;
        Ok(())
    }
}

#[tokio::test]
async fn a_plugin_catalogue_that_does_not_parse_stops_the_start() {
    let extensions = Extensions {
        connectors: Vec::new(),
        plugins: vec![Arc::new(BadMessages)],
    };
    let e = match MainDb::create()
        .await
        .start_offering(|_| {}, extensions)
        .await
    {
        Ok(_) => panic!("the app started"),
        Err((_, e)) => e.to_string(),
    };
    assert!(
        e.starts_with("plugin bad-messages: messages for fr-FR: line 2: "),
        "{e}"
    );
}

#[tokio::test]
async fn routing_errors_and_the_write_guard_are_translated() {
    let t = TestApp::new().await;
    t.collection(posts_definition()).await;

    let r = get_in(&t, Some("zh-CN"), "/api/nothing:list").await;
    assert_eq!((r.status, r.error()), (404, "资源 nothing 不存在"));
    let r = t
        .send(
            Method::POST,
            "/api/posts:fly",
            &[("x-locale", "fr-FR")],
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (404, "la ressource posts n’a pas d’action fly")
    );
    let r = t.send(Method::POST, "/api/posts:fly", &[], None).await;
    assert_eq!(
        (r.status, r.error()),
        (404, "resource posts has no action fly")
    );

    let r = t
        .send(
            Method::GET,
            "/api/posts:list",
            &[("x-locale", "fr-FR"), ("x-data-source", "nowhere")],
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (404, "la source de données nowhere n’existe pas")
    );

    let r = t
        .send(
            Method::POST,
            "/api/posts:destroy",
            &[("x-locale", "zh-CN")],
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "执行 destroy 操作需要 filter 或 filterByTk")
    );
}
