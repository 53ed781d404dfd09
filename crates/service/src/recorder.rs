//! The queue between calls and the record store: calls push without waiting, a background
//! writer drains it in batches (one transaction each).
//!
//! The queue is bounded by count and by bytes. A record that does not fit is dropped and
//! counted, never waited for: recording must not slow or fail a call. The writer's thread
//! runs at a lower OS priority ([`WRITER_NICE`]) while it writes, so on a saturated machine
//! calls get the CPU first and the writer takes what is left (it needs ~11 µs per record; at
//! nice 5 it keeps a quarter of a contended core, more than a warm-call flood needs).
//!
//! Each batch carries its tenants' `max_record_bytes`: the store removes a tenant's oldest
//! records in the batch's own transaction until its records are within it (retention by
//! bytes; a tenant's newest records are the ones kept).

use crate::metrics::Metrics;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use warden_registry::{Backend, NewRecord, RecordByteLimits, RunId, TenantId};

use crate::config::RecordsConfig;

/// The nice value of the writer's thread while it writes a batch.
pub const WRITER_NICE: i32 = 5;

/// Lowers the calling (blocking-pool) thread's priority until dropped.
struct Background;

impl Background {
    fn enter() -> Background {
        set_nice(WRITER_NICE);
        Background
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        set_nice(0);
    }
}

/// Sets the calling thread's nice value; failure (not permitted to raise it back) leaves it.
fn set_nice(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let _ = rustix::process::setpriority_process(Some(tid), nice);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Bytes a record is counted as besides its logs, stdio and input.
const RECORD_OVERHEAD: u64 = 1024;

/// Records waiting to be written.
pub(crate) struct Recorder {
    queue: Mutex<Queue>,
    config: RecordsConfig,
    /// Records dropped since start.
    dropped: AtomicU64,
    /// When a drop was last logged (Unix seconds), so a flood logs once a second.
    last_drop_log: AtomicU64,
    due: tokio::sync::Notify,
}

#[derive(Default)]
struct Queue {
    records: Vec<NewRecord>,
    bytes: u64,
    /// The byte ceiling of each tenant with a queued record (the latest submitted).
    limits: RecordByteLimits,
}

fn size_of(record: &NewRecord) -> u64 {
    let body = &record.record;
    let logs: usize = body.logs.iter().map(|line| line.message.len() + 16).sum();
    let text =
        logs + body.stdout.len() + body.stderr.len() + body.error.as_ref().map_or(0, String::len);
    RECORD_OVERHEAD + text as u64 + record.input.as_ref().map_or(0, |input| input.len() as u64)
}

impl Recorder {
    pub(crate) fn new(config: RecordsConfig) -> Recorder {
        Recorder {
            queue: Mutex::new(Queue::default()),
            config,
            dropped: AtomicU64::new(0),
            last_drop_log: AtomicU64::new(0),
            due: tokio::sync::Notify::new(),
        }
    }

    /// Queues a record, whose tenant keeps at most `max_bytes` of records; drops (and counts)
    /// it when the queue is full.
    pub(crate) fn submit(&self, record: NewRecord, max_bytes: u64, metrics: &Metrics) {
        if !self.config.enabled {
            return;
        }
        let size = size_of(&record);
        let waiting = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let full = queue.records.len() >= self.config.queue_capacity
                || queue.bytes.saturating_add(size) > self.config.queue_max_bytes;
            if !full {
                let tenant: &TenantId = &record.record.tenant;
                if queue.limits.get(tenant) != Some(&max_bytes) {
                    queue.limits.insert(tenant.clone(), max_bytes);
                }
                queue.records.push(record);
                queue.bytes += size;
            }
            (!full).then_some(queue.records.len())
        };
        match waiting {
            Some(waiting) if waiting >= self.config.batch_size => self.due.notify_one(),
            Some(_) => {}
            None => self.dropped(1, metrics, "the record queue is full"),
        }
    }

    fn dropped(&self, count: u64, metrics: &Metrics, why: &str) {
        let total = self.dropped.fetch_add(count, Ordering::Relaxed) + count;
        metrics.records_dropped(count);
        let now = crate::auth::now_secs().max(0) as u64;
        if self.last_drop_log.swap(now, Ordering::Relaxed) != now {
            tracing::warn!(dropped_total = total, why, "invocation records dropped");
        }
    }

    /// Whether any record waits to be written.
    pub(crate) fn pending(&self) -> bool {
        !self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .records
            .is_empty()
    }

    /// Whether the record `id` waits to be written.
    pub(crate) fn holds(&self, id: &RunId) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .records
            .iter()
            .any(|new| new.record.id == *id)
    }

    fn take(&self) -> (Vec<NewRecord>, RecordByteLimits) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.bytes = 0;
        (
            std::mem::take(&mut queue.records),
            std::mem::take(&mut queue.limits),
        )
    }

    /// Writes every waiting record, a batch per transaction. A batch the store refuses is
    /// dropped and counted (keeping it would let a failing store grow memory without bound).
    pub(crate) async fn write(&self, store: &Arc<dyn Backend>, metrics: &Metrics) {
        let (records, limits) = self.take();
        if records.is_empty() {
            return;
        }
        let limits = Arc::new(limits);
        let mut batches = Vec::new();
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            batches.push(
                records
                    .by_ref()
                    .take(self.config.batch_size)
                    .collect::<Vec<_>>(),
            );
        }
        for batch in batches {
            let count = batch.len() as u64;
            let store = Arc::clone(store);
            let limits = Arc::clone(&limits);
            let written = tokio::task::spawn_blocking(move || {
                let _background = Background::enter();
                store.insert_records(&batch, &limits)
            })
            .await;
            match written {
                Ok(Ok(removed)) => {
                    metrics.records_written(count);
                    if removed > 0 {
                        tracing::debug!(
                            removed,
                            "records removed to keep tenants within max_record_bytes"
                        );
                    }
                }
                Ok(Err(error)) => {
                    tracing::error!(%error, count, "writing invocation records failed");
                    self.dropped(count, metrics, "the store refused a batch");
                }
                Err(error) => {
                    tracing::error!(%error, count, "the record writer failed");
                    self.dropped(count, metrics, "the record writer failed");
                }
            }
        }
    }

    /// Writes records as they come: every `flush_interval_ms`, or at once when a batch is full.
    pub(crate) async fn run(self: Arc<Self>, store: Arc<dyn Backend>, metrics: Arc<Metrics>) {
        let interval = Duration::from_millis(self.config.flush_interval_ms);
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = self.due.notified() => {}
            }
            self.write(&store, &metrics).await;
        }
    }

    /// Removes what retention no longer keeps, every `prune_interval_secs`.
    pub(crate) async fn prune(self: Arc<Self>, store: Arc<dyn Backend>) {
        let interval = Duration::from_secs(self.config.prune_interval_secs.max(1));
        loop {
            let started = Instant::now();
            let retention = self.retention();
            let store = Arc::clone(&store);
            let pruned = tokio::task::spawn_blocking(move || {
                let _background = Background::enter();
                store.prune_records(&retention)
            });
            match pruned.await {
                Ok(Ok(0)) => {}
                Ok(Ok(removed)) => {
                    tracing::info!(
                        removed,
                        took_ms = started.elapsed().as_millis() as u64,
                        "records pruned"
                    )
                }
                Ok(Err(error)) => tracing::warn!(%error, "pruning records failed"),
                Err(error) => tracing::warn!(%error, "the record pruner failed"),
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// What retention keeps as of now.
    pub(crate) fn retention(&self) -> warden_registry::Retention {
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        let age_ms = i64::try_from(self.config.retention_days)
            .unwrap_or(i64::MAX / 86_400_000)
            .saturating_mul(86_400_000);
        warden_registry::Retention {
            older_than_ms: now_ms.saturating_sub(age_ms),
            max_per_tenant: self.config.max_per_tenant,
        }
    }
}
