//! The store conformance suite (`warden_registry::conformance`) on the embedded backend: in
//! memory, and in a real database file. A PostgreSQL backend runs the same checks.

use std::sync::Arc;
use warden_registry::sqlite::SqliteStore;
use warden_registry::{Backend, conformance};

#[test]
fn sqlite_in_memory_conforms() {
    conformance::run_all(&|| -> Arc<dyn Backend> { Arc::new(SqliteStore::in_memory().unwrap()) });
}

#[test]
fn sqlite_on_disk_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let counter = std::sync::atomic::AtomicU32::new(0);
    conformance::run_all(&|| -> Arc<dyn Backend> {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Arc::new(SqliteStore::open(&dir.path().join(format!("store-{n}.db"))).unwrap())
    });
}

#[test]
fn a_newer_schema_is_refused_not_downgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.db");
    drop(SqliteStore::open(&path).unwrap());
    let newer = warden_registry::sqlite::MIGRATIONS.len() + 1;
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", newer).unwrap();
    drop(raw);
    let refused = SqliteStore::open(&path)
        .err()
        .expect("a newer schema is refused");
    assert!(refused.to_string().contains("newer"), "{refused}");
}
