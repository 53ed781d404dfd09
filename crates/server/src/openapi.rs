//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! attributes and the schemas of the types they answer; served at `GET /openapi.json`.
//! `scripts/schemathesis` checks a live server against it.

use crate::error::{ErrorBody, ErrorDetail};
use crate::routes::{
    components, grants, health, metrics, names, pipelines, run, runs, tenants, wit,
};
use axum::Json;
use std::collections::BTreeMap;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi};

/// A response for an error status: its description and the [`ErrorBody`] the server sends.
fn error_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .into()
}

/// Declares the error responses routes share, each a type `#[utoipa::path(responses(…))]`
/// lists, so a status and its wording are written once.
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident { $($status:literal => $description:literal),+ $(,)? })*) => {$(
        $(#[$doc])*
        pub(crate) struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                [$(($status, $description)),+]
                    .into_iter()
                    .map(|(status, description)| (status.to_owned(), error_response(description)))
                    .collect()
            }
        }
    )*};
}

error_responses! {
    /// What every route behind authentication may answer.
    Refused {
        "401" => "no or invalid credentials (secured mode)",
        "403" => "the credentials may not do this",
        "500" => "a bug in Warden (details in the server log)",
        "503" => "overloaded or shutting down; see Retry-After",
    }
    /// A route with a body, query or path segments that can be malformed.
    Malformed { "400" => "malformed input" }
    /// A route that names an object (another tenant's objects are absent too).
    Absent { "404" => "no such object for this caller" }
    /// A route with a body that has a cap (every JSON body: 64 KiB).
    TooLarge { "413" => "the body is larger than its cap" }
    /// A route that calls or stores under a tenant's quotas.
    Throttled { "429" => "a tenant quota, rate or share is used up; see Retry-After" }
    /// A route whose body must arrive at the edge's pace.
    Late { "408" => "the body did not arrive in time" }
    /// What a route that sets grants under the tenant's ceiling may answer besides success.
    GrantRefusals {
        "400" => "malformed or unusable grants",
        "401" => "no or invalid credentials (secured mode)",
        "403" => "beyond the tenant's grants, or the credentials may not do this",
        "500" => "a bug in Warden (details in the server log)",
        "503" => "overloaded or shutting down; see Retry-After",
    }
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
