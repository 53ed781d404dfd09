//! Metering: every call adds to per-(tenant, day, outcome) counters in memory, written to the
//! usage store in one transaction every flush (and at shutdown). Reads merge what is stored
//! with what is still pending, so usage is exact the moment a call returns.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use warden_registry::{TenantId, UsageCounters, UsageDelta};

/// Distinct (tenant, day, outcome) rows held before a flush is due anyway (a bound on memory;
/// past it rows still add up, a flush only comes sooner).
pub(crate) const FLUSH_AT_ROWS: usize = 10_000;

type Row = (TenantId, String, &'static str);

/// Pending usage, not yet in the store.
#[derive(Default)]
pub(crate) struct Meter {
    pending: Mutex<HashMap<Row, UsageCounters>>,
}

impl Meter {
    /// Adds one call; returns whether a flush is due early.
    pub(crate) fn add(
        &self,
        tenant: &TenantId,
        day: String,
        outcome: &'static str,
        counters: &UsageCounters,
    ) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending
            .entry((tenant.clone(), day, outcome))
            .or_default()
            .add(counters);
        pending.len() >= FLUSH_AT_ROWS
    }

    /// Takes everything pending, as deltas to store.
    pub(crate) fn take(&self) -> Vec<UsageDelta> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending
            .drain()
            .map(|((tenant, day, outcome), counters)| UsageDelta {
                tenant,
                day,
                outcome: outcome.to_owned(),
                counters,
            })
            .collect()
    }

    /// Puts deltas back after a failed write, so nothing is lost.
    pub(crate) fn restore(&self, deltas: Vec<UsageDelta>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for delta in deltas {
            let outcome = outcome_name(&delta.outcome);
            pending
                .entry((delta.tenant, delta.day, outcome))
                .or_default()
                .add(&delta.counters);
        }
    }

    /// `stored` plus what is pending for `tenant` on the days `from..=to`, by day then outcome.
    pub(crate) fn merged(
        &self,
        tenant: &TenantId,
        from: &str,
        to: &str,
        stored: Vec<UsageDelta>,
    ) -> Vec<UsageDelta> {
        let mut rows: BTreeMap<(String, String), UsageCounters> = BTreeMap::new();
        for delta in stored {
            rows.entry((delta.day, delta.outcome))
                .or_default()
                .add(&delta.counters);
        }
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for ((row_tenant, day, outcome), counters) in pending.iter() {
            if row_tenant == tenant && day.as_str() >= from && day.as_str() <= to {
                rows.entry((day.clone(), (*outcome).to_owned()))
                    .or_default()
                    .add(counters);
            }
        }
        rows.into_iter()
            .map(|((day, outcome), counters)| UsageDelta {
                tenant: tenant.clone(),
                day,
                outcome,
                counters,
            })
            .collect()
    }
}

/// The static name of an outcome read back from the store (unknown names are kept as `other`).
fn outcome_name(name: &str) -> &'static str {
    use warden_runtime::Outcome;
    Outcome::ALL
        .iter()
        .map(|outcome| outcome.as_str())
        .find(|known| *known == name)
        .unwrap_or("other")
}
