//! Execution slots held for a job of many calls (a pipeline run), and instances reused for a
//! bounded batch of one job's calls.
//!
//! A [`Lease`] is admitted once, for all its slots, so a job cannot be refused halfway through.
//! Each call made through it is still a call in its own sandbox: [`Lease::invoke`] gives it a
//! fresh instance, exactly like [`Runtime::invoke`]; [`Lease::reuse`] gives a [`Reused`]
//! instance that serves up to `max_calls` calls of the same component for the same job, with
//! fuel, deadline, logs and output streams reset per call. A trap or any limit hit discards the
//! instance; the next call gets a fresh one.

use crate::Runtime;
use crate::compile::Prepared;
use crate::invoke::{Admitted, Call, InvokeError, Returned, call_export, micros, report};
use crate::limits::Limits;
use crate::long_calls::LongCallHint;
use crate::outcome::{DeadlineExceeded, Execution, Outcome, Stats};
use crate::sandbox::Capabilities;
use crate::sandbox::Sandbox;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;
use wasmtime::component::Instance;

/// Execution slots admitted together and held until dropped (and until the last call made
/// through them has dropped its store).
pub struct Lease {
    runtime: Runtime,
    permits: Arc<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
    slots: u32,
    queued_us: u64,
}

impl Runtime {
    /// Admits a job that runs up to `slots` calls at once: takes `slots` places in the queue
    /// (or fails at once with `Overloaded`), then waits for `slots` execution slots. `slots` is
    /// clamped to `1..=max_concurrent_runs`.
    ///
    /// # Errors
    /// [`InvokeError::Overloaded`] when the queue cannot take the job now.
    pub async fn lease(&self, slots: u32) -> Result<Lease, InvokeError> {
        let slots = slots.clamp(1, self.inner.config.max_concurrent_runs);
        let Admitted { permits, queued_us } = self.admit_many(slots).await?;
        Ok(Lease {
            runtime: self.clone(),
            permits,
            slots,
            queued_us,
        })
    }
}

impl Lease {
    /// How many calls may run at once on this lease.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Time the lease waited for its slots, in microseconds.
    pub fn queued_us(&self) -> u64 {
        self.queued_us
    }

    fn admitted(&self) -> Admitted {
        Admitted {
            permits: Arc::clone(&self.permits),
            queued_us: 0,
        }
    }

    /// One call in a fresh instance, as [`Runtime::invoke`], on the lease's slots. The caller
    /// runs at most [`Lease::slots`] of these at once.
    ///
    /// # Errors
    /// `WrongWorld`, `InputTooLarge`, `MemoryAboveEngine` as [`Runtime::invoke`].
    pub async fn invoke(
        &self,
        prepared: &Prepared,
        call: Call<'_>,
        limits: &Limits,
        caps: &Capabilities,
        hint: &LongCallHint,
    ) -> Result<Execution, InvokeError> {
        self.runtime.check(prepared, call, limits)?;
        let (execution, _late) = self
            .runtime
            .run_admitted(prepared, call, limits, caps, hint, self.admitted())
            .await?;
        Ok(execution)
    }

    /// An instance of `prepared` that serves up to `max_calls` (at least 1) calls before it is
    /// replaced by a fresh one.
    pub fn reuse(
        &self,
        prepared: &Prepared,
        limits: &Limits,
        caps: &Capabilities,
        max_calls: u32,
    ) -> Reused {
        Reused {
            runtime: self.runtime.clone(),
            prepared: prepared.clone(),
            limits: *limits,
            caps: caps.clone(),
            max_calls: max_calls.max(1),
            live: None,
            instances: 0,
            _permits: self.admitted(),
        }
    }
}

/// An instance reused for consecutive calls of one job (see the module docs).
pub struct Reused {
    runtime: Runtime,
    prepared: Prepared,
    limits: Limits,
    caps: Capabilities,
    max_calls: u32,
    live: Option<Live>,
    instances: u64,
    _permits: Admitted,
}

struct Live {
    store: Store<Sandbox>,
    instance: Instance,
    calls: u32,
}

impl Reused {
    /// Instances created since the last time this was asked (the first, and every
    /// replacement).
    pub fn take_instances(&mut self) -> u64 {
        std::mem::take(&mut self.instances)
    }

    /// Runs one call, instantiating first when there is no live instance (the first call, the
    /// call after `max_calls`, or after a call that did not end `ok` or `guest_error`).
    ///
    /// Per call: fuel and the wall-clock deadline start afresh, logs and output streams are the
    /// call's own, and `memory_peak_bytes` is the highest the instance held during the call.
    ///
    /// # Errors
    /// `WrongWorld`, `InputTooLarge`, `MemoryAboveEngine` when the call cannot start.
    pub async fn call(&mut self, call: Call<'_>) -> Result<Execution, InvokeError> {
        let limits = self.limits;
        self.call_with(call, &limits).await
    }

    /// As [`Reused::call`], with this call's own fuel, deadline and size caps (its memory limit
    /// stays the instance's).
    ///
    /// # Errors
    /// As [`Reused::call`].
    pub async fn call_with(
        &mut self,
        call: Call<'_>,
        limits: &Limits,
    ) -> Result<Execution, InvokeError> {
        let limits = Limits {
            memory_mb: self.limits.memory_mb,
            ..*limits
        };
        self.runtime.check(&self.prepared, call, &limits)?;
        let started = Instant::now();
        let deadline = started + limits.timeout();
        let mut instantiate_us = 0;
        if self
            .live
            .as_ref()
            .is_none_or(|live| live.calls >= self.max_calls)
        {
            self.live = None;
            self.instances += 1;
            let mut store =
                self.runtime
                    .new_store(self.prepared.engine(), &self.limits, &self.caps);
            let instantiated = tokio::select! {
                biased;
                instance = self.prepared.pre.instantiate_async(&mut store) => instance,
                () = tokio::time::sleep_until(deadline.into()) => Err(wasmtime::Error::new(DeadlineExceeded)),
            };
            instantiate_us = micros(started.elapsed());
            match instantiated {
                Ok(instance) => {
                    self.live = Some(Live {
                        store,
                        instance,
                        calls: 0,
                    })
                }
                Err(error) => {
                    let stats = Stats {
                        wall_us: instantiate_us,
                        instantiate_us,
                        ..Stats::default()
                    };
                    return Ok(report(&mut store, Err(error), &limits, stats));
                }
            }
        }
        let Some(live) = self.live.as_mut() else {
            return Err(InvokeError::Internal {
                context: "a reused worker has no live instance",
                source: None,
            });
        };
        live.calls += 1;
        let store = &mut live.store;
        // Fuel is enabled engine-wide, so setting it cannot fail.
        let _ = store.set_fuel(limits.fuel);
        store.data_mut().start_call(deadline);
        store.data_mut().memory.restart();
        let result: wasmtime::Result<Returned> = tokio::select! {
            biased;
            returned = call_export(store, &live.instance, call, &limits) => returned,
            () = tokio::time::sleep_until(deadline.into()) => Err(wasmtime::Error::new(DeadlineExceeded)),
        };
        let stats = Stats {
            wall_us: micros(started.elapsed()),
            instantiate_us,
            ..Stats::default()
        };
        let execution = report(store, result, &limits, stats);
        if !matches!(execution.outcome, Outcome::Ok | Outcome::GuestError) {
            // A trap or a limit hit leaves the instance in no state to run again.
            self.live = None;
        }
        Ok(execution)
    }
}
