//! The one error type of the HTTP API: `{"error":{"code","message"}}` with a fitting status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable: `bad_request`, `not_found`, `writes_disabled`, ...
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unsupported_type(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "unsupported_type", message)
    }

    pub fn writes_disabled() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "writes_disabled",
            "writes over HTTP are disabled: set http.allow-writes, or send \
             'Authorization: Bearer <http.token>'",
        )
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// An error reply from a command, with Redis's text as the message so a UI shows the same
    /// reason redis-cli would.
    pub fn from_redis(reply: &str) -> ApiError {
        let code = reply.split(' ').next().unwrap_or("ERR");
        match code {
            "WRONGTYPE" => ApiError::conflict("wrong_type", reply),
            "OOM" => ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "oom", reply),
            // MOVED/ASK: the slot moved after this request was routed; a retry finds its owner.
            "LOADING" | "BUSY" | "TRYAGAIN" | "CLUSTERDOWN" | "MOVED" | "ASK" => {
                ApiError::unavailable(reply)
            }
            _ => ApiError::new(StatusCode::BAD_REQUEST, "redis_error", reply),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}
