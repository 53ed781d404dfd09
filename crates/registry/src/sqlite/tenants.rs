//! Tenants and their API keys in SQLite (keys stored hashed).

use super::{SqliteStore, corrupt, digest_column, failed};
use crate::ids::{Digest, KeyId, TenantId};
use crate::store::{KeyRecord, Scope, StoreError, Tenant, TenantStore};
use rusqlite::{OptionalExtension, params};

pub(super) fn read_tenant(row: &rusqlite::Row<'_>) -> rusqlite::Result<Tenant> {
    let id: String = row.get(0)?;
    let limits: String = row.get(1)?;
    let quotas: String = row.get(2)?;
    let recording: String = row.get(4)?;
    Ok(Tenant {
        id: TenantId::parse(&id).map_err(|e| corrupt(0, e))?,
        limits: serde_json::from_str(&limits).map_err(|e| corrupt(1, e))?,
        quotas: serde_json::from_str(&quotas).map_err(|e| corrupt(2, e))?,
        recording: serde_json::from_str(&recording).map_err(|e| corrupt(4, e))?,
        created_at: row.get(3)?,
        version: row.get(5)?,
    })
}

/// The columns [`read_tenant`] reads, in order.
pub(super) const TENANT_COLUMNS: &str = "id, limits, quotas, created_at, recording, version";

pub(super) fn read_key(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
    let id: String = row.get(0)?;
    let tenant: String = row.get(1)?;
    let scope: String = row.get(3)?;
    let hash: Vec<u8> = row.get(4)?;
    Ok(KeyRecord {
        id: KeyId::parse(&id).map_err(|e| corrupt(0, e))?,
        tenant: TenantId::parse(&tenant).map_err(|e| corrupt(1, e))?,
        name: row.get(2)?,
        scope: match scope.as_str() {
            "run" => Scope::Run,
            _ => Scope::Manage,
        },
        hash: hash.try_into().map_err(|_| corrupt(4, std::fmt::Error))?,
        created_at: row.get(5)?,
        expires_at: row.get(6)?,
        last_used_at: row.get(7)?,
    })
}

pub(super) const KEY_COLUMNS: &str =
    "id, tenant, name, scope, hash, created_at, expires_at, last_used_at";

pub(super) fn json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(StoreError::backend)
}

impl TenantStore for SqliteStore {
    fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let (limits, quotas) = (json(&tenant.limits)?, json(&tenant.quotas)?);
        let recording = json(&tenant.recording)?;
        self.try_with(|connection| {
            let inserted = connection
                .execute(
                    "INSERT OR IGNORE INTO tenants (id, limits, quotas, created_at, recording) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![tenant.id.as_str(), limits, quotas, tenant.created_at, recording],
                )
                .map_err(failed)?;
            match inserted {
                0 => Err(StoreError::conflict(format!("tenant `{}` exists", tenant.id))),
                _ => Ok(()),
            }
        })
    }

    fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        self.with(|connection| {
            connection
                .query_row(
                    &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?1"),
                    params![id.as_str()],
                    read_tenant,
                )
                .optional()
        })
    }

    fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.with(|connection| {
            let mut statement =
                connection.prepare(&format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id"))?;
            let rows = statement.query_map([], read_tenant)?;
            rows.collect()
        })
    }

    fn update_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let (limits, quotas) = (json(&tenant.limits)?, json(&tenant.quotas)?);
        let recording = json(&tenant.recording)?;
        self.try_with(|connection| {
            let tx = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(failed)?;
            let updated = tx
                .execute(
                    "UPDATE tenants SET limits = ?2, quotas = ?3, recording = ?4,
                     version = version + 1 WHERE id = ?1 AND version = ?5",
                    params![
                        tenant.id.as_str(),
                        limits,
                        quotas,
                        recording,
                        tenant.version
                    ],
                )
                .map_err(failed)?;
            if updated == 0 {
                let exists = tx
                    .query_row(
                        "SELECT 1 FROM tenants WHERE id = ?1",
                        params![tenant.id.as_str()],
                        |row| row.get::<_, i64>(0),
                    )
                    .optional()
                    .map_err(failed)?
                    .is_some();
                return Err(match exists {
                    true => StoreError::conflict(format!(
                        "tenant `{}` changed since it was read",
                        tenant.id
                    )),
                    false => StoreError::not_found(format!("no tenant `{}`", tenant.id)),
                });
            }
            tx.commit().map_err(failed)
        })
    }

    fn delete_tenant(&self, id: &TenantId) -> Result<Vec<Digest>, StoreError> {
        self.try_with(|connection| {
            let tx = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(failed)?;
            let deleted = tx
                .execute("DELETE FROM tenants WHERE id = ?1", params![id.as_str()])
                .map_err(failed)?;
            if deleted == 0 {
                return Err(StoreError::not_found(format!("no tenant `{id}`")));
            }
            let digests: Vec<Digest> = {
                let mut statement = tx
                    .prepare("SELECT digest FROM components WHERE tenant = ?1")
                    .map_err(failed)?;
                let rows = statement
                    .query_map(params![id.as_str()], |row| digest_column(row, 0))
                    .map_err(failed)?;
                rows.collect::<rusqlite::Result<_>>().map_err(failed)?
            };
            for table in [
                "api_keys",
                "names",
                "name_history",
                "components",
                "records",
                "record_bytes",
                "pipelines",
                "pipeline_versions",
                "grants",
                "secrets",
            ] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE tenant = ?1"),
                    params![id.as_str()],
                )
                .map_err(failed)?;
            }
            tx.commit().map_err(failed)?;
            Ok(digests)
        })
    }

    fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        self.try_with(|connection| {
            let tx = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(failed)?;
            let tenant_exists = tx
                .query_row(
                    "SELECT 1 FROM tenants WHERE id = ?1",
                    params![key.tenant.as_str()],
                    |row| row.get::<_, i64>(0),
                )
                .optional()
                .map_err(failed)?
                .is_some();
            if !tenant_exists {
                return Err(StoreError::not_found(format!("no tenant `{}`", key.tenant)));
            }
            let inserted = tx
                .execute(
                    &format!(
                        "INSERT OR IGNORE INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                    ),
                    params![
                        key.id.as_str(),
                        key.tenant.as_str(),
                        key.name,
                        key.scope.as_str(),
                        key.hash.as_slice(),
                        key.created_at,
                        key.expires_at,
                        key.last_used_at
                    ],
                )
                .map_err(failed)?;
            if inserted == 0 {
                return Err(StoreError::conflict(format!("key id {} is taken", key.id)));
            }
            tx.commit().map_err(failed)
        })
    }

    fn key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.with(|connection| {
            connection
                .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"))?
                .query_row(params![id.as_str()], read_key)
                .optional()
        })
    }

    fn list_keys(&self, tenant: &TenantId) -> Result<Vec<KeyRecord>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant = ?1 ORDER BY created_at, id"
            ))?;
            let rows = statement.query_map(params![tenant.as_str()], read_key)?;
            rows.collect()
        })
    }

    fn revoke_key(&self, tenant: &TenantId, id: &KeyId) -> Result<bool, StoreError> {
        self.with(|connection| {
            connection
                .execute(
                    "DELETE FROM api_keys WHERE tenant = ?1 AND id = ?2",
                    params![tenant.as_str(), id.as_str()],
                )
                .map(|deleted| deleted > 0)
        })
    }

    fn touch_keys(&self, used: &[(KeyId, i64)]) -> Result<(), StoreError> {
        self.with(|connection| {
            let tx = connection.transaction()?;
            {
                let mut statement = tx.prepare_cached(
                    "UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?2) WHERE id = ?1",
                )?;
                for (id, at) in used {
                    statement.execute(params![id.as_str(), at])?;
                }
            }
            tx.commit()
        })
    }
}
