//! Database events (issue 21) on every connector: the order they fire in, a failing
//! `before*` or `after*` handler aborting the write and changing nothing, and after-commit
//! handlers never seeing a write that was rolled back.

use std::sync::{Arc, Mutex};

use manifold_core::events::{EventHandler, Transaction, WriteEvent};
use manifold_core::query::FindOptions;
use manifold_core::repository::{WriteFilter, WriteKind, WriteValues};
use manifold_core::{Error, Result};
use manifold_tests::{TestApp, every_backend};
use serde_json::{Value as Json, json};

/// What the handlers saw, as `"<event> <title>"` lines in the order they ran.
type Log = Arc<Mutex<Vec<String>>>;

fn lines(log: &Log) -> Vec<String> {
    log.lock().expect("log").clone()
}

fn title(event: &WriteEvent) -> String {
    event
        .record
        .get("title")
        .and_then(Json::as_str)
        .or_else(|| {
            event
                .changes
                .as_ref()
                .and_then(|c| c.get("title"))
                .and_then(Json::as_str)
        })
        .unwrap_or("?")
        .to_owned()
}

/// Writes `"<prefix><event> <title>"` to the log.
struct Record {
    log: Log,
    prefix: &'static str,
}

#[async_trait::async_trait]
impl EventHandler for Record {
    async fn handle(&self, event: &WriteEvent, _tx: &Transaction<'_>) -> Result<()> {
        self.log.lock().expect("log").push(format!(
            "{}{} {}",
            self.prefix,
            event.event.name(),
            title(event)
        ));
        Ok(())
    }
}

/// Refuses a write whose title is `refused`.
struct Refuse;

#[async_trait::async_trait]
impl EventHandler for Refuse {
    async fn handle(&self, event: &WriteEvent, _tx: &Transaction<'_>) -> Result<()> {
        if title(event) == "refused" {
            return Err(Error::bad_request(format!(
                "{}: the title refused is not allowed",
                event.event.name()
            )));
        }
        Ok(())
    }
}

/// Writes an audit row in the write's transaction, then fails when the title is
/// `rolled back`, after the row and the audit row are both written.
struct Audit;

#[async_trait::async_trait]
impl EventHandler for Audit {
    async fn handle(&self, event: &WriteEvent, tx: &Transaction<'_>) -> Result<()> {
        assert!(
            tx.is_transactional(),
            "every connector here has transactions"
        );
        let audit = tx.repository("audit")?;
        let row = WriteValues::from_json(
            audit.collection(),
            &json!({ "note": format!("{} {}", event.event.name(), title(event)) }),
            WriteKind::Create,
            &WriteFilter::default(),
            "audit",
        )?;
        audit.create(&[row]).await?;
        if title(event) == "rolled back" {
            return Err(Error::bad_request("the audit refused this post"));
        }
        Ok(())
    }
}

async fn app_with_posts() -> TestApp {
    let app = TestApp::new().await;
    app.collection(json!({"name": "posts", "fields": [{"name": "title", "type": "string"}]}))
        .await;
    app.collection(json!({"name": "audit", "fields": [{"name": "note", "type": "string"}]}))
        .await;
    app
}

/// The titles of the posts stored, read outside any handler.
async fn titles(app: &TestApp, collection: &str) -> Vec<Json> {
    let r = app
        .get(&format!("/api/{collection}:list?paginate=false&sort=id"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let field = if collection == "audit" {
        "note"
    } else {
        "title"
    };
    r.column(field)
}

every_backend! {
    async fn events_fire_in_nocobase_order_around_create_update_and_destroy() {
        let app = app_with_posts().await;
        let source = app.source();
        let log: Log = Arc::default();
        for event in [
            "beforeCreate", "afterCreate", "beforeUpdate", "afterUpdate", "beforeSave",
            "afterSave", "beforeDestroy", "afterDestroy", "afterCreateWithAssociations",
            "afterUpdateWithAssociations", "afterSaveWithAssociations",
        ] {
            let handler = Arc::new(Record { log: log.clone(), prefix: "" });
            source.events().on(&format!("posts.{event}"), handler).expect("known event");
        }
        // A handler of every collection runs after the collection's own.
        let every = Arc::new(Record { log: log.clone(), prefix: "every " });
        source.events().on("afterCreate", every).expect("known event");
        let committed = log.clone();
        source
            .events()
            .after_commit("posts.afterSave", move |event| {
                let log = committed.clone();
                async move {
                    log.lock().expect("log").push(format!("committed {}", title(&event)));
                    Ok(())
                }
            })
            .expect("known event");

        let created = app.insert("posts", json!({"title": "first"})).await;
        let id = created["id"].clone();
        assert_eq!(
            lines(&log),
            [
                "beforeCreate first", "beforeSave first", "afterCreate first",
                "every afterCreate first", "afterSave first",
                "afterCreateWithAssociations first", "afterSaveWithAssociations first",
                "committed first",
            ]
        );

        log.lock().expect("log").clear();
        let r = app
            .post(&format!("/api/posts:update?filterByTk={id}"), json!({"title": "second"}))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            lines(&log),
            [
                "beforeUpdate first", "beforeSave first", "afterUpdate second",
                "afterSave second", "afterUpdateWithAssociations second",
                "afterSaveWithAssociations second", "committed second",
            ]
        );

        log.lock().expect("log").clear();
        let r = app.post_empty(&format!("/api/posts:destroy?filterByTk={id}")).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(lines(&log), ["beforeDestroy second", "afterDestroy second"]);

        // Another collection's write reaches only the handler of every collection.
        log.lock().expect("log").clear();
        app.insert("audit", json!({"note": "other"})).await;
        assert_eq!(lines(&log), ["every afterCreate ?"]);
    }
}

every_backend! {
    async fn a_failing_before_handler_aborts_the_write_and_changes_nothing() {
        let app = app_with_posts().await;
        let events = app.source().events().clone();
        for event in ["posts.beforeCreate", "posts.beforeUpdate", "posts.beforeDestroy"] {
            events.on(event, Arc::new(Refuse)).expect("known event");
        }
        let created = app.insert("posts", json!([{"title": "kept"}, {"title": "other"}])).await;
        let id = created[0]["id"].clone();

        // One refused row of two: neither is stored.
        let r = app
            .post("/api/posts:create", json!([{"title": "fine"}, {"title": "refused"}]))
            .await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.error(), "beforeCreate: the title refused is not allowed");
        assert_eq!(titles(&app, "posts").await, [json!("kept"), json!("other")]);

        // beforeUpdate sees the row as it was: renaming to `refused` passes, renaming a
        // row called `refused` would not.
        let r = app
            .post(&format!("/api/posts:update?filterByTk={id}"), json!({"title": "refused"}))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = app
            .post(&format!("/api/posts:update?filterByTk={id}"), json!({"title": "again"}))
            .await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.error(), "beforeUpdate: the title refused is not allowed");

        // Destroying both fails on the refused one; the other stays too.
        let r = app
            .post_empty(&format!(
                "/api/posts:destroy?{}",
                manifold_tests::filter(json!({"title": {"$ne": null}}))
            ))
            .await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.error(), "beforeDestroy: the title refused is not allowed");
        assert_eq!(titles(&app, "posts").await, [json!("refused"), json!("other")]);
    }
}

every_backend! {
    async fn a_failing_after_handler_rolls_back_and_after_commit_never_sees_it() {
        let app = app_with_posts().await;
        let events = app.source().events().clone();
        events.on("posts.afterCreate", Arc::new(Audit)).expect("known event");
        let seen: Log = Arc::default();
        let committed = seen.clone();
        events
            .after_commit("posts.afterCreate", move |event| {
                let log = committed.clone();
                async move {
                    log.lock().expect("log").push(title(&event));
                    Ok(())
                }
            })
            .expect("known event");

        app.insert("posts", json!({"title": "kept"})).await;
        // The audit row was written in the post's transaction.
        assert_eq!(titles(&app, "audit").await, [json!("afterCreate kept")]);

        let r = app
            .post("/api/posts:create", json!([{"title": "also"}, {"title": "rolled back"}]))
            .await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.error(), "the audit refused this post");
        assert_eq!(titles(&app, "posts").await, [json!("kept")]);
        assert_eq!(titles(&app, "audit").await, [json!("afterCreate kept")]);
        assert_eq!(lines(&seen), ["kept"]);

        // The same through the repository, outside any request.
        let (_, posts) = app.source().collection("posts").expect("posts");
        let row = WriteValues::from_json(
            posts.collection(),
            &json!({"title": "rolled back"}),
            WriteKind::Create,
            &WriteFilter::default(),
            "values",
        )
        .expect("values");
        let e = posts.create(&[row]).await.expect_err("the audit refuses it");
        assert_eq!(e.message(), "the audit refused this post");
        let stored = posts.count(None).await.expect("count");
        assert_eq!(stored, 1);
        let all = posts.find(&FindOptions::default()).await.expect("find");
        assert_eq!(all.len(), 1);
        assert_eq!(lines(&seen), ["kept"]);
    }
}

every_backend! {
    #[skip(mongodb)]
    async fn with_associations_events_fire_after_nested_values_are_written() {
        let app = TestApp::new().await;
        app.collection(json!({"name": "tags", "fields": [{"name": "name", "type": "string"}]}))
            .await;
        app.collection(json!({
            "name": "posts",
            "fields": [
                {"name": "title", "type": "string"},
                {"name": "tags", "type": "belongsToMany", "target": "tags"}
            ]
        }))
        .await;
        let seen: Log = Arc::default();

        /// Counts the post's tags when the post's associations are written.
        struct CountTags(Log);

        #[async_trait::async_trait]
        impl EventHandler for CountTags {
            async fn handle(&self, event: &WriteEvent, tx: &Transaction<'_>) -> Result<()> {
                let tags = tx.repository("tags")?.count(None).await?;
                self.0
                    .lock()
                    .expect("log")
                    .push(format!("{} {} tags={tags}", event.event.name(), title(event)));
                Ok(())
            }
        }

        let events = app.source().events().clone();
        for event in ["posts.afterCreate", "posts.afterCreateWithAssociations"] {
            events.on(event, Arc::new(CountTags(seen.clone()))).expect("known event");
        }
        app.insert(
            "posts",
            json!({"title": "tagged", "tags": [{"name": "a"}, {"name": "b"}]}),
        )
        .await;
        assert_eq!(
            lines(&seen),
            ["afterCreate tagged tags=0", "afterCreateWithAssociations tagged tags=2"]
        );
    }
}

#[test]
fn an_unknown_event_name_is_refused_with_the_names_there_are() {
    let events = manifold_core::events::DbEvents::default();
    let e = events
        .on("posts.afterInsert", Arc::new(Refuse))
        .expect_err("no such event");
    assert!(e.message().contains("posts.afterInsert"), "{}", e.message());
    assert!(e.message().contains("afterCreate"), "{}", e.message());
}

#[tokio::test]
async fn a_handler_that_sets_itself_off_stops_at_the_depth_limit() {
    let app = app_with_posts().await;
    let source = app.source();
    let echoes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (seen, weak) = (echoes.clone(), Arc::downgrade(&source));
    // Each committed post writes another through the source's repository, which fires
    // the same event again: without a limit this never ends.
    source
        .events()
        .after_commit("posts.afterCreate", move |_event| {
            let (seen, weak) = (seen.clone(), weak.clone());
            async move {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let source = weak.upgrade().ok_or_else(|| Error::internal("gone"))?;
                let (_, posts) = source
                    .collection("posts")
                    .ok_or_else(|| Error::internal("no posts"))?;
                let row = WriteValues::from_json(
                    posts.collection(),
                    &json!({"title": "echo"}),
                    WriteKind::Create,
                    &WriteFilter::default(),
                    "values",
                )?;
                posts.create(&[row]).await.map(|_| ())
            }
        })
        .expect("known event");

    app.insert("posts", json!({"title": "first"})).await;
    let stored = titles(&app, "posts").await;
    assert_eq!(stored.len(), manifold_core::data_source::MAX_EVENT_DEPTH);
    assert_eq!(
        echoes.load(std::sync::atomic::Ordering::SeqCst),
        manifold_core::data_source::MAX_EVENT_DEPTH
    );
}

#[tokio::test]
async fn an_update_or_destroy_past_the_event_row_limit_is_refused_and_changes_nothing() {
    use manifold_core::data_source::MAX_EVENT_ROWS;
    let app = app_with_posts().await;
    let source = app.source();
    let (_, posts) = source.collection("posts").expect("posts");
    // Written before anyone listens: no events, no limit.
    for chunk in 0..=MAX_EVENT_ROWS / 1000 {
        let rows: Vec<WriteValues> = (0..1000)
            .map(|i| {
                WriteValues::from_json(
                    posts.collection(),
                    &json!({"title": format!("p{}", chunk * 1000 + i)}),
                    WriteKind::Create,
                    &WriteFilter::default(),
                    "values",
                )
                .expect("values")
            })
            .collect();
        posts.create(&rows).await.expect("create");
    }
    let stored = posts.count(None).await.expect("count");
    assert!(stored > MAX_EVENT_ROWS as u64, "{stored}");

    let log: Log = Arc::default();
    for event in ["posts.afterUpdate", "posts.beforeDestroy"] {
        let handler = Arc::new(Record {
            log: log.clone(),
            prefix: "",
        });
        source.events().on(event, handler).expect("known event");
    }
    let every = manifold_tests::filter(json!({"title": {"$ne": null}}));
    let expected = format!(
        "this write matches more than {MAX_EVENT_ROWS} rows of collection posts, whose \
         database events run for each row; narrow filter or filterByTk"
    );
    let r = app
        .post(
            &format!("/api/posts:update?{every}"),
            json!({"title": "same"}),
        )
        .await;
    assert_eq!((r.status, r.error()), (400, expected.as_str()));
    let r = app.post_empty(&format!("/api/posts:destroy?{every}")).await;
    assert_eq!((r.status, r.error()), (400, expected.as_str()));
    assert_eq!(posts.count(None).await.expect("count"), stored);
    assert!(lines(&log).is_empty(), "{:?}", lines(&log));

    // Within the limit, the same write goes through with its events.
    let r = app
        .post(
            &format!(
                "/api/posts:update?{}",
                manifold_tests::filter(json!({"title": "p1"}))
            ),
            json!({"title": "renamed"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(lines(&log), ["afterUpdate renamed"]);
}
