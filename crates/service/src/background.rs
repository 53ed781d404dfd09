//! The background writers: usage and key use every [`USAGE_FLUSH_INTERVAL`] (or sooner when
//! much is pending), records in batches, record retention.

use crate::Service;
use std::sync::Arc;
use std::time::Duration;

/// How often metered usage and key use are written to the store.
pub const USAGE_FLUSH_INTERVAL: Duration = Duration::from_secs(2);

impl Service {
    /// Writes waiting records, pending usage and key use to the store. On failure usage
    /// stays pending.
    pub async fn flush(&self) {
        self.inner
            .recorder
            .write(&self.inner.store, &self.inner.metrics)
            .await;
        self.flush_usage().await;
    }

    pub(crate) async fn flush_usage(&self) {
        let deltas = self.inner.meter.take();
        let touched = self.inner.keys.touched();
        if deltas.is_empty() && touched.is_empty() {
            return;
        }
        let store = Arc::clone(&self.inner.store);
        let written = tokio::task::spawn_blocking(move || {
            let usage = store.add_usage(&deltas).map_err(|e| (e, deltas));
            let keys = store.touch_keys(&touched).map(|()| touched);
            (usage, keys)
        })
        .await;
        match written {
            Ok((usage, keys)) => {
                if let Err((error, deltas)) = usage {
                    tracing::warn!(%error, "writing usage failed; will retry");
                    self.inner.meter.restore(deltas);
                }
                match keys {
                    Ok(touched) => self.inner.keys.written(&touched),
                    Err(error) => tracing::warn!(%error, "recording key use failed"),
                }
            }
            Err(error) => tracing::error!(%error, "the usage writer failed"),
        }
    }

    /// Starts the background writers: usage every [`USAGE_FLUSH_INTERVAL`] (or sooner when
    /// much is pending), records in batches, and record retention. Call [`Service::flush`]
    /// once more at shutdown.
    pub fn spawn_background(&self) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        let inner = &self.inner;
        let records =
            Arc::clone(&inner.recorder).run(Arc::clone(&inner.store), Arc::clone(&inner.metrics));
        let retention = Arc::clone(&inner.recorder).prune(Arc::clone(&inner.store));
        let usage = async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(USAGE_FLUSH_INTERVAL) => {}
                    () = service.inner.flush_now.notified() => {}
                }
                service.flush_usage().await;
            }
        };
        tokio::spawn(async move {
            tokio::join!(records, retention, usage);
        })
    }
}
