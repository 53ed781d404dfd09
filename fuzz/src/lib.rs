//! Shared pieces of Warden's fuzz targets: one runtime under small limits, the call every
//! component gets, and the structured generator that turns fuzz bytes into a valid component.

use std::sync::OnceLock;
use warden_runtime::{Runtime, harness};
use wit_component::{ComponentEncoder, StringEncoding, embed_component_metadata};
use wit_parser::Resolve;

/// The runtime every target uses (built once per process, with the harness's engine) and its
/// tokio runtime.
pub fn setup() -> &'static (tokio::runtime::Runtime, Runtime) {
    static SETUP: OnceLock<(tokio::runtime::Runtime, Runtime)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        let runtime = tokio
            .block_on(async { Runtime::new(harness::harness_engine()) })
            .expect("runtime");
        (tokio, runtime)
    })
}

/// The harness's path (`warden_runtime::harness::compile_and_call`, the one the replay test
/// calls): validate → compile → detect world → link → instantiate → call, under small limits.
/// Any rejection or outcome is fine; a panic, abort, hang, or a call the harness could not
/// make is a bug.
pub fn compile_and_call(component: &[u8]) {
    let (tokio, runtime) = setup();
    let called = tokio.block_on(harness::compile_and_call(runtime, component));
    if let Err(error) = called {
        panic!("a call the harness could not make: {error}");
    }
}

/// A world Warden serves, with the core imports and exports its guests have.
struct Shape {
    wit_dir: &'static str,
    world: &'static str,
    imports: &'static str,
    exports: &'static str,
}

/// The host imports of a `warden:plugin@0.2.0` guest.
const PLUGIN_0_2_0_IMPORTS: &str = r#"(module
    (import "warden:plugin/host@0.2.0" "log" (func (param i32 i32 i32)))
    (import "warden:plugin/host@0.2.0" "config" (func (param i32 i32 i32))))"#;

const SHAPES: [Shape; 4] = [
    Shape {
        wit_dir: "local-main-0.0.1",
        world: "runner",
        imports: r#"(module (import "local:main/host@0.0.1" "log" (func (param i32 i32))))"#,
        exports: r#"(module
            (memory (export "memory") 1)
            (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) unreachable)
            (func (export "run") (result i32) unreachable))"#,
    },
    Shape {
        wit_dir: "warden-plugin-0.1.0",
        world: "transformer",
        imports: r#"(module (import "warden:plugin/host@0.1.0" "log" (func (param i32 i32 i32))))"#,
        exports: r#"(module
            (memory (export "memory") 1)
            (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) unreachable)
            (func (export "transform") (param i32 i32) (result i32) unreachable))"#,
    },
    Shape {
        wit_dir: "warden-plugin-0.2.0",
        world: "processor",
        imports: PLUGIN_0_2_0_IMPORTS,
        exports: r#"(module
            (memory (export "memory") 1)
            (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) unreachable)
            (func (export "process") (param i32 i32) (result i32) unreachable))"#,
    },
    Shape {
        wit_dir: "warden-plugin-0.2.0",
        world: "aggregator",
        imports: PLUGIN_0_2_0_IMPORTS,
        exports: r#"(module
            (memory (export "memory") 1)
            (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) unreachable)
            (func (export "step") (param i32 i32 i32 i32) (result i32) unreachable)
            (func (export "finish") (param i32 i32) (result i32) unreachable))"#,
    },
];

/// Turns fuzz bytes into a valid component for one of Warden's worlds: `wasm-smith` writes a
/// random core module with exactly the guest's imports and exports (random bodies, memory,
/// tables, data), and `wit-component` wraps it as a guest toolchain's linker would. `None` when
/// the bytes run out or the module cannot be wrapped (not a Warden bug either way).
pub fn generate(data: &[u8]) -> Option<Vec<u8>> {
    let mut input = arbitrary::Unstructured::new(data);
    let index = input.choose_index(SHAPES.len()).ok()?;
    let shape = &SHAPES[index];
    let config = wasm_smith::Config {
        available_imports: Some(wat::parse_str(shape.imports).ok()?),
        exports: Some(wat::parse_str(shape.exports).ok()?),
        max_memory32_bytes: 32 << 20,
        max_instructions: 1000,
        max_funcs: 20,
        max_table_elements: 10_000,
        // Warden's engine: one memory and one table per module, no GC, no compact imports.
        max_memories: 0,
        compact_imports_enabled: false,
        reference_types_enabled: false,
        memory64_enabled: false,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        gc_enabled: false,
        exceptions_enabled: false,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        relaxed_simd_enabled: false,
        tail_call_enabled: false,
        allow_start_export: false,
        ..wasm_smith::Config::default()
    };
    let mut module = wasm_smith::Module::new(config, &mut input).ok()?.to_bytes();
    let (resolve, world) = world(index)?;
    embed_component_metadata(&mut module, resolve, *world, StringEncoding::UTF8, false).ok()?;
    ComponentEncoder::default()
        .module(&module)
        .ok()?
        .validate(true)
        .encode()
        .ok()
}

/// The parsed WIT of `SHAPES[index]`'s world (all parsed once per process).
fn world(index: usize) -> Option<&'static (Resolve, wit_parser::WorldId)> {
    static WORLDS: OnceLock<Vec<Option<(Resolve, wit_parser::WorldId)>>> = OnceLock::new();
    let worlds = WORLDS.get_or_init(|| {
        SHAPES
            .iter()
            .map(|shape| {
                let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../wit")
                    .join(shape.wit_dir);
                let mut resolve = Resolve::default();
                let (package, _) = resolve.push_dir(&dir).ok()?;
                let world = resolve.select_world(&[package], Some(shape.world)).ok()?;
                Some((resolve, world))
            })
            .collect()
    });
    worlds[index].as_ref()
}
