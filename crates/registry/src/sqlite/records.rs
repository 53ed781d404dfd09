//! Invocation records in SQLite: indexed columns for the filters and the order, the record
//! itself as a JSON document, the input (when kept) as a blob beside it. Ids are UUIDv7, so
//! time bounds (`since`, `until`, retention by age) are id bounds. One index, (tenant, id),
//! serves every query: an insert maintains the table and that index only.
//!
//! Each row carries its bytes ([`stored_bytes`]); triggers keep each tenant's total in
//! `record_bytes` (migration 8), so a batch checks its tenants' byte ceilings without summing
//! their records, and trims the oldest in the batch's own transaction.

use super::{SqliteStore, corrupt};
use crate::ids::{RunId, TenantId};
use crate::records::{
    NewRecord, RecordByteLimits, RecordQuery, RecordStore, Retention, RunRecord, stored_bytes,
};
use crate::store::StoreError;
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params, params_from_iter};

/// Rows removed per statement while pruning, so a large backlog never holds the database for
/// long at once.
const PRUNE_CHUNK: i64 = 5_000;

/// Removes the tenant's records with ids below `below`, a chunk per statement; returns how
/// many went.
fn remove_below(
    connection: &rusqlite::Connection,
    tenant: &str,
    below: &str,
) -> rusqlite::Result<u64> {
    let mut removed = 0u64;
    loop {
        let chunk = connection.execute(
            "DELETE FROM records WHERE rowid IN
               (SELECT rowid FROM records WHERE tenant = ?1 AND id < ?2 LIMIT ?3)",
            params![tenant, below, PRUNE_CHUNK],
        )?;
        removed += chunk as u64;
        if (chunk as i64) < PRUNE_CHUNK {
            return Ok(removed);
        }
    }
}

/// Removes the tenant's oldest records until its records' bytes are at most `max`; returns how
/// many went. Walks from the oldest only as far as the excess needs.
fn trim_to_bytes(
    connection: &rusqlite::Connection,
    tenant: &str,
    max: u64,
) -> rusqlite::Result<u64> {
    let total: i64 = connection
        .prepare_cached("SELECT bytes FROM record_bytes WHERE tenant = ?1")?
        .query_row(params![tenant], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    if total <= max {
        return Ok(0);
    }
    let excess = total - max;
    let mut freed = 0i64;
    let mut last: Option<String> = None;
    {
        let mut statement = connection
            .prepare_cached("SELECT id, bytes FROM records WHERE tenant = ?1 ORDER BY id")?;
        let mut rows = statement.query(params![tenant])?;
        while let Some(row) = rows.next()? {
            last = Some(row.get(0)?);
            freed += row.get::<_, i64>(1)?;
            if freed >= excess {
                break;
            }
        }
    }
    match last {
        Some(last) => Ok(connection.execute(
            "DELETE FROM records WHERE tenant = ?1 AND id <= ?2",
            params![tenant, last],
        )? as u64),
        None => Ok(0),
    }
}

fn read_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let document: String = row.get(0)?;
    serde_json::from_str(&document).map_err(|e| corrupt(0, e))
}

impl RecordStore for SqliteStore {
    fn insert_records(
        &self,
        records: &[NewRecord],
        limits: &RecordByteLimits,
    ) -> Result<u64, StoreError> {
        let documents = records
            .iter()
            .map(|new| serde_json::to_string(&new.record).map_err(StoreError::backend))
            .collect::<Result<Vec<_>, _>>()?;
        self.with(|connection| {
            let tx = connection.transaction()?;
            {
                let mut statement = tx.prepare_cached(
                    "INSERT OR IGNORE INTO records (id, tenant, digest, name, outcome, document, input, bytes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for (new, document) in records.iter().zip(&documents) {
                    let record = &new.record;
                    let bytes = stored_bytes(document, new.input.as_deref());
                    statement.execute(params![
                        record.id.as_str(),
                        record.tenant.as_str(),
                        record.digest.as_str(),
                        record.name.as_ref().map(|name| name.as_str()),
                        record.outcome.as_str(),
                        document,
                        new.input.as_deref(),
                        i64::try_from(bytes).unwrap_or(i64::MAX),
                    ])?;
                }
            }
            let mut removed = 0;
            let tenants: std::collections::BTreeSet<&TenantId> =
                records.iter().map(|new| &new.record.tenant).collect();
            for tenant in tenants {
                if let Some(&max) = limits.get(tenant) {
                    removed += trim_to_bytes(&tx, tenant.as_str(), max)?;
                }
            }
            tx.commit()?;
            Ok(removed)
        })
    }

    fn record_bytes(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        self.with(|connection| {
            let bytes: Option<i64> = connection
                .prepare_cached("SELECT bytes FROM record_bytes WHERE tenant = ?1")?
                .query_row(params![tenant.as_str()], |row| row.get(0))
                .optional()?;
            Ok(bytes.map_or(0, |bytes| u64::try_from(bytes).unwrap_or(0)))
        })
    }

    fn records(
        &self,
        tenant: &TenantId,
        query: &RecordQuery,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut sql = String::from("SELECT document FROM records WHERE tenant = ?");
        let mut values = vec![Value::Text(tenant.to_string())];
        let mut filter = |clause: &str, value: Value| {
            sql.push_str(clause);
            values.push(value);
        };
        if let Some(digest) = &query.component {
            filter(" AND digest = ?", Value::Text(digest.to_string()));
        }
        if let Some(name) = &query.name {
            filter(" AND name = ?", Value::Text(name.to_string()));
        }
        if let Some(outcome) = query.outcome {
            filter(" AND outcome = ?", Value::Text(outcome.as_str().into()));
        }
        if let Some(since) = query.since_ms {
            filter(" AND id >= ?", Value::Text(RunId::lower_bound(since)));
        }
        if let Some(until) = query.until_ms {
            filter(" AND id < ?", Value::Text(RunId::lower_bound(until)));
        }
        if let Some(after) = &query.after {
            filter(" AND id < ?", Value::Text(after.to_string()));
        }
        filter(
            " ORDER BY id DESC LIMIT ?",
            Value::Integer(query.limit.into()),
        );
        self.with(|connection| {
            let mut statement = connection.prepare(&sql)?;
            let rows = statement.query_map(params_from_iter(values), read_record)?;
            rows.collect()
        })
    }

    fn record(&self, tenant: &TenantId, id: &RunId) -> Result<Option<RunRecord>, StoreError> {
        self.with(|connection| {
            connection
                .prepare_cached("SELECT document FROM records WHERE tenant = ?1 AND id = ?2")?
                .query_row(params![tenant.as_str(), id.as_str()], read_record)
                .optional()
        })
    }

    fn record_input(&self, tenant: &TenantId, id: &RunId) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|connection| {
            let input: Option<Option<Vec<u8>>> = connection
                .prepare_cached("SELECT input FROM records WHERE tenant = ?1 AND id = ?2")?
                .query_row(params![tenant.as_str(), id.as_str()], |row| row.get(0))
                .optional()?;
            Ok(input.flatten())
        })
    }

    fn prune_records(&self, retention: &Retention) -> Result<u64, StoreError> {
        // Records exist only for existing tenants (they are deleted with their tenant).
        let tenants: Vec<String> = self.with(|connection| {
            let mut statement = connection.prepare("SELECT id FROM tenants")?;
            let rows = statement.query_map([], |row| row.get(0))?;
            rows.collect()
        })?;
        let too_old = RunId::lower_bound(retention.older_than_ms);
        let keep = i64::try_from(retention.max_per_tenant).unwrap_or(i64::MAX);
        let mut removed = 0u64;
        for tenant in tenants {
            removed += self.with(|connection| remove_below(connection, &tenant, &too_old))?;
            removed += self.with(|connection| {
                // The id of the oldest record the tenant keeps; everything older goes.
                let oldest_kept: Option<String> = connection
                    .query_row(
                        "SELECT id FROM records WHERE tenant = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2",
                        params![tenant, keep.saturating_sub(1)],
                        |row| row.get(0),
                    )
                    .optional()?;
                match oldest_kept {
                    Some(id) => remove_below(connection, &tenant, &id),
                    None => Ok(0),
                }
            })?;
        }
        Ok(removed)
    }
}
