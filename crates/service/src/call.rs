//! A call's life, start to end: the caller's tenant and its limits, admission, resolving the
//! component for that tenant, the invoke, metering, and the call's record.

use crate::auth::{Caller, tenant_of};
use crate::tenants::{self, TenantState};
use crate::{DEFAULT_MAX_RECORD_BYTES, EffectiveRecording, Service, ServiceError};
use std::sync::{Arc, PoisonError};
use std::time::Duration;
use tracing::Instrument;
use warden_registry::{
    CacheSource, ComponentName, ComponentRef, Digest, NewRecord, Payload, RecordInputs, RunId,
    RunRecord, RunStats, Scope, TenantId, UsageCounters,
};
use warden_runtime::{
    Call, CompileTier, Execution, GuestConfig, LateExecution, LimitOverrides, Limits, LongCallHint,
    Outcome, WorldKind,
};

/// Long-call hints remembered before the map is emptied (a bound on memory).
const MAX_HINTS: usize = 100_000;

/// What to run.
pub enum Target {
    /// Bytes sent with the request (`POST /run`, `warden run`): compiled or found by digest,
    /// never stored.
    Bytes(Arc<[u8]>),
    /// A component the tenant stored.
    Stored(ComponentRef),
}

/// One call, as the edge hands it over.
pub struct CallRequest<'a> {
    /// The component.
    pub target: Target,
    /// `None` calls `run`; `Some(input)` calls `transform(input)` (or `process(input)` of a
    /// processor).
    pub input: Option<&'a [u8]>,
    /// What the guest's `host.config` answers (`warden:plugin@0.2.0`).
    pub config: GuestConfig,
    /// The request's wish for lower limits.
    pub overrides: LimitOverrides,
}

/// A finished call and where its compiled component came from.
pub struct CallReport {
    /// The call's record id.
    pub run_id: RunId,
    /// The runtime's report.
    pub execution: Execution,
    /// The component's digest.
    pub digest: Digest,
    /// Where the compiled component came from, as this tenant may see it.
    pub cache: CacheSource,
    /// Compile time for this call, in microseconds (`cache` is `none`).
    pub compile_us: u64,
    /// Artifact load time for this call, in microseconds (`cache` is `disk`).
    pub load_us: u64,
    /// Which compiler's code ran.
    pub tier: CompileTier,
}

/// Who is calling, and the ids that tag the call's log lines, its answer and its record.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The authenticated caller.
    pub caller: Caller,
    /// The request's id: the client's sane `X-Request-Id`, else the run id.
    pub request_id: String,
    /// The id of the call's record.
    pub run_id: RunId,
}

impl CallContext {
    /// A context with a new run id, which is also the request id.
    pub fn new(caller: Caller) -> CallContext {
        let run_id = RunId::new();
        CallContext {
            caller,
            request_id: run_id.to_string(),
            run_id,
        }
    }
}

impl Service {
    /// Runs one call for `caller`, start to end: limits, admission, resolve, invoke, meter,
    /// record.
    ///
    /// # Errors
    /// `Forbidden`, `InvalidLimit`, `RateLimited`, `QuotaExceeded`, `ConcurrencyLimit`,
    /// `Registry` (not found, bad bytes), `WrongWorld`, `Invoke` (overloaded, too large).
    pub async fn call(
        &self,
        context: &CallContext,
        request: CallRequest<'_>,
    ) -> Result<CallReport, ServiceError> {
        let (tenant, _) = tenant_of(&context.caller, Scope::Run)?;
        // The call's fields go on the request's span when the edge declared them there (one
        // span per request is cheaper than two), else on a `call` span of its own.
        let request_span = tracing::Span::current();
        if request_span.has_field("run_id") {
            request_span.record("run_id", tracing::field::display(&context.run_id));
            request_span.record("tenant", tracing::field::display(tenant));
            return self.call_as(tenant, context, request).await;
        }
        let span = tracing::info_span!("call", run_id = %context.run_id, tenant = %tenant);
        self.call_as(tenant, context, request)
            .instrument(span)
            .await
    }

    pub(crate) async fn call_as(
        &self,
        tenant: &TenantId,
        context: &CallContext,
        request: CallRequest<'_>,
    ) -> Result<CallReport, ServiceError> {
        let state = self.tenant_state(tenant)?;
        let mut limits = state
            .limits
            .tightened(&request.overrides)
            .map_err(ServiceError::invalid_limit)?;
        let admitted = state.admit()?;
        if let Some(cap) = admitted.fuel_cap {
            limits.fuel = limits.fuel.min(cap);
        }
        let started_at = time::OffsetDateTime::now_utc();
        let (via, name) = match (&request.target, request.input) {
            (Target::Bytes(_), _) => ("run_bytes", None),
            (Target::Stored(reference), input) => (
                if input.is_some() { "invoke" } else { "run" },
                match reference {
                    ComponentRef::Name(name) => Some(name.clone()),
                    ComponentRef::Digest(_) => None,
                },
            ),
        };
        let posted = matches!(request.target, Target::Bytes(_));
        let (resolved, bytes_in) = match request.target {
            Target::Bytes(bytes) => {
                let size = bytes.len() as u64;
                state.charge_run_bytes(size)?;
                let prepared = self.inner.registry.prepare_bytes(tenant, bytes).await?;
                (prepared, size)
            }
            Target::Stored(reference) => {
                let size = request.input.map_or(0, |input| input.len() as u64);
                (self.inner.registry.resolve(tenant, &reference).await?, size)
            }
        };
        if resolved.source == CacheSource::None {
            self.inner.metrics.compiled(resolved.took);
        }
        let (hint, seen_before) = self.hint(tenant, &resolved.digest);
        let call = match (request.input, resolved.prepared.info().kind) {
            (None, _) => Call::Run,
            (Some(input), WorldKind::Processor) => Call::Process(input),
            (Some(input), _) => Call::Transform(input),
        };
        // Posted bytes have no grants of their own: they never run with a stored component's.
        let caps = match posted {
            true => self.posted_capabilities(&state, request.config.clone())?,
            false => self.capabilities(&state, &resolved.digest, request.config.clone())?,
        };
        let (execution, late) = self
            .inner
            .runtime
            .invoke_tracked(&resolved.prepared, call, &limits, &caps, &hint)
            .await?;
        drop(admitted);
        self.meter(&state, &execution, bytes_in);
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        // A tenant never learns from the cache that another tenant ran the same bytes: its
        // first run of bytes it sent is reported as compiled, with the compile's real cost.
        // (A local command's shared artifacts are one user's own: reported as they are.)
        let shared = self.inner.config.shared_artifacts.is_some();
        let (cache, took) = match (seen_before, resolved.source) {
            (false, CacheSource::Memory | CacheSource::Disk)
                if !shared && !self.stores(tenant, &resolved.digest).await =>
            {
                (CacheSource::None, resolved.prepared.compile_time())
            }
            (_, source) => (source, resolved.took),
        };
        let info = resolved.prepared.info();
        let world = info.kind.as_str();
        self.inner
            .metrics
            .call(tenant, world, execution.outcome, &execution.stats, cache);
        let report = CallReport {
            run_id: context.run_id.clone(),
            execution,
            tier: resolved.prepared.tier(),
            digest: resolved.digest,
            cache,
            compile_us: if cache == CacheSource::None {
                micros(took)
            } else {
                0
            },
            load_us: if cache == CacheSource::Disk {
                micros(took)
            } else {
                0
            },
        };
        let pending = PendingRecord {
            context,
            tenant,
            name,
            world: &info.world,
            export: call.export(),
            via,
            started_at,
            limits,
            input: request.input,
            config: &request.config,
            recording: state.recording,
        };
        match late {
            None => self.record(pending.finish(&report, &report.execution, false)),
            Some(late) => {
                self.record_when_done(pending.finish(&report, &report.execution, true), late)
            }
        }
        Ok(report)
    }

    /// Queues a call's record (dropped and counted when the queue is full), with its tenant's
    /// `max_record_bytes`, which the store applies when it writes the batch.
    pub(crate) fn record(&self, record: NewRecord) {
        let max_bytes = self.max_record_bytes(&record.record.tenant);
        self.inner
            .recorder
            .submit(record, max_bytes, &self.inner.metrics);
    }

    /// The tenant's `max_record_bytes` (from its state, which a recorded call has built).
    pub(crate) fn max_record_bytes(&self, tenant: &TenantId) -> u64 {
        let states = self
            .inner
            .tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        states
            .get(tenant)
            .and_then(|state| state.quotas.max_record_bytes)
            .or(self.inner.config.tenants.quotas.max_record_bytes)
            .unwrap_or(DEFAULT_MAX_RECORD_BYTES)
    }

    /// Records a call answered before it ended once it has ended, with how it really ended.
    pub(crate) fn record_when_done(&self, mut record: NewRecord, late: LateExecution) {
        let service = self.clone();
        tokio::spawn(async move {
            if let Some(execution) = late.wait().await {
                complete_late(&mut record.record, &execution);
            }
            service.record(record);
        });
    }

    /// Whether the tenant stores the component (then the cache's provenance is its own).
    pub(crate) async fn stores(&self, tenant: &TenantId, digest: &Digest) -> bool {
        self.inner
            .registry
            .component(tenant, &ComponentRef::Digest(digest.clone()))
            .await
            .is_ok()
    }

    /// The long-call hint of (tenant, component), and whether it existed.
    pub(crate) fn hint(&self, tenant: &TenantId, digest: &Digest) -> (LongCallHint, bool) {
        let mut hints = self
            .inner
            .hints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (tenant.clone(), digest.clone());
        if let Some(hint) = hints.get(&key) {
            return (hint.clone(), true);
        }
        if hints.len() >= MAX_HINTS {
            hints.clear();
        }
        let hint = LongCallHint::default();
        hints.insert(key, hint.clone());
        (hint, false)
    }

    pub(crate) fn meter(&self, state: &TenantState, execution: &Execution, bytes_in: u64) {
        let stats = &execution.stats;
        let counters = UsageCounters {
            calls: 1,
            fuel: stats.fuel_used,
            wall_us: stats.wall_us,
            memory_gb_s: stats.memory_peak_bytes as f64 * (stats.wall_us as f64 / 1e6) / 1e9,
            bytes_in,
            bytes_out: execution
                .output
                .as_ref()
                .map_or(0, warden_runtime::Output::len),
            http_requests: execution.answered_requests(),
            http_bytes: execution
                .outbound
                .iter()
                .map(|request| request.bytes_in + request.bytes_out)
                .sum(),
        };
        self.meter_counters(state, execution.outcome, &counters);
    }

    /// Adds one call's (or pipeline run's) usage to the tenant's meter.
    pub(crate) fn meter_counters(
        &self,
        state: &TenantState,
        outcome: Outcome,
        counters: &UsageCounters,
    ) {
        state.add_fuel(counters.fuel);
        let due = self.inner.meter.add(
            &state.tenant.id,
            tenants::today(),
            outcome.as_str(),
            counters,
        );
        if due {
            self.inner.flush_now.notify_one();
        }
    }
}

/// What a call's record needs beyond its report.
pub(crate) struct PendingRecord<'a> {
    context: &'a CallContext,
    tenant: &'a TenantId,
    name: Option<ComponentName>,
    world: &'a str,
    export: &'static str,
    via: &'static str,
    started_at: time::OffsetDateTime,
    limits: Limits,
    input: Option<&'a [u8]>,
    config: &'a GuestConfig,
    recording: EffectiveRecording,
}

impl PendingRecord<'_> {
    fn finish(self, report: &CallReport, execution: &Execution, answered_late: bool) -> NewRecord {
        let failed = execution.outcome != Outcome::Ok;
        let keep_input = match self.recording.record_inputs {
            RecordInputs::Never => false,
            RecordInputs::OnFailure => failed,
            RecordInputs::Always => true,
        };
        let kept = self.input.filter(|input| {
            keep_input && input.len() as u64 <= self.recording.max_recorded_input_bytes
        });
        let stats = &execution.stats;
        NewRecord {
            record: RunRecord {
                id: self.context.run_id.clone(),
                request_id: self.context.request_id.clone(),
                tenant: self.tenant.clone(),
                digest: report.digest.clone(),
                name: self.name,
                world: self.world.to_owned(),
                export: self.export.to_owned(),
                via: self.via.to_owned(),
                started_at: format_millis(self.started_at),
                outcome: execution.outcome,
                error: execution.error.clone(),
                limits: self.limits,
                stats: RunStats {
                    fuel_used: stats.fuel_used,
                    wall_us: stats.wall_us,
                    queued_us: stats.queued_us,
                    instantiate_us: stats.instantiate_us,
                    compile_us: report.compile_us,
                    load_us: report.load_us,
                    memory_peak_bytes: stats.memory_peak_bytes,
                    long_call: stats.long_call,
                    cache: report.cache,
                },
                logs: execution.logs.clone(),
                logs_truncated: execution.logs_truncated,
                stdout: execution.stdout.clone(),
                stderr: execution.stderr.clone(),
                input: self.input.map(Payload::of),
                input_recorded: kept.is_some(),
                output: execution
                    .output
                    .as_ref()
                    .map(|output| Payload::of(&output.to_bytes())),
                answered_late,
                config: self.config.values().clone(),
                outbound: execution.outbound.clone(),
                pipeline: None,
            },
            input: kept.map(<[u8]>::to_vec),
        }
    }
}

/// Puts how a late call really ended into its record (the input stays as the policy decided
/// for the answered outcome).
pub(crate) fn complete_late(record: &mut RunRecord, execution: &Execution) {
    let stats = &execution.stats;
    record.outcome = execution.outcome;
    record.error = execution.error.clone();
    record.logs = execution.logs.clone();
    record.logs_truncated = execution.logs_truncated;
    record.stdout = execution.stdout.clone();
    record.stderr = execution.stderr.clone();
    record.outbound = execution.outbound.clone();
    record.output = execution
        .output
        .as_ref()
        .map(|output| Payload::of(&output.to_bytes()));
    record.stats.fuel_used = stats.fuel_used;
    record.stats.wall_us = stats.wall_us;
    record.stats.instantiate_us = stats.instantiate_us;
    record.stats.memory_peak_bytes = stats.memory_peak_bytes;
}

/// RFC 3339 with milliseconds, UTC.
pub(crate) fn format_millis(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}
