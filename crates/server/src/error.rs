//! The one place errors become HTTP responses.
//!
//! Every client-visible error is `{"error":{"code":"…","message":"…"}}` with a stable `code`.
//! Internal failures are logged in full and answered with a generic 500 that never shows a
//! backtrace or a host path.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use warden_registry::RegistryError;
use warden_runtime::{Cause, CompileError, InvokeError, WorldKind, describe};
use warden_service::{ErrorKind, ServiceError};

/// An internal error's whole chain (escaped for the log), left on its response for the
/// request's trace layer, which logs it once with the request's span.
#[derive(Clone, Debug)]
pub(crate) struct InternalError(pub(crate) String);

/// Seconds a client should wait before retrying an overloaded server.
const RETRY_AFTER_SECONDS: &str = "1";

/// Every error answer: `{"error":{"code":"…","message":"…"}}` (what the server sends, and
/// the schema the OpenAPI document gives for it).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// An error's stable code and its message.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// The stable code: `bad_request`, `unauthorized`, `not_found`, `rate_limited`, …
    code: &'static str,
    /// What happened, for a person.
    message: String,
}

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
    /// 422 `invalid_pipeline`: a pipeline definition that cannot run (names the node or edge).
    #[error("{0}")]
    InvalidPipeline(String),
    /// 422 `invalid_input`: the input cannot be read as asked (a CSV header over the record
    /// cap).
    #[error("{0}")]
    InvalidInput(String),
    /// 400 `bad_request` (malformed query, JSON or reference).
    #[error("{0}")]
    BadRequest(String),
    /// 401 `unauthorized`, with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(String),
    /// 403 `forbidden`.
    #[error("{0}")]
    Forbidden(String),
    /// 421 `host_not_allowed`: open mode answers only requests addressed to this machine by a
    /// loopback name (or a name in `http.allowed_hosts`).
    #[error("{0}")]
    HostNotAllowed(String),
    /// 403 `cross_origin`: a browser request from a foreign origin that
    /// `http.cors_allowed_origins` does not name.
    #[error("{0}")]
    CrossOrigin(String),
    /// 429 `rate_limited`, `quota_exceeded` or `concurrency_limit`, with `Retry-After` when
    /// waiting helps.
    #[error("{message}")]
    TooMany {
        /// The stable code.
        code: &'static str,
        /// What happened.
        message: String,
        /// Seconds to wait.
        retry_after: Option<u64>,
    },
    /// 404 `not_found`.
    #[error("{0}")]
    NotFound(String),
    /// 409 `conflict`.
    #[error("{0}")]
    Conflict(String),
    /// 408 `request_timeout`: the body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// 503 `shutting_down`, with `Retry-After`: the server is draining.
    #[error("{0}")]
    ShuttingDown(String),
    /// 503 `overloaded`, with `Retry-After`.
    #[error("{0}")]
    Overloaded(String),
    /// 500 `internal`: the error, with its causes, is logged (by the request's trace layer),
    /// never sent.
    #[error("internal error")]
    Internal(#[source] Cause),
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
            ApiError::InvalidPipeline(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_pipeline"),
            ApiError::InvalidInput(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::HostNotAllowed(_) => (StatusCode::MISDIRECTED_REQUEST, "host_not_allowed"),
            ApiError::CrossOrigin(_) => (StatusCode::FORBIDDEN, "cross_origin"),
            ApiError::TooMany { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::ShuttingDown(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let (message, logged) = match &self {
            ApiError::Internal(error) => (
                "internal error; see the server log".to_owned(),
                Some(InternalError(warden_runtime::escape_for_log(
                    &warden_runtime::describe(error.as_ref()),
                ))),
            ),
            other => (other.to_string(), None),
        };
        let body = Json(ErrorBody {
            error: ErrorDetail { code, message },
        });
        let retry_after = match &self {
            ApiError::Overloaded(_) | ApiError::ShuttingDown(_) => {
                Some(HeaderValue::from_static(RETRY_AFTER_SECONDS))
            }
            ApiError::TooMany { retry_after, .. } => retry_after.map(HeaderValue::from),
            _ => None,
        };
        let mut response = (status, body).into_response();
        if let Some(logged) = logged {
            response.extensions_mut().insert(logged);
        }
        let headers = response.headers_mut();
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, seconds);
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"warden\""),
            );
        }
        response
    }
}

impl From<CompileError> for ApiError {
    fn from(error: CompileError) -> Self {
        let text = describe(&error);
        match error {
            CompileError::Empty => {
                ApiError::EmptyBody("the request body is empty: send the component's bytes".into())
            }
            CompileError::TooLarge { .. } => ApiError::TooLarge(text),
            CompileError::Precompiled => ApiError::PrecompiledRejected(text),
            CompileError::Invalid { .. } => ApiError::InvalidComponent(text),
            CompileError::IncompatibleWorld(_) => ApiError::IncompatibleWorld(text),
            CompileError::Overloaded => ApiError::Overloaded(text),
            internal @ CompileError::Internal { .. } => ApiError::Internal(internal.into()),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        let text = error.to_string();
        match error {
            RegistryError::Compile(compile) => compile.into(),
            RegistryError::NotFound(_) => ApiError::NotFound(text),
            RegistryError::Referenced { .. } => ApiError::Conflict(text),
            RegistryError::QuotaExceeded(message) => ApiError::TooMany {
                code: "quota_exceeded",
                message,
                retry_after: None,
            },
            failed @ (RegistryError::Storage(_) | RegistryError::Io(_)) => {
                ApiError::Internal(failed.into())
            }
        }
    }
}

impl From<InvokeError> for ApiError {
    fn from(error: InvokeError) -> Self {
        let text = error.to_string();
        match error {
            InvokeError::Overloaded => ApiError::Overloaded(text),
            InvokeError::InputTooLarge { .. } => ApiError::TooLarge(text),
            InvokeError::MemoryAboveEngine { .. } => ApiError::InvalidLimit(text),
            InvokeError::WrongWorld { .. } => ApiError::WrongWorld(text),
            internal @ InvokeError::Internal { .. } => ApiError::Internal(internal.into()),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        // What the caller is told is the service's message; the chain under it is for the log.
        let text = error.message.clone();
        match error.kind {
            ErrorKind::Unauthorized => ApiError::Unauthorized(text),
            ErrorKind::Forbidden => ApiError::Forbidden(text),
            ErrorKind::NotFound => ApiError::NotFound(text),
            ErrorKind::Conflict => ApiError::Conflict(text),
            ErrorKind::BadRequest => ApiError::BadRequest(text),
            ErrorKind::InvalidLimit => ApiError::InvalidLimit(text),
            ErrorKind::InvalidPipeline => ApiError::InvalidPipeline(text),
            ErrorKind::RateLimited { retry_after_secs } => ApiError::TooMany {
                code: "rate_limited",
                message: text,
                retry_after: Some(retry_after_secs),
            },
            ErrorKind::QuotaExceeded { retry_after_secs } => ApiError::TooMany {
                code: "quota_exceeded",
                message: text,
                retry_after: retry_after_secs,
            },
            ErrorKind::ConcurrencyLimit { retry_after_secs } => ApiError::TooMany {
                code: "concurrency_limit",
                message: text,
                retry_after: Some(retry_after_secs),
            },
            ErrorKind::WrongWorld { expected, found } => {
                ApiError::WrongWorld(wrong_world(expected, found))
            }
            ErrorKind::Registry | ErrorKind::Invoke => match error.source {
                Some(source) => match source.downcast::<RegistryError>() {
                    Ok(registry) => (*registry).into(),
                    Err(source) => match source.downcast::<InvokeError>() {
                        Ok(invoke) => (*invoke).into(),
                        Err(other) => ApiError::Internal(other),
                    },
                },
                None => ApiError::Internal(text.into()),
            },
            ErrorKind::Internal => ApiError::Internal(error.into()),
        }
    }
}

/// What went wrong, naming the component's world and the route that calls it.
fn wrong_world(expected: WorldKind, found: WorldKind) -> String {
    let world = |kind: WorldKind| match kind {
        WorldKind::Runner => "local:main/runner",
        WorldKind::Transformer => "warden:plugin/transformer",
        WorldKind::Processor => "warden:plugin/processor",
        WorldKind::Aggregator => "warden:plugin/aggregator",
    };
    let route = match found {
        WorldKind::Runner => "`POST /v1/components/{ref}/run` (or `POST /run`)",
        WorldKind::Transformer | WorldKind::Processor => {
            "`POST /v1/components/{ref}/invoke` with the input as the body"
        }
        WorldKind::Aggregator => {
            "a pipeline (`POST /v1/pipelines`, then `POST /v1/pipelines/{name}/run`)"
        }
    };
    format!(
        "this route calls `{}` components; the component implements `{}`: call it with {route}",
        world(expected),
        world(found)
    )
}

impl From<warden_registry::InvalidId> for ApiError {
    fn from(error: warden_registry::InvalidId) -> Self {
        ApiError::BadRequest(error.to_string())
    }
}

impl From<warden_runtime::InvalidLimit> for ApiError {
    fn from(error: warden_runtime::InvalidLimit) -> Self {
        ApiError::InvalidLimit(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_answers_generically_and_leaves_its_whole_chain_for_the_log() {
        let io = std::io::Error::other("disk on fire at /var/lib/warden");
        let error: ApiError = RegistryError::Io(io).into();
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let InternalError(chain) = response
            .extensions()
            .get::<InternalError>()
            .expect("the chain is left for the log");
        assert!(chain.contains("disk on fire"), "{chain}");
        assert_eq!(
            chain.matches("disk on fire").count(),
            1,
            "said once: {chain}"
        );
    }

    #[test]
    fn a_service_refusal_tells_the_client_its_message_once() {
        let absent: ServiceError = warden_registry::StoreError::not_found("no pipeline `x`").into();
        let error: ApiError = absent.into();
        assert_eq!(error.status_and_code().1, "not_found");
        assert_eq!(error.to_string(), "no pipeline `x`");
    }

    #[test]
    fn a_refusal_carries_its_causes_to_the_client_and_nothing_to_the_log() {
        let refused = CompileError::Invalid {
            reason: "invalid component",
            source: Some("unexpected end of section".into()),
        };
        let error: ApiError = refused.into();
        assert_eq!(
            error.to_string(),
            "invalid component: unexpected end of section"
        );
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.extensions().get::<InternalError>().is_none());
    }
}
