//! A tenant's live state on this node: its effective limits, its share of the execution slots,
//! its rate buckets (calls, and bytes posted to `/run`), and the fuel it used today.
//!
//! Concurrency and rate are counted per node (a cluster of N nodes admits up to N times a
//! tenant's share). Fuel per day is loaded from the usage store when the state is built,
//! counted here after, and, under a daily quota, read again from the store at most every usage
//! flush interval, so it holds across restarts and across nodes (other nodes' calls count once
//! they have flushed them and this node has read them: within about two flush intervals).
//!
//! The service keeps one state per tenant, built on first use and rebuilt after any change to
//! the tenant: that cache and its invalidation are in `states.rs`.
//!
//! (Over 600 lines with its unit tests, which are a third of it.)

mod states;

pub(crate) use states::TenantStates;

use crate::ServiceError;
use crate::config::TenantDefaults;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use warden_registry::{LimitProfile, Quotas, Tenant};
use warden_runtime::{EngineConfig, InvalidSetting, Limits};

/// Seconds a client should wait after `concurrency_limit`.
const CONCURRENCY_RETRY_SECS: u64 = 1;

/// One tenant's state. Replaced whole when the tenant is changed.
pub(crate) struct TenantState {
    pub(crate) tenant: Tenant,
    /// The tenant's per-call limits: its profile over the defaults over the server's.
    pub(crate) limits: Limits,
    pub(crate) quotas: Quotas,
    /// What its records keep.
    pub(crate) recording: crate::config::EffectiveRecording,
    /// Its capability grants: the ceiling of its components' (default: none).
    pub(crate) grants: Arc<warden_runtime::Grants>,
    /// What code posted to `/run` runs with: its run grants within `grants` (default none).
    pub(crate) posted_grants: Arc<warden_runtime::Grants>,
    slots: Arc<Semaphore>,
    max_concurrent: u32,
    bucket: Option<Mutex<Bucket>>,
    /// Bytes of components posted to `/run` (`run_bytes_per_minute`).
    run_bytes: Option<Mutex<Bucket>>,
    fuel_today: Mutex<FuelDay>,
}

/// A token bucket holding a minute's worth.
struct Bucket {
    tokens: f64,
    per_second: f64,
    capacity: f64,
    at: Instant,
}

impl Bucket {
    fn per_minute(per_minute: f64) -> Mutex<Bucket> {
        let capacity = per_minute.max(1.0);
        Mutex::new(Bucket {
            tokens: capacity,
            per_second: capacity / 60.0,
            capacity,
            at: Instant::now(),
        })
    }

    /// Refills, then takes `amount` if it is there (and `take`); else the seconds until it
    /// would be.
    fn take(&mut self, amount: f64, take: bool) -> Result<(), u64> {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.capacity);
        self.at = now;
        if self.tokens < amount {
            let wait = ((amount - self.tokens) / self.per_second).ceil().max(1.0);
            return Err(wait as u64);
        }
        if take {
            self.tokens -= amount;
        }
        Ok(())
    }
}

/// How often a tenant with a daily fuel quota reads the day's stored fuel again: other nodes'
/// (and other processes') calls reach the store once per usage flush, so reading more often
/// would find nothing new.
const FUEL_READ_INTERVAL: Duration = crate::USAGE_FLUSH_INTERVAL;

/// The fuel a tenant used on one UTC day.
struct FuelDay {
    day: String,
    /// Every node's fuel as of the last read of the store, plus this node's since.
    used: u64,
    /// When the store was last read for `day` (`None`: not yet).
    read_at: Option<Instant>,
}

impl FuelDay {
    /// Moves to `today` if the day has changed (a new day starts at zero, due for a read).
    fn roll(&mut self, today: String) {
        if self.day != today {
            *self = FuelDay {
                day: today,
                used: 0,
                read_at: None,
            };
        }
    }
}

/// A call admitted for a tenant: holds its slot until dropped.
pub(crate) struct Admitted {
    _slot: OwnedSemaphorePermit,
    /// Fuel the call may use (the tenant's limit, cut to what is left of its daily quota).
    pub(crate) fuel_cap: Option<u64>,
}

impl TenantState {
    /// The state of `tenant` on a server whose engine runs `engine_slots` calls at once when
    /// tenants share it (secured mode), `None` when one tenant has it alone (open mode).
    pub(crate) fn new(
        tenant: Tenant,
        defaults: &TenantDefaults,
        server: &Limits,
        engine_slots: Option<u32>,
        fuel_used_today: u64,
    ) -> TenantState {
        let profile = overlay(&tenant.limits, &defaults.limits);
        let quotas = overlay_quotas(&tenant.quotas, &defaults.quotas);
        let max_concurrent = share(profile.max_concurrent_runs, engine_slots);
        let bucket = quotas
            .runs_per_minute
            .map(|per_minute| Bucket::per_minute(f64::from(per_minute)));
        let run_bytes = quotas
            .run_bytes_per_minute
            .map(|per_minute| Bucket::per_minute(per_minute as f64));
        TenantState {
            grants: Arc::default(),
            posted_grants: Arc::default(),
            recording: crate::config::EffectiveRecording::of(
                &tenant.recording,
                &defaults.recording,
            ),
            limits: apply(&profile, server),
            quotas,
            slots: Arc::new(Semaphore::new(
                usize::try_from(max_concurrent)
                    .unwrap_or(usize::MAX)
                    .min(Semaphore::MAX_PERMITS),
            )),
            max_concurrent,
            bucket,
            run_bytes,
            fuel_today: Mutex::new(FuelDay {
                day: today(),
                used: fuel_used_today,
                read_at: Some(Instant::now()),
            }),
            tenant,
        }
    }

    /// Admits one call, or says why not: the rate bucket, the daily fuel, then a slot.
    pub(crate) fn admit(&self) -> Result<Admitted, ServiceError> {
        self.rate(true)?;
        let fuel_cap = self.fuel_left()?;
        let slot = Arc::clone(&self.slots)
            .try_acquire_owned()
            .map_err(|_| self.busy())?;
        Ok(Admitted {
            _slot: slot,
            fuel_cap,
        })
    }

    /// Admits a job of up to `wanted` calls at once (a pipeline run): the rate bucket and the
    /// daily fuel as [`TenantState::admit`], then as many of the tenant's slots as are free,
    /// at least one. Answers the admission and how many slots it holds.
    pub(crate) fn admit_up_to(&self, wanted: u32) -> Result<(Admitted, u32), ServiceError> {
        self.rate(true)?;
        let fuel_cap = self.fuel_left()?;
        let free = u32::try_from(self.slots.available_permits()).unwrap_or(u32::MAX);
        let slots = wanted.min(free).max(1);
        let slot = Arc::clone(&self.slots)
            .try_acquire_many_owned(slots)
            .map_err(|_| self.busy())?;
        Ok((
            Admitted {
                _slot: slot,
                fuel_cap,
            },
            slots,
        ))
    }

    /// Whether a call would be admitted now, taking nothing: asked before a request body is
    /// read, so a refused call never costs its body.
    pub(crate) fn check(&self) -> Result<(), ServiceError> {
        self.rate(false)?;
        self.fuel_left()?;
        match self.slots.available_permits() {
            0 => Err(self.busy()),
            _ => Ok(()),
        }
    }

    /// Refills the bucket and, when `take`, takes a token.
    fn rate(&self, take: bool) -> Result<(), ServiceError> {
        let Some(bucket) = &self.bucket else {
            return Ok(());
        };
        let mut bucket = bucket.lock().unwrap_or_else(PoisonError::into_inner);
        bucket.take(1.0, take).map_err(|retry_after_secs| {
            ServiceError::rate_limited(
                format!(
                    "tenant `{}` may start {} calls per minute",
                    self.tenant.id,
                    self.quotas.runs_per_minute.unwrap_or_default()
                ),
                retry_after_secs,
            )
        })
    }

    /// Charges `bytes` of a component posted to `/run` to the tenant's
    /// `run_bytes_per_minute`, before it is compiled or looked up (whether it then compiles or
    /// is found tells the tenant nothing about what others ran).
    ///
    /// # Errors
    /// `RateLimited` (with the wait) when the bucket holds too little now; `QuotaExceeded`
    /// when the component is bigger than a whole minute's worth.
    pub(crate) fn charge_run_bytes(&self, bytes: u64) -> Result<(), ServiceError> {
        let (Some(bucket), Some(per_minute)) = (&self.run_bytes, self.quotas.run_bytes_per_minute)
        else {
            return Ok(());
        };
        if bytes > per_minute {
            return Err(ServiceError::quota_exceeded(
                format!(
                    "the component is {bytes} bytes; tenant `{}` may post {per_minute} bytes of \
                     components to run per minute",
                    self.tenant.id
                ),
                None,
            ));
        }
        let mut bucket = bucket.lock().unwrap_or_else(PoisonError::into_inner);
        bucket.take(bytes as f64, true).map_err(|retry_after_secs| {
            ServiceError::rate_limited(
                format!(
                    "tenant `{}` may post {per_minute} bytes of components to run per minute",
                    self.tenant.id
                ),
                retry_after_secs,
            )
        })
    }

    /// The fuel left today under the daily quota (`None`: no quota).
    fn fuel_left(&self) -> Result<Option<u64>, ServiceError> {
        let Some(quota) = self.quotas.fuel_per_day else {
            return Ok(None);
        };
        let used = self.fuel_used_today();
        if used >= quota {
            return Err(ServiceError::quota_exceeded(
                format!(
                    "tenant `{}` used its {quota} fuel for today (UTC)",
                    self.tenant.id
                ),
                Some(seconds_to_midnight()),
            ));
        }
        Ok(Some(quota - used))
    }

    fn busy(&self) -> ServiceError {
        ServiceError::concurrency_limit(
            format!(
                "tenant `{}` already has {} calls in progress",
                self.tenant.id, self.max_concurrent
            ),
            CONCURRENCY_RETRY_SECS,
        )
    }

    /// The tenant's share of concurrent calls (`None`: only the server's admission bounds it).
    pub(crate) fn max_concurrent_runs(&self) -> Option<u32> {
        (self.max_concurrent != u32::MAX).then_some(self.max_concurrent)
    }

    /// Counts fuel a call used against today's quota.
    pub(crate) fn add_fuel(&self, fuel: u64) {
        let mut day = self
            .fuel_today
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        day.roll(today());
        day.used = day.used.saturating_add(fuel);
    }

    /// The day whose stored fuel is due to be read again, if any: only under a daily fuel
    /// quota, at most every [`FUEL_READ_INTERVAL`], and at once on a new day. The read is
    /// claimed here, so concurrent calls do not all make it.
    pub(crate) fn fuel_read_due(&self) -> Option<String> {
        self.quotas.fuel_per_day?;
        let mut day = self
            .fuel_today
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        day.roll(today());
        if day
            .read_at
            .is_some_and(|at| at.elapsed() < FUEL_READ_INTERVAL)
        {
            return None;
        }
        day.read_at = Some(Instant::now());
        Some(day.day.clone())
    }

    /// Takes in `used`, the fuel of `day` as stored plus this node's pending: every node's
    /// calls, so the quota holds across nodes. It only ever raises the count (this node's
    /// calls since the read are in it, or still on their way to the store).
    pub(crate) fn fuel_read(&self, day: &str, used: u64) {
        let mut fuel = self
            .fuel_today
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if fuel.day == day {
            fuel.used = fuel.used.max(used);
        }
    }

    fn fuel_used_today(&self) -> u64 {
        let day = self
            .fuel_today
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match day.day == today() {
            true => day.used,
            false => 0,
        }
    }
}

/// A tenant's share of the engine's slots (calls running or waiting at once, a pipeline run
/// counting each of its slots). Where tenants share the engine, no share is the whole of it:
/// unset, it is half the slots; set, it is cut to leave at least one slot to the others. Alone
/// on the engine (open mode), unset is unbounded: only the engine's admission bounds it.
fn share(profile: Option<u32>, engine_slots: Option<u32>) -> u32 {
    let Some(slots) = engine_slots else {
        return profile.unwrap_or(u32::MAX).max(1);
    };
    let most = slots.saturating_sub(1).max(1);
    profile.unwrap_or(slots / 2).clamp(1, most)
}

/// `profile`'s fields where set, else `defaults`'.
fn overlay(profile: &LimitProfile, defaults: &LimitProfile) -> LimitProfile {
    LimitProfile {
        fuel: profile.fuel.or(defaults.fuel),
        timeout_ms: profile.timeout_ms.or(defaults.timeout_ms),
        memory_mb: profile.memory_mb.or(defaults.memory_mb),
        max_input_bytes: profile.max_input_bytes.or(defaults.max_input_bytes),
        max_output_bytes: profile.max_output_bytes.or(defaults.max_output_bytes),
        max_output_records: profile.max_output_records.or(defaults.max_output_records),
        max_log_line_bytes: profile.max_log_line_bytes.or(defaults.max_log_line_bytes),
        max_log_bytes: profile.max_log_bytes.or(defaults.max_log_bytes),
        max_log_lines: profile.max_log_lines.or(defaults.max_log_lines),
        max_stdout_bytes: profile.max_stdout_bytes.or(defaults.max_stdout_bytes),
        max_stderr_bytes: profile.max_stderr_bytes.or(defaults.max_stderr_bytes),
        max_concurrent_runs: profile.max_concurrent_runs.or(defaults.max_concurrent_runs),
    }
}

fn overlay_quotas(quotas: &Quotas, defaults: &Quotas) -> Quotas {
    Quotas {
        max_components: quotas.max_components.or(defaults.max_components),
        max_stored_bytes: quotas.max_stored_bytes.or(defaults.max_stored_bytes),
        runs_per_minute: quotas.runs_per_minute.or(defaults.runs_per_minute),
        fuel_per_day: quotas.fuel_per_day.or(defaults.fuel_per_day),
        run_bytes_per_minute: quotas
            .run_bytes_per_minute
            .or(defaults.run_bytes_per_minute),
        max_record_bytes: quotas
            .max_record_bytes
            .or(defaults.max_record_bytes)
            .or(Some(crate::config::DEFAULT_MAX_RECORD_BYTES)),
    }
}

/// The server's limits with a profile's fields put in.
fn apply(profile: &LimitProfile, server: &Limits) -> Limits {
    Limits {
        fuel: profile.fuel.unwrap_or(server.fuel),
        timeout_ms: profile.timeout_ms.unwrap_or(server.timeout_ms),
        memory_mb: profile.memory_mb.unwrap_or(server.memory_mb),
        max_input_bytes: profile.max_input_bytes.unwrap_or(server.max_input_bytes),
        max_output_bytes: profile.max_output_bytes.unwrap_or(server.max_output_bytes),
        max_output_records: profile
            .max_output_records
            .unwrap_or(server.max_output_records),
        max_log_line_bytes: profile
            .max_log_line_bytes
            .unwrap_or(server.max_log_line_bytes),
        max_log_bytes: profile.max_log_bytes.unwrap_or(server.max_log_bytes),
        max_log_lines: profile.max_log_lines.unwrap_or(server.max_log_lines),
        max_stdout_bytes: profile.max_stdout_bytes.unwrap_or(server.max_stdout_bytes),
        max_stderr_bytes: profile.max_stderr_bytes.unwrap_or(server.max_stderr_bytes),
    }
}

/// Checks that a profile makes usable limits on this server.
///
/// # Errors
/// The first unusable field (its message, without a table: the caller places it).
pub(crate) fn check_profile(
    profile: &LimitProfile,
    server: &Limits,
    engine: &EngineConfig,
) -> Result<(), InvalidSetting> {
    let limits = apply(profile, server);
    limits
        .validate()
        .map_err(|e| InvalidSetting::new("limits", e.to_string()))?;
    if limits.memory_mb > engine.max_memory_mb {
        return Err(InvalidSetting::new(
            "memory_mb",
            format!(
                "({}) exceeds the engine's max_memory_mb ({})",
                limits.memory_mb, engine.max_memory_mb
            ),
        ));
    }
    InvalidSetting::check_positive(&[(
        "max_concurrent_runs",
        u64::from(profile.max_concurrent_runs.unwrap_or(1)),
    )])
}

/// Today, UTC, as `YYYY-MM-DD`.
pub(crate) fn today() -> String {
    day_of(time::OffsetDateTime::now_utc())
}

pub(crate) fn day_of(at: time::OffsetDateTime) -> String {
    let date = at.date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

fn seconds_to_midnight() -> u64 {
    let now = time::OffsetDateTime::now_utc();
    let seconds_today =
        u64::from(now.hour()) * 3600 + u64::from(now.minute()) * 60 + u64::from(now.second());
    (86_400 - seconds_today).max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use warden_registry::TenantId;

    fn state(limits: LimitProfile, quotas: Quotas) -> TenantState {
        let tenant = Tenant {
            id: TenantId::parse("acme").unwrap(),
            limits,
            quotas,
            recording: Default::default(),
            created_at: String::new(),
            version: 0,
        };
        TenantState::new(
            tenant,
            &TenantDefaults::default(),
            &Limits::default(),
            None,
            0,
        )
    }

    #[test]
    fn where_tenants_share_the_engine_no_share_is_all_of_it() {
        assert_eq!(share(None, Some(16)), 8, "unset: half");
        assert_eq!(share(Some(16), Some(16)), 15, "one slot left to the others");
        assert_eq!(share(Some(40), Some(16)), 15);
        assert_eq!(share(Some(3), Some(16)), 3);
        assert_eq!(share(None, Some(1)), 1, "a one-slot engine still admits");
        assert_eq!(
            share(None, None),
            u32::MAX,
            "open mode: the engine bounds it"
        );
        assert_eq!(share(Some(4), None), 4);
    }

    #[test]
    fn a_pipeline_takes_the_slots_that_are_free_within_the_share() {
        let s = state(
            LimitProfile {
                max_concurrent_runs: Some(3),
                ..LimitProfile::default()
            },
            Quotas::default(),
        );
        let (first, slots) = s.admit_up_to(2).unwrap();
        assert_eq!(slots, 2);
        let (_second, slots) = s.admit_up_to(5).unwrap();
        assert_eq!(slots, 1, "only one is left");
        assert!(matches!(
            s.admit_up_to(1),
            Err(ServiceError {
                kind: ErrorKind::ConcurrencyLimit { .. },
                ..
            })
        ));
        drop(first);
        assert_eq!(s.admit_up_to(9).unwrap().1, 2);
    }

    #[test]
    fn the_profile_overrides_the_server_and_the_defaults_fill_in() {
        let s = state(
            LimitProfile {
                timeout_ms: Some(200),
                ..LimitProfile::default()
            },
            Quotas::default(),
        );
        assert_eq!(s.limits.timeout_ms, 200);
        assert_eq!(s.limits.fuel, Limits::default().fuel);
        assert_eq!(
            s.max_concurrent_runs(),
            None,
            "open mode: no share of its own"
        );
    }

    #[test]
    fn slots_are_released_when_a_call_ends() {
        let s = state(
            LimitProfile {
                max_concurrent_runs: Some(1),
                ..LimitProfile::default()
            },
            Quotas::default(),
        );
        let first = s.admit().unwrap();
        assert!(matches!(
            s.admit(),
            Err(ServiceError {
                kind: ErrorKind::ConcurrencyLimit { .. },
                ..
            })
        ));
        // Asked before a body is read, the check says the same and takes nothing.
        assert!(matches!(
            s.check(),
            Err(ServiceError {
                kind: ErrorKind::ConcurrencyLimit { .. },
                ..
            })
        ));
        drop(first);
        assert!(s.check().is_ok());
        assert!(s.admit().is_ok());
    }

    #[test]
    fn a_spent_day_is_retried_at_utc_midnight() {
        let now = time::OffsetDateTime::now_utc();
        let midnight = now.date().next_day().unwrap().midnight().assume_utc();
        let expected = (midnight - now).whole_seconds();
        let told = i64::try_from(seconds_to_midnight()).unwrap();
        assert!(
            (expected - told).abs() <= 2,
            "{told} s, expected {expected} s"
        );
    }

    #[test]
    fn the_bucket_holds_a_minute_of_calls() {
        let s = state(
            LimitProfile::default(),
            Quotas {
                runs_per_minute: Some(3),
                ..Quotas::default()
            },
        );
        for _ in 0..3 {
            drop(s.admit().unwrap());
        }
        match s.admit() {
            Err(ServiceError {
                kind: ErrorKind::RateLimited { retry_after_secs },
                ..
            }) => assert!(
                (15..=20).contains(&retry_after_secs),
                "a token a minute / 3 comes back in about 20 s: {retry_after_secs}"
            ),
            _ => panic!("the fourth call in a minute must be rate limited"),
        }
    }

    #[test]
    fn posted_bytes_are_charged_per_minute() {
        let s = state(
            LimitProfile::default(),
            Quotas {
                run_bytes_per_minute: Some(1_000),
                ..Quotas::default()
            },
        );
        s.charge_run_bytes(600).unwrap();
        match s.charge_run_bytes(600) {
            Err(ServiceError {
                kind: ErrorKind::RateLimited { retry_after_secs },
                ..
            }) => assert!((1..=60).contains(&retry_after_secs)),
            _ => panic!("past a minute's worth of bytes must be rate limited"),
        }
        s.charge_run_bytes(400).unwrap();
        assert!(
            matches!(
                s.charge_run_bytes(1_001),
                Err(ServiceError {
                    kind: ErrorKind::QuotaExceeded { .. },
                    ..
                })
            ),
            "bigger than a whole minute's worth: never"
        );
    }

    #[test]
    fn records_are_bounded_by_bytes_unless_set_otherwise() {
        let s = state(LimitProfile::default(), Quotas::default());
        assert_eq!(
            s.quotas.max_record_bytes,
            Some(crate::config::DEFAULT_MAX_RECORD_BYTES)
        );
    }

    #[test]
    fn a_read_of_the_days_fuel_only_raises_the_count() {
        let s = state(
            LimitProfile::default(),
            Quotas {
                fuel_per_day: Some(1000),
                ..Quotas::default()
            },
        );
        assert_eq!(
            s.fuel_read_due(),
            None,
            "just read, when the state was built"
        );
        s.add_fuel(100);
        s.fuel_read(&today(), 900);
        assert_eq!(
            s.admit().unwrap().fuel_cap,
            Some(100),
            "other nodes' fuel counts"
        );
        s.fuel_read(&today(), 50);
        assert_eq!(
            s.admit().unwrap().fuel_cap,
            Some(100),
            "a read never lowers it"
        );
        s.fuel_read("1999-01-01", 5000);
        assert_eq!(
            s.admit().unwrap().fuel_cap,
            Some(100),
            "another day's read is ignored"
        );
        let unmetered = state(LimitProfile::default(), Quotas::default());
        unmetered.fuel_today.lock().unwrap().read_at = None;
        assert_eq!(unmetered.fuel_read_due(), None, "no quota: never read");
        s.fuel_today.lock().unwrap().read_at = None;
        assert_eq!(s.fuel_read_due(), Some(today()), "due");
        assert_eq!(s.fuel_read_due(), None, "claimed by the first asker");
    }

    #[test]
    fn fuel_per_day_cuts_the_last_call_and_then_refuses() {
        let s = state(
            LimitProfile::default(),
            Quotas {
                fuel_per_day: Some(1000),
                ..Quotas::default()
            },
        );
        s.add_fuel(700);
        assert_eq!(s.admit().unwrap().fuel_cap, Some(300));
        s.add_fuel(300);
        assert!(matches!(
            s.admit(),
            Err(ServiceError {
                kind: ErrorKind::QuotaExceeded { .. },
                ..
            })
        ));
    }
}
