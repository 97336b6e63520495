//! OpenTelemetry: with an OTLP endpoint configured, HTTP requests become spans that reach a
//! collector. The collector is an in-test OTLP/gRPC server. (Its own test binary: the
//! subscriber it installs is global to the process.)

mod common;

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use reredis::observe::tracing::{Otlp, install};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

struct Collector(mpsc::Sender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let _ = self.0.send(req.into_inner()).await;
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// (service.name, span names) of an export.
fn spans_of(req: &ExportTraceServiceRequest) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
            .and_then(|a| a.value.as_ref()?.value.as_ref())
            .map(|v| match v {
                AnyValue::StringValue(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                out.push((service.clone(), s.name.clone()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_become_spans_at_an_otlp_collector() {
    let (tx, mut rx) = mpsc::channel(64);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = {
        let stop = stop.clone();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Collector(tx)))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    stop.cancelled_owned(),
                ),
        )
    };

    let guard = install("text", "notice", Otlp::Endpoint(format!("http://{addr}")));
    let node = common::start_node(&[]).await;
    let r = reqwest::get(format!("http://{}/api/v1/info", node.http_addr()))
        .await
        .unwrap();
    assert!(r.status().is_success());
    node.shutdown().await;
    // Dropping the guard flushes the batch; it blocks, so off the runtime's workers.
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen
        .iter()
        .any(|(_, name): &(String, String)| name == "GET /api/v1/info")
    {
        let req = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("spans before the deadline")
            .expect("collector running");
        seen.extend(spans_of(&req));
    }
    assert!(
        seen.iter()
            .any(|(svc, name)| svc == "reredis" && name == "GET /api/v1/info"),
        "{seen:?}"
    );
    stop.cancel();
    server.await.unwrap().unwrap();
}
