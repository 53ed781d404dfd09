//! The embedded default backend: one SQLite database in the data directory, zero set-up.
//!
//! WAL journal with `synchronous = FULL`: a write is durable when its transaction commits, and
//! a process killed at any moment leaves the database at the last committed transaction.
//!
//! The schema is versioned (`PRAGMA user_version`): [`MIGRATIONS`] run in order, each in its own
//! transaction with the version bump, so a database is always at exactly one version. Migration
//! 1 is the schema data directories had before versioning (it creates nothing that exists), so
//! those upgrade in place.
//!
//! This file opens and migrates the database; each store trait has its file in `sqlite/`
//! (`components`, `tenants`, `usage`, `records`, `pipelines`, `grants`), and so do the
//! `migrations`.

use crate::ids::{ComponentName, Digest};
use crate::store::StoreError;
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

mod components;
mod grants;
mod migrations;
mod pipelines;
mod records;
mod tenants;
mod usage;

pub use migrations::MIGRATIONS;

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
