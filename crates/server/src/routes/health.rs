//! `GET /healthz`: liveness, and the cheapest route of the server (the HTTP ceiling in
//! benchmarks). It needs no credentials and tells nothing about tenants.

use crate::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

pub(crate) async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let service = state.service();
    Json(json!({
        "status": "ok",
        "allocator": service.runtime().allocator(),
        "mode": if service.secured() { "secured" } else { "open" },
    }))
}
