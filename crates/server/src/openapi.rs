//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! attributes and the schemas of the types they answer; served at `GET /openapi.json`.
//! `scripts/schemathesis` checks a live server against it.

use crate::routes::{
    components, grants, health, metrics, names, pipelines, run, runs, tenants, wit,
};
use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Every error answer: `{"error":{"code":"…","message":"…"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// An error's stable code and its message.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// The stable code: `bad_request`, `unauthorized`, `not_found`, `rate_limited`, …
    code: String,
    /// What happened, for a person.
    message: String,
}

/// A body of bytes, whatever they are (`type: string, format: binary`).
pub(crate) struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .into()
    }
}

impl utoipa::ToSchema for Binary {}

/// `Authorization: Bearer <API key or admin token>` (secured mode; open mode needs none).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A tenant's API key (`wdn_…`) or the admin token, in secured mode",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Warden",
        description = "Run untrusted WebAssembly components per request, in a hard-limited sandbox."
    ),
    paths(
        health::healthz,
        metrics::metrics,
        run::run_bytes,
        run::run_stored,
        run::invoke_stored,
        components::upload,
        components::list,
        components::show,
        components::bytes,
        components::delete,
        grants::put_tenant,
        grants::show_tenant,
        grants::put_run,
        grants::show_run,
        grants::put_component,
        grants::show_component,
        grants::put_secret,
        grants::secret_names,
        grants::delete_secret,
        names::put,
        names::show,
        names::delete,
        pipelines::create,
        pipelines::list,
        pipelines::show,
        pipelines::version,
        pipelines::set_current,
        pipelines::delete,
        pipelines::run,
        runs::list,
        runs::show,
        runs::input,
        tenants::create,
        tenants::list,
        tenants::show,
        tenants::update,
        tenants::delete,
        tenants::create_key,
        tenants::keys,
        tenants::revoke_key,
        tenants::tenant_usage,
        tenants::usage,
        tenants::me,
        wit::list,
        wit::show,
        wit::oci_base,
        wit::oci_tags,
        wit::oci_manifest,
        wit::oci_blob,
        openapi_json,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth)
)]
pub(crate) struct ApiDoc;

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This document",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object))
)]
pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
