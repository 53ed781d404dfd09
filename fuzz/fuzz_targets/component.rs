//! Fuzz target: arbitrary bytes (seeded with valid components) through the whole runtime path:
//! validate → compile → detect world → link → instantiate → call, under small limits.
//! Any outcome or rejection is fine; a panic, abort or hang is a bug.
//! `tests/all/fuzz_corpus.rs` replays the corpus through the same steps.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| warden_fuzz::compile_and_call(data));
