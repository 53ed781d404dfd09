//! The API's extractors: a JSON body, path segments and a query string whose rejections are
//! [`ApiError`]s, so every malformed request is answered one way, whatever the route.
//!
//! - [`AppJson`]: a JSON body of at most [`MAX_JSON_BODY_BYTES`]: `413 too_large` past it,
//!   `400 bad_request` when it is not the JSON object the route takes (every body of the API is
//!   an object: an array is refused even where serde would read one as a struct).
//! - [`AppPath`]: path segments as typed ids (`TenantId`, `ComponentRef`, `RunId`, …), which
//!   validate as they deserialize: `400 bad_request` naming the rule a segment breaks.
//! - [`AppQuery`]: a query string: `400 bad_request`.
//! - [`Overrides`]: the limits a call asks for in its query: `400 invalid_limit`.

use crate::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use warden_runtime::LimitOverrides;

/// Largest JSON request body, in bytes (64 KiB). Component bodies are capped separately by
/// `engine.max_component_bytes`, pipeline input by the run's own rules.
pub(crate) const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

/// A JSON request body (see the module's rules).
pub(crate) struct AppJson<T>(pub(crate) T);

/// Path segments, deserialized (see the module's rules).
pub(crate) struct AppPath<T>(pub(crate) T);

/// A query string, deserialized (see the module's rules).
pub(crate) struct AppQuery<T>(pub(crate) T);

/// The lower limits a call asks for in its query string (`?fuel=…&timeout_ms=…`).
pub(crate) struct Overrides(pub(crate) LimitOverrides);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                value
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .is_some_and(|media| {
                media == "application/json"
                    || (media.starts_with("application/") && media.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::BadRequest(
                "the body must be JSON: send `Content-Type: application/json`".into(),
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(JsonRejection::from)?;
        if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::BadRequest(
                "the body must be a JSON object".into(),
            ));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(AppJson(value))
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for AppPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(AppPath(value))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(AppQuery(value))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Overrides {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<LimitOverrides>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(overrides)| Overrides(overrides))
            .map_err(|rejection| ApiError::InvalidLimit(rejection.body_text()))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge(format!("the JSON body is over {MAX_JSON_BODY_BYTES} bytes"))
            }
            _ => ApiError::BadRequest(rejection.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}
