//! The web UI: the frontend's production build, embedded in the binary and served at `/`.
//!
//! `build.rs` picks the folder (`frontend/dist`, or the committed `ui-missing/` page when the UI
//! could not be built) and passes it as `EMBED_REREDIS_UI_DIR`. Release builds carry the files inside
//! the binary; debug builds read them from that folder at run time, so a `npm run build` shows up
//! without recompiling. Any path that is not a file is a client-side route (`/cluster`,
//! `/keys?...`) and gets `index.html`; the node never answers `/` with an empty page.

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "$EMBED_REREDIS_UI_DIR"]
struct Assets;

/// Shown if the embedded folder has no `index.html` (a debug binary whose `dist` was deleted).
const MISSING: &str = include_str!("ui-missing/index.html");

/// The router's fallback: static files, then the single-page app for everything else.
pub async fn serve(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let path = uri.path().trim_start_matches('/');
    // API and feed paths that reach the fallback do not exist: say so rather than send the app.
    if path == "api" || path.starts_with("api/") || path == "ws" {
        return not_found();
    }
    if !path.is_empty()
        && let Some(file) = Assets::get(path)
    {
        return file_response(path, file.data.into_owned());
    }
    // A missing file (its name has an extension) is a 404; anything else is a client-side route.
    let last = path.rsplit('/').next().unwrap_or_default();
    if last.contains('.') {
        return not_found();
    }
    match Assets::get("index.html") {
        Some(file) => file_response("index.html", file.data.into_owned()),
        None => file_response("index.html", MISSING.as_bytes().to_vec()),
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

fn file_response(path: &str, data: Vec<u8>) -> Response {
    // Vite names everything under assets/ by content hash: cache forever. The page itself must
    // be revalidated so a new binary's UI is picked up.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = Response::new(Body::from(data));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, ext)| ext)
        .unwrap_or_default();
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(path: &str) -> Response {
        serve(Method::GET, path.parse().expect("uri")).await
    }

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn root_and_client_routes_get_a_page_that_is_never_empty() {
        for path in ["/", "/cluster", "/keys/user:1"] {
            let response = get(path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
            let html = body(response).await;
            assert!(html.contains("<html") && html.len() > 200, "{path}: {html}");
        }
    }

    #[tokio::test]
    async fn unknown_api_paths_and_missing_files_are_404() {
        for path in [
            "/api/v1/nope",
            "/ws",
            "/assets/missing.js",
            "/favicon-nope.png",
        ] {
            assert_eq!(get(path).await.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[tokio::test]
    async fn writes_are_refused() {
        let response = serve(Method::POST, "/".parse().expect("uri")).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
