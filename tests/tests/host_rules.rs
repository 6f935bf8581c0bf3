//! The host rules hold for every place a driver connects to: query parameters that move
//! the connection (`?host=`, `?hostaddr=`, `?socket=`), other spellings of an address
//! (`::ffff:…`, `0.0.0.0`), Unix sockets, MongoDB seed lists and SQL Server connection
//! strings. A refused target is refused before anything connects.

use std::time::Duration;

use manifold_tests::{Backend, ScratchDatabase, TestApp, server_credentials};
use serde_json::{Value as Json, json};

/// Loopback and `localhost` denied, as the probe ran it.
fn deny_loopback(c: &mut manifold_server::ServeConfig) {
    c.denied_hosts = [
        "127.0.0.0/8",
        "::1/128",
        "localhost",
        "169.254.0.0/16",
        "fe80::/10",
    ]
    .map(String::from)
    .to_vec();
}

/// Sends `options` of type `kind` to `testConnection` and to `create`, and expects both
/// refused with `status` and a message starting with `message`; nothing is stored.
async fn refused(t: &TestApp, kind: &str, options: Json, status: u16, message: &str) {
    let r = t
        .post(
            "/api/dataSources:testConnection",
            json!({"type": kind, "options": options}),
        )
        .await;
    assert_eq!(r.status, status, "testConnection {options}: {:?}", r.body);
    assert!(
        r.error().starts_with(message),
        "testConnection {options}: {}",
        r.error()
    );
    for enabled in [true, false] {
        let r = t
            .post(
                "/api/dataSources:create",
                json!({"key": "probe", "type": kind, "options": options, "enabled": enabled}),
            )
            .await;
        assert_eq!(r.status, status, "create {options}: {:?}", r.body);
        assert!(
            r.error().starts_with(message),
            "create {options}: {}",
            r.error()
        );
    }
    let r = t.get("/api/dataSources:get/probe").await;
    assert_eq!(r.data(), &Json::Null, "nothing stored for {options}");
}

fn pg_url(query: &str) -> Json {
    json!({ "url": format!("postgres://postgres@127.0.0.1:5432/postgres?{query}") })
}

#[tokio::test]
async fn the_default_rules_follow_query_parameters_and_mapped_addresses() {
    let t = TestApp::new().await;
    let denied = "host 169.254.169.254 is not allowed";
    refused(&t, "postgres", pg_url("host=169.254.169.254"), 403, denied).await;
    refused(
        &t,
        "postgres",
        pg_url("hostaddr=169.254.169.254"),
        403,
        denied,
    )
    .await;
    refused(
        &t,
        "postgres",
        pg_url("ho%73t=169.254.169.254"),
        403,
        denied,
    )
    .await;
    refused(
        &t,
        "postgres",
        json!({"host": "::ffff:169.254.169.254", "database": "x", "username": "u"}),
        403,
        "host ::ffff:169.254.169.254 is not allowed",
    )
    .await;
    refused(
        &t,
        "mysql",
        json!({"host": "::ffff:a9fe:a9fe", "database": "x", "username": "u"}),
        403,
        "host ::ffff:a9fe:a9fe is not allowed",
    )
    .await;
}

#[tokio::test]
async fn denied_loopback_cannot_be_reached_another_way() {
    let t = TestApp::with(deny_loopback).await;
    let pg = |host: &str| json!({"host": host, "port": 5432, "database": "postgres", "username": "postgres"});
    for host in ["::ffff:127.0.0.1", "0.0.0.0", "::", "127.1", "LocalHost."] {
        refused(&t, "postgres", pg(host), 403, "host ").await;
    }
    refused(
        &t,
        "postgres",
        pg_url("host=127.0.0.1"),
        403,
        "host 127.0.0.1 is not allowed",
    )
    .await;
    refused(
        &t,
        "postgres",
        pg_url("hostaddr=127.0.0.1"),
        403,
        "host 127.0.0.1 is not allowed",
    )
    .await;
    refused(
        &t,
        "mariadb",
        json!({"url": "mysql://root@[::ffff:127.0.0.1]:3306/mysql"}),
        403,
        // The URL parser writes the address in its canonical form.
        "host ::ffff:7f00:1 is not allowed",
    )
    .await;
}

#[tokio::test]
async fn unix_sockets_are_refused_unless_the_operator_allows_them() {
    let t = TestApp::new().await;
    let socket = "Unix socket /var/run/postgresql is not allowed";
    refused(
        &t,
        "postgres",
        pg_url("host=/var/run/postgresql"),
        403,
        socket,
    )
    .await;
    refused(
        &t,
        "postgres",
        json!({"url": "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres"}),
        403,
        socket,
    )
    .await;
    refused(
        &t,
        "postgres",
        json!({"host": "/var/run/postgresql", "database": "postgres", "username": "postgres"}),
        403,
        socket,
    )
    .await;
    let mysql_socket =
        json!({"url": "mysql://root@127.0.0.1:3306/mysql?socket=/run/mysqld/mysqld.sock"});
    refused(
        &t,
        "mysql",
        mysql_socket.clone(),
        403,
        "Unix socket /run/mysqld/mysqld.sock is not allowed",
    )
    .await;
    refused(
        &t,
        "mongodb",
        json!({"url": "mongodb://%2Ftmp%2Fmongodb-27017.sock/app"}),
        403,
        "Unix socket /tmp/mongodb-27017.sock is not allowed",
    )
    .await;

    // With the option on, the same sockets are used (and reach the local servers).
    let t = TestApp::with(|c| c.allow_unix_sockets = true).await;
    for (kind, options) in [
        ("postgres", pg_url("host=/var/run/postgresql")),
        ("mysql", mysql_socket),
    ] {
        let r = t
            .post(
                "/api/dataSources:testConnection",
                json!({"type": kind, "options": options}),
            )
            .await;
        assert_eq!(r.data(), &json!({"success": true}), "{kind}: {:?}", r.body);
    }
}

#[tokio::test]
async fn an_allow_list_is_checked_against_where_the_driver_goes() {
    let t = TestApp::with(|c| c.allowed_hosts = vec!["10.0.0.0/8".into()]).await;
    refused(
        &t,
        "postgres",
        json!({"url": "postgres://postgres@10.1.1.1:5432/postgres?host=127.0.0.1"}),
        403,
        "host 127.0.0.1 is not allowed for data sources (not in the allow list",
    )
    .await;
}

#[tokio::test]
async fn mongodb_seed_lists_and_srv_records() {
    let t = TestApp::new().await;
    refused(
        &t,
        "mongodb",
        json!({"url": "mongodb://127.0.0.1:27017,169.254.169.254:27017/app"}),
        403,
        "host 169.254.169.254 is not allowed",
    )
    .await;
    refused(
        &t,
        "mongodb",
        json!({"url": "mongodb://[::ffff:169.254.169.254]:27017/app"}),
        403,
        "host ::ffff:169.254.169.254 is not allowed",
    )
    .await;
    refused(
        &t,
        "mongodb",
        json!({"url": "mongodb+srv://cluster0.example.com/app"}),
        400,
        "options.url: expected a mongodb:// URL listing its hosts; mongodb+srv:// is not supported",
    )
    .await;
    let t = TestApp::with(deny_loopback).await;
    refused(
        &t,
        "mongodb",
        json!({"host": "0.0.0.0", "database": "app"}),
        403,
        "host 0.0.0.0 is not allowed",
    )
    .await;
}

#[tokio::test]
async fn sql_server_connection_strings_are_checked() {
    let t = TestApp::new().await;
    refused(
        &t,
        "mssql",
        json!({"url": "server=tcp:169.254.169.254,1433;user=sa;password=x;encrypt=DANGER_PLAINTEXT"}),
        403,
        "host 169.254.169.254 is not allowed",
    )
    .await;
    refused(
        &t,
        "mssql",
        json!({"url": "Data Source=[::ffff:169.254.169.254],1433;user=sa;encrypt=DANGER_PLAINTEXT"}),
        403,
        "host ::ffff:169.254.169.254 is not allowed",
    )
    .await;
    let t = TestApp::with(deny_loopback).await;
    refused(
        &t,
        "mssql",
        json!({"url": "server=(local);user=sa;encrypt=DANGER_PLAINTEXT"}),
        403,
        "host localhost is not allowed",
    )
    .await;
    refused(
        &t,
        "mssql",
        json!({"host": "0.0.0.0", "username": "sa", "encrypt": "notSupported"}),
        403,
        "host 0.0.0.0 is not allowed",
    )
    .await;
}

/// An update is held to the same rules, enabled or not.
#[tokio::test]
async fn an_update_cannot_move_a_source_to_a_refused_host() {
    let t = TestApp::new().await;
    let r = t
        .post(
            "/api/dataSources:create",
            json!({"key": "moved", "type": "postgres", "enabled": false,
                   "options": {"url": "postgres://postgres@127.0.0.1:5432/postgres"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for enabled in [false, true] {
        let r = t
            .post(
                "/api/dataSources:update/moved",
                json!({"enabled": enabled, "options": {"url": "postgres://postgres@127.0.0.1:5432/postgres?hostaddr=169.254.169.254"}}),
            )
            .await;
        assert_eq!(r.status, 403, "enabled {enabled}: {:?}", r.body);
    }
    let r = t.get("/api/dataSources:get/moved").await;
    assert_eq!(
        r.data()["options"]["url"],
        json!("postgres://postgres@127.0.0.1:5432/postgres"),
        "the stored options are unchanged"
    );
}

/// `testConnection` is no port scanner: a refused target sees no connection at all.
#[tokio::test]
async fn a_refused_target_is_never_connected_to() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let t = TestApp::with(deny_loopback).await;
    let probes = [
        (
            "postgres",
            json!({"url": format!("postgres://u@10.0.0.1/x?host=127.0.0.1&port={port}")}),
        ),
        (
            "postgres",
            json!({"url": format!("postgres://u@10.0.0.1/x?hostaddr=127.0.0.1&port={port}")}),
        ),
        (
            "postgres",
            json!({"host": "0.0.0.0", "port": port, "database": "x", "username": "u"}),
        ),
        (
            "mysql",
            json!({"url": format!("mysql://u@[::ffff:127.0.0.1]:{port}/x")}),
        ),
        (
            "mongodb",
            json!({"url": format!("mongodb://10.0.0.1,127.0.0.1:{port}/x")}),
        ),
        (
            "mssql",
            json!({"url": format!("server=tcp:0.0.0.0,{port};user=sa;encrypt=DANGER_PLAINTEXT")}),
        ),
    ];
    for (kind, options) in probes {
        let r = t
            .post(
                "/api/dataSources:testConnection",
                json!({"type": kind, "options": options}),
            )
            .await;
        assert_eq!(r.status, 403, "{kind} {options}: {:?}", r.body);
    }
    let accepted = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(accepted.is_err(), "something connected to the refused port");
}

/// The rules follow the parameters without getting in the way of a source whose
/// parameters point somewhere allowed.
#[tokio::test]
async fn a_redirect_to_an_allowed_host_still_connects() {
    let db = ScratchDatabase::create(Backend::Postgres).await;
    let (user, _) = server_credentials(Backend::Postgres);
    let t = TestApp::with(|c| c.allowed_hosts = vec!["127.0.0.1".into()]).await;
    let options = json!({
        "url": format!("postgres://{user}@db.invalid:5432/{}?host=127.0.0.1", db.name())
    });
    let r = t
        .post(
            "/api/dataSources:create",
            json!({"key": "viaparam", "type": "postgres", "options": options}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(t.settled("viaparam").await["status"], json!("loaded"));
}
