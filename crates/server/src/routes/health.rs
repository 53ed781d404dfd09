//! `GET /healthz`: liveness, and the cheapest route of the server (the HTTP ceiling in benchmarks).

use crate::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

pub(crate) async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "status": "ok", "allocator": state.runtime().allocator() }))
}
