//! The path Warden's fuzz targets drive, and their replay: compile arbitrary bytes, then call
//! the component's world once under small limits. It lives beside what it exercises so the fuzz
//! crate (`fuzz/`) and the replay of its corpus (`tests/all/fuzz_corpus.rs`) run the very same
//! steps; it adds nothing to the server.

use crate::{
    Call, EngineConfig, Execution, InvokeError, Limits, LongCallHint, Output, Runtime, WorldKind,
};
use std::sync::Arc;

/// The input every world that takes one is given.
pub const HARNESS_INPUT: &[u8] = b"fuzz input";

/// The engine of the harness: two slots, memories of at most 16 MiB.
pub fn harness_engine() -> EngineConfig {
    EngineConfig {
        max_concurrent_runs: 2,
        max_memory_mb: 16,
        ..EngineConfig::default()
    }
}

/// The limits of a harness call: 1 000 000 fuel, 100 ms, 16 MiB.
pub fn harness_limits() -> Limits {
    Limits {
        fuel: 1_000_000,
        timeout_ms: 100,
        memory_mb: 16,
        ..Limits::default()
    }
}

/// Validate → compile → detect the world → link → instantiate → call: `run`, `transform`,
/// `process`, or an aggregator's `step` and then `finish` on the state it returned. Bytes that
/// do not compile are a fine answer (no calls); so is any outcome.
///
/// # Errors
/// An [`InvokeError`] for a compiled component: a call the harness could not make, which is a
/// bug (the harness's limits always fit its engine).
pub async fn compile_and_call(
    runtime: &Runtime,
    bytes: &[u8],
) -> Result<Vec<Execution>, InvokeError> {
    let Ok(prepared) = runtime.compile(Arc::from(bytes)).await else {
        return Ok(Vec::new());
    };
    let (limits, hint) = (harness_limits(), LongCallHint::default());
    let call = async |call: Call<'_>| runtime.invoke(&prepared, call, &limits, &hint).await;
    Ok(match prepared.info().kind {
        WorldKind::Runner => vec![call(Call::Run).await?],
        WorldKind::Transformer => vec![call(Call::Transform(HARNESS_INPUT)).await?],
        WorldKind::Processor => vec![call(Call::Process(HARNESS_INPUT)).await?],
        WorldKind::Aggregator => {
            let step = call(Call::Step {
                state: b"",
                input: HARNESS_INPUT,
            })
            .await?;
            let state = match &step.output {
                Some(Output::Bytes(state)) => state.clone(),
                _ => Vec::new(),
            };
            let finish = call(Call::Finish(&state)).await?;
            vec![step, finish]
        }
    })
}
