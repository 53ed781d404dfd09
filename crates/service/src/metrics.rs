//! What the service measures, as Prometheus metrics: calls by outcome, world and tenant,
//! latency and queue-wait histograms, fuel, memory peaks, compiles, cache lookups, records
//! written and dropped, HTTP requests, and the runtime's load at scrape time.
//!
//! One registry per service (not a process-global recorder), so two services in one process
//! (tests, `warden replay`) never mix their counts. Tenant labels are bounded: the first
//! `tenant_labels` tenants to call have their own, every later one is `other`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use warden_registry::{CacheSource, TenantId};
use warden_runtime::{Load, Outcome};

/// The label every tenant past the labelled ones shares.
pub const OTHER_TENANT: &str = "other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    outcome: &'static str,
    world: &'static str,
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    outcome: &'static str,
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorldLabels {
    world: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status: u16,
}

/// Latency buckets, in seconds: 50 µs to 30 s.
const SECONDS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 5.0, 30.0,
];
/// Memory buckets, in bytes: 64 KiB to 4 GiB, by fours.
const BYTES: [f64; 9] = [
    65_536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
    1_073_741_824.0,
    4_294_967_296.0,
];

fn seconds() -> Histogram {
    Histogram::new(SECONDS)
}

/// The service's metrics. Cheap to share behind the service.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    pipeline_runs: Family<RunLabels, Counter>,
    pipeline_records: Counter,
    call_seconds: Family<WorldLabels, Histogram, fn() -> Histogram>,
    queue_seconds: Histogram,
    fuel: Family<TenantLabels, Counter>,
    memory_peak: Histogram,
    compiles: Counter,
    compile_seconds: Histogram,
    cache: Family<CacheLabels, Counter>,
    records_written: Counter,
    records_dropped: Counter,
    http: Family<HttpLabels, Counter>,
    runs_running: Gauge,
    runs_queued: Gauge,
    long_calls_running: Gauge,
    compiles_running: Gauge,
    compiles_queued: Gauge,
    labelled: Mutex<HashSet<TenantId>>,
    tenant_labels: usize,
    enabled: bool,
}

impl Metrics {
    /// Registers every metric; at most `tenant_labels` tenants get a label of their own.
    pub fn new(tenant_labels: usize) -> Metrics {
        Metrics::with_switch(tenant_labels, true)
    }

    /// Like [`Metrics::new`]; when `enabled` is false nothing is counted (for measuring what
    /// metrics cost).
    pub fn with_switch(tenant_labels: usize, enabled: bool) -> Metrics {
        let mut registry = Registry::with_prefix("warden");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "Calls that ran, by outcome, world and tenant",
            calls.clone(),
        );
        let pipeline_runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "pipeline_runs",
            "Pipeline runs, by outcome and tenant",
            pipeline_runs.clone(),
        );
        let pipeline_records = Counter::default();
        registry.register(
            "pipeline_records",
            "Input records read by pipeline runs",
            pipeline_records.clone(),
        );
        let call_seconds =
            Family::<WorldLabels, Histogram, fn() -> Histogram>::new_with_constructor(seconds);
        registry.register(
            "call_duration_seconds",
            "Wall time of instantiate + call",
            call_seconds.clone(),
        );
        let queue_seconds = seconds();
        registry.register(
            "queue_wait_seconds",
            "Time calls waited for an execution slot",
            queue_seconds.clone(),
        );
        let fuel = Family::<TenantLabels, Counter>::default();
        registry.register("fuel_used", "Fuel used by calls, by tenant", fuel.clone());
        let memory_peak = Histogram::new(BYTES);
        registry.register(
            "memory_peak_bytes",
            "Peak memory and tables of each call",
            memory_peak.clone(),
        );
        let compiles = Counter::default();
        registry.register("compiles", "Components compiled", compiles.clone());
        let compile_seconds =
            Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        registry.register(
            "compile_duration_seconds",
            "Time to compile a component",
            compile_seconds.clone(),
        );
        let cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "cache_lookups",
            "Where each call's compiled component came from (memory, disk, none = compiled)",
            cache.clone(),
        );
        let records_written = Counter::default();
        registry.register(
            "records_written",
            "Invocation records written to the store",
            records_written.clone(),
        );
        let records_dropped = Counter::default();
        registry.register(
            "records_dropped",
            "Invocation records dropped (queue full or store failure)",
            records_dropped.clone(),
        );
        let http = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        Metrics {
            runs_running: gauge(
                &mut registry,
                "runs_running",
                "Calls holding an execution slot",
            ),
            runs_queued: gauge(
                &mut registry,
                "runs_queued",
                "Calls waiting for an execution slot",
            ),
            long_calls_running: gauge(
                &mut registry,
                "long_calls_running",
                "Long calls holding a turn in the long lane",
            ),
            compiles_running: gauge(&mut registry, "compiles_running", "Compilations running"),
            compiles_queued: gauge(&mut registry, "compiles_queued", "Compilations waiting"),
            registry,
            calls,
            pipeline_runs,
            pipeline_records,
            call_seconds,
            queue_seconds,
            fuel,
            memory_peak,
            compiles,
            compile_seconds,
            cache,
            records_written,
            records_dropped,
            http,
            labelled: Mutex::new(HashSet::new()),
            tenant_labels,
            enabled,
        }
    }

    /// The label of `tenant`: its id while there is room for one more, else `other`.
    fn tenant_label(&self, tenant: &TenantId) -> String {
        let mut labelled = self.labelled.lock().unwrap_or_else(PoisonError::into_inner);
        if labelled.contains(tenant) {
            return tenant.to_string();
        }
        if labelled.len() < self.tenant_labels {
            labelled.insert(tenant.clone());
            return tenant.to_string();
        }
        OTHER_TENANT.to_string()
    }

    /// Counts one finished call.
    pub fn call(
        &self,
        tenant: &TenantId,
        world: &'static str,
        outcome: Outcome,
        stats: &warden_runtime::Stats,
        cache: CacheSource,
    ) {
        if !self.enabled {
            return;
        }
        let tenant = self.tenant_label(tenant);
        self.calls
            .get_or_create(&CallLabels {
                outcome: outcome.as_str(),
                world,
                tenant: tenant.clone(),
            })
            .inc();
        self.call_seconds
            .get_or_create(&WorldLabels { world })
            .observe(stats.wall_us as f64 / 1e6);
        self.queue_seconds.observe(stats.queued_us as f64 / 1e6);
        self.fuel
            .get_or_create(&TenantLabels { tenant })
            .inc_by(stats.fuel_used);
        self.memory_peak.observe(stats.memory_peak_bytes as f64);
        let source = match cache {
            CacheSource::Memory => "memory",
            CacheSource::Disk => "disk",
            CacheSource::None => "none",
        };
        self.cache.get_or_create(&CacheLabels { source }).inc();
    }

    /// Counts one finished pipeline run and the records it read.
    pub(crate) fn pipeline_run(&self, tenant: &TenantId, outcome: Outcome, records_in: u64) {
        if !self.enabled {
            return;
        }
        let tenant = self.tenant_label(tenant);
        self.pipeline_runs
            .get_or_create(&RunLabels {
                outcome: outcome.as_str(),
                tenant,
            })
            .inc();
        self.pipeline_records.inc_by(records_in);
    }

    /// Counts one compile and how long it took.
    pub(crate) fn compiled(&self, took: std::time::Duration) {
        self.compiles.inc();
        self.compile_seconds.observe(took.as_secs_f64());
    }

    pub(crate) fn records_written(&self, count: u64) {
        self.records_written.inc_by(count);
    }

    pub(crate) fn records_dropped(&self, count: u64) {
        self.records_dropped.inc_by(count);
    }

    /// Counts one HTTP request by its route pattern (e.g. `/v1/components/{reference}/run`;
    /// `unmatched` for paths no route knows) and status.
    pub fn http_request(&self, route: &str, status: u16) {
        if !self.enabled {
            return;
        }
        self.http
            .get_or_create(&HttpLabels {
                route: route.to_string(),
                status,
            })
            .inc();
    }

    /// Every metric in the OpenMetrics text format, with the runtime's load as of now.
    pub fn render(&self, load: Load) -> String {
        let set = |gauge: &Gauge, value: u64| {
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        set(&self.runs_running, load.runs_running);
        set(&self.runs_queued, load.runs_queued);
        set(&self.long_calls_running, load.long_calls_running);
        set(&self.compiles_running, load.compiles_running);
        set(&self.compiles_queued, load.compiles_queued);
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
