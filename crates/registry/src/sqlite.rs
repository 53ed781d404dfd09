//! The embedded default backend: one SQLite database in the data directory, zero set-up.
//!
//! WAL journal with `synchronous = FULL`: a write is durable when its transaction commits, and
//! a process killed at any moment leaves the database at the last committed transaction.
//!
//! The schema is versioned (`PRAGMA user_version`): [`MIGRATIONS`] run in order, each in its own
//! transaction with the version bump, so a database is always at exactly one version. Migration
//! 1 is the schema data directories had before versioning (it creates nothing that exists), so
//! those upgrade in place.

use crate::ids::{ComponentName, Digest, KeyId, TenantId};
use crate::store::{
    ComponentRecord, ComponentStore, DeleteResult, Inserted, KeyRecord, NameChange, NameRecord,
    Scope, StorageQuota, StorageUsed, StoreError, Tenant, TenantStore, UsageCounters, UsageDelta,
    UsageStore,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

mod grants;
mod pipelines;
mod records;

/// The schema, in order. Never edit a released migration: add one.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "components, names and name history",
        "
CREATE TABLE IF NOT EXISTS components (
    tenant      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    world       TEXT NOT NULL,
    imports     TEXT NOT NULL,
    exports     TEXT NOT NULL,
    compile_ms  INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, digest)
);
CREATE TABLE IF NOT EXISTS names (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE INDEX IF NOT EXISTS names_by_digest ON names (tenant, digest);
CREATE TABLE IF NOT EXISTS name_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    digest      TEXT,
    changed_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS name_history_by_name ON name_history (tenant, name, id);
",
    ),
    (
        "tenants, API keys and usage",
        "
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    limits      TEXT NOT NULL,
    quotas      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    scope         TEXT NOT NULL,
    hash          BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at);
CREATE TABLE usage (
    tenant       TEXT NOT NULL,
    day          TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    calls        INTEGER NOT NULL,
    fuel         INTEGER NOT NULL,
    wall_us      INTEGER NOT NULL,
    memory_gb_s  REAL NOT NULL,
    bytes_in     INTEGER NOT NULL,
    bytes_out    INTEGER NOT NULL,
    PRIMARY KEY (tenant, day, outcome)
);
",
    ),
    (
        "invocation records and each tenant's recording policy",
        "
ALTER TABLE tenants ADD COLUMN recording TEXT NOT NULL DEFAULT '{}';
CREATE TABLE records (
    id          TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    name        TEXT,
    outcome     TEXT NOT NULL,
    document    TEXT NOT NULL,
    input       BLOB
);
CREATE UNIQUE INDEX records_by_tenant ON records (tenant, id);
",
    ),
    (
        "pipelines: versioned definitions, one current",
        "
CREATE TABLE pipelines (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    current     INTEGER NOT NULL,
    latest      INTEGER NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE pipeline_versions (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    document    TEXT NOT NULL,
    PRIMARY KEY (tenant, name, version)
);
",
    ),
    (
        "capability grants of tenants and components",
        "
CREATE TABLE grants (
    tenant      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    document    TEXT NOT NULL,
    PRIMARY KEY (tenant, digest)
);
",
    ),
    (
        "tenants' secrets, sealed",
        "
CREATE TABLE secrets (
    tenant      TEXT NOT NULL,
    key         TEXT NOT NULL,
    sealed      BLOB NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
);
",
    ),
    (
        "outbound HTTP in the usage meter",
        "
ALTER TABLE usage ADD COLUMN http_requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN http_bytes INTEGER NOT NULL DEFAULT 0;
",
    ),
    (
        "the bytes of each record, and of each tenant's records",
        "
ALTER TABLE records ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE records SET bytes = length(CAST(document AS BLOB)) + COALESCE(length(input), 0);
CREATE TABLE record_bytes (
    tenant      TEXT PRIMARY KEY,
    bytes       INTEGER NOT NULL
);
INSERT INTO record_bytes (tenant, bytes) SELECT tenant, SUM(bytes) FROM records GROUP BY tenant;
CREATE TRIGGER record_bytes_added AFTER INSERT ON records BEGIN
    INSERT INTO record_bytes (tenant, bytes) VALUES (NEW.tenant, NEW.bytes)
        ON CONFLICT (tenant) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER record_bytes_removed AFTER DELETE ON records BEGIN
    UPDATE record_bytes SET bytes = bytes - OLD.bytes WHERE tenant = OLD.tenant;
END;
",
    ),
];

/// All metadata in one SQLite file.
pub struct SqliteStore {
    connection: Mutex<Connection>,
}

fn failed(error: rusqlite::Error) -> StoreError {
    StoreError::backend(error)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it to the newest schema.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened, is from a newer Warden, or a migration
    /// fails (the database then stays at the last migration that succeeded).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let connection = Connection::open(path).map_err(failed)?;
        Self::with_connection(connection)
    }

    /// An in-memory database (for local one-shot commands and tests).
    ///
    /// # Errors
    /// [`StoreError`] when SQLite cannot start.
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        Self::with_connection(Connection::open_in_memory().map_err(failed)?)
    }

    fn with_connection(mut connection: Connection) -> Result<SqliteStore, StoreError> {
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            )
            .map_err(failed)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(failed)?;
        migrate(&mut connection)?;
        Ok(SqliteStore {
            connection: Mutex::new(connection),
        })
    }

    /// The schema version of the open database.
    ///
    /// # Errors
    /// [`StoreError`] when SQLite fails.
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        self.with(|connection| user_version(connection))
    }

    fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        work(&mut connection).map_err(failed)
    }

    /// Like [`Self::with`], for work that decides its own error kinds.
    fn try_with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        work(&mut connection)
    }
}

fn user_version(connection: &Connection) -> rusqlite::Result<usize> {
    connection.query_row("PRAGMA user_version", [], |row| row.get(0))
}

fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let current = user_version(connection).map_err(failed)?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::backend(format!(
            "the database is at schema version {current}, newer than this Warden knows ({}); \
             upgrade Warden",
            MIGRATIONS.len()
        )));
    }
    for (index, (what, sql)) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        let tx = connection.transaction().map_err(failed)?;
        tx.execute_batch(sql).map_err(|error| {
            StoreError::backend(format!("migration {version} ({what}) failed: {error}"))
        })?;
        tx.pragma_update(None, "user_version", version)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
        tracing::info!(version, what, "database migrated");
    }
    Ok(())
}

fn now() -> String {
    crate::timestamp()
}

/// A digest read back from the database (written by Warden, so valid unless corrupted).
fn digest_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Digest> {
    let text: String = row.get(index)?;
    Digest::parse(&text).map_err(|e| corrupt(index, e))
}

fn name_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<ComponentName> {
    let text: String = row.get(index)?;
    ComponentName::parse(&text).map_err(|e| corrupt(index, e))
}

fn corrupt(index: usize, error: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(error))
}

fn read_component(row: &rusqlite::Row<'_>) -> rusqlite::Result<ComponentRecord> {
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

const COMPONENT_COLUMNS: &str = "digest, size, world, imports, exports, compile_ms, created_at";

fn component_in(
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

fn storage_used_in(tx: &Connection, tenant: &TenantId) -> rusqlite::Result<StorageUsed> {
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

fn point_name(
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

fn remove_name(
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
fn over_quota(used: StorageUsed, size: u64, quota: &StorageQuota) -> Option<String> {
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

fn read_tenant(row: &rusqlite::Row<'_>) -> rusqlite::Result<Tenant> {
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
    })
}

fn read_key(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
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

const KEY_COLUMNS: &str = "id, tenant, name, scope, hash, created_at, expires_at, last_used_at";

fn json(value: &impl serde::Serialize) -> Result<String, StoreError> {
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
                    "SELECT id, limits, quotas, created_at, recording FROM tenants WHERE id = ?1",
                    params![id.as_str()],
                    read_tenant,
                )
                .optional()
        })
    }

    fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare(
                "SELECT id, limits, quotas, created_at, recording FROM tenants ORDER BY id",
            )?;
            let rows = statement.query_map([], read_tenant)?;
            rows.collect()
        })
    }

    fn update_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let (limits, quotas) = (json(&tenant.limits)?, json(&tenant.quotas)?);
        let recording = json(&tenant.recording)?;
        self.try_with(|connection| {
            let updated = connection
                .execute(
                    "UPDATE tenants SET limits = ?2, quotas = ?3, recording = ?4 WHERE id = ?1",
                    params![tenant.id.as_str(), limits, quotas, recording],
                )
                .map_err(failed)?;
            match updated {
                0 => Err(StoreError::not_found(format!("no tenant `{}`", tenant.id))),
                _ => Ok(()),
            }
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
