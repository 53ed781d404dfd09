//! Long calls: how Warden tells them apart and keeps them from slowing short ones.
//!
//! Every call starts on an async worker thread, where a short call (most of them) finishes in
//! microseconds. A call that has used [`LONG_CALL_CPU`] of CPU time becomes a *long call*: it
//! moves to a blocking thread at low OS priority and waits there for a turn in the *long
//! lane*, which runs at most `max_long_calls` of them at once (one per spare core by default). So however many long or
//! hostile calls arrive (infinite loops, memory bombs), they share one core's worth of the
//! machine, and the kernel preempts them whenever short calls or HTTP work want the CPU.
//!
//! CPU time, not wall time, decides: on a busy machine a short call may be preempted for
//! milliseconds, and must not be mistaken for a long one. Per component, the runtime remembers
//! whether its last call was long, and starts the next call in the lane at once.
//!
//! The lane also avoids a priority inversion measured under load: a memory bomb growing its
//! memory takes the process's address-space lock for writing; if several low-priority bombs and
//! spins compete for the same spare core, the lock holder waits behind them while short calls
//! (whose pool-slot reset reads the same lock) wait behind the lock holder.

use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// Whether the last call of one component, for one caller, was a long call: the next call then
/// starts in the long lane at once. The runtime reads and updates it; the caller keeps one per
/// (tenant, component), so one tenant's hostile calls never change how another tenant's calls of
/// the same bytes are scheduled. Cheap to clone; `Default` is "not long".
#[derive(Debug, Clone, Default)]
pub struct LongCallHint(pub(crate) Arc<AtomicBool>);

impl LongCallHint {
    /// Whether the next call should start in the long lane.
    pub fn is_long(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// CPU time after which a call is a long call.
pub(crate) const LONG_CALL_CPU: Duration = Duration::from_millis(2);

/// Long calls at once by default (`EngineConfig::max_long_calls`): one per core beyond the
/// first, at least one.
pub(crate) fn default_lane_width() -> u32 {
    std::thread::available_parallelism().map_or(1, |cores| {
        u32::try_from(cores.get())
            .unwrap_or(u32::MAX)
            .saturating_sub(1)
            .max(1)
    })
}

/// A call's future, with the CPU time its polls use counted; sets `long` once that reaches
/// [`LONG_CALL_CPU`].
///
/// Each poll is timed on the thread that runs it, so a call that moves between threads is
/// charged exactly. The first poll is not timed, so a short call (one poll) costs no clock
/// reads; it lasts at most one epoch tick, because the guest yields at every tick.
pub(crate) struct Metered<F> {
    call: Pin<Box<F>>,
    polls: u32,
    used: Duration,
    long: Arc<AtomicBool>,
}

impl<F: Future> Metered<F> {
    pub(crate) fn new(call: F, long: Arc<AtomicBool>) -> Self {
        Metered {
            call: Box::pin(call),
            polls: 0,
            used: Duration::ZERO,
            long,
        }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let start = (this.polls > 0).then(thread_cpu_time);
        this.polls = this.polls.saturating_add(1);
        let result = this.call.as_mut().poll(cx);
        if let Some(start) = start {
            this.used += thread_cpu_time().saturating_sub(start);
            if this.used >= LONG_CALL_CPU {
                this.long.store(true, Ordering::Relaxed);
            }
        }
        result
    }
}

#[cfg(target_os = "linux")]
fn thread_cpu_time() -> Duration {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(time.tv_sec).unwrap_or(0),
        u32::try_from(time.tv_nsec).unwrap_or(0),
    )
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_time() -> Duration {
    // Without a per-thread CPU clock, wall time since the process started stands in (a long
    // call is then detected by wall time).
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

/// How low long calls run (`EngineConfig::long_call_priority`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LongCallPriority {
    /// `SCHED_IDLE` (the default): the kernel preempts a long call as soon as anything else
    /// wants the CPU. Short calls see no difference with hostile traffic (measured in
    /// `docs/HARDENING.md`); but while other processes keep the machine busy a long call may
    /// get no CPU until its deadline, so on a shared machine prefer `nice`.
    #[default]
    Idle,
    /// Nice 10: long calls keep a share of the CPU (~10% against one busy normal thread);
    /// short calls' p99 under memory bombs was measured at 6× instead of 1.6×.
    Nice,
}

/// Nice value of long-call threads under [`LongCallPriority::Nice`] (0 is normal, 19 lowest).
const LONG_CALL_NICE: i32 = 10;

/// Runs the current thread at `priority` while alive, and at normal priority again afterwards
/// (Linux; both calls apply to the calling thread only). Leaving `SCHED_IDLE` or a raised nice
/// value needs CAP_SYS_NICE (or RLIMIT_NICE): without it the pool thread stays low, which only
/// makes later blocking work (compiles, file I/O) politer.
pub(crate) struct LowPriority;

impl LowPriority {
    pub(crate) fn enter(priority: LongCallPriority) -> LowPriority {
        match priority {
            LongCallPriority::Idle => set_policy(Policy::Idle),
            LongCallPriority::Nice => set_nice(LONG_CALL_NICE),
        }
        LowPriority
    }
}

impl Drop for LowPriority {
    fn drop(&mut self) {
        set_policy(Policy::Normal);
        set_nice(0);
    }
}

enum Policy {
    Idle,
    Normal,
}

/// Sets the calling thread's scheduling policy (priority 0); failure leaves it as it was.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set_policy(policy: Policy) {
    let policy = match policy {
        Policy::Idle => libc::SCHED_IDLE,
        Policy::Normal => libc::SCHED_OTHER,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid, initialised `sched_param` that outlives the call; pid 0 is
    // the calling thread; the call only changes scheduling and reports failure by return value.
    let _ = unsafe { libc::sched_setscheduler(0, policy, &param) };
}

#[cfg(not(target_os = "linux"))]
fn set_policy(_policy: Policy) {}

/// Sets the calling thread's nice value; failure leaves it as it was.
fn set_nice(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let _ = rustix::process::setpriority_process(Some(tid), nice);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}
