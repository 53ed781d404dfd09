//! Tenants' secrets: sealed with ChaCha20-Poly1305 under a key from the configuration
//! (`secrets_key`, or `WARDEN_SECRETS_KEY`; `warden serve` generates one into its data directory
//! when neither is set) before they reach a store, bound to their tenant and
//! name, write-only through the API (set, list names, delete), and readable only by the
//! components whose grants name them, through `host.config` — redacted wherever a guest writes
//! one to its log or output streams.

use crate::auth::tenant_of;
use crate::{Caller, ErrorKind, Service, ServiceError};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest as _, Sha256};
use warden_registry::{Scope, StoreErrorKind, TenantId};
use warden_runtime::MAX_CONFIG_VALUE_BYTES;

/// Most secrets one tenant may store.
pub const MAX_SECRETS_PER_TENANT: usize = 256;
/// Bytes of the random nonce stored in front of each sealed secret.
const NONCE_BYTES: usize = 12;

/// Seals and opens secrets with the configured key.
pub(crate) struct Sealer(ChaCha20Poly1305);

impl Sealer {
    /// A sealer whose key is the SHA-256 of the configured secret.
    pub(crate) fn new(secret: &str) -> Sealer {
        let key: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        Sealer(ChaCha20Poly1305::new(Key::from_slice(&key)))
    }

    fn aad(tenant: &TenantId, key: &str) -> Vec<u8> {
        format!("warden-secret\0{tenant}\0{key}").into_bytes()
    }

    fn seal(&self, tenant: &TenantId, key: &str, value: &str) -> Result<Vec<u8>, ServiceError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce)
            .map_err(|e| ServiceError::internal("the random source failed", e))?;
        let sealed = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &Sealer::aad(tenant, key),
                },
            )
            .map_err(|_| ServiceError::new(ErrorKind::Internal, "sealing a secret failed"))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// The secret's value, or `None` when it does not open (another key, or tampered with).
    pub(crate) fn open(&self, tenant: &TenantId, key: &str, sealed: &[u8]) -> Option<String> {
        let (nonce, sealed) = sealed.split_at_checked(NONCE_BYTES)?;
        let value = self
            .0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &Sealer::aad(tenant, key),
                },
            )
            .ok()?;
        String::from_utf8(value).ok()
    }
}

impl Service {
    fn sealer(&self) -> Result<&Sealer, ServiceError> {
        self.inner.sealer.as_ref().ok_or_else(|| {
            ServiceError::conflict(
                "this server keeps no secrets: set `secrets_key` (or WARDEN_SECRETS_KEY) to a \
                 secret of at least 24 characters",
            )
        })
    }

    /// Stores one of the caller's secrets (sealed; its value is never answered back).
    ///
    /// # Errors
    /// `Forbidden` without `manage` scope; `BadRequest` for a bad name or value; `Conflict`
    /// when the server has no secrets key; `QuotaExceeded` past 256 secrets.
    pub async fn set_secret(
        &self,
        caller: &Caller,
        key: &str,
        value: &str,
    ) -> Result<(), ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Manage)?;
        warden_runtime::GuestConfig::new([(key.to_owned(), String::new())].into())
            .map_err(|e| ServiceError::bad_request(e.to_string()))?;
        if value.len() > MAX_CONFIG_VALUE_BYTES {
            return Err(ServiceError::bad_request(format!(
                "a secret's value is at most {MAX_CONFIG_VALUE_BYTES} bytes"
            )));
        }
        let sealed = self.sealer()?.seal(tenant, key, value)?;
        let max = MAX_SECRETS_PER_TENANT as u64;
        self.store(|store| store.put_secret(tenant, key, &sealed, max))
            .map_err(|error| match error.kind {
                StoreErrorKind::OverQuota => ServiceError::quota_exceeded(
                    format!("a tenant keeps at most {MAX_SECRETS_PER_TENANT} secrets"),
                    None,
                ),
                _ => error.into(),
            })
    }

    /// The names of the caller's secrets (never their values).
    ///
    /// # Errors
    /// `Forbidden` for the admin.
    pub async fn secret_names(&self, caller: &Caller) -> Result<Vec<String>, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Run)?;
        Ok(self.store(|store| store.secret_names(tenant))?)
    }

    /// Removes one of the caller's secrets.
    ///
    /// # Errors
    /// `Forbidden` without `manage` scope; `NotFound`.
    pub async fn delete_secret(&self, caller: &Caller, key: &str) -> Result<(), ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Manage)?;
        match self.store(|store| store.delete_secret(tenant, key))? {
            true => Ok(()),
            false => Err(ServiceError::not_found(format!("no secret `{key}`"))),
        }
    }

    /// The values of the secrets `keys` names that the tenant has and that open.
    pub(crate) fn open_secrets(
        &self,
        tenant: &TenantId,
        keys: &[String],
    ) -> Result<Vec<(String, String)>, ServiceError> {
        let Some(sealer) = self.inner.sealer.as_ref() else {
            return Ok(Vec::new());
        };
        let sealed = self.store(|store| store.sealed_secrets(tenant, keys))?;
        Ok(sealed
            .into_iter()
            .filter_map(|(key, sealed)| {
                let value = sealer.open(tenant, &key, &sealed)?;
                Some((key, value))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_tenant_and_name() {
        let sealer = Sealer::new("a secrets key of enough characters");
        let acme = TenantId::parse("acme").expect("id");
        let globex = TenantId::parse("globex").expect("id");
        let sealed = sealer.seal(&acme, "token", "s3cr3t").expect("sealed");
        assert!(!sealed.windows(6).any(|w| w == b"s3cr3t"), "stored sealed");
        assert_eq!(
            sealer.open(&acme, "token", &sealed).as_deref(),
            Some("s3cr3t")
        );
        assert_eq!(sealer.open(&globex, "token", &sealed), None);
        assert_eq!(sealer.open(&acme, "other", &sealed), None);
        assert_eq!(
            Sealer::new("another key entirely, long enough").open(&acme, "token", &sealed),
            None
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().expect("bytes") ^= 1;
        assert_eq!(sealer.open(&acme, "token", &tampered), None);
    }
}
