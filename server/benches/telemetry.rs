//! What tracing costs: `GET /api/posts:get?filterByTk=1` on SQLite through the HTTP
//! endpoint (server span, middleware spans, action span, statement span), with no
//! subscriber (tracing off, as when no `OTEL_*` variable is set) and with the OpenTelemetry
//! layer exporting over OTLP/gRPC to a receiver in this process (tracing on).
//!
//! `cargo bench -p manifold-server --bench telemetry`; the figures are in
//! docs/observability.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use manifold_server::{ServeConfig, build_app, http};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use poem::Endpoint as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// Counts the spans it receives and drops them.
struct Sink(Arc<AtomicUsize>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(n, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn bench(c: &mut Criterion) {
    // The receiver and the exporter's gRPC channel live on their own runtime, as a
    // collector and the exporter's connection would beside a busy server.
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("background runtime");
    let received = Arc::new(AtomicUsize::new(0));
    let port = background.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let sink = TraceServiceServer::new(Sink(received.clone()));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(sink)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        port
    });
    let provider = {
        let _inside = background.enter();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .build()
            .expect("exporter");
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .build()
    };
    let traced = tracing::Dispatch::new(
        tracing_subscriber::Registry::default().with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("manifold"))
                .with_tracked_inactivity(false)
                .with_threads(false)
                .with_location(false)
                .with_level(false)
                .with_target(false),
        ),
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ServeConfig {
        main_db: format!("sqlite://{}/main.sqlite", dir.path().display()),
        ..ServeConfig::default()
    };
    let endpoint = runtime.block_on(async {
        let app = build_app(&config).await.expect("app");
        let endpoint = http::endpoint(app, 1 << 20);
        let create = poem::Request::builder()
            .method(poem::http::Method::POST)
            .uri(poem::http::Uri::from_static("/api/collections:create"))
            .content_type("application/json")
            .body(r#"{"name":"posts","fields":[{"name":"title","type":"string"}]}"#);
        let insert = poem::Request::builder()
            .method(poem::http::Method::POST)
            .uri(poem::http::Uri::from_static("/api/posts:create"))
            .content_type("application/json")
            .body(r#"{"title":"hello"}"#);
        for request in [create, insert] {
            let status = endpoint.call(request).await.expect("answer").status();
            assert_eq!(status, 200);
        }
        endpoint
    });
    let get = || {
        poem::Request::builder()
            .uri(poem::http::Uri::from_static("/api/posts:get?filterByTk=1"))
            .finish()
    };

    let mut group = c.benchmark_group("sqlite_get");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("tracing_off", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = endpoint.call(get()).await.expect("answer");
                assert_eq!(response.status(), 200);
            })
        })
    });
    group.bench_function("tracing_on_otlp_grpc", |b| {
        tracing::dispatcher::with_default(&traced, || {
            // The callsites were registered while no subscriber was interested; ask them
            // again now that one is.
            tracing::callsite::rebuild_interest_cache();
            b.iter(|| {
                runtime.block_on(async {
                    let response = endpoint.call(get()).await.expect("answer");
                    assert_eq!(response.status(), 200);
                })
            })
        })
    });
    group.finish();
    let _ = provider.force_flush();
    eprintln!(
        "spans received by the in-process collector: {}",
        received.load(Ordering::Relaxed)
    );
    let _ = provider.shutdown();
}

criterion_group!(benches, bench);
criterion_main!(benches);
