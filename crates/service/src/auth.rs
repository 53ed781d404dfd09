//! Who is calling: the admin token, API keys (`wdn_<id>_<secret>`), and the cache that keeps a
//! warm call off the store.
//!
//! A key is stored as the SHA-256 of the whole token; the token is shown once, at creation.
//! Both the admin token and key hashes are compared in constant time. What a caller may reach
//! is decided here too: `tenant_of` (a tenant's key at the scope needed; never the admin
//! token) and `Service::admin` (the admin token only).

use crate::{Service, ServiceError};
use warden_runtime::Limits;

use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use warden_registry::{KEY_ID_LEN, KeyId, KeyRecord, Scope, TenantId};

/// Every API key starts with this.
pub const KEY_PREFIX: &str = "wdn_";
/// Hex digits of a key's secret part (32 random bytes).
const SECRET_HEX_LEN: usize = 64;
/// How long a looked-up key is trusted without asking the store again. Revoking through this
/// node takes effect at once; through another node, within this time.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// Keys cached before the cache is emptied (a bound on memory).
const MAX_CACHED_KEYS: usize = 10_000;
/// A key's last use is written at most this often.
const TOUCH_EVERY_SECS: i64 = 1;

/// Who a request is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The operator, with the admin token: manages tenants and keys, runs nothing.
    Admin,
    /// A tenant, through one of its keys (or anyone, in open mode, as `default`).
    Tenant {
        /// The tenant.
        tenant: TenantId,
        /// What the key allows.
        scope: Scope,
        /// The key used (`None` in open mode).
        key: Option<KeyId>,
    },
}

/// A freshly made key: the token (shown once) and what is stored.
pub struct NewKey {
    /// `wdn_<id>_<secret>`.
    pub token: String,
    /// The record to store.
    pub record: KeyRecord,
}

/// Makes a key for `tenant`.
///
/// # Errors
/// When the system's random source fails.
pub fn new_key(
    tenant: &TenantId,
    name: String,
    scope: Scope,
    expires_at: Option<i64>,
) -> Result<NewKey, getrandom::Error> {
    let mut id = [0u8; KEY_ID_LEN / 2];
    let mut secret = [0u8; SECRET_HEX_LEN / 2];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let id_hex = hex::encode(id);
    let token = format!("{KEY_PREFIX}{id_hex}_{}", hex::encode(secret));
    let record = KeyRecord {
        id: KeyId::parse(&id_hex).unwrap_or_else(|_| unreachable_key_id()),
        tenant: tenant.clone(),
        name,
        scope,
        hash: hash(&token),
        created_at: now_secs(),
        expires_at,
        last_used_at: None,
    };
    Ok(NewKey { token, record })
}

#[cold]
fn unreachable_key_id() -> KeyId {
    // `hex::encode` of KEY_ID_LEN / 2 bytes is always a valid id.
    KeyId::parse(&"0".repeat(KEY_ID_LEN)).unwrap_or_else(|_| std::process::abort())
}

/// The id inside a well-formed token, or `None` for anything else.
pub fn key_id_of(token: &str) -> Option<KeyId> {
    let rest = token.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let well_formed = secret.len() == SECRET_HEX_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    match well_formed {
        true => KeyId::parse(id).ok(),
        false => None,
    }
}

/// SHA-256 of a token.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two secrets are equal, in time that does not depend on where they differ (both are
/// hashed first, so neither does it leak the length).
pub fn same_secret(given: &str, expected: &str) -> bool {
    hash(given).ct_eq(&hash(expected)).into()
}

/// Whether `token` is the key `record` stores, and the key is still valid at `now`.
pub fn key_matches(record: &KeyRecord, token: &str, now: i64) -> bool {
    let same: bool = hash(token).ct_eq(&record.hash).into();
    same && record.expires_at.is_none_or(|at| now < at)
}

/// Now, in Unix seconds.
pub fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Looked-up keys, for [`KEY_CACHE_TTL`], and the last-use times waiting to be written.
#[derive(Default)]
pub(crate) struct KeyCache {
    keys: RwLock<HashMap<KeyId, (KeyRecord, Instant)>>,
    touched: Mutex<HashMap<KeyId, i64>>,
}

impl KeyCache {
    /// A cached key, if still fresh.
    pub(crate) fn get(&self, id: &KeyId) -> Option<KeyRecord> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let (record, at) = keys.get(id)?;
        (at.elapsed() < KEY_CACHE_TTL).then(|| record.clone())
    }

    pub(crate) fn put(&self, record: KeyRecord) {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(record.id.clone(), (record, Instant::now()));
    }

    /// Forgets every cached key (after a revoke, or a tenant's deletion).
    pub(crate) fn clear(&self) {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Notes a use of `record`; written by the next flush, at most once a second per key.
    pub(crate) fn touch(&self, record: &KeyRecord, now: i64) {
        let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        let last = touched.get(&record.id).copied().or(record.last_used_at);
        if last.is_none_or(|last| now - last >= TOUCH_EVERY_SECS) && touched.len() < MAX_CACHED_KEYS
        {
            touched.insert(record.id.clone(), now);
        }
    }

    /// A last use not yet written, if any.
    pub(crate) fn last_touched(&self, id: &KeyId) -> Option<i64> {
        let touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        touched.get(id).copied()
    }

    /// The last-use times waiting to be written. They stay pending (and visible to
    /// [`KeyCache::last_touched`]) until [`KeyCache::written`] says the store has them, so a
    /// listing during a flush never misses a use.
    pub(crate) fn touched(&self) -> Vec<(KeyId, i64)> {
        let touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        touched.iter().map(|(id, at)| (id.clone(), *at)).collect()
    }

    /// Forgets last uses the store now has (unless a newer use came meanwhile).
    pub(crate) fn written(&self, done: &[(KeyId, i64)]) {
        let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, at) in done {
            if touched.get(id) == Some(at) {
                touched.remove(id);
            }
        }
    }
}

impl Service {
    /// Who `bearer` (the token of an `Authorization: Bearer` header, if any) is.
    ///
    /// Open mode: everyone is the `default` tenant with `manage` scope. Secured mode: the admin
    /// token, or a valid key; anything else is [`ServiceError::Unauthorized`].
    ///
    /// # Errors
    /// `Unauthorized` as above; `Internal` when the store fails.
    pub fn authenticate(&self, bearer: Option<&str>) -> Result<Caller, ServiceError> {
        let Some(admin) = &self.inner.config.admin_token else {
            return Ok(Caller::Tenant {
                tenant: TenantId::default_tenant(),
                scope: Scope::Manage,
                key: None,
            });
        };
        let Some(token) = bearer else {
            return Err(ServiceError::unauthorized(
                "this server needs an API key: send `Authorization: Bearer wdn_…`",
            ));
        };
        let invalid = || ServiceError::unauthorized("the API key is not valid");
        let Some(id) = key_id_of(token) else {
            return match same_secret(token, admin.expose()) {
                true => Ok(Caller::Admin),
                false => Err(invalid()),
            };
        };
        let record = match self.inner.keys.get(&id) {
            Some(record) => record,
            None => {
                let record = self.store(|store| store.key(&id))?.ok_or_else(invalid)?;
                self.inner.keys.put(record.clone());
                record
            }
        };
        let now = now_secs();
        if !key_matches(&record, token, now) {
            return Err(invalid());
        }
        self.inner.keys.touch(&record, now);
        Ok(Caller::Tenant {
            tenant: record.tenant,
            scope: record.scope,
            key: Some(record.id),
        })
    }

    /// Whether the caller's call would be admitted now (taking nothing), and the limits it
    /// would run under: asked before a request body is read, so a refused call never costs
    /// its body, and the body is capped by the tenant's own `max_input_bytes`.
    ///
    /// # Errors
    /// `Forbidden` for the admin; `RateLimited`, `QuotaExceeded`, `ConcurrencyLimit`;
    /// `Unauthorized` when the caller's tenant is gone.
    pub fn may_call(&self, caller: &Caller) -> Result<Limits, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Run)?;
        let state = self.tenant_state(tenant)?;
        state.check()?;
        Ok(state.limits)
    }

    /// Whether the caller may administer tenants and keys, asked before a request body is
    /// read.
    ///
    /// # Errors
    /// `Forbidden` unless the admin (in secured mode).
    pub fn may_administer(&self, caller: &Caller) -> Result<(), ServiceError> {
        self.admin(caller)
    }

    pub(crate) fn admin(&self, caller: &Caller) -> Result<(), ServiceError> {
        match (caller, self.secured()) {
            (Caller::Admin, _) => Ok(()),
            (_, false) => Err(ServiceError::forbidden(
                "tenants and keys need secured mode: start the server with an admin token",
            )),
            (_, true) => Err(ServiceError::forbidden("this needs the admin token")),
        }
    }
}

/// The caller's tenant, if it may act at `needed` scope.
pub(crate) fn tenant_of(
    caller: &Caller,
    needed: Scope,
) -> Result<(&TenantId, Scope), ServiceError> {
    match caller {
        Caller::Admin => Err(ServiceError::forbidden(
            "the admin token manages tenants and keys; use a tenant's API key for this",
        )),
        Caller::Tenant { tenant, scope, .. } => match (needed, scope) {
            (Scope::Manage, Scope::Run) => Err(ServiceError::forbidden(
                "this key has `run` scope: it may run and read, not change components",
            )),
            _ => Ok((tenant, *scope)),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_parses_back_and_matches_only_itself() {
        let tenant = TenantId::parse("acme").unwrap();
        let key = new_key(&tenant, "ci".into(), Scope::Run, None).unwrap();
        assert_eq!(key_id_of(&key.token), Some(key.record.id.clone()));
        assert!(key_matches(&key.record, &key.token, now_secs()));
        let mut other = key.token.clone();
        other.pop();
        other.push(if key.token.ends_with('0') { '1' } else { '0' });
        assert!(!key_matches(&key.record, &other, now_secs()));
    }

    #[test]
    fn an_expired_key_no_longer_matches() {
        let tenant = TenantId::parse("acme").unwrap();
        let key = new_key(&tenant, "ci".into(), Scope::Run, Some(now_secs() - 1)).unwrap();
        assert!(!key_matches(&key.record, &key.token, now_secs()));
    }

    #[test]
    fn malformed_tokens_have_no_id() {
        for token in [
            "",
            "wdn_",
            "wdn_0123456789abcdef",
            "wdn_0123456789abcdef_xyz",
            "wdn_0123456789abcdef_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
            "wdn_0123456789abcdef_000000000000000000000000000000000000000000000000000000000000000",
            "abc_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000",
            "wdn_0123456789ABCDEF_0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert_eq!(key_id_of(token), None, "{token}");
        }
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(same_secret(
            "a-long-admin-token-value",
            "a-long-admin-token-value"
        ));
        assert!(!same_secret(
            "a-long-admin-token-value",
            "a-long-admin-token-valuE"
        ));
        assert!(!same_secret("", "x"));
    }
}
