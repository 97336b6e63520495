//! The HTTP surface (axum), one router on `--http-port`: health probes, `/metrics`, `/api/v1`
//! and the `/ws` live feed (docs/api.md is the contract); everything else is the embedded web UI.

pub mod api;
pub mod error;
pub mod exec;
pub mod metrics;
pub mod peers;
pub mod relay;
pub mod ui;
pub mod value;
pub mod view;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::node::Node;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub node: Arc<Node>,
    pub metrics: prometheus::Registry,
    /// Owns the `/ws` tasks, so node shutdown waits for them.
    pub tasks: TaskTracker,
}

/// The whole HTTP surface; anything else is the web UI (`ui::serve`).
pub fn router(node: Arc<Node>, tasks: TaskTracker) -> Router {
    let state = AppState {
        metrics: metrics::registry(node.clone()),
        node,
        tasks,
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(metrics::routes())
        .merge(api::routes())
        .merge(ws::routes())
        .fallback(ui::serve)
        .layer(middleware::from_fn_with_state(state.clone(), same_origin))
        .layer(middleware::from_fn(trace_request))
        .with_state(state)
}

/// Refuses what a web page of another site could make a visitor's browser do here: open the
/// `/ws` feed (a WebSocket is not bound by the same-origin policy, so the page would read every
/// key name and event) or send a write (a form's POST needs no CORS preflight). A browser names
/// the page's origin in `Origin`; it must be this node's own (the `Host` the browser reached),
/// or one listed in `http.allowed-origins` (`*`: any). Requests without `Origin` (curl, client
/// libraries, the nodes' own forwarding) and reads other than `/ws` (their answers carry no
/// CORS header, so a browser keeps them from the page) pass.
async fn same_origin(State(s): State<AppState>, req: Request, next: Next) -> Response {
    use axum::http::{Method, header};
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return next.run(req).await;
    };
    let guarded = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || req.uri().path() == "/ws";
    if !guarded {
        return next.run(req).await;
    }
    let origin = origin.to_str().unwrap_or_default();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let own = origin
        .split_once("://")
        .is_some_and(|(_, authority)| !host.is_empty() && authority.eq_ignore_ascii_case(host));
    let listed = s
        .node
        .config
        .read()
        .get("http.allowed-origins")
        .split([',', ' '])
        .any(|o| o == "*" || (!o.is_empty() && o.eq_ignore_ascii_case(origin)));
    if own || listed {
        return next.run(req).await;
    }
    tracing::debug!(
        origin,
        host,
        path = req.uri().path(),
        "refused a cross-origin request"
    );
    axum::response::IntoResponse::into_response(error::ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_origin",
        format!(
            "requests from the web page at {origin} are refused: open the UI from this node, or list the page's origin in http.allowed-origins"
        ),
    ))
}

/// One span per request (exported over OTLP when tracing is configured), named after the
/// route, not the path, so keys do not become span names.
async fn trace_request(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().clone();
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", resp.status().as_u16());
    resp
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready once the node serves clients with its data loaded; not ready while it starts, loads
/// (its own files, or a full sync from its master) or shuts down. The body's first line says
/// which; a node in a cluster adds `cluster_state:ok|fail`. That state makes the node not
/// ready only with `http.readyz-requires-cluster-ok`: by default a StatefulSet's pods become
/// ready before the cluster forms, so their addresses resolve for the cluster to form at all.
async fn readyz(State(s): State<AppState>) -> (StatusCode, String) {
    let node = &s.node;
    let (mut status, mut body) = if node.shutdown.is_cancelled() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n".to_string(),
        )
    } else if !node.ready.load(Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_string())
    } else if node.persist.is_loading() {
        (StatusCode::SERVICE_UNAVAILABLE, "loading\n".to_string())
    } else {
        (StatusCode::OK, "ready\n".to_string())
    };
    if node.cluster.is_some() {
        let ok = node.routing().ok;
        body.push_str(if ok {
            "cluster_state:ok\n"
        } else {
            "cluster_state:fail\n"
        });
        if !ok
            && status == StatusCode::OK
            && node
                .config
                .read()
                .get_bool("http.readyz-requires-cluster-ok")
        {
            status = StatusCode::SERVICE_UNAVAILABLE;
            body = "cluster down\ncluster_state:fail\n".to_string();
        }
    }
    (status, body)
}

pub async fn serve(node: Arc<Node>, listener: TcpListener, tasks: TaskTracker) {
    let shutdown = node.shutdown.clone();
    tasks.spawn(relay::run(node.clone()));
    let app = router(node, tasks).into_make_service_with_connect_info::<SocketAddr>();
    // Feed events are small frames that must leave at once: no Nagle delay.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("HTTP: cannot set TCP_NODELAY: {e}");
        }
    });
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!("HTTP server failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readyz_follows_the_node_lifecycle() {
        let handle = crate::start(crate::config::Config::ephemeral())
            .await
            .unwrap();
        let node = handle.node.clone();
        let state = AppState {
            metrics: prometheus::Registry::new(),
            node: node.clone(),
            tasks: TaskTracker::new(),
        };
        assert_eq!(
            readyz(State(state.clone())).await,
            (StatusCode::OK, "ready\n".to_string())
        );
        node.ready.store(false, Ordering::Release);
        assert_eq!(
            readyz(State(state.clone())).await,
            (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_string())
        );
        node.ready.store(true, Ordering::Release);
        // Loading again (a replica's full sync from its master).
        node.persist.loading.store(true, Ordering::Release);
        assert_eq!(
            readyz(State(state.clone())).await,
            (StatusCode::SERVICE_UNAVAILABLE, "loading\n".to_string())
        );
        node.persist.loading.store(false, Ordering::Release);
        handle.shutdown().await;
        assert_eq!(
            readyz(State(state)).await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting down\n".to_string()
            )
        );
    }
}
