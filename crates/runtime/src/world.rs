//! Which WIT world a component implements, read from its exports and imports at upload.
//!
//! A component is accepted only if it exports a function Warden knows how to call with the
//! right signature, and imports nothing the sandbox cannot link. What it imports but will be
//! denied at use (network, sockets, files) is reported, so an author sees it before running.

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Type};

/// The interface package versions of the seed `runner` world that Warden serves.
pub const RUNNER_VERSIONS: [&str; 2] = ["0.0.1", "0.1.0"];

/// The world of Warden's data-in, data-out plugins (as first published).
pub const TRANSFORMER_WORLD: &str = "warden:plugin/transformer@0.1.0";

/// The `warden:plugin` package versions Warden serves, oldest first.
pub const PLUGIN_VERSIONS: [&str; 2] = ["0.1.0", "0.2.0"];

/// The worlds Warden can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorldKind {
    /// `local:main/runner`: `run: func() -> result<string, string>`.
    Runner,
    /// `warden:plugin/transformer`: `transform: func(input: list<u8>) -> result<list<u8>, string>`.
    Transformer,
    /// `warden:plugin/processor@0.2.0`: `process: func(input: list<u8>) ->
    /// result<list<list<u8>>, string>` (one record in, zero or more out).
    Processor,
    /// `warden:plugin/aggregator@0.2.0`: `step(state, input) -> result<list<u8>, string>` and
    /// `finish(state) -> result<list<list<u8>>, string>`, with the state kept by the host.
    Aggregator,
}

impl WorldKind {
    /// The stable snake_case name (`runner`, `transformer`, `processor`, `aggregator`).
    pub fn as_str(self) -> &'static str {
        match self {
            WorldKind::Runner => "runner",
            WorldKind::Transformer => "transformer",
            WorldKind::Processor => "processor",
            WorldKind::Aggregator => "aggregator",
        }
    }
}

/// What a component is, as Warden sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentInfo {
    /// The world kind, which decides how the component is called.
    pub kind: WorldKind,
    /// The world's full name, e.g. `local:main/runner@0.0.1`.
    pub world: String,
    /// Every import by name, e.g. `wasi:cli/stdout@0.2.6`.
    pub imports: Vec<String>,
    /// Every export by name, e.g. `run`.
    pub exports: Vec<String>,
    /// Imports that link but are refused at use in the default sandbox, with the reason.
    pub denied: Vec<Denial>,
}

/// An import that the sandbox links but refuses at use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    /// The import's name.
    pub import: String,
    /// What the guest will see when it uses it.
    pub reason: String,
}

/// Why a component does not fit any world Warden serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IncompatibleWorld(pub String);

/// Reads the component's type and decides its world.
pub(crate) fn detect(
    engine: &Engine,
    component: &Component,
) -> Result<ComponentInfo, IncompatibleWorld> {
    let ty = component.component_type();
    let imports: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();

    // The plugin package version the component was built against: the one whose host it
    // imports (a plugin that imports no host interface is reported as the first).
    let plugin_version = imports
        .iter()
        .find_map(|name| name.strip_prefix("warden:plugin/host@"))
        .filter(|version| PLUGIN_VERSIONS.contains(version))
        .unwrap_or(PLUGIN_VERSIONS[0]);
    let plugin_world = |world: &str| format!("warden:plugin/{world}@{plugin_version}");
    let (kind, world) = if let Some(run) = ty.get_export(engine, "run") {
        check_signature(&run.ty, RUN_SIGNATURE, &[], is_string)?;
        let version = imports
            .iter()
            .find_map(|name| name.strip_prefix("local:main/host@"))
            .filter(|version| RUNNER_VERSIONS.contains(version))
            .unwrap_or(RUNNER_VERSIONS[0]);
        (WorldKind::Runner, format!("local:main/runner@{version}"))
    } else if let Some(transform) = ty.get_export(engine, "transform") {
        check_signature(&transform.ty, TRANSFORM_SIGNATURE, &[is_bytes], is_bytes)?;
        (WorldKind::Transformer, plugin_world("transformer"))
    } else if let Some(process) = ty.get_export(engine, "process") {
        check_signature(&process.ty, PROCESS_SIGNATURE, &[is_bytes], is_records)?;
        (
            WorldKind::Processor,
            format!("warden:plugin/processor@{PROCESSOR_SINCE}"),
        )
    } else if let Some(step) = ty.get_export(engine, "step") {
        check_signature(&step.ty, STEP_SIGNATURE, &[is_bytes, is_bytes], is_bytes)?;
        let finish = ty.get_export(engine, "finish").ok_or_else(|| {
            IncompatibleWorld(format!(
                "an aggregator exports `step` and `finish`; `finish` is missing ({FINISH_SIGNATURE})"
            ))
        })?;
        check_signature(&finish.ty, FINISH_SIGNATURE, &[is_bytes], is_records)?;
        (
            WorldKind::Aggregator,
            format!("warden:plugin/aggregator@{PROCESSOR_SINCE}"),
        )
    } else {
        return Err(IncompatibleWorld(format!(
            "the component exports none of `run` (world local:main/runner), `transform` \
             (warden:plugin/transformer), `process` (warden:plugin/processor) or `step` + \
             `finish` (warden:plugin/aggregator); it exports: [{}]",
            exports.join(", ")
        )));
    };
    let denied = imports.iter().filter_map(|name| denial(name)).collect();
    Ok(ComponentInfo {
        kind,
        world,
        imports,
        exports,
        denied,
    })
}

const RUN_SIGNATURE: &str = "`run` must be `func() -> result<string, string>`";
const TRANSFORM_SIGNATURE: &str =
    "`transform` must be `func(input: list<u8>) -> result<list<u8>, string>`";
const PROCESS_SIGNATURE: &str =
    "`process` must be `func(input: list<u8>) -> result<list<list<u8>>, string>`";
const STEP_SIGNATURE: &str =
    "`step` must be `func(state: list<u8>, input: list<u8>) -> result<list<u8>, string>`";
const FINISH_SIGNATURE: &str =
    "`finish` must be `func(state: list<u8>) -> result<list<list<u8>>, string>`";
/// The package version that introduced the processor and aggregator worlds.
const PROCESSOR_SINCE: &str = "0.2.0";

fn is_string(ty: &Type) -> bool {
    matches!(ty, Type::String)
}

fn is_bytes(ty: &Type) -> bool {
    matches!(ty, Type::List(list) if matches!(list.ty(), Type::U8))
}

fn is_records(ty: &Type) -> bool {
    matches!(ty, Type::List(list) if is_bytes(&list.ty()))
}

/// Checks an export is a function taking `params` and returning one `result<ok, string>`.
fn check_signature(
    item: &ComponentItem,
    expected: &str,
    params: &[fn(&Type) -> bool],
    ok: fn(&Type) -> bool,
) -> Result<(), IncompatibleWorld> {
    let wrong = |found: String| IncompatibleWorld(format!("{expected}; found {found}"));
    let ComponentItem::ComponentFunc(func) = item else {
        return Err(wrong("an export that is not a function".into()));
    };
    let found_params: Vec<Type> = func.params().map(|(_, ty)| ty).collect();
    let results: Vec<Type> = func.results().collect();
    let params_match = found_params.len() == params.len()
        && found_params.iter().zip(params).all(|(ty, check)| check(ty));
    let result_matches = matches!(results.as_slice(),
        [Type::Result(result)]
            if result.ok().as_ref().is_some_and(ok) && result.err().as_ref().is_some_and(is_string));
    if params_match && result_matches {
        Ok(())
    } else {
        Err(wrong(format!(
            "a function with {} parameter(s) returning {}",
            found_params.len(),
            describe(&results)
        )))
    }
}

fn describe(results: &[Type]) -> String {
    match results {
        [] => "nothing".into(),
        [one] => type_name(one).to_owned(),
        many => format!("{} values", many.len()),
    }
}

fn type_name(ty: &Type) -> &'static str {
    match ty {
        Type::Result(_) => "a result of other types",
        Type::String => "a string",
        Type::List(_) => "a list",
        Type::U32 | Type::S32 | Type::U64 | Type::S64 => "an integer",
        _ => "another type",
    }
}

/// What the default sandbox does with an import it links but does not grant.
fn denial(import: &str) -> Option<Denial> {
    let reason = if import.starts_with("wasi:http/") {
        "network access not granted: every outgoing HTTP request is refused"
    } else if import.starts_with("wasi:sockets/") {
        "network access not granted: sockets cannot be created or connected"
    } else if import.starts_with("wasi:filesystem/") {
        "no directories are preopened: the guest sees an empty filesystem"
    } else if import.starts_with("wasi:cli/environment") {
        "no environment variables or arguments are passed"
    } else {
        return None;
    };
    Some(Denial {
        import: import.to_owned(),
        reason: reason.to_owned(),
    })
}

/// What a call may do with one import under its grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Access {
    /// Always available (I/O streams, clocks, random, Warden's host interface …).
    Available,
    /// Available because a grant says so.
    Granted,
    /// Linked, so the component loads, but refused at use.
    Denied,
}

/// One import and what a call may do with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportAccess {
    /// The import's name.
    pub import: String,
    /// Available, granted or denied at use.
    pub access: Access,
    /// What exactly, for a person.
    pub detail: String,
}

/// What each of `imports` gives a call under `grants` (every import a stored component has is
/// linked: anything else is refused at upload).
pub fn import_access(imports: &[String], grants: &crate::grants::Grants) -> Vec<ImportAccess> {
    imports
        .iter()
        .map(|import| {
            let (access, detail) = if import.starts_with("wasi:http/") {
                match &grants.http {
                    Some(http) if !http.allow.is_empty() => (
                        Access::Granted,
                        format!(
                            "outbound HTTP to {} ({}; at most {} requests per call)",
                            http.allow.join(", "),
                            http.methods.join(", "),
                            http.max_requests
                        ),
                    ),
                    _ => (Access::Denied, "no outbound HTTP is granted".to_owned()),
                }
            } else if import.starts_with("wasi:filesystem/") {
                match grants.files.is_empty() {
                    false => (
                        Access::Granted,
                        format!(
                            "read-only directories: {}",
                            grants
                                .files
                                .iter()
                                .map(|f| f.guest.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                    true => (
                        Access::Denied,
                        "no directories are granted: the guest sees an empty filesystem".to_owned(),
                    ),
                }
            } else if import.starts_with("wasi:cli/environment") {
                match grants.env.is_empty() {
                    false => (
                        Access::Granted,
                        format!(
                            "environment variables: {}",
                            grants.env.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ),
                    true => (
                        Access::Denied,
                        "no environment variables are granted".to_owned(),
                    ),
                }
            } else if import.starts_with("wasi:sockets/") {
                (
                    Access::Denied,
                    "raw sockets are never granted (outbound HTTP may be)".to_owned(),
                )
            } else {
                (Access::Available, "always available".to_owned())
            };
            ImportAccess {
                import: import.clone(),
                access,
                detail,
            }
        })
        .collect()
}
