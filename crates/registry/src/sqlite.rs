//! The embedded default backend: one SQLite database in the data directory, zero set-up.
//!
//! WAL journal with `synchronous = FULL`: a write is durable when its transaction commits, and
//! a process killed at any moment leaves the database at the last committed transaction.

use crate::metadata::{
    ComponentRecord, DeleteResult, MetadataStore, NameChange, NameRecord, StoreError,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

const SCHEMA: &str = "
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
";

/// Metadata in a SQLite file.
pub struct SqliteStore {
    connection: Mutex<Connection>,
}

fn failed(error: impl std::fmt::Display) -> StoreError {
    StoreError(error.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened or migrated.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let connection = Connection::open(path).map_err(failed)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            )
            .map_err(failed)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(failed)?;
        connection.execute_batch(SCHEMA).map_err(failed)?;
        Ok(SqliteStore {
            connection: Mutex::new(connection),
        })
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
}

fn now() -> String {
    crate::timestamp()
}

fn read_component(row: &rusqlite::Row<'_>) -> rusqlite::Result<ComponentRecord> {
    let list = |text: String| serde_json::from_str::<Vec<String>>(&text).unwrap_or_default();
    Ok(ComponentRecord {
        digest: row.get(0)?,
        size: row.get(1)?,
        world: row.get(2)?,
        imports: list(row.get(3)?),
        exports: list(row.get(4)?),
        compile_ms: row.get(5)?,
        created_at: row.get(6)?,
    })
}

const COMPONENT_COLUMNS: &str = "digest, size, world, imports, exports, compile_ms, created_at";

fn point_name(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    name: &str,
    digest: &str,
) -> rusqlite::Result<()> {
    let at = now();
    tx.execute(
        "INSERT INTO names (tenant, name, digest, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
        params![tenant, name, digest, at],
    )?;
    tx.execute(
        "INSERT INTO name_history (tenant, name, digest, changed_at) VALUES (?1, ?2, ?3, ?4)",
        params![tenant, name, digest, at],
    )?;
    Ok(())
}

fn remove_name(tx: &rusqlite::Transaction<'_>, tenant: &str, name: &str) -> rusqlite::Result<bool> {
    let removed = tx.execute(
        "DELETE FROM names WHERE tenant = ?1 AND name = ?2",
        params![tenant, name],
    )?;
    if removed > 0 {
        tx.execute(
            "INSERT INTO name_history (tenant, name, digest, changed_at) VALUES (?1, ?2, NULL, ?3)",
            params![tenant, name, now()],
        )?;
    }
    Ok(removed > 0)
}

impl MetadataStore for SqliteStore {
    fn insert_component(
        &self,
        tenant: &str,
        record: &ComponentRecord,
        name: Option<&str>,
    ) -> Result<bool, StoreError> {
        let imports = serde_json::to_string(&record.imports).map_err(failed)?;
        let exports = serde_json::to_string(&record.exports).map_err(failed)?;
        self.with(|connection| {
            let tx = connection.transaction()?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO components (tenant, digest, size, world, imports, exports, compile_ms, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    tenant,
                    record.digest,
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
            Ok(inserted > 0)
        })
    }

    fn component(&self, tenant: &str, digest: &str) -> Result<Option<ComponentRecord>, StoreError> {
        self.with(|connection| {
            connection
                .query_row(
                    &format!(
                        "SELECT {COMPONENT_COLUMNS} FROM components WHERE tenant = ?1 AND digest = ?2"
                    ),
                    params![tenant, digest],
                    read_component,
                )
                .optional()
        })
    }

    fn list_components(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ComponentRecord>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {COMPONENT_COLUMNS} FROM components
                 WHERE tenant = ?1 AND digest > ?2 ORDER BY digest LIMIT ?3"
            ))?;
            let rows =
                statement.query_map(params![tenant, after.unwrap_or(""), limit], read_component)?;
            rows.collect()
        })
    }

    fn delete_component(
        &self,
        tenant: &str,
        digest: &str,
        force: bool,
    ) -> Result<DeleteResult, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction()?;
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM components WHERE tenant = ?1 AND digest = ?2",
                    params![tenant, digest],
                    |row| row.get(0),
                )
                .optional()?;
            if exists.is_none() {
                return Ok(DeleteResult::NotFound);
            }
            let names: Vec<String> = {
                let mut statement = tx.prepare(
                    "SELECT name FROM names WHERE tenant = ?1 AND digest = ?2 ORDER BY name",
                )?;
                let rows = statement.query_map(params![tenant, digest], |row| row.get(0))?;
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
                params![tenant, digest],
            )?;
            tx.commit()?;
            Ok(DeleteResult::Deleted { names })
        })
    }

    fn set_name(&self, tenant: &str, name: &str, digest: &str) -> Result<(), StoreError> {
        self.with(|connection| {
            let tx = connection.transaction()?;
            point_name(&tx, tenant, name, digest)?;
            tx.commit()
        })
    }

    fn name(&self, tenant: &str, name: &str) -> Result<Option<NameRecord>, StoreError> {
        self.with(|connection| {
            let current: Option<(String, String)> = connection
                .query_row(
                    "SELECT digest, updated_at FROM names WHERE tenant = ?1 AND name = ?2",
                    params![tenant, name],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let Some((digest, updated_at)) = current else {
                return Ok(None);
            };
            let mut statement = connection.prepare(
                "SELECT digest, changed_at FROM name_history
                 WHERE tenant = ?1 AND name = ?2 ORDER BY id DESC LIMIT 1000",
            )?;
            let history = statement
                .query_map(params![tenant, name], |row| {
                    Ok(NameChange {
                        digest: row.get(0)?,
                        changed_at: row.get(1)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(NameRecord {
                name: name.to_owned(),
                digest,
                updated_at,
                history,
            }))
        })
    }

    fn delete_name(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction()?;
            let removed = remove_name(&tx, tenant, name)?;
            tx.commit()?;
            Ok(removed)
        })
    }

    fn digest_in_use(&self, digest: &str) -> Result<bool, StoreError> {
        self.with(|connection| {
            connection
                .query_row(
                    "SELECT 1 FROM components WHERE digest = ?1 LIMIT 1",
                    params![digest],
                    |row| row.get::<_, i64>(0),
                )
                .optional()
                .map(|found| found.is_some())
        })
    }
}
