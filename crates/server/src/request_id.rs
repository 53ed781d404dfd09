//! Every request gets an id: the client's `X-Request-Id` when it is sane (1–128 characters of
//! `A-Z a-z 0-9 - _ . : / + =`), else a new UUIDv7 that is also the id of the call's record.
//! The id tags every server log line of the request (a tracing span) and is answered in
//! `Warden-Request-Id`. The same layer counts requests by route and status for `/metrics`, and
//! marks an error answer to a request that carried a body `Connection: close`: the body may be
//! unread (refused before it was read), so the connection cannot serve another request, and a
//! client must not put its next request on it.

use crate::AppState;
use crate::routes::REQUEST_ID_HEADER;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use warden_registry::RunId;

/// Longest incoming request id honoured.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The ids of one request, in its extensions.
#[derive(Debug, Clone)]
pub(crate) struct RequestIds {
    /// The request's id, as answered.
    pub(crate) request_id: String,
    /// The id of the call's record (when the request makes a call).
    pub(crate) run_id: RunId,
}

/// Whether an incoming id may be used as it is.
fn sane(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
}

/// The middleware.
pub(crate) async fn tag(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let run_id = RunId::new();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|id| sane(id))
        .map_or_else(|| run_id.to_string(), str::to_owned);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let has_body = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|length| length.as_bytes() != b"0")
        || request.headers().contains_key(header::TRANSFER_ENCODING);
    // A call records its run id and tenant here (`Service::call`).
    let span = tracing::info_span!(
        "request",
        id = %request_id,
        method = %request.method(),
        route = %route,
        run_id = tracing::field::Empty,
        tenant = tracing::field::Empty,
    );
    request.extensions_mut().insert(RequestIds {
        request_id: request_id.clone(),
        run_id,
    });
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status();
    if has_body && (status.is_client_error() || status.is_server_error()) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    state
        .service()
        .metrics()
        .http_request(&route, response.status().as_u16());
    response
}

#[cfg(test)]
mod tests {
    use super::sane;

    #[test]
    fn only_sane_ids_are_honoured() {
        assert!(sane("req-42"));
        assert!(sane("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"));
        assert!(sane(&"a".repeat(128)));
        for bad in [
            "",
            "a b",
            "line\nbreak",
            "tab\t",
            "<script>",
            &"a".repeat(129),
            "é",
        ] {
            assert!(!sane(bad), "{bad:?}");
        }
    }
}
