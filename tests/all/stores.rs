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

/// Several connections to one database file (as several processes on one data directory
/// have): the secrets cap still holds, since the count and the write are one transaction.
#[test]
fn the_secrets_cap_holds_across_connections_to_one_file() {
    use warden_registry::{GrantStore, StoreErrorKind, TenantId};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.db");
    drop(SqliteStore::open(&path).unwrap());
    let tenant = TenantId::parse("acme").unwrap();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let store = SqliteStore::open(&path).unwrap();
            let tenant = tenant.clone();
            std::thread::spawn(move || store.put_secret(&tenant, &format!("s{i}"), b"sealed", 3))
        })
        .collect();
    let mut stored = 0;
    for thread in threads {
        match thread.join().unwrap() {
            Ok(()) => stored += 1,
            Err(error) => assert_eq!(error.kind, StoreErrorKind::OverQuota, "{error}"),
        }
    }
    assert_eq!(stored, 3);
    let names = SqliteStore::open(&path)
        .unwrap()
        .secret_names(&tenant)
        .unwrap();
    assert_eq!(names.len(), 3, "{names:?}");
}
