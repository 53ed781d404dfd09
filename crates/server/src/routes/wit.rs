//! The WIT contract, served: `GET /v1/wit` (the packages), `GET /v1/wit/{package}` (WIT text,
//! or the binary-encoded package with `Accept: application/wasm`), and the read half of the OCI
//! distribution API under `/v2/` so that `wkg get` and `wkg wit fetch` pull the same packages.
//!
//! None of these need credentials: the contract is public, the same for every tenant.
//! The `/v2/` routes answer errors in the OCI distribution format (`{"errors": [{"code",
//! "message"}]}` with `NAME_UNKNOWN`, `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`), because that is what
//! OCI clients read; every other route keeps Warden's own error shape.

use crate::ApiError;
use crate::error::ErrorBody;
use crate::extract::AppPath;
use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use warden_service::contract::{Contract, OCI_MANIFEST_TYPE, ServedPackage};

/// The digest header OCI clients may check against what they received.
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
/// The API version header of the OCI distribution API.
const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

/// One WIT package this server speaks.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct WitPackageInfo {
    /// `namespace:name@version`.
    id: String,
    /// `namespace:name`.
    name: String,
    /// Semantic version.
    version: &'static str,
    /// The worlds a component can implement.
    worlds: &'static [&'static str],
    /// Where its WIT text is (`Accept: application/wasm` for the binary package).
    url: String,
    /// The OCI reference `wkg` pulls it by (`namespace/name:version` on this server).
    oci: String,
    /// Digest of the binary-encoded package (the OCI layer).
    digest: String,
}

/// The packages.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct WitPackages {
    /// Oldest first within a name; `warden:plugin@0.2.0` is the one for new plugins.
    packages: Vec<WitPackageInfo>,
}

impl WitPackageInfo {
    fn new(served: &ServedPackage) -> Self {
        let package = served.package;
        WitPackageInfo {
            id: package.id(),
            name: package.package_name(),
            version: package.version,
            worlds: package.worlds,
            url: format!("/v1/wit/{}", package.id()),
            oci: format!("{}:{}", served.repository(), package.version),
            digest: served.wasm_digest.clone(),
        }
    }
}

/// `GET /v1/wit`.
#[utoipa::path(
    get,
    path = "/v1/wit",
    tag = "wit",
    summary = "The WIT packages this server speaks",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the packages", body = WitPackages),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn list() -> Json<WitPackages> {
    let packages = Contract::get()
        .packages()
        .iter()
        .map(WitPackageInfo::new)
        .collect();
    Json(WitPackages { packages })
}

/// `GET /v1/wit/{package}`.
#[utoipa::path(
    get,
    path = "/v1/wit/{package}",
    tag = "wit",
    summary = "One WIT package: text, or the binary-encoded package with Accept: application/wasm",
    params(("package" = String, Path, description = "`namespace:name@version`, or `namespace:name` for the newest", pattern = r"^[a-z][a-z0-9-]*:[a-z][a-z0-9-]*(@[0-9A-Za-z.+-]+)?$")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the WIT text (text/plain), or with Accept: application/wasm the binary-encoded WIT package", content(
            (String = "text/plain"),
            (Vec<u8> = "application/wasm"),
        )),
        (status = 404, description = "no such package", body = ErrorBody),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn show(
    AppPath(reference): AppPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let served = Contract::get().find(&reference).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no WIT package `{reference}` (GET /v1/wit lists them)"
        ))
    })?;
    let wants_wasm = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/wasm"));
    let response = if wants_wasm {
        (
            [(header::CONTENT_TYPE, "application/wasm")],
            served.wasm.clone(),
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            served.package.text,
        )
            .into_response()
    };
    Ok(response)
}

/// An OCI distribution error.
fn oci_error(status: StatusCode, code: &str, message: String) -> Response {
    let body = json!({"errors": [{"code": code, "message": message, "detail": null}]});
    (status, [(API_VERSION, "registry/2.0")], Json(body)).into_response()
}

fn unknown_repository(namespace: &str, name: &str) -> Response {
    oci_error(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        format!("no repository {namespace}/{name} (WIT packages: GET /v1/wit)"),
    )
}

/// `GET /v2/`.
#[utoipa::path(
    get,
    path = "/v2/",
    tag = "wit",
    summary = "OCI distribution API: version check (no credentials needed)",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the OCI distribution API is served", body = Object),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn oci_base() -> Response {
    (
        StatusCode::OK,
        [(API_VERSION, "registry/2.0")],
        Json(json!({})),
    )
        .into_response()
}

/// The tags of a repository.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TagList {
    /// `namespace/name`.
    name: String,
    /// The versions.
    tags: Vec<&'static str>,
}

/// `GET /v2/{namespace}/{name}/tags/list`.
#[utoipa::path(
    get,
    path = "/v2/{namespace}/{name}/tags/list",
    tag = "wit",
    summary = "OCI distribution API: the versions of a WIT package",
    params(
        ("namespace" = String, Path, description = "the package's namespace, e.g. `warden`"),
        ("name" = String, Path, description = "the package's name, e.g. `plugin`"),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the versions", body = TagList),
        (status = 404, description = "no such package (OCI error body)", body = Object),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn oci_tags(AppPath((namespace, name)): AppPath<(String, String)>) -> Response {
    let repository = format!("{namespace}/{name}");
    match Contract::get().tags(&repository) {
        Some(tags) => (
            [(API_VERSION, "registry/2.0")],
            Json(TagList {
                name: repository,
                tags,
            }),
        )
            .into_response(),
        None => unknown_repository(&namespace, &name),
    }
}

/// `GET /v2/{namespace}/{name}/manifests/{reference}`.
#[utoipa::path(
    get,
    path = "/v2/{namespace}/{name}/manifests/{reference}",
    tag = "wit",
    summary = "OCI distribution API: the manifest of a WIT package version",
    params(
        ("namespace" = String, Path, description = "the package's namespace, e.g. `warden`"),
        ("name" = String, Path, description = "the package's name, e.g. `plugin`"),
        ("reference" = String, Path, description = "a version (tag) or the manifest's digest"),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "an OCI image manifest (CNCF Wasm artifact layout)", content_type = "application/vnd.oci.image.manifest.v1+json", body = Object),
        (status = 404, description = "no such package or version (OCI error body)", body = Object),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn oci_manifest(
    AppPath((namespace, name, reference)): AppPath<(String, String, String)>,
) -> Response {
    let contract = Contract::get();
    let repository = format!("{namespace}/{name}");
    if contract.tags(&repository).is_none() {
        return unknown_repository(&namespace, &name);
    }
    match contract.manifest(&repository, &reference) {
        Some(served) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(OCI_MANIFEST_TYPE),
                ),
                (CONTENT_DIGEST, digest_header(&served.manifest_digest)),
                (API_VERSION, HeaderValue::from_static("registry/2.0")),
            ],
            served.manifest.clone(),
        )
            .into_response(),
        None => oci_error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("{repository} has no version {reference}"),
        ),
    }
}

/// `GET /v2/{namespace}/{name}/blobs/{digest}`.
#[utoipa::path(
    get,
    path = "/v2/{namespace}/{name}/blobs/{digest}",
    tag = "wit",
    summary = "OCI distribution API: a blob (the config, or the binary-encoded WIT package)",
    params(
        ("namespace" = String, Path, description = "the package's namespace, e.g. `warden`"),
        ("name" = String, Path, description = "the package's name, e.g. `plugin`"),
        ("digest" = String, Path, description = "`sha256:<hex>` from the manifest"),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the blob's bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "no such blob (OCI error body)", body = Object),
        (status = 503, description = "overloaded or shutting down; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn oci_blob(
    AppPath((namespace, name, digest)): AppPath<(String, String, String)>,
) -> Response {
    let contract = Contract::get();
    let repository = format!("{namespace}/{name}");
    if contract.tags(&repository).is_none() {
        return unknown_repository(&namespace, &name);
    }
    match contract.blob(&repository, &digest) {
        Some(bytes) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                ),
                (CONTENT_DIGEST, digest_header(&digest)),
                (API_VERSION, HeaderValue::from_static("registry/2.0")),
            ],
            bytes,
        )
            .into_response(),
        None => oci_error(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("{repository} has no blob {digest}"),
        ),
    }
}

/// A digest we computed ourselves (`sha256:` and hex) as a header value.
fn digest_header(digest: &str) -> HeaderValue {
    HeaderValue::from_str(digest).unwrap_or_else(|_| HeaderValue::from_static(""))
}
