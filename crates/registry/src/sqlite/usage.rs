//! Metered usage in SQLite: per (tenant, day, outcome) counters, added in one transaction per
//! flush.

use super::SqliteStore;
use crate::ids::TenantId;
use crate::store::{StoreError, UsageCounters, UsageDelta, UsageStore};
use rusqlite::params;

impl UsageStore for SqliteStore {
    fn add_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError> {
        self.with(|connection| {
            let tx = connection.transaction()?;
            {
                let mut statement = tx.prepare_cached(
                    "INSERT INTO usage (tenant, day, outcome, calls, fuel, wall_us, memory_gb_s, bytes_in, bytes_out, http_requests, http_bytes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (tenant, day, outcome) DO UPDATE SET
                       calls = calls + excluded.calls, fuel = fuel + excluded.fuel,
                       wall_us = wall_us + excluded.wall_us,
                       memory_gb_s = memory_gb_s + excluded.memory_gb_s,
                       bytes_in = bytes_in + excluded.bytes_in, bytes_out = bytes_out + excluded.bytes_out,
                       http_requests = http_requests + excluded.http_requests,
                       http_bytes = http_bytes + excluded.http_bytes",
                )?;
                for delta in deltas {
                    let c = &delta.counters;
                    statement.execute(params![
                        delta.tenant.as_str(),
                        delta.day,
                        delta.outcome,
                        c.calls,
                        c.fuel,
                        c.wall_us,
                        c.memory_gb_s,
                        c.bytes_in,
                        c.bytes_out,
                        c.http_requests,
                        c.http_bytes
                    ])?;
                }
            }
            tx.commit()
        })
    }

    fn usage(
        &self,
        tenant: &TenantId,
        from: &str,
        to: &str,
    ) -> Result<Vec<UsageDelta>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT day, outcome, calls, fuel, wall_us, memory_gb_s, bytes_in, bytes_out,
                        http_requests, http_bytes
                 FROM usage WHERE tenant = ?1 AND day >= ?2 AND day <= ?3 ORDER BY day, outcome",
            )?;
            let rows = statement.query_map(params![tenant.as_str(), from, to], |row| {
                Ok(UsageDelta {
                    tenant: tenant.clone(),
                    day: row.get(0)?,
                    outcome: row.get(1)?,
                    counters: UsageCounters {
                        calls: row.get(2)?,
                        fuel: row.get(3)?,
                        wall_us: row.get(4)?,
                        memory_gb_s: row.get(5)?,
                        bytes_in: row.get(6)?,
                        bytes_out: row.get(7)?,
                        http_requests: row.get(8)?,
                        http_bytes: row.get(9)?,
                    },
                })
            })?;
            rows.collect()
        })
    }
}
