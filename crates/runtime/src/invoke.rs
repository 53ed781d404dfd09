//! One call: a fresh `Store` with its limits, instantiate, call, collect, drop.
//!
//! Nothing survives a call: the store, its memories and its WASI state are dropped at the end,
//! and pool slots are reset before reuse. Admission is bounded: a fixed number of calls run at
//! once, a fixed number wait, and the rest are refused with [`InvokeError::Overloaded`].
//!
//! (Over 600 lines: admission, the call's thread, its deadline and its abandonment are one
//! ordering — slots, priority lanes and the epoch deadline must be taken and given back in
//! step — kept in one file so that order reads top to bottom.)

use crate::Runtime;
use crate::compile::Prepared;
use crate::limits::Limits;
use crate::long_calls::{LongCallHint, LowPriority, Metered};
use crate::outcome::{self, DeadlineExceeded, Execution, Outcome, Output, Stats};
use crate::records::{OutputCaps, Records, under_caps};
use crate::sandbox::Capabilities;
use crate::sandbox::{MAX_RESOURCE_HANDLES, Sandbox};
use crate::world::WorldKind;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;
use wasmtime::{Store, UpdateDeadline};

/// Which export to call, with its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call<'a> {
    /// `run: func() -> result<string, string>` of the `runner` world.
    Run,
    /// `transform: func(input: list<u8>) -> result<list<u8>, string>` of the `transformer`
    /// world.
    Transform(&'a [u8]),
    /// `process: func(input: list<u8>) -> result<list<list<u8>>, string>` of the `processor`
    /// world.
    Process(&'a [u8]),
    /// `step: func(state: list<u8>, input: list<u8>) -> result<list<u8>, string>` of the
    /// `aggregator` world; `ok` is the new state ([`Output::Bytes`]).
    Step {
        /// The state the host kept (empty for a run's first record).
        state: &'a [u8],
        /// The record.
        input: &'a [u8],
    },
    /// `finish: func(state: list<u8>) -> result<list<list<u8>>, string>` of the `aggregator`
    /// world.
    Finish(&'a [u8]),
}

impl Call<'_> {
    /// The world a component must implement to take this call.
    pub fn world(&self) -> WorldKind {
        match self {
            Call::Run => WorldKind::Runner,
            Call::Transform(_) => WorldKind::Transformer,
            Call::Process(_) => WorldKind::Processor,
            Call::Step { .. } | Call::Finish(_) => WorldKind::Aggregator,
        }
    }

    /// The name of the export called.
    pub fn export(&self) -> &'static str {
        match self {
            Call::Run => "run",
            Call::Transform(_) => "transform",
            Call::Process(_) => "process",
            Call::Step { .. } => "step",
            Call::Finish(_) => "finish",
        }
    }

    /// The bytes handed to the guest (input and state), which the input limit caps.
    pub fn input_len(&self) -> u64 {
        let len = match self {
            Call::Run => 0,
            Call::Transform(input) | Call::Process(input) | Call::Finish(input) => input.len(),
            Call::Step { state, input } => state.len() + input.len(),
        };
        len as u64
    }
}

/// A call that could not start. (A call that started always ends in an [`Execution`].)
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// All execution slots are busy and the wait queue is full; retry later.
    #[error("all execution slots are busy and the queue is full; retry later")]
    Overloaded,
    /// The input is larger than the call's input limit.
    #[error("the input is {size} bytes; the input limit is {max} bytes")]
    InputTooLarge {
        /// Bytes of input.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The memory limit is above what the engine's pool was built for.
    #[error("memory_mb {requested} exceeds the engine's max_memory_mb {max}")]
    MemoryAboveEngine {
        /// The call's memory limit, in MiB.
        requested: u64,
        /// The engine's ceiling, in MiB.
        max: u64,
    },
    /// The component implements another world than the call needs.
    #[error("the call needs a {expected:?} component; this one is a {found:?}")]
    WrongWorld {
        /// The world the call needs.
        expected: WorldKind,
        /// The world the component implements.
        found: WorldKind,
    },
    /// Something failed inside Warden (a bug): what it was doing, and the error underneath.
    #[error("internal error: {context}")]
    Internal {
        /// What failed.
        context: &'static str,
        /// The error underneath, if any.
        #[source]
        source: Option<crate::Cause>,
    },
}

/// What the guest handed back before the store is dropped.
pub(crate) struct Returned {
    outcome: Outcome,
    output: Option<Output>,
    error: Option<String>,
}

impl Returned {
    fn ok(output: Output) -> Returned {
        Returned {
            outcome: Outcome::Ok,
            output: Some(output),
            error: None,
        }
    }

    fn failed(outcome: Outcome, error: String) -> Returned {
        Returned {
            outcome,
            output: None,
            error: Some(error),
        }
    }
}

/// A call that was answered `timeout` before it ended (its thread got no CPU to notice the
/// deadline): [`LateExecution::wait`] yields how it really ended.
pub struct LateExecution(tokio::task::JoinHandle<Execution>);

impl LateExecution {
    /// Waits for the call to end; `None` if its thread failed.
    pub async fn wait(self) -> Option<Execution> {
        self.0.await.ok()
    }
}

impl Runtime {
    /// Like [`Runtime::invoke`], and also hands back, for a call answered before it ended, a
    /// handle to its real end (records complete themselves with it).
    ///
    /// # Errors
    /// As [`Runtime::invoke`].
    pub async fn invoke_tracked(
        &self,
        prepared: &Prepared,
        call: Call<'_>,
        limits: &Limits,
        caps: &Capabilities,
        hint: &LongCallHint,
    ) -> Result<(Execution, Option<LateExecution>), InvokeError> {
        self.check(prepared, call, limits)?;
        let permits = self.admit().await?;
        self.run_admitted(prepared, call, limits, caps, hint, permits)
            .await
    }

    /// Runs one call of `prepared` under `limits`, in a fresh sandbox.
    ///
    /// `hint` says whether this component's previous call (for the same caller) was long, and
    /// is updated by this call. Guest log lines mirrored to the server log carry the caller's
    /// current tracing span. Dropping the returned future cancels the call cleanly (the store
    /// is dropped and its slot released).
    ///
    /// # Errors
    /// [`InvokeError::Overloaded`] when the admission queue is full; `WrongWorld`,
    /// `InputTooLarge` and `MemoryAboveEngine` when the call cannot start as asked.
    pub async fn invoke(
        &self,
        prepared: &Prepared,
        call: Call<'_>,
        limits: &Limits,
        hint: &LongCallHint,
    ) -> Result<Execution, InvokeError> {
        let (execution, _late) = self
            .invoke_tracked(prepared, call, limits, &Capabilities::default(), hint)
            .await?;
        Ok(execution)
    }

    /// Whether `call` can start at all: the component's world, the input limit, the engine's
    /// memory ceiling.
    pub(crate) fn check(
        &self,
        prepared: &Prepared,
        call: Call<'_>,
        limits: &Limits,
    ) -> Result<(), InvokeError> {
        let found = prepared.info().kind;
        if call.world() != found {
            return Err(InvokeError::WrongWorld {
                expected: call.world(),
                found,
            });
        }
        if call.input_len() > limits.max_input_bytes {
            return Err(InvokeError::InputTooLarge {
                size: call.input_len(),
                max: limits.max_input_bytes,
            });
        }
        if limits.memory_mb > self.inner.config.max_memory_mb {
            return Err(InvokeError::MemoryAboveEngine {
                requested: limits.memory_mb,
                max: self.inner.config.max_memory_mb,
            });
        }
        Ok(())
    }

    /// Admission for one call: a place in the queue (or `Overloaded`), then an execution slot.
    async fn admit(&self) -> Result<Admitted, InvokeError> {
        self.admit_many(1).await
    }

    /// Admission for `slots` calls at once, held together (a pipeline run's lease): a place in
    /// the queue, then the slots, waited for at most `max_queue_wait_ms`.
    pub(crate) async fn admit_many(&self, slots: u32) -> Result<Admitted, InvokeError> {
        let queued = Instant::now();
        let admitted = Arc::clone(&self.inner.run_admission)
            .try_acquire_many_owned(slots)
            .map_err(|_| InvokeError::Overloaded)?;
        let wait = std::time::Duration::from_millis(self.inner.config.max_queue_wait_ms);
        let slots = tokio::time::timeout(
            wait,
            Arc::clone(&self.inner.run_slots).acquire_many_owned(slots),
        )
        .await
        .map_err(|_| InvokeError::Overloaded)?
        .map_err(|_| InvokeError::Overloaded)?;
        Ok(Admitted {
            permits: Arc::new((admitted, slots)),
            queued_us: micros(queued.elapsed()),
        })
    }

    /// Runs a checked call on admitted permits (which stay held until its store is dropped).
    pub(crate) async fn run_admitted(
        &self,
        prepared: &Prepared,
        call: Call<'_>,
        limits: &Limits,
        caps: &Capabilities,
        hint: &LongCallHint,
        admitted: Admitted,
    ) -> Result<(Execution, Option<LateExecution>), InvokeError> {
        let Admitted { permits, queued_us } = admitted;
        let store = self.new_store(prepared.engine(), limits, caps);
        let deadline = store.data().deadline;
        // Set once the call has used enough CPU to be a long call.
        let long_running = Arc::new(AtomicBool::new(false));
        let ending = Ending {
            limits: *limits,
            queued_us,
            started: Instant::now(),
        };
        let mut work = Metered::new(
            execute(store, prepared.clone(), OwnedCall::from(call), *limits),
            Arc::clone(&long_running),
        );
        // The permits stay with the store: a pool slot is free only once the call's store is
        // dropped, even if the caller has gone away.
        // Fast path: run on this async worker, unless this component's last call was long.
        if !hint.is_long() {
            let first = std::future::poll_fn(|cx| match Pin::new(&mut work).poll(cx) {
                Poll::Ready(done) => Poll::Ready(Some(done)),
                Poll::Pending if long_running.load(Ordering::Relaxed) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            })
            .await;
            if let Some(done) = first {
                let execution = ending.finish(done, false);
                drop(permits);
                return Ok((execution, None));
            }
        }
        hint.0.store(true, Ordering::Relaxed);
        // If the caller goes away (its future is dropped: a client that disconnected), the
        // call in the lane is dropped at its next yield (every epoch tick), which frees its
        // slot at once instead of at its deadline.
        let abandoned = AbandonOnDrop::new();
        let caller_gone = Arc::clone(&abandoned.0);
        let runs_long = Arc::clone(&hint.0);
        let lane = Arc::clone(&self.inner.long_lane);
        let handle = tokio::runtime::Handle::current();
        let priority = self.inner.config.long_call_priority;
        // On the fast path the call runs inside the caller's span; in the lane it re-enters it.
        let span = tracing::Span::current();
        // The rest of a long call: in the long lane, at low OS priority (`long_calls`).
        let mut in_lane = tokio::task::spawn_blocking(move || {
            let _low = LowPriority::enter(priority);
            // A call whose deadline passes while it waits for a turn runs without one, and
            // ends at once.
            let ran = handle.block_on(
                async {
                    tokio::select! {
                        biased;
                        ran = async {
                            let turn =
                                tokio::time::timeout_at(deadline.into(), lane.acquire_owned()).await;
                            (work.await, turn)
                        } => Some(ran),
                        () = caller_gone.notified() => None,
                    }
                }
                .instrument(span),
            );
            // The next call of this component starts in the lane only if this one was long.
            runs_long.store(long_running.load(Ordering::Relaxed), Ordering::Relaxed);
            let Some((done, turn)) = ran else {
                // Dropped with the call: the store is gone, its memory back in the pool.
                drop(permits);
                return ending.abandoned();
            };
            // Finishing drops the store, returning its memory to the pool: for a guest that
            // dirtied much memory that is real work, so it happens with the turn still held.
            let execution = ending.finish(done, true);
            drop((permits, turn));
            execution
        });
        // On a machine saturated by other work, a lowest-priority thread may get no CPU even to
        // notice its deadline. The caller is answered on time regardless; the call ends (and
        // releases its slot and memory) whenever its thread next runs.
        tokio::select! {
            joined = &mut in_lane => {
                joined.map(|execution| (execution, None)).map_err(|e| InvokeError::Internal {
                    context: "the execution thread failed",
                    source: Some(e.into()),
                })
            }
            () = tokio::time::sleep_until((deadline + STARVED_GRACE).into()) => {
                // The late call still ends on its own (at its next turn of the CPU).
                abandoned.disarm();
                Ok((ending.starved(), Some(LateExecution(in_lane))))
            }
        }
    }

    /// A fresh store on the engine that compiled the component (its tier's engine).
    pub(crate) fn new_store(
        &self,
        engine: &wasmtime::Engine,
        limits: &Limits,
        caps: &Capabilities,
    ) -> Store<Sandbox> {
        let mut store = Store::new(engine, Sandbox::new(limits, caps));
        store.limiter(|sandbox| &mut sandbox.memory);
        // Fuel is enabled engine-wide, so setting it cannot fail.
        let _ = store.set_fuel(limits.fuel);
        // Check the deadline every tick; between ticks, yield so other calls on this worker
        // thread make progress while a long guest runs.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|context| {
            if Instant::now() >= context.data().deadline {
                return Err(wasmtime::Error::new(DeadlineExceeded));
            }
            Ok(UpdateDeadline::Yield(1))
        });
        // A guest may hand the host at most its whole memory in one call; strings and lists
        // are then copied only as far as the host's own caps allow.
        store.set_hostcall_fuel(usize::try_from(limits.memory_bytes()).unwrap_or(usize::MAX));
        store.set_max_component_handles(MAX_RESOURCE_HANDLES);
        store
    }
}

/// What turning a finished call into its [`Execution`] needs besides the call itself.
#[derive(Clone, Copy)]
struct Ending {
    limits: Limits,
    queued_us: u64,
    /// When the call began, for the wall time.
    started: Instant,
}

/// How long past its deadline a long call may take to end on its own before the caller is
/// answered without it (see `Runtime::invoke`).
const STARVED_GRACE: std::time::Duration = std::time::Duration::from_millis(50);

/// Wakes a long call's lane task when dropped armed: the caller went away.
struct AbandonOnDrop(Arc<tokio::sync::Notify>, bool);

impl AbandonOnDrop {
    fn new() -> AbandonOnDrop {
        AbandonOnDrop(Arc::new(tokio::sync::Notify::new()), true)
    }

    /// The caller no longer waits, but the call must still run to its own end.
    fn disarm(mut self) {
        self.1 = false;
    }
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if self.1 {
            // Stores a permit if the task is not waiting yet, so it is never missed.
            self.0.notify_one();
        }
    }
}

impl Ending {
    /// What a long call dropped because its caller went away ends as (nobody reads it).
    fn abandoned(&self) -> Execution {
        Execution {
            outcome: Outcome::Cancelled,
            error: Some("the caller went away".into()),
            ..self.starved()
        }
    }

    /// The answer for a long call whose thread got no CPU to end at its deadline: `timeout`,
    /// without its logs and output streams (they are still inside the call).
    fn starved(&self) -> Execution {
        Execution {
            outcome: Outcome::Timeout,
            output: None,
            error: Some(format!(
                "{DeadlineExceeded} (the machine was too busy for this long call to end on \
                 time; its logs are not available)"
            )),
            logs: Vec::new(),
            logs_truncated: false,
            stdout: String::new(),
            stderr: String::new(),
            outbound: Vec::new(),
            stats: Stats {
                wall_us: micros(self.started.elapsed()),
                queued_us: self.queued_us,
                long_call: true,
                ..Stats::default()
            },
        }
    }

    /// Turns a finished call into its [`Execution`] and drops its store (releasing its memory
    /// to the pool).
    fn finish(&self, executed: Executed, long_call: bool) -> Execution {
        let Executed {
            mut store,
            result,
            instantiate_us,
        } = executed;
        let stats = Stats {
            wall_us: micros(self.started.elapsed()),
            instantiate_us,
            queued_us: self.queued_us,
            long_call,
            ..Stats::default()
        };
        report(&mut store, result, &self.limits, stats)
    }
}

/// The [`Execution`] of a call that just ended in `store`: its outcome, fuel used and memory
/// peak, and the logs and output streams it left (taken, so a reused store starts empty).
pub(crate) fn report(
    store: &mut Store<Sandbox>,
    result: wasmtime::Result<Returned>,
    limits: &Limits,
    stats: Stats,
) -> Execution {
    let returned = match result {
        Ok(returned) => returned,
        Err(error) => {
            let (outcome, text) = outcome::classify(&error, store.data().memory.hit_limit);
            Returned::failed(outcome, text)
        }
    };
    let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    let sandbox = store.data_mut();
    for denied in sandbox.take_denied_requests() {
        sandbox.log(crate::capture::LogLevel::Warn, &denied);
    }
    sandbox.note_refused_writes();
    let outbound = sandbox.take_outbound();
    for request in &outbound {
        if let Some(error) = &request.error {
            let line = format!("{} {}: {error}", request.method, request.origin);
            sandbox.log(crate::capture::LogLevel::Warn, &line);
        }
    }
    let (logs, logs_truncated) = sandbox.logs.take();
    let (stdout, stderr) = sandbox.take_stdio();
    // The one place a call's error text is made: the guest's own (`Err(text)`) is redacted like
    // its logs and cut to the output cap; any other is redacted too.
    let error = returned.error.map(|text| match returned.outcome {
        Outcome::GuestError => sandbox.guest_text(&text, output_cap(limits)),
        _ => sandbox.redact(&text).into_owned(),
    });
    Execution {
        outcome: returned.outcome,
        output: returned.output,
        error,
        logs,
        logs_truncated,
        stdout,
        stderr,
        outbound,
        stats: Stats {
            fuel_used,
            memory_peak_bytes: sandbox.memory.peak,
            ..stats
        },
    }
}

/// Execution permits (a place in the queue and slots), released when the last store that
/// holds them is dropped.
pub(crate) struct Admitted {
    pub(crate) permits: Arc<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
    /// Time spent waiting for the slots, in microseconds.
    pub(crate) queued_us: u64,
}

/// [`Call`] with its input owned, so the call can move to another thread.
pub(crate) enum OwnedCall {
    Run,
    Transform(Vec<u8>),
    Process(Vec<u8>),
    Step { state: Vec<u8>, input: Vec<u8> },
    Finish(Vec<u8>),
}

impl From<Call<'_>> for OwnedCall {
    fn from(call: Call<'_>) -> Self {
        match call {
            Call::Run => OwnedCall::Run,
            Call::Transform(input) => OwnedCall::Transform(input.to_vec()),
            Call::Process(input) => OwnedCall::Process(input.to_vec()),
            Call::Step { state, input } => OwnedCall::Step {
                state: state.to_vec(),
                input: input.to_vec(),
            },
            Call::Finish(state) => OwnedCall::Finish(state.to_vec()),
        }
    }
}

impl OwnedCall {
    fn borrowed(&self) -> Call<'_> {
        match self {
            OwnedCall::Run => Call::Run,
            OwnedCall::Transform(input) => Call::Transform(input),
            OwnedCall::Process(input) => Call::Process(input),
            OwnedCall::Step { state, input } => Call::Step { state, input },
            OwnedCall::Finish(state) => Call::Finish(state),
        }
    }
}

/// What a finished call hands back: its store (logs, fuel, memory peak) and its result.
struct Executed {
    store: Store<Sandbox>,
    result: wasmtime::Result<Returned>,
    instantiate_us: u64,
}

/// Instantiates and calls, ending at the wall-clock deadline even if the guest is blocked in a
/// host call (a WASI sleep) where epochs cannot interrupt it. Owns everything it needs, so it
/// can be moved to another thread between polls.
async fn execute(
    mut store: Store<Sandbox>,
    prepared: Prepared,
    call: OwnedCall,
    limits: Limits,
) -> Executed {
    let started = Instant::now();
    let deadline = store.data().deadline;
    let mut instantiate_us = 0;
    let result = {
        let run = async {
            let instance = prepared.pre.instantiate_async(&mut store).await?;
            instantiate_us = micros(started.elapsed());
            call_export(&mut store, &instance, call.borrowed(), &limits).await
        };
        // `biased`: the call is polled first, so a call that ends in its first poll (most warm
        // calls) never registers the deadline timer.
        tokio::select! {
            biased;
            result = run => result,
            () = tokio::time::sleep_until(deadline.into()) => Err(wasmtime::Error::new(DeadlineExceeded)),
        }
    };
    Executed {
        store,
        result,
        instantiate_us,
    }
}

// Results are lifted as owned values: wasmtime runs the guest's post-return function (which
// frees the returned memory) inside `call_async`, so a borrowed `WasmStr`/`WasmList` would read
// freed memory afterwards. A string or bytes is one copy bounded by the guest's memory limit,
// checked against the output cap before anything else sees it. Records are lifted as
// [`Records`], which checks their count and bytes before it allocates (`records.rs`).

/// Calls the export `call` names and checks its result against the output caps.
pub(crate) async fn call_export(
    store: &mut Store<Sandbox>,
    instance: &wasmtime::component::Instance,
    call: Call<'_>,
    limits: &Limits,
) -> wasmtime::Result<Returned> {
    let cap = output_cap(limits);
    let caps = OutputCaps::of(limits);
    let bytes = |result: Result<Vec<u8>, String>| match result {
        Ok(bytes) if bytes.len() > cap => output_limit(bytes.len(), cap),
        Ok(bytes) => Returned::ok(Output::Bytes(bytes)),
        Err(text) => guest_error(text),
    };
    let records = |result: Result<Records, String>| match result {
        Ok(Records::Kept(records)) => Returned::ok(Output::Records(records)),
        Ok(Records::Refused(refusal)) => {
            Returned::failed(Outcome::OutputLimit, refusal.to_string())
        }
        Err(text) => guest_error(text),
    };
    Ok(match call {
        Call::Run => {
            let run =
                instance.get_typed_func::<(), (Result<String, String>,)>(&mut *store, "run")?;
            match run.call_async(&mut *store, ()).await?.0 {
                Ok(text) if text.len() > cap => output_limit(text.len(), cap),
                Ok(text) => Returned::ok(Output::Text(text)),
                Err(text) => guest_error(text),
            }
        }
        Call::Transform(input) => {
            let transform = instance
                .get_typed_func::<(&[u8],), (Result<Vec<u8>, String>,)>(&mut *store, "transform")?;
            bytes(transform.call_async(&mut *store, (input,)).await?.0)
        }
        Call::Process(input) => {
            let process = instance
                .get_typed_func::<(&[u8],), (Result<Records, String>,)>(&mut *store, "process")?;
            records(
                under_caps(caps, process.call_async(&mut *store, (input,)))
                    .await?
                    .0,
            )
        }
        Call::Step { state, input } => {
            let step = instance.get_typed_func::<(&[u8], &[u8]), (Result<Vec<u8>, String>,)>(
                &mut *store,
                "step",
            )?;
            bytes(step.call_async(&mut *store, (state, input)).await?.0)
        }
        Call::Finish(state) => {
            let finish = instance
                .get_typed_func::<(&[u8],), (Result<Records, String>,)>(&mut *store, "finish")?;
            records(
                under_caps(caps, finish.call_async(&mut *store, (state,)))
                    .await?
                    .0,
            )
        }
    })
}

fn output_cap(limits: &Limits) -> usize {
    usize::try_from(limits.max_output_bytes).unwrap_or(usize::MAX)
}

fn output_limit(len: usize, cap: usize) -> Returned {
    Returned::failed(
        Outcome::OutputLimit,
        format!(
            "the guest returned {len} bytes; the output limit (max_output_bytes) is {cap} bytes"
        ),
    )
}

/// The guest's own error, whole: [`report`] redacts it and cuts it to the output cap.
fn guest_error(text: String) -> Returned {
    Returned::failed(Outcome::GuestError, text)
}

pub(crate) fn micros(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
