//! `GET /healthz`: liveness, and the cheapest route of the server (the HTTP ceiling in
//! benchmarks). It needs no credentials and tells nothing about tenants.

use crate::AppState;
use axum::Json;
use axum::extract::State;

/// Liveness.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: &'static str,
    /// `pooling` or `on_demand`.
    allocator: String,
    /// `open` or `secured`.
    mode: &'static str,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    summary = "Liveness, mode and allocator",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "alive", body = Health),
    )
)]
pub(crate) async fn healthz(State(state): State<AppState>) -> Json<Health> {
    let service = state.service();
    let allocator = serde_json::to_value(service.runtime().allocator())
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default();
    Json(Health {
        status: "ok",
        allocator,
        mode: if service.secured() { "secured" } else { "open" },
    })
}
