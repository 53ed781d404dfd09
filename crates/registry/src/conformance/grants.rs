//! Conformance checks of [`GrantStore`](crate::store::GrantStore): grant sets per tenant, its
//! posted code and its components; sealed secrets; the secrets cap under concurrent puts.

use super::{NO_QUOTA, new_tenant, record, tenant};
use crate::store::{Backend, GrantsOf, StoreErrorKind};
use std::collections::BTreeMap;
use std::sync::Arc;
use warden_runtime::Grants;

fn env(key: &str, value: &str) -> Grants {
    Grants {
        env: BTreeMap::from([(key.to_owned(), value.to_owned())]),
        ..Grants::default()
    }
}

fn secrets(names: &[&str]) -> Grants {
    Grants {
        secrets: names.iter().map(|name| (*name).to_owned()).collect(),
        ..Grants::default()
    }
}

pub(super) fn grants_are_kept_per_set_and_per_tenant(store: Arc<dyn Backend>) {
    let (a, b) = (tenant("a"), tenant("b"));
    let one = record("one", 1);
    let stranger = record("stranger", 1);
    store.insert_component(&a, &one, None, &NO_QUOTA).unwrap();
    for of in [
        GrantsOf::Tenant,
        GrantsOf::PostedCode,
        GrantsOf::Component(&one.digest),
    ] {
        assert_eq!(store.grants(&a, of).unwrap(), None, "none set: {of:?}");
    }
    let ceiling = env("REGION", "eu");
    let posted = secrets(&["api"]);
    let narrow = env("REGION", "us");
    store.set_grants(&a, GrantsOf::Tenant, &ceiling).unwrap();
    store.set_grants(&a, GrantsOf::PostedCode, &posted).unwrap();
    store
        .set_grants(&a, GrantsOf::Component(&one.digest), &narrow)
        .unwrap();
    assert_eq!(store.grants(&a, GrantsOf::Tenant).unwrap(), Some(ceiling));
    assert_eq!(
        store.grants(&a, GrantsOf::PostedCode).unwrap(),
        Some(posted.clone())
    );
    assert_eq!(
        store.grants(&a, GrantsOf::Component(&one.digest)).unwrap(),
        Some(narrow)
    );
    // Setting again replaces.
    let wider = secrets(&["api", "db"]);
    store.set_grants(&a, GrantsOf::Tenant, &wider).unwrap();
    assert_eq!(store.grants(&a, GrantsOf::Tenant).unwrap(), Some(wider));

    // A component the tenant does not store has no grants to set.
    let error = store
        .set_grants(
            &a,
            GrantsOf::Component(&stranger.digest),
            &env("REGION", "nowhere"),
        )
        .unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::NotFound);
    // Another tenant sees none of a's sets, and cannot set grants on a's component.
    assert_eq!(store.grants(&b, GrantsOf::Tenant).unwrap(), None);
    assert_eq!(store.grants(&b, GrantsOf::PostedCode).unwrap(), None);
    assert_eq!(
        store.grants(&b, GrantsOf::Component(&one.digest)).unwrap(),
        None
    );
    let error = store
        .set_grants(&b, GrantsOf::Component(&one.digest), &posted)
        .unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::NotFound);

    // Empty grants remove the tenant's and the posted code's sets; a component's are kept
    // (they narrow it to nothing).
    let none = Grants::default();
    store.set_grants(&a, GrantsOf::Tenant, &none).unwrap();
    store.set_grants(&a, GrantsOf::PostedCode, &none).unwrap();
    store
        .set_grants(&a, GrantsOf::Component(&one.digest), &none)
        .unwrap();
    assert_eq!(store.grants(&a, GrantsOf::Tenant).unwrap(), None);
    assert_eq!(store.grants(&a, GrantsOf::PostedCode).unwrap(), None);
    assert_eq!(
        store.grants(&a, GrantsOf::Component(&one.digest)).unwrap(),
        Some(none)
    );
}

pub(super) fn secrets_are_put_replaced_listed_and_deleted(store: Arc<dyn Backend>) {
    let (a, b) = (tenant("a"), tenant("b"));
    store.put_secret(&a, "y", b"sealed-y", 10).unwrap();
    store.put_secret(&a, "x", b"sealed-x", 10).unwrap();
    store.put_secret(&b, "x", b"sealed-bx", 10).unwrap();
    assert_eq!(store.secret_names(&a).unwrap(), ["x", "y"], "in order");
    assert_eq!(store.secret_names(&b).unwrap(), ["x"]);
    store.put_secret(&a, "x", b"sealed-x2", 10).unwrap();
    let asked = ["x".to_owned(), "y".to_owned(), "z".to_owned()];
    assert_eq!(
        store.sealed_secrets(&a, &asked).unwrap(),
        [
            ("x".to_owned(), b"sealed-x2".to_vec()),
            ("y".to_owned(), b"sealed-y".to_vec())
        ],
        "replaced; a name it does not have is left out"
    );
    assert_eq!(
        store.sealed_secrets(&b, &asked).unwrap(),
        [("x".to_owned(), b"sealed-bx".to_vec())],
        "another tenant's secret of the same name is its own"
    );
    assert!(store.delete_secret(&a, "x").unwrap());
    assert!(!store.delete_secret(&a, "x").unwrap());
    assert!(!store.delete_secret(&b, "y").unwrap(), "not b's");
    assert_eq!(store.secret_names(&a).unwrap(), ["y"]);
    assert_eq!(store.secret_names(&b).unwrap(), ["x"]);
}

pub(super) fn concurrent_secret_puts_respect_the_cap(store: Arc<dyn Backend>) {
    const MAX: u64 = 3;
    let a = tenant("a");
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(&store);
            let a = a.clone();
            std::thread::spawn(move || store.put_secret(&a, &format!("s{i}"), b"sealed", MAX))
        })
        .collect();
    let mut stored = 0;
    for thread in threads {
        match thread.join().unwrap() {
            Ok(()) => stored += 1,
            Err(error) => assert_eq!(error.kind, StoreErrorKind::OverQuota, "{error}"),
        }
    }
    assert_eq!(stored, MAX, "exactly {MAX} of eight racing puts fit");
    let names = store.secret_names(&a).unwrap();
    assert_eq!(names.len() as u64, MAX);
    // At the cap a stored name is still replaced; a new one is refused, and nothing changes.
    store.put_secret(&a, &names[0], b"again", MAX).unwrap();
    let refused = store
        .put_secret(&a, "one-more", b"sealed", MAX)
        .unwrap_err();
    assert_eq!(refused.kind, StoreErrorKind::OverQuota);
    assert_eq!(store.secret_names(&a).unwrap(), names);
    // The cap is per tenant.
    store
        .put_secret(&tenant("b"), "s0", b"sealed", MAX)
        .unwrap();
}

pub(super) fn deleting_a_tenant_removes_its_grants_and_secrets(store: Arc<dyn Backend>) {
    let acme = new_tenant(store.as_ref(), "acme");
    let beta = new_tenant(store.as_ref(), "beta");
    let one = record("one", 1);
    for id in [&acme, &beta] {
        store.insert_component(id, &one, None, &NO_QUOTA).unwrap();
        store
            .set_grants(id, GrantsOf::Tenant, &secrets(&["api"]))
            .unwrap();
        store
            .set_grants(id, GrantsOf::PostedCode, &secrets(&["api"]))
            .unwrap();
        store
            .set_grants(id, GrantsOf::Component(&one.digest), &Grants::default())
            .unwrap();
        store.put_secret(id, "api", b"sealed", 10).unwrap();
    }
    store.delete_tenant(&acme).unwrap();
    for of in [
        GrantsOf::Tenant,
        GrantsOf::PostedCode,
        GrantsOf::Component(&one.digest),
    ] {
        assert_eq!(store.grants(&acme, of).unwrap(), None, "{of:?}");
        assert!(store.grants(&beta, of).unwrap().is_some(), "beta's {of:?}");
    }
    assert!(store.secret_names(&acme).unwrap().is_empty());
    assert_eq!(store.secret_names(&beta).unwrap(), ["api"]);
    // A tenant of the same id created again starts with nothing.
    let again = new_tenant(store.as_ref(), "acme");
    assert_eq!(store.grants(&again, GrantsOf::Tenant).unwrap(), None);
    assert!(store.secret_names(&again).unwrap().is_empty());
}
