//! Fuzz target: structured generation. The bytes drive `wasm-smith` to write a valid core
//! module with a Warden guest's imports and exports (random bodies, memory, data), wrapped as a
//! component, then run through the same path as the `component` target. Where byte-level
//! mutation mostly exercises the validator, this reaches compile, instantiate, the host calls
//! and the lifting of the guest's results (random pointers and lengths).
//! `materialize` turns its corpus into components for the replayed `component` corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(component) = warden_fuzz::generate(data) {
        warden_fuzz::compile_and_call(&component);
    }
});
