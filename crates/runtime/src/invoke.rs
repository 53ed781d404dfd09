//! One call: a fresh `Store` with its limits, instantiate, call, collect, drop.
//!
//! Nothing survives a call: the store, its memories and its WASI state are dropped at the end,
//! and pool slots are reset before reuse. Admission is bounded: a fixed number of calls run at
//! once, a fixed number wait, and the rest are refused with [`InvokeError::Overloaded`].

use crate::Runtime;
use crate::compile::Prepared;
use crate::limits::Limits;
use crate::outcome::{self, DeadlineExceeded, Execution, Outcome, Stats};
use crate::sandbox::{MAX_RESOURCE_HANDLES, Sandbox};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::WasmStr;
use wasmtime::{Store, UpdateDeadline};

/// Which export to call, with its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `run: func() -> result<string, string>` of the `runner` world.
    Run,
}

/// A call that could not start. (A call that started always ends in an [`Execution`].)
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// All execution slots are busy and the wait queue is full; retry later.
    #[error("all execution slots are busy and the queue is full; retry later")]
    Overloaded,
    /// The limits cannot be served by this runtime (e.g. memory above the pool's slot size).
    #[error("{0}")]
    Limits(String),
}

/// What the guest handed back before the store is dropped.
struct Returned {
    outcome: Outcome,
    output: Option<String>,
    error: Option<String>,
}

impl Runtime {
    /// Runs one call of `prepared` under `limits`, in a fresh sandbox.
    ///
    /// `request_id` tags the call's guest log lines in the server log. Dropping the returned
    /// future cancels the call cleanly (the store is dropped and its slot released).
    ///
    /// # Errors
    /// [`InvokeError::Overloaded`] when the admission queue is full; [`InvokeError::Limits`]
    /// when `limits` exceed what the engine was built for.
    pub async fn invoke(
        &self,
        prepared: &Prepared,
        call: Call,
        limits: &Limits,
        request_id: &str,
    ) -> Result<Execution, InvokeError> {
        if limits.memory_mb > self.inner.config.max_memory_mb {
            return Err(InvokeError::Limits(format!(
                "memory_mb {} exceeds the server's max_memory_mb {}",
                limits.memory_mb, self.inner.config.max_memory_mb
            )));
        }
        let queued = Instant::now();
        let _admitted = Arc::clone(&self.inner.run_admission)
            .try_acquire_owned()
            .map_err(|_| InvokeError::Overloaded)?;
        let _slot = Arc::clone(&self.inner.run_slots)
            .acquire_owned()
            .await
            .map_err(|_| InvokeError::Overloaded)?;
        let queued_us = micros(queued.elapsed());

        let mut store = self.new_store(limits, request_id);
        let started = Instant::now();
        let mut instantiate_us = 0;
        let deadline = tokio::time::timeout(limits.timeout(), async {
            let instance = prepared.pre.instantiate_async(&mut store).await?;
            instantiate_us = micros(started.elapsed());
            match call {
                Call::Run => call_run(&mut store, &instance, limits).await,
            }
        })
        .await;
        let wall_us = micros(started.elapsed());

        let returned = match deadline {
            Ok(Ok(returned)) => returned,
            Ok(Err(error)) => {
                let (outcome, text) = outcome::classify(&error, store.data().memory.hit_limit);
                Returned {
                    outcome,
                    output: None,
                    error: Some(text),
                }
            }
            Err(_elapsed) => Returned {
                outcome: Outcome::Timeout,
                output: None,
                error: Some(DeadlineExceeded.to_string()),
            },
        };
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        Ok(self.report(
            store.into_data(),
            returned,
            Stats {
                fuel_used,
                wall_us,
                instantiate_us,
                queued_us,
                ..Stats::default()
            },
        ))
    }

    fn new_store(&self, limits: &Limits, request_id: &str) -> Store<Sandbox> {
        let mut store = Store::new(&self.inner.engine, Sandbox::new(limits, request_id));
        store.limiter(|sandbox| &mut sandbox.memory);
        // Fuel is enabled engine-wide, so setting it cannot fail.
        let _ = store.set_fuel(limits.fuel);
        // Check the deadline every tick; between ticks, yield so other calls on this worker
        // thread make progress while a long guest runs.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|context| {
            if Instant::now() >= context.data().deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        // A guest may hand the host at most its whole memory in one call; strings and lists
        // are then copied only as far as the host's own caps allow.
        store.set_hostcall_fuel(usize::try_from(limits.memory_bytes()).unwrap_or(usize::MAX));
        store.set_max_component_handles(MAX_RESOURCE_HANDLES);
        store
    }

    fn report(&self, mut sandbox: Sandbox, returned: Returned, mut stats: Stats) -> Execution {
        for denied in sandbox.take_denied_requests() {
            sandbox.log(crate::capture::LogLevel::Warn, &denied);
        }
        stats.memory_peak_bytes = sandbox.memory.peak;
        let (stdout, _) = sandbox.stdout.contents();
        let (stderr, _) = sandbox.stderr.contents();
        let (logs, logs_truncated) = sandbox.logs.finish();
        Execution {
            outcome: returned.outcome,
            output: returned.output,
            error: returned.error,
            logs,
            logs_truncated,
            stdout,
            stderr,
            stats,
        }
    }
}

/// Calls `run` and copies its result out of guest memory, within the output cap.
async fn call_run(
    store: &mut Store<Sandbox>,
    instance: &wasmtime::component::Instance,
    limits: &Limits,
) -> wasmtime::Result<Returned> {
    let run = instance.get_typed_func::<(), (Result<WasmStr, WasmStr>,)>(&mut *store, "run")?;
    let (result,) = run.call_async(&mut *store, ()).await?;
    let cap = usize::try_from(limits.max_output_bytes).unwrap_or(usize::MAX);
    let returned = match &result {
        Ok(text) => {
            let text = text.to_str(&*store)?;
            if text.len() > cap {
                Returned {
                    outcome: Outcome::OutputLimit,
                    output: None,
                    error: Some(format!(
                        "the guest returned {} bytes; the output limit is {cap} bytes",
                        text.len()
                    )),
                }
            } else {
                Returned {
                    outcome: Outcome::Ok,
                    output: Some(text.into_owned()),
                    error: None,
                }
            }
        }
        Err(text) => Returned {
            outcome: Outcome::GuestError,
            output: None,
            error: Some(crate::capture::truncate_marked(&text.to_str(&*store)?, cap)),
        },
    };
    Ok(returned)
}

fn micros(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
