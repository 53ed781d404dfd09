//! Hostile and minimal components, generated from WAT and WIT at test time.
//!
//! A core module plus a WIT world becomes a component through `wit-component`, the same way a
//! guest toolchain's linker makes one. Each fixture is as small as the behaviour it exercises.

use std::path::Path;
use wit_component::{ComponentEncoder, StringEncoding, embed_component_metadata};
use wit_parser::Resolve;

/// The seed world's package versions.
pub const V0_0_1: &str = "0.0.1";
pub const V0_1_0: &str = "0.1.0";

/// Where the test writes `run`'s return area (discriminant, pointer, length).
const RET_AREA: u32 = 64;

/// A core module for `local:main/runner@{version}` with `pages` of memory and `body` (which
/// must define the exported `run`), wrapped into a component.
pub fn runner(version: &str, pages: u32, body: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
          (import "local:main/host@{version}" "log" (func $log (param i32 i32)))
          (memory (export "memory") {pages})
          (global $heap (mut i32) (i32.const 4096))
          (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
            (local $p i32)
            (local.set $p (global.get $heap))
            (global.set $heap (i32.add (global.get $heap) (local.get 3)))
            (local.get $p))
          {body})"#
    );
    let wit = repo_root().join(format!("wit/local-main-{version}"));
    componentize(&wat, WitSource::Dir(&wit), "runner")
}

/// A core module for `warden:plugin/transformer@0.1.0` with `pages` of memory, a `cabi_realloc`
/// given by `realloc` (a function body), and `body` (which must define the exported
/// `transform`, taking `(ptr, len)` and returning a pointer to its return area).
pub fn transformer(pages: u32, realloc: &str, body: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
          (import "warden:plugin/host@0.1.0" "log" (func $log (param i32 i32 i32)))
          (memory (export "memory") {pages})
          (global $heap (mut i32) (i32.const 4096))
          (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) {realloc})
          {body})"#
    );
    let wit = repo_root().join("wit/warden-plugin-0.1.0");
    componentize(&wat, WitSource::Dir(&wit), "transformer")
}

/// A bump allocator body for [`transformer`].
pub const BUMP_REALLOC: &str = r#"(local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get 3)))
    (local.get $p)"#;

/// `transform` that returns its input unchanged.
pub fn echo_transformer() -> Vec<u8> {
    transformer(
        16,
        BUMP_REALLOC,
        &format!(
            r#"(func (export "transform") (param $ptr i32) (param $len i32) (result i32)
              (i32.store8 (i32.const {RET_AREA}) (i32.const 0))
              (i32.store (i32.const {p}) (local.get $ptr))
              (i32.store (i32.const {l}) (local.get $len))
              (i32.const {RET_AREA}))"#,
            p = RET_AREA + 4,
            l = RET_AREA + 8,
        ),
    )
}

/// A `runner` whose `run` is `body` (must leave an i32 return-area pointer), with `pages` of
/// memory and extra definitions `extra`.
pub fn runner_with(pages: u32, extra: &str, body: &str) -> Vec<u8> {
    runner(
        V0_0_1,
        pages,
        &format!(
            r#"{extra}
            (func (export "run") (result i32) {body})"#
        ),
    )
}

/// Body snippet: store `Ok` of (ptr, len) in the return area and leave its address.
pub fn return_ok(ptr: u32, len: u32) -> String {
    format!(
        "(i32.store8 (i32.const {RET_AREA}) (i32.const 0))
         (i32.store (i32.const {p}) (i32.const {ptr}))
         (i32.store (i32.const {l}) (i32.const {len}))
         (i32.const {RET_AREA})",
        p = RET_AREA + 4,
        l = RET_AREA + 8,
    )
}

/// Body snippet: store `Err` of (ptr, len) in the return area and leave its address.
pub fn return_err(ptr: u32, len: u32) -> String {
    return_ok(ptr, len).replacen("(i32.const 0))", "(i32.const 1))", 1)
}

/// `run` that returns `Ok(text)` or `Err(text)` (`is_err`), text stored at offset 16.
fn returns(text: &str, is_err: bool) -> String {
    format!(
        r#"(data (i32.const 16) "{text}")
        (func (export "run") (result i32)
          (call $log (i32.const 16) (i32.const {len}))
          (i32.store8 (i32.const {RET_AREA}) (i32.const {disc}))
          (i32.store (i32.const {p}) (i32.const 16))
          (i32.store (i32.const {l}) (i32.const {len}))
          (i32.const {RET_AREA}))"#,
        len = text.len(),
        disc = u8::from(is_err),
        p = RET_AREA + 4,
        l = RET_AREA + 8,
    )
}

/// Logs and returns `Ok("hi")`.
pub fn hello(version: &str) -> Vec<u8> {
    runner(version, 1, &returns("hi", false))
}

/// Returns `Err("nope")`.
pub fn guest_error() -> Vec<u8> {
    runner(V0_0_1, 1, &returns("nope", true))
}

/// Spins forever.
pub fn infinite_loop() -> Vec<u8> {
    runner(
        V0_0_1,
        1,
        r#"(func (export "run") (result i32) (loop $spin (br $spin)) (i32.const 0))"#,
    )
}

/// Grows memory one 1 MiB step at a time and writes every new page (so it is really resident);
/// traps when growth is refused.
pub fn memory_grow_loop() -> Vec<u8> {
    runner(
        V0_0_1,
        1,
        r#"(func (export "run") (result i32)
             (local $old i32)
             (loop $grow
               (local.set $old (memory.grow (i32.const 16)))
               (if (i32.eq (local.get $old) (i32.const -1)) (then unreachable))
               (memory.fill (i32.mul (local.get $old) (i32.const 65536)) (i32.const 1) (i32.const 1048576))
               (br $grow))
             (i32.const 0))"#,
    )
}

/// Executes `unreachable`.
pub fn unreachable() -> Vec<u8> {
    runner(
        V0_0_1,
        1,
        r#"(func (export "run") (result i32) unreachable)"#,
    )
}

/// Recurses without end.
pub fn deep_recursion() -> Vec<u8> {
    runner(
        V0_0_1,
        1,
        r#"(func $down (param i32) (result i32) (call $down (i32.add (local.get 0) (i32.const 1))))
           (func (export "run") (result i32) (call $down (i32.const 0)))"#,
    )
}

/// Logs one line of `bytes` bytes of 'A' (memory sized to hold it), then returns `Ok("hi")`.
pub fn huge_log_line(bytes: u32) -> Vec<u8> {
    let pages = bytes / 65536 + 2;
    runner(
        V0_0_1,
        pages,
        &format!(
            r#"(data (i32.const 16) "hi")
            (func (export "run") (result i32)
              (memory.fill (i32.const 65536) (i32.const 65) (i32.const {bytes}))
              (call $log (i32.const 65536) (i32.const {bytes}))
              (i32.store8 (i32.const {RET_AREA}) (i32.const 0))
              (i32.store (i32.const {p}) (i32.const 16))
              (i32.store (i32.const {l}) (i32.const 2))
              (i32.const {RET_AREA}))"#,
            p = RET_AREA + 4,
            l = RET_AREA + 8,
        ),
    )
}

/// Returns `Ok` with a string of `bytes` bytes of 'x'.
pub fn oversized_output(bytes: u32) -> Vec<u8> {
    let pages = bytes / 65536 + 2;
    runner(
        V0_0_1,
        pages,
        &format!(
            r#"(func (export "run") (result i32)
              (memory.fill (i32.const 65536) (i32.const 120) (i32.const {bytes}))
              (i32.store8 (i32.const {RET_AREA}) (i32.const 0))
              (i32.store (i32.const {p}) (i32.const 65536))
              (i32.store (i32.const {l}) (i32.const {bytes}))
              (i32.const {RET_AREA}))"#,
            p = RET_AREA + 4,
            l = RET_AREA + 8,
        ),
    )
}

/// Returns `Ok("hi")` and, like a real allocator's `free`, scribbles over the string in its
/// post-return function (regression: results were once read after post-return ran).
pub fn scribbling_post_return() -> Vec<u8> {
    runner(
        V0_0_1,
        1,
        &format!(
            r#"{}
            (func (export "cabi_post_run") (param i32)
              (i32.store16 (i32.const 16) (i32.const 0xffff)))"#,
            returns("hi", false)
        ),
    )
}

/// Returns `Ok` with a string pointer far outside its memory.
pub fn string_out_of_bounds() -> Vec<u8> {
    runner(
        V0_0_1,
        1,
        &format!(
            r#"(func (export "run") (result i32)
              (i32.store8 (i32.const {RET_AREA}) (i32.const 0))
              (i32.store (i32.const {p}) (i32.const 0x7fff0000))
              (i32.store (i32.const {l}) (i32.const 4096))
              (i32.const {RET_AREA}))"#,
            p = RET_AREA + 4,
            l = RET_AREA + 8,
        ),
    )
}

/// Logs bytes that are not UTF-8.
pub fn invalid_utf8_log() -> Vec<u8> {
    runner(
        V0_0_1,
        1,
        r#"(data (i32.const 16) "\ff\fe\fd")
           (func (export "run") (result i32)
             (call $log (i32.const 16) (i32.const 3))
             (i32.const 0))"#,
    )
}

/// A component whose `run` takes a parameter and returns a number.
pub fn wrong_signature() -> Vec<u8> {
    let wit = "package test:wrong; world runner { export run: func(x: u32) -> u32; }";
    let wat = r#"(module (memory (export "memory") 1)
                   (func (export "run") (param i32) (result i32) (local.get 0)))"#;
    componentize(wat, WitSource::Text(wit), "runner")
}

/// A component that exports no `run` at all.
pub fn no_run_export() -> Vec<u8> {
    let wit = "package test:other; world other { export go: func(); }";
    let wat = r#"(module (memory (export "memory") 1) (func (export "go")))"#;
    componentize(wat, WitSource::Text(wit), "other")
}

/// A `runner` that also imports an interface Warden does not provide.
pub fn unknown_import() -> Vec<u8> {
    let wit = "package test:evil@0.1.0;
        interface net { connect: func(host: string); }
        world runner { import net; export run: func() -> result<string, string>; }";
    let wat = r#"(module
        (import "test:evil/net@0.1.0" "connect" (func $connect (param i32 i32)))
        (memory (export "memory") 1)
        (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096))
        (func (export "run") (result i32) (call $connect (i32.const 0) (i32.const 0)) (i32.const 64)))"#;
    componentize(wat, WitSource::Text(wit), "runner")
}

/// A plain core module (not a component).
pub fn core_module() -> Vec<u8> {
    wat::parse_str(r#"(module (func (export "run")))"#).expect("valid wat")
}

/// A valid component of roughly `target_bytes`, made of many functions (a compile bomb).
pub fn large_component(target_bytes: usize) -> Vec<u8> {
    // Each function is ~250 bytes of code: a chain of arithmetic Cranelift must compile.
    let per_function = 250;
    let count = target_bytes / per_function;
    let mut body = String::with_capacity(count * 600);
    for i in 0..count {
        body.push_str(&format!(
            "(func $f{i} (param i32) (result i32) (local.get 0)"
        ));
        for k in 0..40 {
            body.push_str(&format!(
                " (i32.const {k}) (i32.add) (i32.const 3) (i32.mul)"
            ));
        }
        body.push_str(")\n");
    }
    body.push_str(&returns("big", false));
    runner(V0_0_1, 1, &body)
}

/// The `warden:plugin@0.2.0` host interface as inline WIT, for fixtures whose world imports it.
pub const PLUGIN_HOST_0_2_0: &str = "package warden:plugin@0.2.0 {
      interface host {
        enum level { trace, debug, info, warn, error }
        log: func(level: level, message: string);
        config: func(key: string) -> option<string>;
      }
    }";

/// A component of world `world` from a core module's `wat` and inline WIT text.
pub fn component_from(wat: &str, wit: &str, world: &str) -> Vec<u8> {
    componentize(wat, WitSource::Text(wit), world)
}

enum WitSource<'a> {
    Dir(&'a Path),
    Text(&'a str),
}

fn componentize(wat: &str, wit: WitSource<'_>, world: &str) -> Vec<u8> {
    let mut resolve = Resolve::default();
    let package = match wit {
        WitSource::Dir(dir) => resolve.push_dir(dir).expect("wit dir parses").0,
        WitSource::Text(text) => resolve.push_str("fixture.wit", text).expect("wit parses"),
    };
    let world = resolve
        .select_world(&[package], Some(world))
        .expect("world exists");
    let mut module = wat::parse_str(wat).expect("fixture WAT parses");
    embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
        .expect("metadata embeds");
    ComponentEncoder::default()
        .module(&module)
        .expect("module accepted")
        .validate(true)
        .encode()
        .expect("component encodes")
}

/// The repository root (the test binary runs from the `warden` package directory).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A `runner` with `pages` of memory that asks `wasi:random` for `len` bytes in one call, then
/// returns `Ok("")`.
pub fn random_bytes(len: u64, pages: u32) -> Vec<u8> {
    let wit = "package wasi:random@0.2.0;
        interface random { get-random-bytes: func(len: u64) -> list<u8>; }
        world runner { import random; export run: func() -> result<string, string>; }";
    let wat = format!(
        r#"(module
          (import "wasi:random/random@0.2.0" "get-random-bytes" (func $random (param i64 i32)))
          (memory (export "memory") {pages})
          (global $heap (mut i32) (i32.const 4096))
          (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) {BUMP_REALLOC})
          (func (export "run") (result i32)
            (call $random (i64.const 0x{len:x}) (i32.const 128))
            {ok}))"#,
        ok = return_ok(0, 0),
    );
    componentize(&wat, WitSource::Text(wit), "runner")
}

/// A `runner` that creates WASI resources (`pollable`s from the monotonic clock) in an endless
/// loop, never dropping one.
pub fn handle_flood() -> Vec<u8> {
    let wit = "package local:fixture;
        world runner {
          import wasi:clocks/monotonic-clock@0.2.0;
          export run: func() -> result<string, string>;
        }
        package wasi:io@0.2.0 { interface poll { resource pollable; } }
        package wasi:clocks@0.2.0 {
          interface monotonic-clock {
            use wasi:io/poll@0.2.0.{pollable};
            subscribe-duration: func(when: u64) -> pollable;
          }
        }";
    let wat = r#"(module
        (import "wasi:clocks/monotonic-clock@0.2.0" "subscribe-duration"
          (func $subscribe (param i64) (result i32)))
        (memory (export "memory") 1)
        (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096))
        (func (export "run") (result i32)
          (loop $l (drop (call $subscribe (i64.const 1000000000))) (br $l))
          (i32.const 0)))"#;
    componentize(wat, WitSource::Text(wit), "runner")
}

/// A core module for `warden:plugin/{world}@0.2.0` (`processor` or `aggregator`) with `pages` of
/// memory, a bump `cabi_realloc` and `body` (which must define the world's exports).
pub fn plugin(world: &str, pages: u32, body: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
          (memory (export "memory") {pages})
          (global $heap (mut i32) (i32.const 4096))
          (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) {BUMP_REALLOC})
          {body})"#
    );
    let wit = repo_root().join("wit/warden-plugin-0.2.0");
    componentize(&wat, WitSource::Dir(&wit), world)
}

/// Where a records fixture lays out its list of (pointer, length) slots: page 1 on.
const RECORDS_AT: u32 = 65536;
/// Where the bytes of a records fixture's non-empty records are (all records share them).
const RECORD_BYTES_AT: u32 = 1024;

/// Pages a records fixture needs for `count` slots.
fn pages_for_records(count: u32) -> u32 {
    (RECORDS_AT + count * 8) / 65536 + 1
}

/// Body snippet: `Ok` of `count` records of `len` bytes of 'x' each. With `len` 0 the slots are
/// the memory's untouched zeroes (pointer 0, length 0): no guest work, only the list to lift.
fn return_records(count: u32, len: u32) -> String {
    assert!(
        len <= 4096 - RECORD_BYTES_AT,
        "record bytes stay below the heap"
    );
    let fill = match len {
        0 => String::new(),
        _ => format!(
            "(memory.fill (i32.const {RECORD_BYTES_AT}) (i32.const 120) (i32.const {len}))
             (block $done (loop $slot
               (br_if $done (i32.ge_u (local.get $i) (i32.const {count})))
               (i32.store (i32.add (i32.const {RECORDS_AT}) (i32.shl (local.get $i) (i32.const 3)))
                 (i32.const {RECORD_BYTES_AT}))
               (i32.store offset=4
                 (i32.add (i32.const {RECORDS_AT}) (i32.shl (local.get $i) (i32.const 3)))
                 (i32.const {len}))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br $slot)))"
        ),
    };
    format!(
        "{fill}
         (i32.store8 (i32.const {RET_AREA}) (i32.const 0))
         (i32.store (i32.const {p}) (i32.const {RECORDS_AT}))
         (i32.store (i32.const {l}) (i32.const {count}))
         (i32.const {RET_AREA})",
        p = RET_AREA + 4,
        l = RET_AREA + 8,
    )
}

/// A `processor` whose `process` returns `count` records of `len` bytes, whatever its input.
pub fn records_processor(count: u32, len: u32) -> Vec<u8> {
    plugin(
        "processor",
        pages_for_records(count),
        &format!(
            r#"(func (export "process") (param i32 i32) (result i32) (local $i i32)
              {})"#,
            return_records(count, len)
        ),
    )
}

/// An `aggregator` whose `step` keeps an empty state and whose `finish` returns `count` empty
/// records.
pub fn records_aggregator(count: u32) -> Vec<u8> {
    plugin(
        "aggregator",
        pages_for_records(count),
        &format!(
            r#"(func (export "step") (param i32 i32 i32 i32) (result i32)
              {ok_empty})
            (func (export "finish") (param i32 i32) (result i32) (local $i i32)
              {records})"#,
            ok_empty = return_ok(0, 0),
            records = return_records(count, 0),
        ),
    )
}

/// A `transformer@0.2.0` that reads config value `key` through `host.config` and fails with it
/// (`Err("failed with <value>")`): a guest that puts a secret in its error.
pub fn secret_in_error(key: &str) -> Vec<u8> {
    // `config(key) -> option<string>` lowers to (key ptr, key len, return pointer); the host
    // writes the option's discriminant at the return pointer and the string's (ptr, len) at +4.
    const KEY_AT: u32 = 16;
    const OPTION_AT: u32 = 128;
    const MESSAGE_AT: u32 = 256;
    const PREFIX: &str = "failed with ";
    let wat = format!(
        r#"(module
          (import "warden:plugin/host@0.2.0" "config" (func $config (param i32 i32 i32)))
          (memory (export "memory") 1)
          (global $heap (mut i32) (i32.const 4096))
          (data (i32.const {KEY_AT}) "{key}")
          (data (i32.const {MESSAGE_AT}) "{PREFIX}")
          (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) {BUMP_REALLOC})
          (func (export "transform") (param i32 i32) (result i32)
            (local $len i32)
            (call $config (i32.const {KEY_AT}) (i32.const {key_len}) (i32.const {OPTION_AT}))
            (local.set $len (i32.load (i32.const {option_len})))
            (memory.copy (i32.const {value_at}) (i32.load (i32.const {option_ptr})) (local.get $len))
            (i32.store8 (i32.const {RET_AREA}) (i32.const 1))
            (i32.store (i32.const {p}) (i32.const {MESSAGE_AT}))
            (i32.store (i32.const {l}) (i32.add (local.get $len) (i32.const {prefix_len})))
            (i32.const {RET_AREA})))"#,
        key_len = key.len(),
        option_ptr = OPTION_AT + 4,
        option_len = OPTION_AT + 8,
        value_at = MESSAGE_AT as usize + PREFIX.len(),
        prefix_len = PREFIX.len(),
        p = RET_AREA + 4,
        l = RET_AREA + 8,
    );
    let wit = repo_root().join("wit/warden-plugin-0.2.0");
    componentize(&wat, WitSource::Dir(&wit), "transformer")
}
