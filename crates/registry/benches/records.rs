//! How fast invocation records are written: batches of 1 000 realistic records (three log
//! lines, a short stdout, input and output digests) into the on-disk SQLite store, one
//! transaction per batch, as the service's writer does, with the tenant's default 256 MiB
//! byte ceiling checked in the same transaction. Records per second = 1 000 / the time of one
//! iteration.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use warden_registry::sqlite::SqliteStore;
use warden_registry::{
    Digest, NewRecord, Payload, RecordByteLimits, RecordStore, RunId, RunRecord, RunStats, TenantId,
};
use warden_runtime::{Limits, LogLevel, LogLine, Outcome};

const BATCH: usize = 1_000;

fn record(tenant: &TenantId) -> NewRecord {
    let line = |message: &str| LogLine {
        level: LogLevel::Info,
        message: message.into(),
    };
    NewRecord {
        record: RunRecord {
            id: RunId::new(),
            request_id: "bench".into(),
            tenant: tenant.clone(),
            digest: Digest::of(b"component"),
            name: None,
            world: "warden:plugin/transformer@0.1.0".into(),
            export: "transform".into(),
            via: "invoke".into(),
            started_at: "2026-11-24T10:00:00.000Z".into(),
            outcome: Outcome::Ok,
            error: None,
            limits: Limits::default(),
            stats: RunStats {
                fuel_used: 12_661,
                wall_us: 127,
                ..RunStats::default()
            },
            logs: vec![
                line("pricing a cart of 2 line(s)"),
                line("discount: 321 cents"),
                line("done"),
            ],
            logs_truncated: false,
            stdout: "hello from the guest\n".into(),
            stderr: String::new(),
            input: Some(Payload::of(b"{\"items\":[]}")),
            input_recorded: false,
            output: Some(Payload::of(b"{\"discounts\":[]}")),
            answered_late: false,
            config: Default::default(),
            outbound: Vec::new(),
            pipeline: None,
        },
        input: None,
    }
}

fn write_batches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("warden.db")).unwrap();
    let tenant = TenantId::parse("bench").unwrap();
    let limits = RecordByteLimits::from([(tenant.clone(), 256 * 1024 * 1024)]);
    let mut group = c.benchmark_group("records");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("insert 1000 in one transaction", |b| {
        b.iter_batched(
            || (0..BATCH).map(|_| record(&tenant)).collect::<Vec<_>>(),
            |batch| store.insert_records(&batch, &limits).unwrap(),
            criterion::BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, write_batches);
criterion_main!(benches);
