//! The connector's wire plumbing against `mssql-mock-tds`, a scripted TDS server running
//! in the test process: no SQL Server is involved, so these tests prove the pool, the
//! login without TLS, parameter binding, row decoding, error mapping and connection
//! handling, not T-SQL semantics (see `tsql_statements.rs` and `live.rs` for those).
//!
//! The mock answers only statements registered with it, matched on their upper-cased
//! text (parameter values are ignored), so the collections here have upper-case names.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use manifold_core::connector::Connector;
use manifold_core::error::ErrorKind;
use manifold_core::filter::parse_filter;
use manifold_core::query::{FindOptions, parse_sort};
use manifold_core::repository::{Repository, WriteFilter, WriteKind, WriteValues};
use manifold_core::schema::{Collection, Field, FieldType, TableName};
use manifold_mssql::repository::statements;
use manifold_mssql::{MssqlConnector, MssqlOptions, MssqlRepository, UNREACHABLE};
use mssql_mock_tds::{
    ColumnDefinition, ColumnValue, ConnectionStore, MockTdsServer, QueryRegistry, QueryResponse,
    Row, SqlDataType, TerminalError,
};
use serde_json::{Value as Json, json};
use tokio::sync::{Mutex, oneshot};

const PASSWORD: &str = "mock-pw-Secret1";

/// A scripted server for one test, stopped when dropped.
struct Mock {
    addr: SocketAddr,
    registry: Arc<Mutex<QueryRegistry>>,
    connections: Arc<Mutex<ConnectionStore>>,
    _shutdown: oneshot::Sender<()>,
}

impl Mock {
    async fn start() -> Self {
        let server = MockTdsServer::new("127.0.0.1:0")
            .await
            .expect("the mock server binds a local port");
        let addr = server.local_addr();
        let registry = server.query_registry();
        let connections = server.connection_store();
        let (shutdown, stop) = oneshot::channel();
        tokio::spawn(async move {
            let _ = server.run_with_shutdown(stop).await;
        });
        let mock = Self {
            addr,
            registry,
            connections,
            _shutdown: shutdown,
        };
        // What the connector asks when it opens: does the schema exist?
        mock.register(
            "SELECT SCHEMA_ID(@P1)",
            QueryResponse::new(
                vec![ColumnDefinition::new("", SqlDataType::Int)],
                vec![Row::new(vec![ColumnValue::Int(1)])],
            ),
        )
        .await;
        mock
    }

    async fn register(&self, sql: &str, response: QueryResponse) {
        self.registry.lock().await.register(sql, response);
    }

    fn options(&self, extra: Json) -> MssqlOptions {
        let mut options = json!({
            "host": self.addr.ip().to_string(),
            "port": self.addr.port(),
            "database": "master",
            "username": "sa",
            "password": PASSWORD,
            "encrypt": "notSupported",
            "schema": "DBO",
        });
        if let (Some(map), Json::Object(extra)) = (options.as_object_mut(), extra) {
            map.extend(extra);
        }
        MssqlOptions::from_json(&options).expect("valid options")
    }

    async fn connect(&self, extra: Json) -> MssqlConnector {
        MssqlConnector::open(&self.options(extra))
            .await
            .expect("the connector logs in to the mock server")
    }
}

/// `DBO.POSTS`, as introspection would describe it.
fn posts() -> Arc<Collection> {
    let mut id = Field::new("ID", FieldType::BigInt);
    id.primary_key = true;
    id.auto_increment = true;
    Arc::new(
        Collection::new(
            "POSTS",
            TableName {
                schema: Some("DBO".into()),
                name: "POSTS".into(),
            },
            vec![
                id,
                Field::new("TITLE", FieldType::String),
                Field::new("SCORE", FieldType::Integer),
                Field::new("BODY", FieldType::Text),
                Field::new("DATA", FieldType::Binary),
                Field::new("TAGS", FieldType::Array),
            ],
        )
        .expect("valid collection"),
    )
}

fn columns() -> Vec<ColumnDefinition> {
    vec![
        ColumnDefinition::new("ID", SqlDataType::BigInt),
        ColumnDefinition::new("TITLE", SqlDataType::NVarChar),
        ColumnDefinition::new("SCORE", SqlDataType::Int),
        ColumnDefinition::new("BODY", SqlDataType::NVarCharMax),
        ColumnDefinition::new("DATA", SqlDataType::VarBinaryMax),
        ColumnDefinition::new("TAGS", SqlDataType::NVarCharMax),
    ]
}

fn utf16(s: &str) -> Vec<Vec<u16>> {
    vec![s.encode_utf16().collect()]
}

fn post_row(id: i64, title: &str, score: Option<i32>) -> Row {
    Row::new(vec![
        ColumnValue::BigInt(id),
        ColumnValue::NVarChar(title.into()),
        score.map_or(ColumnValue::Null, ColumnValue::Int),
        ColumnValue::NVarCharMax(utf16("long body, ünïcode ✓")),
        ColumnValue::VarBinaryMax(vec![vec![1, 2], vec![3]]),
        ColumnValue::NVarCharMax(utf16("[\"a\",1]")),
    ])
}

fn values(collection: &Collection, kind: WriteKind, v: Json) -> WriteValues {
    WriteValues::from_json(collection, &v, kind, &WriteFilter::default(), "values")
        .expect("valid values")
}

fn repo(connector: &MssqlConnector) -> Arc<dyn Repository> {
    connector.repository(posts())
}

#[tokio::test]
async fn connects_through_the_pool_mock_tds_without_tls() {
    let mock = Mock::start().await;
    let connector = mock.connect(json!({})).await;
    let status = connector.pool().status();
    assert_eq!(status.size, 1, "the schema check's connection stays pooled");
    assert_eq!(status.available, 1);
    let store = mock.connections.lock().await;
    let login = store.all().values().last().expect("one login");
    assert!(login.authenticated);
    assert_eq!(login.received_database.as_deref(), Some("master"));
    drop(store);
    connector.close().await;
}

#[tokio::test]
async fn a_missing_schema_mock_tds_is_a_400() {
    let mock = Mock::start().await;
    mock.register(
        "SELECT SCHEMA_ID(@P1)",
        QueryResponse::new(
            vec![ColumnDefinition::new("", SqlDataType::Int)],
            vec![Row::new(vec![ColumnValue::Null])],
        ),
    )
    .await;
    let err = MssqlConnector::open(&mock.options(json!({"schema": "NOPE"})))
        .await
        .err()
        .expect("no such schema");
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(
        err.message().contains("options.schema"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn a_parameterised_find_mock_tds_decodes_every_column_type() {
    let mock = Mock::start().await;
    let connector = mock.connect(json!({})).await;
    let collection = posts();
    let options = FindOptions {
        filter: parse_filter(
            &collection,
            &json!({"SCORE": {"$gt": 3}, "TITLE": {"$includes": "a"}}),
        )
        .expect("valid filter"),
        sort: parse_sort(&collection, &["-SCORE".to_owned(), "ID".to_owned()]).expect("valid sort"),
        limit: Some(20),
        offset: Some(40),
        ..FindOptions::default()
    };
    let sql = statements::find(&collection, &options);
    assert!(
        sql.text.contains("OFFSET 40 ROWS FETCH NEXT 20 ROWS ONLY"),
        "{}",
        sql.text
    );
    mock.register(
        &sql.text,
        QueryResponse::new(
            columns(),
            vec![
                post_row(9_007_199_254_740_993, "alpha", Some(7)),
                post_row(2, "beta", None),
            ],
        ),
    )
    .await;
    let rows = repo(&connector).find(&options).await.expect("find");
    assert_eq!(
        Json::Array(rows.into_iter().map(Json::Object).collect()),
        json!([
            {"ID": "9007199254740993", "TITLE": "alpha", "SCORE": 7,
             "BODY": "long body, ünïcode ✓", "DATA": "AQID", "TAGS": ["a", 1]},
            {"ID": 2, "TITLE": "beta", "SCORE": null,
             "BODY": "long body, ünïcode ✓", "DATA": "AQID", "TAGS": ["a", 1]},
        ])
    );
}

#[tokio::test]
async fn count_mock_tds_reads_count_big() {
    let mock = Mock::start().await;
    let connector = mock.connect(json!({})).await;
    let collection = posts();
    let filter = parse_filter(&collection, &json!({"SCORE": {"$gte": 1}})).expect("valid");
    let sql = statements::count(&collection, filter.as_ref());
    assert!(
        sql.text
            .starts_with("SELECT COUNT_BIG(*) FROM [DBO].[POSTS]"),
        "{}",
        sql.text
    );
    mock.register(
        &sql.text,
        QueryResponse::new(
            vec![ColumnDefinition::new("", SqlDataType::BigInt)],
            vec![Row::new(vec![ColumnValue::BigInt(42)])],
        ),
    )
    .await;
    assert_eq!(repo(&connector).count(filter.as_ref()).await, Ok(42));
}

#[tokio::test]
async fn creates_mock_tds_return_output_inserted_rows_in_one_transaction() {
    let mock = Mock::start().await;
    let connector = mock.connect(json!({"maxConnections": 1})).await;
    let collection = posts();
    let row = values(
        &collection,
        WriteKind::Create,
        json!({"TITLE": "alpha", "SCORE": null, "DATA": "AQID", "TAGS": ["a", 1]}),
    );
    let sql = statements::insert(&collection, &row, &visible(&collection));
    assert_eq!(
        sql.text,
        "INSERT INTO [DBO].[POSTS] ([TITLE], [SCORE], [DATA], [TAGS]) OUTPUT INSERTED.[ID], \
         INSERTED.[TITLE], INSERTED.[SCORE], INSERTED.[BODY], INSERTED.[DATA], INSERTED.[TAGS] \
         VALUES (@P1, @P2, @P3, @P4)"
    );
    mock.register(
        &sql.text,
        QueryResponse::new(columns(), vec![post_row(11, "alpha", None)]),
    )
    .await;
    let repo = repo(&connector);
    let one = repo
        .create(std::slice::from_ref(&row))
        .await
        .expect("create one");
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["ID"], json!(11));
    assert_eq!(one[0]["TAGS"], json!(["a", 1]));

    let two = repo.create(&[row.clone(), row]).await.expect("create two");
    assert_eq!(two.len(), 2);
    // The two inserts ran inside a transaction: their requests carried the descriptor
    // the server handed out at BEGIN (1 in the mock), the single insert did not.
    let store = mock.connections.lock().await;
    let headers: Vec<u64> = store
        .all()
        .values()
        .flat_map(|c| c.transaction_descriptor_headers.iter().map(|(d, _)| *d))
        .collect();
    assert_eq!(
        headers.iter().filter(|d| **d == 1).count(),
        2,
        "{headers:?}"
    );
    assert!(headers.contains(&0), "{headers:?}");
}

#[tokio::test]
async fn a_unit_of_work_mock_tds_writes_in_one_transaction_and_is_discarded_if_dropped() {
    let mock = Mock::start().await;
    let connector = mock.connect(json!({"maxConnections": 2})).await;
    let collection = posts();
    let row = values(&collection, WriteKind::Create, json!({"TITLE": "unit"}));
    let sql = statements::insert(&collection, &row, &visible(&collection));
    mock.register(
        &sql.text,
        QueryResponse::new(columns(), vec![post_row(21, "unit", None)]),
    )
    .await;

    let unit = connector.begin().await.expect("begin");
    let in_unit = unit.repository(collection.clone());
    assert_eq!(
        in_unit
            .create(&[row.clone(), row.clone()])
            .await
            .expect("create two")
            .len(),
        2
    );
    in_unit
        .create(std::slice::from_ref(&row))
        .await
        .expect("create one");
    drop(in_unit);
    unit.commit().await.expect("commit");
    let store = mock.connections.lock().await;
    let in_transaction = store
        .all()
        .values()
        .flat_map(|c| c.transaction_descriptor_headers.iter())
        .filter(|(descriptor, _)| *descriptor == 1)
        .count();
    assert_eq!(
        in_transaction, 3,
        "all three inserts ran in the unit's transaction"
    );
    drop(store);
    let status = connector.pool().status();
    assert_eq!(
        status.available, status.size,
        "the committed unit's connection is back"
    );

    // Dropped without commit (with its repositories): the connection is closed, so the
    // server rolls the transaction back; it does not return to the pool mid-transaction.
    let size = connector.pool().status().size;
    let unit = connector.begin().await.expect("begin");
    let in_unit = unit.repository(collection.clone());
    in_unit.create(&[row]).await.expect("create");
    drop(in_unit);
    drop(unit);
    assert_eq!(connector.pool().status().size, size - 1);
}

fn visible(collection: &Collection) -> Vec<manifold_core::filter::FieldRef> {
    collection
        .fields()
        .iter()
        .map(manifold_core::filter::FieldRef::new)
        .collect()
}

#[tokio::test]
async fn updates_mock_tds_come_back_in_key_order() {
    let mock = Mock::start().await;
    let connector = mock.connect(json!({})).await;
    let collection = posts();
    let change = values(&collection, WriteKind::Update, json!({"TITLE": "new"}));
    let filter = parse_filter(&collection, &json!({"ID": {"$in": [3, 1, 2]}})).expect("valid");
    let sql = statements::update(&collection, &change, filter.as_ref(), &visible(&collection));
    assert_eq!(
        sql.text,
        "UPDATE [DBO].[POSTS] SET [TITLE] = @P1 OUTPUT INSERTED.[ID], INSERTED.[TITLE], \
         INSERTED.[SCORE], INSERTED.[BODY], INSERTED.[DATA], INSERTED.[TAGS] \
         WHERE [ID] IN (@P2, @P3, @P4)"
    );
    mock.register(
        &sql.text,
        QueryResponse::new(
            columns(),
            vec![
                post_row(3, "new", None),
                post_row(1, "new", None),
                post_row(2, "new", None),
            ],
        ),
    )
    .await;
    let rows = repo(&connector)
        .update(filter.as_ref(), &change)
        .await
        .expect("update");
    let ids: Vec<&Json> = rows.iter().map(|r| &r["ID"]).collect();
    assert_eq!(ids, [&json!(1), &json!(2), &json!(3)]);
}

#[tokio::test]
async fn destroy_mock_tds_sends_the_delete_and_maps_its_errors() {
    let mock = Mock::start().await;
    let connector = mock.connect(json!({})).await;
    let collection = posts();
    let filter = parse_filter(&collection, &json!({"SCORE": {"$lt": 0}})).expect("valid");
    let sql = statements::destroy(&collection, filter.as_ref());
    assert_eq!(sql.text, "DELETE FROM [DBO].[POSTS] WHERE [SCORE] < @P1");
    // An error registered for exactly this text proves the text reached the server.
    mock.register(
        &sql.text,
        QueryResponse::error_only(TerminalError::new(
            547,
            16,
            "The DELETE statement conflicted with the REFERENCE constraint \"FK_COMMENTS_POST\". \
             The conflict occurred in database \"master\", table \"DBO.COMMENTS\", column 'POST_ID'.",
        )),
    )
    .await;
    let repo = repo(&connector);
    let err = repo
        .destroy(filter.as_ref())
        .await
        .expect_err("still referenced");
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(
        err.message()
            .contains("foreign key constraint FK_COMMENTS_POST"),
        "{}",
        err.message()
    );
    // The mock's DONE never carries a row count (DONE_COUNT unset), so it reads as 0; the
    // live suite checks real counts.
    mock.register(
        &sql.text,
        QueryResponse::new(
            vec![ColumnDefinition::new("", SqlDataType::Int)],
            Vec::new(),
        ),
    )
    .await;
    assert_eq!(repo.destroy(filter.as_ref()).await, Ok(0));
}

#[tokio::test]
async fn server_errors_mock_tds_become_clean_400s_and_the_connection_survives() {
    let mock = Mock::start().await;
    let connector = mock.connect(json!({"maxConnections": 1})).await;
    let collection = posts();
    let row = values(&collection, WriteKind::Create, json!({"TITLE": "dup"}));
    let sql = statements::insert(&collection, &row, &visible(&collection));
    mock.register(
        &sql.text,
        QueryResponse::error_only(TerminalError::new(
            2627,
            14,
            "Violation of UNIQUE KEY constraint 'UQ_POSTS_TITLE'. Cannot insert duplicate key in \
             object 'DBO.POSTS'. The duplicate key value is (private-value).",
        )),
    )
    .await;
    let repo = repo(&connector);
    let err = repo.create(&[row]).await.expect_err("duplicate");
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert_eq!(err.message(), "UQ_POSTS_TITLE already exists");

    let nulls = values(&collection, WriteKind::Create, json!({"SCORE": 1}));
    let sql = statements::insert(&collection, &nulls, &visible(&collection));
    mock.register(
        &sql.text,
        QueryResponse::error_only(TerminalError::new(
            515,
            16,
            "Cannot insert the value NULL into column 'TITLE', table 'master.DBO.POSTS'; column \
             does not allow nulls. INSERT fails.",
        )),
    )
    .await;
    let err = repo.create(&[nulls]).await.expect_err("not null");
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::BadRequest, "TITLE cannot be null")
    );

    // A server error leaves the session in step: the one pooled connection serves on.
    let status = connector.pool().status();
    assert_eq!((status.size, status.available), (1, 1));
    let sql = statements::count(&collection, None);
    mock.register(
        &sql.text,
        QueryResponse::new(
            vec![ColumnDefinition::new("", SqlDataType::BigInt)],
            vec![Row::new(vec![ColumnValue::BigInt(5)])],
        ),
    )
    .await;
    assert_eq!(repo.count(None).await, Ok(5));
}

#[tokio::test]
async fn nothing_listening_mock_tds_is_a_503_without_the_password() {
    // A port that was just free: nothing accepts on it.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let options = MssqlOptions::from_json(&json!({
        "host": "127.0.0.1", "port": addr.port(), "username": "sa", "password": PASSWORD,
        "encrypt": "notSupported", "acquireTimeoutMs": 500,
    }))
    .expect("valid");
    let started = Instant::now();
    let err = MssqlConnector::open(&options)
        .await
        .err()
        .expect("unreachable");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().starts_with(UNREACHABLE), "{}", err.message());
    assert!(!err.message().contains(PASSWORD), "{}", err.message());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_busy_pool_mock_tds_times_out_acquiring_with_a_503() {
    let mock = Mock::start().await;
    let connector = mock
        .connect(json!({"maxConnections": 1, "acquireTimeoutMs": 200}))
        .await;
    let held = connector.session().await.expect("the only connection");
    let started = Instant::now();
    let err = repo(&connector)
        .count(None)
        .await
        .expect_err("no free connection");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().starts_with(UNREACHABLE), "{}", err.message());
    assert!(err.message().contains("busy"), "{}", err.message());
    assert!(started.elapsed() >= Duration::from_millis(150));
    held.finish();
}

#[tokio::test]
async fn a_slow_statement_mock_tds_is_a_504_and_its_connection_is_closed() {
    let mock = Mock::start().await;
    let connector = mock
        .connect(json!({"maxConnections": 1, "statementTimeoutMs": 200}))
        .await;
    let collection = posts();
    let sql = statements::count(&collection, None);
    mock.register(
        &sql.text,
        QueryResponse::new(
            vec![ColumnDefinition::new("", SqlDataType::BigInt)],
            vec![Row::new(vec![ColumnValue::BigInt(1)])],
        )
        .with_delay(Duration::from_secs(10)),
    )
    .await;
    let started = Instant::now();
    let err = repo(&connector).count(None).await.expect_err("too slow");
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The connection was mid-reply: it is closed, not pooled again.
    assert_eq!(connector.pool().status().size, 0);
}

#[tokio::test]
async fn an_abandoned_operation_mock_tds_discards_its_connection() {
    let mock = Mock::start().await;
    let connector = mock
        .connect(json!({"maxConnections": 1, "statementTimeoutMs": 0}))
        .await;
    let collection = posts();
    let sql = statements::count(&collection, None);
    mock.register(
        &sql.text,
        QueryResponse::new(
            vec![ColumnDefinition::new("", SqlDataType::BigInt)],
            vec![Row::new(vec![ColumnValue::BigInt(1)])],
        )
        .with_delay(Duration::from_secs(10)),
    )
    .await;
    let repo = repo(&connector);
    // The caller gives up (its client left): the operation future is dropped mid-flight.
    let abandoned = tokio::time::timeout(Duration::from_millis(200), repo.count(None)).await;
    assert!(abandoned.is_err());
    assert_eq!(connector.pool().status().size, 0);
    // The next operation gets a fresh connection rather than the half-read one.
    mock.register(
        &sql.text,
        QueryResponse::new(
            vec![ColumnDefinition::new("", SqlDataType::BigInt)],
            vec![Row::new(vec![ColumnValue::BigInt(2)])],
        ),
    )
    .await;
    assert_eq!(repo.count(None).await, Ok(2));
}

#[tokio::test]
async fn too_many_parameters_mock_tds_are_refused_before_anything_is_sent() {
    // The pool points nowhere: a 400 (not a 503) proves nothing was sent.
    let options = MssqlOptions::from_json(&json!({
        "host": "127.0.0.1", "port": 9, "username": "sa", "encrypt": "notSupported",
    }))
    .expect("valid");
    let pool = manifold_mssql::pool::build(&options).expect("pool");
    let collection = posts();
    let repo = MssqlRepository::new(pool, collection.clone(), Duration::from_secs(1));
    // Long IN lists travel as one JSON parameter; 2,500 separate conditions cannot.
    let conditions: Vec<serde_json::Value> = (0..2_500).map(|i| json!({"ID": i})).collect();
    let filter = parse_filter(&collection, &json!({"$or": conditions})).expect("valid");
    let err = repo.count(filter.as_ref()).await.expect_err("too many");
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(err.message().contains("2100"), "{}", err.message());
}
