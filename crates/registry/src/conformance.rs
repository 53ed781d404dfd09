//! The store conformance suite: what every storage backend must do, written once.
//!
//! A backend's test calls [`run_all`] with a function that makes a fresh, empty backend; each
//! check gets its own. SQLite runs it in `tests/all/stores.rs`; a PostgreSQL backend runs the
//! same suite. A failed check panics with what it expected. The checks of each trait are here,
//! except [`GrantStore`](crate::store::GrantStore)'s, in `conformance/grants.rs`.
//!
//! (Over 600 lines: it is a test suite, one function per contract, read as a list.)

#![allow(clippy::unwrap_used)]

mod grants;

use crate::ids::RunId;
use crate::ids::{ComponentName, Digest, KeyId, NodeId, PipelineName, TenantId};
use crate::pipelines::{NodeSpec, PinnedNode, PipelineVersion};
use crate::records::{
    NewRecord, RecordByteLimits, RecordQuery, Retention, RunRecord, RunStats, stored_bytes,
};
use crate::store::{
    Backend, ComponentRecord, DeleteResult, Inserted, KeyRecord, LimitProfile, Quotas, Scope,
    StorageQuota, StoreErrorKind, Tenant, UsageCounters, UsageDelta,
};
use std::sync::Arc;

/// One check: it gets a fresh, empty backend and panics when the backend misbehaves.
pub type Check = fn(Arc<dyn Backend>);

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("components are per tenant", components_are_per_tenant),
    (
        "quotas are checked in the insert",
        quotas_are_checked_in_the_insert,
    ),
    (
        "concurrent inserts respect a quota",
        concurrent_inserts_respect_a_quota,
    ),
    (
        "names point only at stored components",
        names_point_only_at_stored_components,
    ),
    ("deleting a named component", deleting_a_named_component),
    ("tenants", tenants),
    (
        "concurrent tenant updates from one read let one win",
        concurrent_tenant_updates_from_one_read_let_one_win,
    ),
    (
        "deleting a tenant removes what it owns",
        deleting_a_tenant_removes_what_it_owns,
    ),
    ("keys", keys),
    ("usage adds up", usage_adds_up),
    (
        "records are per tenant, newest first",
        records_are_per_tenant_newest_first,
    ),
    (
        "retention prunes by age and count",
        retention_prunes_by_age_and_count,
    ),
    (
        "record bytes stay within each tenant's ceiling",
        record_bytes_stay_within_each_tenants_ceiling,
    ),
    (
        "pipelines are versioned per tenant",
        pipelines_are_versioned_per_tenant,
    ),
    (
        "grants are kept per set and per tenant",
        grants::grants_are_kept_per_set_and_per_tenant,
    ),
    (
        "secrets are put, replaced, listed and deleted",
        grants::secrets_are_put_replaced_listed_and_deleted,
    ),
    (
        "concurrent secret puts respect the cap",
        grants::concurrent_secret_puts_respect_the_cap,
    ),
    (
        "deleting a tenant removes its grants and secrets",
        grants::deleting_a_tenant_removes_its_grants_and_secrets,
    ),
];

/// Runs every check, each on a fresh backend from `make`.
///
/// # Panics
/// When a check fails (with the check's name and what it expected).
pub fn run_all(make: &dyn Fn() -> Arc<dyn Backend>) {
    for (name, check) in CHECKS {
        eprintln!("store conformance: {name}");
        check(make());
    }
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

fn name(text: &str) -> ComponentName {
    ComponentName::parse(text).unwrap()
}

fn record(seed: &str, size: u64) -> ComponentRecord {
    ComponentRecord {
        digest: Digest::of(seed.as_bytes()),
        size,
        world: "local:main/runner@0.0.1".into(),
        imports: vec!["local:main/host@0.0.1".into()],
        exports: vec!["run".into()],
        compile_ms: 3,
        created_at: crate::timestamp(),
    }
}

fn new_tenant(store: &dyn Backend, id: &str) -> TenantId {
    let id = tenant(id);
    store
        .create_tenant(&Tenant {
            id: id.clone(),
            limits: LimitProfile::default(),
            quotas: Quotas::default(),
            recording: Default::default(),
            created_at: crate::timestamp(),
            version: 0,
        })
        .unwrap();
    id
}

const NO_QUOTA: StorageQuota = StorageQuota {
    max_components: None,
    max_stored_bytes: None,
};

fn components_are_per_tenant(store: Arc<dyn Backend>) {
    let (a, b) = (tenant("a"), tenant("b"));
    let one = record("one", 10);
    assert_eq!(
        store.insert_component(&a, &one, None, &NO_QUOTA).unwrap(),
        Inserted::New
    );
    assert!(matches!(
        store.insert_component(&a, &one, None, &NO_QUOTA).unwrap(),
        Inserted::Existing(existing) if existing.digest == one.digest
    ));
    assert_eq!(store.component(&a, &one.digest).unwrap(), Some(one.clone()));
    assert_eq!(store.component(&b, &one.digest).unwrap(), None);
    assert!(store.list_components(&b, None, 10).unwrap().is_empty());
    // The same bytes for another tenant are new for it.
    assert_eq!(
        store.insert_component(&b, &one, None, &NO_QUOTA).unwrap(),
        Inserted::New
    );
    let two = record("two", 20);
    store.insert_component(&a, &two, None, &NO_QUOTA).unwrap();
    let listed = store.list_components(&a, None, 10).unwrap();
    let mut expected = vec![one.digest.clone(), two.digest.clone()];
    expected.sort();
    assert_eq!(
        listed.iter().map(|r| r.digest.clone()).collect::<Vec<_>>(),
        expected
    );
    let after_first = store.list_components(&a, Some(&expected[0]), 10).unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].digest, expected[1]);
    let used = store.storage_used(&a).unwrap();
    assert_eq!((used.components, used.bytes), (2, 30));
    assert!(store.digest_in_use(&one.digest).unwrap());
}

fn quotas_are_checked_in_the_insert(store: Arc<dyn Backend>) {
    let a = tenant("a");
    let count = StorageQuota {
        max_components: Some(1),
        max_stored_bytes: None,
    };
    assert_eq!(
        store
            .insert_component(&a, &record("one", 10), None, &count)
            .unwrap(),
        Inserted::New
    );
    assert!(matches!(
        store
            .insert_component(&a, &record("two", 10), Some(&name("x")), &count)
            .unwrap(),
        Inserted::OverQuota(_)
    ));
    assert_eq!(store.name(&a, &name("x")).unwrap(), None, "no half write");
    // Re-uploading what is stored is not a new component.
    assert!(matches!(
        store
            .insert_component(&a, &record("one", 10), None, &count)
            .unwrap(),
        Inserted::Existing(_)
    ));
    let bytes = StorageQuota {
        max_components: None,
        max_stored_bytes: Some(25),
    };
    assert_eq!(
        store
            .insert_component(&a, &record("three", 15), None, &bytes)
            .unwrap(),
        Inserted::New
    );
    assert!(matches!(
        store
            .insert_component(&a, &record("four", 1), None, &bytes)
            .unwrap(),
        Inserted::OverQuota(_)
    ));
    assert_eq!(store.storage_used(&a).unwrap().components, 2);
}

fn concurrent_inserts_respect_a_quota(store: Arc<dyn Backend>) {
    let a = tenant("a");
    let quota = StorageQuota {
        max_components: Some(1),
        max_stored_bytes: None,
    };
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(&store);
            let a = a.clone();
            std::thread::spawn(move || {
                store
                    .insert_component(&a, &record(&format!("c{i}"), 1), None, &quota)
                    .unwrap()
            })
        })
        .collect();
    let new = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|inserted| *inserted == Inserted::New)
        .count();
    assert_eq!(
        new, 1,
        "exactly one of eight racing inserts fits a quota of 1"
    );
    assert_eq!(store.storage_used(&a).unwrap().components, 1);
}

fn names_point_only_at_stored_components(store: Arc<dyn Backend>) {
    let (a, b) = (tenant("a"), tenant("b"));
    let one = record("one", 1);
    let error = store.set_name(&a, &name("n"), &one.digest).unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::NotFound);
    store.insert_component(&a, &one, None, &NO_QUOTA).unwrap();
    // Another tenant's component is as absent as a missing one.
    let error = store.set_name(&b, &name("n"), &one.digest).unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::NotFound);
    store.set_name(&a, &name("n"), &one.digest).unwrap();
    let two = record("two", 1);
    store
        .insert_component(&a, &two, Some(&name("n")), &NO_QUOTA)
        .unwrap();
    let named = store.name(&a, &name("n")).unwrap().unwrap();
    assert_eq!(named.digest, two.digest);
    assert_eq!(
        named
            .history
            .iter()
            .map(|c| c.digest.clone())
            .collect::<Vec<_>>(),
        vec![Some(two.digest.clone()), Some(one.digest.clone())],
        "history is newest first"
    );
    assert_eq!(store.name(&b, &name("n")).unwrap(), None);
    assert!(!store.delete_name(&b, &name("n")).unwrap());
    assert!(store.delete_name(&a, &name("n")).unwrap());
    assert_eq!(store.name(&a, &name("n")).unwrap(), None);
    assert!(!store.delete_name(&a, &name("n")).unwrap());
}

fn deleting_a_named_component(store: Arc<dyn Backend>) {
    let (a, b) = (tenant("a"), tenant("b"));
    let one = record("one", 1);
    store
        .insert_component(&a, &one, Some(&name("n")), &NO_QUOTA)
        .unwrap();
    store.insert_component(&b, &one, None, &NO_QUOTA).unwrap();
    assert_eq!(
        store.delete_component(&a, &one.digest, false).unwrap(),
        DeleteResult::Referenced {
            names: vec![name("n")]
        }
    );
    assert_eq!(
        store
            .delete_component(&a, &record("zzz", 1).digest, true)
            .unwrap(),
        DeleteResult::NotFound
    );
    assert_eq!(
        store.delete_component(&a, &one.digest, true).unwrap(),
        DeleteResult::Deleted {
            names: vec![name("n")]
        }
    );
    assert_eq!(store.component(&a, &one.digest).unwrap(), None);
    assert_eq!(store.name(&a, &name("n")).unwrap(), None);
    assert!(
        store.digest_in_use(&one.digest).unwrap(),
        "tenant b still stores the bytes"
    );
    assert_eq!(
        store.delete_component(&b, &one.digest, false).unwrap(),
        DeleteResult::Deleted { names: vec![] }
    );
    assert!(!store.digest_in_use(&one.digest).unwrap());
}

fn tenants(store: Arc<dyn Backend>) {
    let acme = new_tenant(store.as_ref(), "acme");
    let duplicate = store
        .create_tenant(&store.tenant(&acme).unwrap().unwrap())
        .unwrap_err();
    assert_eq!(duplicate.kind, StoreErrorKind::Conflict);
    new_tenant(store.as_ref(), "beta");
    let ids: Vec<String> = store
        .list_tenants()
        .unwrap()
        .into_iter()
        .map(|t| t.id.to_string())
        .collect();
    assert_eq!(ids, ["acme", "beta"]);
    let mut changed = store.tenant(&acme).unwrap().unwrap();
    changed.limits.timeout_ms = Some(200);
    changed.quotas.runs_per_minute = Some(5);
    store.update_tenant(&changed).unwrap();
    let stored = store.tenant(&acme).unwrap().unwrap();
    assert_ne!(
        stored.version, changed.version,
        "an update changes the version"
    );
    assert_eq!(
        stored,
        Tenant {
            version: stored.version,
            ..changed.clone()
        }
    );
    // An update of what was read before that change is refused, and changes nothing.
    let mut stale = changed;
    stale.limits.fuel = Some(9);
    assert_eq!(
        store.update_tenant(&stale).unwrap_err().kind,
        StoreErrorKind::Conflict
    );
    assert_eq!(store.tenant(&acme).unwrap(), Some(stored));
    let missing = Tenant {
        id: tenant("nobody"),
        limits: LimitProfile::default(),
        quotas: Quotas::default(),
        recording: Default::default(),
        created_at: crate::timestamp(),
        version: 0,
    };
    assert_eq!(
        store.update_tenant(&missing).unwrap_err().kind,
        StoreErrorKind::NotFound
    );
    assert_eq!(store.tenant(&missing.id).unwrap(), None);
}

fn concurrent_tenant_updates_from_one_read_let_one_win(store: Arc<dyn Backend>) {
    let acme = new_tenant(store.as_ref(), "acme");
    let read = store.tenant(&acme).unwrap().unwrap();
    let threads: Vec<_> = (0..8u64)
        .map(|i| {
            let store = Arc::clone(&store);
            let mut changed = read.clone();
            changed.limits.fuel = Some(1_000 + i);
            std::thread::spawn(move || store.update_tenant(&changed).map(|()| i))
        })
        .collect();
    let mut winners = Vec::new();
    for thread in threads {
        match thread.join().unwrap() {
            Ok(i) => winners.push(i),
            Err(error) => assert_eq!(error.kind, StoreErrorKind::Conflict, "{error}"),
        }
    }
    assert_eq!(winners.len(), 1, "one update per version: {winners:?}");
    assert_eq!(
        store.tenant(&acme).unwrap().unwrap().limits.fuel,
        Some(1_000 + winners[0])
    );
}

fn key(id: &str, tenant: &TenantId, scope: Scope) -> KeyRecord {
    KeyRecord {
        id: KeyId::parse(id).unwrap(),
        tenant: tenant.clone(),
        name: "ci".into(),
        scope,
        hash: [7; 32],
        created_at: 1_700_000_000,
        expires_at: Some(1_900_000_000),
        last_used_at: None,
    }
}

fn deleting_a_tenant_removes_what_it_owns(store: Arc<dyn Backend>) {
    let acme = new_tenant(store.as_ref(), "acme");
    let beta = new_tenant(store.as_ref(), "beta");
    let one = record("one", 1);
    store
        .insert_component(&acme, &one, Some(&name("n")), &NO_QUOTA)
        .unwrap();
    store
        .insert_component(&beta, &one, None, &NO_QUOTA)
        .unwrap();
    store
        .insert_key(&key("00000000000000aa", &acme, Scope::Manage))
        .unwrap();
    let etl = PipelineName::parse("etl").unwrap();
    store
        .insert_pipeline_version(&acme, &pipeline_version("etl", &[&one.digest]))
        .unwrap();
    assert_eq!(
        store.delete_tenant(&acme).unwrap(),
        vec![one.digest.clone()]
    );
    assert_eq!(store.tenant(&acme).unwrap(), None);
    assert_eq!(
        store
            .key(&KeyId::parse("00000000000000aa").unwrap())
            .unwrap(),
        None
    );
    assert_eq!(store.component(&acme, &one.digest).unwrap(), None);
    assert_eq!(store.name(&acme, &name("n")).unwrap(), None);
    assert_eq!(store.pipeline(&acme, &etl).unwrap(), None);
    assert!(store.component(&beta, &one.digest).unwrap().is_some());
    assert_eq!(
        store.delete_tenant(&acme).unwrap_err().kind,
        StoreErrorKind::NotFound
    );
}

fn keys(store: Arc<dyn Backend>) {
    let acme = new_tenant(store.as_ref(), "acme");
    let beta = new_tenant(store.as_ref(), "beta");
    let orphan = key("0000000000000001", &tenant("nobody"), Scope::Run);
    assert_eq!(
        store.insert_key(&orphan).unwrap_err().kind,
        StoreErrorKind::NotFound
    );
    let first = key("0000000000000002", &acme, Scope::Run);
    store.insert_key(&first).unwrap();
    assert_eq!(
        store.insert_key(&first).unwrap_err().kind,
        StoreErrorKind::Conflict
    );
    store
        .insert_key(&key("0000000000000003", &acme, Scope::Manage))
        .unwrap();
    assert_eq!(store.key(&first.id).unwrap(), Some(first.clone()));
    assert_eq!(store.list_keys(&acme).unwrap().len(), 2);
    assert!(store.list_keys(&beta).unwrap().is_empty());
    store
        .touch_keys(&[(first.id.clone(), 1_800_000_000)])
        .unwrap();
    store
        .touch_keys(&[(first.id.clone(), 1_700_000_001)])
        .unwrap();
    assert_eq!(
        store.key(&first.id).unwrap().unwrap().last_used_at,
        Some(1_800_000_000),
        "last use never moves back"
    );
    assert!(
        !store.revoke_key(&beta, &first.id).unwrap(),
        "not beta's key"
    );
    assert!(store.revoke_key(&acme, &first.id).unwrap());
    assert_eq!(store.key(&first.id).unwrap(), None);
    assert!(!store.revoke_key(&acme, &first.id).unwrap());
}

fn usage_adds_up(store: Arc<dyn Backend>) {
    let acme = tenant("acme");
    let delta = |day: &str, outcome: &str, calls: u64, fuel: u64| UsageDelta {
        tenant: acme.clone(),
        day: day.into(),
        outcome: outcome.into(),
        counters: UsageCounters {
            calls,
            fuel,
            wall_us: 10 * calls,
            memory_gb_s: 0.5 * calls as f64,
            bytes_in: 3 * calls,
            bytes_out: 4 * calls,
            http_requests: calls,
            http_bytes: 100 * calls,
        },
    };
    store
        .add_usage(&[
            delta("2026-11-23", "ok", 2, 100),
            delta("2026-11-24", "ok", 1, 50),
            delta("2026-11-24", "timeout", 1, 7),
        ])
        .unwrap();
    store.add_usage(&[delta("2026-11-24", "ok", 3, 5)]).unwrap();
    let rows = store.usage(&acme, "2026-11-24", "2026-11-24").unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].outcome, "ok");
    assert_eq!(rows[0].counters.calls, 4);
    assert_eq!(rows[0].counters.fuel, 55);
    assert_eq!(rows[0].counters.bytes_out, 16);
    assert!((rows[0].counters.memory_gb_s - 2.0).abs() < 1e-9);
    assert_eq!(
        store
            .usage(&acme, "2026-11-01", "2026-11-30")
            .unwrap()
            .len(),
        3
    );
    assert!(
        store
            .usage(&tenant("beta"), "2026-11-01", "2026-11-30")
            .unwrap()
            .is_empty()
    );
}

fn run_record(tenant: &TenantId, started_ms: u64, outcome: warden_runtime::Outcome) -> NewRecord {
    NewRecord {
        record: RunRecord {
            id: RunId::at(started_ms),
            request_id: "req".into(),
            tenant: tenant.clone(),
            digest: Digest::of(b"component"),
            name: Some(name("hello")),
            world: "local:main/runner@0.0.1".into(),
            export: "run".into(),
            via: "run".into(),
            started_at: crate::timestamp(),
            outcome,
            error: None,
            limits: warden_runtime::Limits::default(),
            stats: RunStats::default(),
            logs: Vec::new(),
            logs_truncated: false,
            stdout: String::new(),
            stderr: String::new(),
            input: None,
            input_recorded: false,
            output: None,
            answered_late: false,
            config: Default::default(),
            outbound: Vec::new(),
            pipeline: None,
        },
        input: None,
    }
}

fn page(limit: u32) -> RecordQuery {
    RecordQuery {
        limit,
        ..RecordQuery::default()
    }
}

fn records_are_per_tenant_newest_first(store: Arc<dyn Backend>) {
    use warden_runtime::Outcome;
    let (acme, globex) = (new_tenant(&*store, "acme"), new_tenant(&*store, "globex"));
    let mut written = Vec::new();
    for n in 0..4 {
        let outcome = if n == 2 { Outcome::Trap } else { Outcome::Ok };
        let mut new = run_record(&acme, 1_000 + n, outcome);
        if n == 3 {
            new.input = Some(b"the input".to_vec());
            new.record.input_recorded = true;
        }
        written.push(new);
    }
    written.push(run_record(&globex, 1_000, Outcome::Ok));
    let no_limits = RecordByteLimits::new();
    store.insert_records(&written, &no_limits).unwrap();
    let bytes = store.record_bytes(&acme).unwrap();
    assert!(bytes > 0, "acme's records weigh something");
    // The same id twice is left as it is (and not counted twice).
    store.insert_records(&written[..1], &no_limits).unwrap();
    assert_eq!(store.record_bytes(&acme).unwrap(), bytes);
    let ids = |records: Vec<RunRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let newest_first: Vec<RunId> = written[..4]
        .iter()
        .rev()
        .map(|n| n.record.id.clone())
        .collect();
    assert_eq!(ids(store.records(&acme, &page(10)).unwrap()), newest_first);
    assert_eq!(
        ids(store.records(&acme, &page(2)).unwrap()),
        newest_first[..2]
    );
    let after = RecordQuery {
        after: Some(newest_first[1].clone()),
        ..page(10)
    };
    assert_eq!(
        ids(store.records(&acme, &after).unwrap()),
        newest_first[2..]
    );
    let traps = RecordQuery {
        outcome: Some(Outcome::Trap),
        ..page(10)
    };
    assert_eq!(
        ids(store.records(&acme, &traps).unwrap()),
        [written[2].record.id.clone()]
    );
    let window = RecordQuery {
        since_ms: Some(1_001),
        until_ms: Some(1_003),
        ..page(10)
    };
    assert_eq!(ids(store.records(&acme, &window).unwrap()).len(), 2);
    assert_eq!(store.records(&globex, &page(10)).unwrap().len(), 1);
    let first = &written[0].record;
    assert_eq!(
        store.record(&acme, &first.id).unwrap().as_ref(),
        Some(first)
    );
    assert_eq!(
        store.record(&globex, &first.id).unwrap(),
        None,
        "another tenant's record"
    );
    let with_input = &written[3].record.id;
    assert_eq!(
        store.record_input(&acme, with_input).unwrap().as_deref(),
        Some(&b"the input"[..])
    );
    assert_eq!(store.record_input(&globex, with_input).unwrap(), None);
    assert_eq!(store.record_input(&acme, &first.id).unwrap(), None);
    store.delete_tenant(&acme).unwrap();
    assert!(
        store.records(&acme, &page(10)).unwrap().is_empty(),
        "deleted with the tenant"
    );
    assert_eq!(
        store.record_input(&acme, with_input).unwrap(),
        None,
        "kept inputs go with the tenant"
    );
}

fn retention_prunes_by_age_and_count(store: Arc<dyn Backend>) {
    use warden_runtime::Outcome;
    let (acme, globex) = (new_tenant(&*store, "acme"), new_tenant(&*store, "globex"));
    let mut written: Vec<NewRecord> = (0..6)
        .map(|n| run_record(&acme, 10 * n, Outcome::Ok))
        .collect();
    written.push(run_record(&globex, 5, Outcome::Ok));
    for kept_input in [0, 5] {
        written[kept_input].input = Some(vec![7; 16]);
        written[kept_input].record.input_recorded = true;
    }
    store
        .insert_records(&written, &RecordByteLimits::new())
        .unwrap();
    let removed = store
        .prune_records(&Retention {
            older_than_ms: 15,
            max_per_tenant: 3,
        })
        .unwrap();
    // Age removes acme's 0 and 10 and globex's 5; count then keeps acme's newest 3 of 4.
    assert_eq!(removed, 4);
    let kept: Vec<RunId> = store
        .records(&acme, &page(10))
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    let newest: Vec<RunId> = written[3..6]
        .iter()
        .rev()
        .map(|n| n.record.id.clone())
        .collect();
    assert_eq!(kept, newest);
    assert!(store.records(&globex, &page(10)).unwrap().is_empty());
    let input = |n: usize| store.record_input(&acme, &written[n].record.id).unwrap();
    assert_eq!(input(0), None, "a pruned record's input goes with it");
    assert_eq!(input(5), Some(vec![7; 16]));
    assert_eq!(
        store.record_bytes(&globex).unwrap(),
        0,
        "pruned bytes are uncounted"
    );
}

/// What the store counts for `new`: its JSON document and its kept input.
fn weight(new: &NewRecord) -> u64 {
    stored_bytes(
        &serde_json::to_string(&new.record).unwrap(),
        new.input.as_deref(),
    )
}

fn record_bytes_stay_within_each_tenants_ceiling(store: Arc<dyn Backend>) {
    use warden_runtime::Outcome;
    let (acme, globex) = (new_tenant(&*store, "acme"), new_tenant(&*store, "globex"));
    // Records of one length each (a timestamp's digits vary), but the one with an input.
    let fixed = |mut new: NewRecord| {
        new.record.started_at = "2026-01-01T00:00:00Z".into();
        new
    };
    let mut written: Vec<NewRecord> = (0..10)
        .map(|n| fixed(run_record(&acme, 1_000 + n, Outcome::Ok)))
        .collect();
    written[7].input = Some(vec![1; 4096]);
    written[7].record.input_recorded = true;
    let weights: Vec<u64> = written.iter().map(weight).collect();
    // Room for the newest four records exactly (the eighth is heavy with its input).
    let ceiling: u64 = weights[6..].iter().sum();
    let limits = RecordByteLimits::from([(acme.clone(), ceiling)]);
    let others: Vec<NewRecord> = (0..3)
        .map(|n| run_record(&globex, 1_000 + n, Outcome::Ok))
        .collect();
    let removed = store.insert_records(&written[..5], &limits).unwrap();
    assert_eq!(removed, 0, "five light records fit");
    let removed = store.insert_records(&written[5..], &limits).unwrap();
    assert_eq!(removed, 6, "the six oldest make room");
    store.insert_records(&others, &limits).unwrap();
    let kept: Vec<RunId> = store
        .records(&acme, &page(20))
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    let newest: Vec<RunId> = written[6..]
        .iter()
        .rev()
        .map(|n| n.record.id.clone())
        .collect();
    assert_eq!(kept, newest, "the oldest went first, the newest are kept");
    assert_eq!(store.record_bytes(&acme).unwrap(), ceiling);
    assert_eq!(
        store.records(&globex, &page(20)).unwrap().len(),
        3,
        "a tenant the limits do not name keeps all of its records"
    );
    // A lowered ceiling applies at the tenant's next batch; a record above it goes too.
    let one = fixed(run_record(&acme, 2_000, Outcome::Ok));
    let removed = store
        .insert_records(
            std::slice::from_ref(&one),
            &RecordByteLimits::from([(acme.clone(), weight(&one) - 1)]),
        )
        .unwrap();
    assert_eq!(removed, 5);
    assert_eq!(store.record_bytes(&acme).unwrap(), 0);
    store.delete_tenant(&globex).unwrap();
    assert_eq!(store.record_bytes(&globex).unwrap(), 0);
}

fn pipeline_version(name: &str, digests: &[&Digest]) -> PipelineVersion {
    PipelineVersion {
        name: PipelineName::parse(name).unwrap(),
        version: 0,
        created_at: crate::timestamp(),
        nodes: digests
            .iter()
            .enumerate()
            .map(|(i, digest)| PinnedNode {
                spec: NodeSpec {
                    id: NodeId::parse(&format!("n{i}")).unwrap(),
                    component: digest.to_string(),
                    config: Default::default(),
                    on_error: Default::default(),
                    limits: Default::default(),
                    instance: Default::default(),
                    batch_size: None,
                    grants: None,
                },
                digest: (*digest).clone(),
                world: "transformer".into(),
            })
            .collect(),
        edges: Vec::new(),
        limits: Default::default(),
    }
}

fn pipelines_are_versioned_per_tenant(store: Arc<dyn Backend>) {
    let (a, b) = (tenant("a"), tenant("b"));
    let one = record("one", 1);
    let two = record("two", 2);
    store.insert_component(&a, &one, None, &NO_QUOTA).unwrap();
    store.insert_component(&a, &two, None, &NO_QUOTA).unwrap();
    let name = PipelineName::parse("etl").unwrap();

    // Versions count from 1; the newest becomes current; every version is kept.
    let first = pipeline_version("etl", &[&one.digest]);
    assert_eq!(store.insert_pipeline_version(&a, &first).unwrap(), 1);
    let second = pipeline_version("etl", &[&one.digest, &two.digest]);
    assert_eq!(store.insert_pipeline_version(&a, &second).unwrap(), 2);
    let record = store.pipeline(&a, &name).unwrap().unwrap();
    assert_eq!(record.current, 2);
    let versions: Vec<u32> = record.versions.iter().map(|v| v.version).collect();
    assert_eq!(versions, [2, 1], "newest first");
    let current = store.pipeline_version(&a, &name, None).unwrap().unwrap();
    assert_eq!(current.version, 2);
    assert_eq!(current.digests(), [one.digest.clone(), two.digest.clone()]);
    let old = store.pipeline_version(&a, &name, Some(1)).unwrap().unwrap();
    assert_eq!(old.digests(), std::slice::from_ref(&one.digest));
    assert_eq!(store.pipeline_version(&a, &name, Some(3)).unwrap(), None);

    // Roll back; a missing version is NotFound.
    store.set_current_pipeline_version(&a, &name, 1).unwrap();
    assert_eq!(
        store
            .pipeline_version(&a, &name, None)
            .unwrap()
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        store
            .set_current_pipeline_version(&a, &name, 7)
            .unwrap_err()
            .kind,
        StoreErrorKind::NotFound
    );
    // A new version after a rollback is the next number, and current.
    assert_eq!(store.insert_pipeline_version(&a, &first).unwrap(), 3);

    // Another tenant sees nothing, and cannot pin a component it does not store.
    assert_eq!(store.pipeline(&b, &name).unwrap(), None);
    assert_eq!(store.pipeline_version(&b, &name, None).unwrap(), None);
    assert!(store.list_pipelines(&b).unwrap().is_empty());
    assert_eq!(
        store.insert_pipeline_version(&b, &first).unwrap_err().kind,
        StoreErrorKind::NotFound
    );
    assert_eq!(
        store
            .set_current_pipeline_version(&b, &name, 1)
            .unwrap_err()
            .kind,
        StoreErrorKind::NotFound
    );
    let listed = store.list_pipelines(&a).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].versions.len(),
        1,
        "a listing carries the newest entry"
    );

    // Deleting removes every version; a second delete finds nothing.
    assert!(!store.delete_pipeline(&b, &name).unwrap());
    assert!(store.delete_pipeline(&a, &name).unwrap());
    assert_eq!(store.pipeline(&a, &name).unwrap(), None);
    assert_eq!(store.pipeline_version(&a, &name, Some(1)).unwrap(), None);
    assert!(!store.delete_pipeline(&a, &name).unwrap());
}
