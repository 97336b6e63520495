//! OpenTelemetry: with an OTLP endpoint configured, HTTP requests become spans that reach a
//! collector, and a request forwarded over the cluster bus continues the same trace on the
//! owning node. The collector is an in-test OTLP/gRPC server. (Its own test binary: the
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

/// A span as the collector got it.
#[derive(Debug, Clone)]
struct Seen {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

/// The spans of an export.
fn spans_of(req: &ExportTraceServiceRequest) -> Vec<Seen> {
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
                out.push(Seen {
                    service: service.clone(),
                    name: s.name.clone(),
                    trace_id: s.trace_id.clone(),
                    span_id: s.span_id.clone(),
                    parent_span_id: s.parent_span_id.clone(),
                });
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
    // Two clustered nodes, so that a key request on one is forwarded to the other.
    let dir = tempfile::tempdir().unwrap();
    let settings = [
        ("cluster.enabled", "yes"),
        ("dir", dir.path().to_str().unwrap()),
        ("http.allow-writes", "yes"),
        ("cluster.rebalance-delay", "300"),
    ];
    let node = common::start_node(&settings).await;
    let other = common::start_node(&settings).await;
    let r = reqwest::get(format!("http://{}/api/v1/info", node.http_addr()))
        .await
        .unwrap();
    assert!(r.status().is_success());
    let mut c = common::client(node.resp_addr())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let bus = other.node.bus_addr.unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg("MEET")
        .arg("127.0.0.1")
        .arg(other.resp_addr().port())
        .arg(bus.port())
        .query_async(&mut c)
        .await
        .unwrap();
    let other_id = reredis::http::view::node_id(&other.node);
    let owner = |key: &str| {
        let slot = reredis::cluster::slots::key_hash_slot(key.as_bytes()) as usize;
        node.node.cluster.as_ref().unwrap().state.lock().slots[slot].clone()
    };
    // Once the slots are split, a key of the other node's.
    let ok = |n: &reredis::NodeHandle| n.node.cluster.as_ref().unwrap().state.lock().ok;
    let formed = common::wait_for(Duration::from_secs(20), async || {
        (owner("a") != owner("b") || owner("a") != owner("c")) && ok(&node) && ok(&other)
    })
    .await;
    assert!(formed, "the two nodes did not split the slots");
    let key = (0..)
        .map(|i| format!("traced:{i}"))
        .find(|k| owner(k).as_deref() == Some(other_id.as_str()))
        .unwrap();
    // The owner itself must know: a handoff is recorded by the giver before the taker's claim.
    let slot = reredis::cluster::slots::key_hash_slot(key.as_bytes()) as usize;
    let owner_knows = common::wait_for(Duration::from_secs(20), async || {
        other.node.cluster.as_ref().unwrap().state.lock().slots[slot].as_deref()
            == Some(other_id.as_str())
            && ok(&other)
    })
    .await;
    assert!(owner_knows, "the other node never took slot {slot}");
    let r = reqwest::Client::new()
        .put(format!("http://{}/api/v1/keys/{key}", node.http_addr()))
        .body(r#"{"type":"string","value":"traced"}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    other.shutdown().await;
    node.shutdown().await;
    // Dropping the guard flushes the batch; it blocks, so off the runtime's workers.
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();

    let mut seen: Vec<Seen> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let has = |seen: &[Seen], name: &str| seen.iter().any(|s| s.name == name);
    while !(has(&seen, "GET /api/v1/info")
        && has(&seen, "PUT /api/v1/keys/{*key}")
        && has(&seen, "bus Http"))
    {
        let req = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("spans before the deadline")
            .expect("collector running");
        seen.extend(spans_of(&req));
    }
    assert!(
        seen.iter()
            .any(|s| s.service == "reredis" && s.name == "GET /api/v1/info"),
        "{seen:?}"
    );
    // The owner's span continues the trace of the request the first node received.
    let put = seen
        .iter()
        .find(|s| s.name == "PUT /api/v1/keys/{*key}")
        .unwrap();
    let forwarded = seen.iter().find(|s| s.name == "bus Http").unwrap();
    assert_eq!(forwarded.trace_id, put.trace_id, "{seen:?}");
    assert_eq!(forwarded.parent_span_id, put.span_id, "{seen:?}");
    stop.cancel();
    server.await.unwrap().unwrap();
}
