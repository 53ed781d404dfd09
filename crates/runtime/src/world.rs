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

/// The world of Warden's data-in, data-out plugins.
pub const TRANSFORMER_WORLD: &str = "warden:plugin/transformer@0.1.0";

/// The worlds Warden can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorldKind {
    /// `local:main/runner`: `run: func() -> result<string, string>`.
    Runner,
    /// `warden:plugin/transformer`: `transform: func(input: list<u8>) -> result<list<u8>, string>`.
    Transformer,
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
        (WorldKind::Transformer, TRANSFORMER_WORLD.to_owned())
    } else {
        return Err(IncompatibleWorld(format!(
            "the component exports neither `run` (world local:main/runner) nor `transform` \
             (world {TRANSFORMER_WORLD}); it exports: [{}]",
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

fn is_string(ty: &Type) -> bool {
    matches!(ty, Type::String)
}

fn is_bytes(ty: &Type) -> bool {
    matches!(ty, Type::List(list) if matches!(list.ty(), Type::U8))
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
