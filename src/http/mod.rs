//! The HTTP surface (axum): health probes now; the UI, `/ws`, `/api/v1` and `/metrics` join it
//! in later issues.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::node::Node;

pub mod ui;

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(ui::serve)
        .with_state(node)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready once the node serves clients; not ready while shutting down.
async fn readyz(State(node): State<Arc<Node>>) -> (StatusCode, &'static str) {
    if node.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}

pub async fn serve(node: Arc<Node>, listener: TcpListener) {
    let shutdown = node.shutdown.clone();
    let app = router(node);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!("HTTP server failed: {e}");
    }
}
