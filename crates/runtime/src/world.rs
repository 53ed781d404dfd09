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

/// The worlds Warden can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorldKind {
    /// `local:main/runner`: `run: func() -> result<string, string>`.
    Runner,
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

    let run = ty.get_export(engine, "run").ok_or_else(|| {
        IncompatibleWorld(format!(
            "the component exports no `run` function (world local:main/runner); it exports: [{}]",
            exports.join(", ")
        ))
    })?;
    check_run_signature(&run.ty)?;

    let version = imports
        .iter()
        .find_map(|name| name.strip_prefix("local:main/host@"))
        .filter(|version| RUNNER_VERSIONS.contains(version))
        .unwrap_or(RUNNER_VERSIONS[0]);
    let denied = imports.iter().filter_map(|name| denial(name)).collect();
    Ok(ComponentInfo {
        kind: WorldKind::Runner,
        world: format!("local:main/runner@{version}"),
        imports,
        exports,
        denied,
    })
}

fn check_run_signature(item: &ComponentItem) -> Result<(), IncompatibleWorld> {
    let wrong = |found: String| {
        IncompatibleWorld(format!(
            "`run` must be `func() -> result<string, string>`; found {found}"
        ))
    };
    let ComponentItem::ComponentFunc(func) = item else {
        return Err(wrong("an export that is not a function".into()));
    };
    let params = func.params().len();
    let results: Vec<Type> = func.results().collect();
    let is_string = |t: Option<Type>| matches!(t, Some(Type::String));
    match results.as_slice() {
        [Type::Result(result)]
            if params == 0 && is_string(result.ok()) && is_string(result.err()) =>
        {
            Ok(())
        }
        _ => Err(wrong(format!(
            "a function with {params} parameter(s) returning {}",
            describe(&results)
        ))),
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
