//! The one place errors become HTTP responses.
//!
//! Every client-visible error is `{"error":{"code":"…","message":"…"}}` with a stable `code`.
//! Internal failures are logged in full and answered with a generic 500 that never shows a
//! backtrace or a host path.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use warden_registry::RegistryError;
use warden_runtime::{CompileError, InvokeError};

/// Seconds a client should wait before retrying an overloaded server.
const RETRY_AFTER_SECONDS: &str = "1";

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `empty_body`.
    #[error("{0}")]
    EmptyBody(String),
    /// 413 `too_large`.
    #[error("{0}")]
    TooLarge(String),
    /// 400 `invalid_component`.
    #[error("{0}")]
    InvalidComponent(String),
    /// 400 `precompiled_rejected`.
    #[error("{0}")]
    PrecompiledRejected(String),
    /// 422 `incompatible_world`.
    #[error("{0}")]
    IncompatibleWorld(String),
    /// 400 `invalid_limit`.
    #[error("{0}")]
    InvalidLimit(String),
    /// 422 `wrong_world`: the component implements another world than the route calls.
    #[error("{0}")]
    WrongWorld(String),
    /// 400 `bad_request` (malformed query, JSON or reference).
    #[error("{0}")]
    BadRequest(String),
    /// 404 `not_found`.
    #[error("{0}")]
    NotFound(String),
    /// 409 `conflict`.
    #[error("{0}")]
    Conflict(String),
    /// 503 `overloaded`, with `Retry-After`.
    #[error("{0}")]
    Overloaded(String),
    /// 500 `internal`: the detail is logged, never sent.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status and the stable error code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::EmptyBody(_) => (StatusCode::BAD_REQUEST, "empty_body"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::InvalidComponent(_) => (StatusCode::BAD_REQUEST, "invalid_component"),
            ApiError::PrecompiledRejected(_) => (StatusCode::BAD_REQUEST, "precompiled_rejected"),
            ApiError::IncompatibleWorld(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "incompatible_world")
            }
            ApiError::InvalidLimit(_) => (StatusCode::BAD_REQUEST, "invalid_limit"),
            ApiError::WrongWorld(_) => (StatusCode::UNPROCESSABLE_ENTITY, "wrong_world"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(detail = %warden_runtime::escape_for_log(detail), "internal error");
                "internal error; see the server log".to_owned()
            }
            other => other.to_string(),
        };
        let body = Json(json!({ "error": { "code": code, "message": message } }));
        let mut response = (status, body).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

impl From<CompileError> for ApiError {
    fn from(error: CompileError) -> Self {
        let text = error.to_string();
        match error {
            CompileError::Empty => ApiError::EmptyBody(text),
            CompileError::TooLarge { .. } => ApiError::TooLarge(text),
            CompileError::Precompiled => ApiError::PrecompiledRejected(text),
            CompileError::Invalid(_) => ApiError::InvalidComponent(text),
            CompileError::IncompatibleWorld(_) => ApiError::IncompatibleWorld(text),
            CompileError::Overloaded => ApiError::Overloaded(text),
            CompileError::Internal(_) => ApiError::Internal(text),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        let text = error.to_string();
        match error {
            RegistryError::Compile(compile) => compile.into(),
            RegistryError::NotFound(_) => ApiError::NotFound(text),
            RegistryError::BadReference(_) => ApiError::BadRequest(text),
            RegistryError::Referenced { .. } => ApiError::Conflict(text),
            RegistryError::Storage(_) => ApiError::Internal(text),
        }
    }
}

impl From<InvokeError> for ApiError {
    fn from(error: InvokeError) -> Self {
        let text = error.to_string();
        match error {
            InvokeError::Overloaded => ApiError::Overloaded(text),
            InvokeError::Limits(_) => ApiError::InvalidLimit(text),
            InvokeError::WrongWorld(_) => ApiError::WrongWorld(text),
        }
    }
}

impl From<warden_runtime::InvalidLimit> for ApiError {
    fn from(error: warden_runtime::InvalidLimit) -> Self {
        ApiError::InvalidLimit(error.to_string())
    }
}
