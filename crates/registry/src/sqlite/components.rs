//! Components, their bytes' metadata and names in SQLite: a tenant's rows, its quota checked in
//! the inserting transaction, and names with their history.

use super::{SqliteStore, corrupt, digest_column, failed, name_column, now};
use crate::ids::{ComponentName, Digest, TenantId};
use crate::store::{
    ComponentRecord, ComponentStore, DeleteResult, Inserted, NameChange, NameRecord, StorageQuota,
    StorageUsed, StoreError,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

pub(super) fn read_component(row: &rusqlite::Row<'_>) -> rusqlite::Result<ComponentRecord> {
    let list = |text: String| serde_json::from_str::<Vec<String>>(&text).unwrap_or_default();
    Ok(ComponentRecord {
        digest: digest_column(row, 0)?,
        size: row.get(1)?,
        world: row.get(2)?,
        imports: list(row.get(3)?),
        exports: list(row.get(4)?),
        compile_ms: row.get(5)?,
        created_at: row.get(6)?,
    })
}

pub(super) const COMPONENT_COLUMNS: &str =
    "digest, size, world, imports, exports, compile_ms, created_at";

pub(super) fn component_in(
    tx: &Connection,
    tenant: &TenantId,
    digest: &Digest,
) -> rusqlite::Result<Option<ComponentRecord>> {
    tx.query_row(
        &format!("SELECT {COMPONENT_COLUMNS} FROM components WHERE tenant = ?1 AND digest = ?2"),
        params![tenant.as_str(), digest.as_str()],
        read_component,
    )
    .optional()
}

pub(super) fn storage_used_in(tx: &Connection, tenant: &TenantId) -> rusqlite::Result<StorageUsed> {
    tx.query_row(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM components WHERE tenant = ?1",
        params![tenant.as_str()],
        |row| {
            Ok(StorageUsed {
                components: row.get(0)?,
                bytes: row.get(1)?,
            })
        },
    )
}

pub(super) fn point_name(
    tx: &Transaction<'_>,
    tenant: &TenantId,
    name: &ComponentName,
    digest: &Digest,
) -> rusqlite::Result<()> {
    let at = now();
    tx.execute(
        "INSERT INTO names (tenant, name, digest, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
        params![tenant.as_str(), name.as_str(), digest.as_str(), at],
    )?;
    tx.execute(
        "INSERT INTO name_history (tenant, name, digest, changed_at) VALUES (?1, ?2, ?3, ?4)",
        params![tenant.as_str(), name.as_str(), digest.as_str(), at],
    )?;
    Ok(())
}

pub(super) fn remove_name(
    tx: &Transaction<'_>,
    tenant: &TenantId,
    name: &ComponentName,
) -> rusqlite::Result<bool> {
    let removed = tx.execute(
        "DELETE FROM names WHERE tenant = ?1 AND name = ?2",
        params![tenant.as_str(), name.as_str()],
    )?;
    if removed > 0 {
        tx.execute(
            "INSERT INTO name_history (tenant, name, digest, changed_at) VALUES (?1, ?2, NULL, ?3)",
            params![tenant.as_str(), name.as_str(), now()],
        )?;
    }
    Ok(removed > 0)
}

/// Why inserting would pass the quota, if it would.
pub(super) fn over_quota(used: StorageUsed, size: u64, quota: &StorageQuota) -> Option<String> {
    if let Some(max) = quota.max_components
        && used.components + 1 > max
    {
        return Some(format!(
            "the tenant stores {} components; its quota is {max}",
            used.components
        ));
    }
    if let Some(max) = quota.max_stored_bytes
        && used.bytes.saturating_add(size) > max
    {
        return Some(format!(
            "storing {size} more bytes would bring the tenant to {}; its quota is {max} bytes",
            used.bytes.saturating_add(size)
        ));
    }
    None
}

impl ComponentStore for SqliteStore {
    fn insert_component(
        &self,
        tenant: &TenantId,
        record: &ComponentRecord,
        name: Option<&ComponentName>,
        quota: &StorageQuota,
    ) -> Result<Inserted, StoreError> {
        let imports = serde_json::to_string(&record.imports).map_err(StoreError::backend)?;
        let exports = serde_json::to_string(&record.exports).map_err(StoreError::backend)?;
        self.with(|connection| {
            // IMMEDIATE: the quota read and the insert see no concurrent writer in between.
            let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if let Some(existing) = component_in(&tx, tenant, &record.digest)? {
                if let Some(name) = name {
                    point_name(&tx, tenant, name, &record.digest)?;
                }
                tx.commit()?;
                return Ok(Inserted::Existing(existing));
            }
            if let Some(reason) = over_quota(storage_used_in(&tx, tenant)?, record.size, quota) {
                return Ok(Inserted::OverQuota(reason));
            }
            tx.execute(
                "INSERT INTO components (tenant, digest, size, world, imports, exports, compile_ms, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    tenant.as_str(),
                    record.digest.as_str(),
                    record.size,
                    record.world,
                    imports,
                    exports,
                    record.compile_ms,
                    record.created_at
                ],
            )?;
            if let Some(name) = name {
                point_name(&tx, tenant, name, &record.digest)?;
            }
            tx.commit()?;
            Ok(Inserted::New)
        })
    }

    fn component(
        &self,
        tenant: &TenantId,
        digest: &Digest,
    ) -> Result<Option<ComponentRecord>, StoreError> {
        self.with(|connection| component_in(connection, tenant, digest))
    }

    fn list_components(
        &self,
        tenant: &TenantId,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<ComponentRecord>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {COMPONENT_COLUMNS} FROM components
                 WHERE tenant = ?1 AND digest > ?2 ORDER BY digest LIMIT ?3"
            ))?;
            let after = after.map_or("", Digest::as_str);
            let rows =
                statement.query_map(params![tenant.as_str(), after, limit], read_component)?;
            rows.collect()
        })
    }

    fn delete_component(
        &self,
        tenant: &TenantId,
        digest: &Digest,
        force: bool,
    ) -> Result<DeleteResult, StoreError> {
        self.with(|connection| {
            let tx =
                connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if component_in(&tx, tenant, digest)?.is_none() {
                return Ok(DeleteResult::NotFound);
            }
            let names: Vec<ComponentName> = {
                let mut statement = tx.prepare(
                    "SELECT name FROM names WHERE tenant = ?1 AND digest = ?2 ORDER BY name",
                )?;
                let rows = statement
                    .query_map(params![tenant.as_str(), digest.as_str()], |row| {
                        name_column(row, 0)
                    })?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            if !names.is_empty() && !force {
                return Ok(DeleteResult::Referenced { names });
            }
            for name in &names {
                remove_name(&tx, tenant, name)?;
            }
            tx.execute(
                "DELETE FROM components WHERE tenant = ?1 AND digest = ?2",
                params![tenant.as_str(), digest.as_str()],
            )?;
            tx.execute(
                "DELETE FROM grants WHERE tenant = ?1 AND digest = ?2",
                params![tenant.as_str(), digest.as_str()],
            )?;
            tx.commit()?;
            Ok(DeleteResult::Deleted { names })
        })
    }

    fn set_name(
        &self,
        tenant: &TenantId,
        name: &ComponentName,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        self.try_with(|connection| {
            let tx = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(failed)?;
            if component_in(&tx, tenant, digest).map_err(failed)?.is_none() {
                return Err(StoreError::not_found(format!(
                    "no component with digest {digest}"
                )));
            }
            point_name(&tx, tenant, name, digest).map_err(failed)?;
            tx.commit().map_err(failed)
        })
    }

    fn name(
        &self,
        tenant: &TenantId,
        name: &ComponentName,
    ) -> Result<Option<NameRecord>, StoreError> {
        self.with(|connection| {
            let current: Option<(Digest, String)> = connection
                .query_row(
                    "SELECT digest, updated_at FROM names WHERE tenant = ?1 AND name = ?2",
                    params![tenant.as_str(), name.as_str()],
                    |row| Ok((digest_column(row, 0)?, row.get(1)?)),
                )
                .optional()?;
            let Some((digest, updated_at)) = current else {
                return Ok(None);
            };
            let mut statement = connection.prepare_cached(
                "SELECT digest, changed_at FROM name_history
                 WHERE tenant = ?1 AND name = ?2 ORDER BY id DESC LIMIT 1000",
            )?;
            let history = statement
                .query_map(params![tenant.as_str(), name.as_str()], |row| {
                    let digest: Option<String> = row.get(0)?;
                    Ok(NameChange {
                        digest: digest
                            .map(|text| Digest::parse(&text).map_err(|e| corrupt(0, e)))
                            .transpose()?,
                        changed_at: row.get(1)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(NameRecord {
                name: name.clone(),
                digest,
                updated_at,
                history,
            }))
        })
    }

    fn delete_name(&self, tenant: &TenantId, name: &ComponentName) -> Result<bool, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction()?;
            let removed = remove_name(&tx, tenant, name)?;
            tx.commit()?;
            Ok(removed)
        })
    }

    fn digest_in_use(&self, digest: &Digest) -> Result<bool, StoreError> {
        self.with(|connection| {
            connection
                .query_row(
                    "SELECT 1 FROM components WHERE digest = ?1 LIMIT 1",
                    params![digest.as_str()],
                    |row| row.get::<_, i64>(0),
                )
                .optional()
                .map(|found| found.is_some())
        })
    }

    fn storage_used(&self, tenant: &TenantId) -> Result<StorageUsed, StoreError> {
        self.with(|connection| storage_used_in(connection, tenant))
    }
}
