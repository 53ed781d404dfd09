//! Tenant and key administration (the admin token only): create, read, change and delete
//! tenants; create, list and revoke their keys; the API shapes of both.

use crate::auth::{self, Caller};
use crate::tenants;
use crate::{EffectiveRecording, ErrorKind, Service, ServiceError};
use serde::{Deserialize, Serialize};
use warden_registry::{
    KeyId, KeyRecord, LimitProfile, Quotas, RecordPolicy, Scope, StorageUsed, StoreErrorKind,
    Tenant, TenantId,
};
use warden_runtime::Limits;

/// A tenant to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewTenant {
    /// Its id (the rules of a name: lowercase letters, digits, `-`, `_`, `.`).
    pub id: String,
    /// Its per-call ceilings (unset fields inherit the server's tenant defaults).
    #[serde(default)]
    pub limits: LimitProfile,
    /// Its quotas (unset fields inherit the server's tenant defaults).
    #[serde(default)]
    pub quotas: Quotas,
    /// What its records keep (unset fields inherit the server's tenant defaults).
    #[serde(default)]
    pub recording: RecordPolicy,
}

/// A change to a tenant: a JSON merge patch of `limits` and `quotas` (a field set to `null`
/// goes back to the default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantPatch {
    /// Changes to the limits.
    #[serde(default)]
    pub limits: Option<serde_json::Map<String, serde_json::Value>>,
    /// Changes to the quotas.
    #[serde(default)]
    pub quotas: Option<serde_json::Map<String, serde_json::Value>>,
    /// Changes to the recording policy.
    #[serde(default)]
    pub recording: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A tenant as the admin sees it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantView {
    /// The stored tenant.
    #[serde(flatten)]
    pub tenant: Tenant,
    /// The limits its calls run under (profile over defaults over the server's).
    pub effective_limits: Limits,
    /// The quotas that apply (its own over the defaults).
    pub effective_quotas: Quotas,
    /// What its records keep (its own policy over the defaults).
    pub effective_recording: EffectiveRecording,
    /// What it stores.
    pub storage: StorageUsed,
}

/// A key to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewKeyRequest {
    /// A label (who or what uses it), up to 128 characters. Default: empty.
    #[serde(default)]
    pub name: String,
    /// `run` or `manage`. Default: `manage`.
    #[serde(default = "manage")]
    pub scope: Scope,
    /// Refused from this moment (RFC 3339).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Refused this many seconds from now (instead of `expires_at`); at most
    /// [`MAX_KEY_LIFETIME_SECS`] (100 years).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 3_155_760_000_u64))]
    pub expires_in_secs: Option<u64>,
}

fn manage() -> Scope {
    Scope::Manage
}

/// Longest lifetime a key may be given, in seconds (100 years): a later instant could not be
/// written as a date.
pub const MAX_KEY_LIFETIME_SECS: u64 = 3_155_760_000;

/// Longest key label.
pub const MAX_KEY_NAME_LEN: usize = 128;

/// Times [`Service::update_tenant`] reads, merges and writes a tenant before it answers
/// `Conflict`: each retry means another change landed in between, so this many concurrent
/// changes of one tenant can all be merged.
pub const TENANT_UPDATE_ATTEMPTS: usize = 8;

/// A key as listed: never its token or hash.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyView {
    /// Its id (the part of the token after `wdn_`).
    pub id: KeyId,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its label.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Refused from (RFC 3339), if set.
    pub expires_at: Option<String>,
    /// Last used (RFC 3339, to the second), if ever.
    pub last_used_at: Option<String>,
}

/// A created key: the token is shown only here.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedKey {
    /// What is stored of it.
    #[serde(flatten)]
    pub record: KeyView,
    /// The key itself, `wdn_<id>_<secret>`: store it now, it is not shown again.
    pub key: String,
}

impl Service {
    /// Creates a tenant.
    ///
    /// # Errors
    /// `Forbidden` unless the admin; `BadRequest` for a bad id; `InvalidLimit`; `Conflict`.
    pub async fn create_tenant(
        &self,
        caller: &Caller,
        new: NewTenant,
    ) -> Result<TenantView, ServiceError> {
        self.admin(caller)?;
        let tenant = Tenant {
            id: TenantId::parse(&new.id)?,
            limits: new.limits,
            quotas: new.quotas,
            recording: new.recording,
            created_at: warden_registry::timestamp(),
            version: 0,
        };
        self.check_tenant(&tenant)?;
        self.store(|store| store.create_tenant(&tenant))
            .map_err(|error| match error.kind {
                StoreErrorKind::Conflict => {
                    ServiceError::conflict(format!("tenant `{}` exists already", tenant.id))
                }
                _ => error.into(),
            })?;
        self.forget_tenant(&tenant.id);
        self.tenant_view(&tenant.id).await
    }

    /// Every tenant.
    ///
    /// # Errors
    /// `Forbidden` unless the admin.
    pub fn tenants(&self, caller: &Caller) -> Result<Vec<Tenant>, ServiceError> {
        self.admin(caller)?;
        Ok(self.store(|store| store.list_tenants())?)
    }

    /// One tenant, with its effective limits and storage.
    ///
    /// # Errors
    /// `Forbidden` unless the admin; `NotFound`.
    pub async fn tenant(&self, caller: &Caller, id: &TenantId) -> Result<TenantView, ServiceError> {
        self.admin(caller)?;
        self.tenant_view(id).await
    }

    pub(crate) async fn tenant_view(&self, id: &TenantId) -> Result<TenantView, ServiceError> {
        self.existing_tenant(id)?;
        let state = self.tenant_state(id)?;
        Ok(TenantView {
            tenant: state.tenant.clone(),
            effective_limits: state.limits,
            effective_quotas: state.quotas,
            effective_recording: state.recording,
            storage: self.inner.registry.storage_used(id).await?,
        })
    }

    /// Changes a tenant's limits or quotas (a merge patch; `null` restores the default).
    /// Calls admitted after this answer use the new values.
    ///
    /// The patch is merged into the tenant as read and written only if the tenant has not
    /// changed since (the store's compare-and-swap on its version); when it has, the patch is
    /// merged again into what is stored now, up to [`TENANT_UPDATE_ATTEMPTS`] times. Two
    /// concurrent patches of different fields therefore both survive.
    ///
    /// # Errors
    /// `Forbidden` unless the admin; `NotFound`; `BadRequest`; `InvalidLimit`; `Conflict` when
    /// the tenant changed under every attempt.
    pub async fn update_tenant(
        &self,
        caller: &Caller,
        id: &TenantId,
        patch: TenantPatch,
    ) -> Result<TenantView, ServiceError> {
        self.admin(caller)?;
        for _ in 0..TENANT_UPDATE_ATTEMPTS {
            let mut tenant = self.existing_tenant(id)?;
            if let Some(changes) = &patch.limits {
                tenant.limits = merge_patch(&tenant.limits, changes.clone(), "limits")?;
            }
            if let Some(changes) = &patch.quotas {
                tenant.quotas = merge_patch(&tenant.quotas, changes.clone(), "quotas")?;
            }
            if let Some(changes) = &patch.recording {
                tenant.recording = merge_patch(&tenant.recording, changes.clone(), "recording")?;
            }
            self.check_tenant(&tenant)?;
            match self.store(|store| store.update_tenant(&tenant)) {
                Ok(()) => {
                    self.forget_tenant(id);
                    return self.tenant_view(id).await;
                }
                Err(error) if error.kind == StoreErrorKind::Conflict => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(ServiceError::conflict(format!(
            "tenant `{id}` kept changing while this patch was applied; send it again"
        )))
    }

    /// Deletes a tenant with its keys, names and components (bytes no other tenant stores are
    /// removed). Its usage stays, for billing. The `default` tenant cannot be deleted.
    ///
    /// # Errors
    /// `Forbidden` unless the admin; `NotFound`; `Conflict` for `default`.
    pub async fn delete_tenant(&self, caller: &Caller, id: &TenantId) -> Result<(), ServiceError> {
        self.admin(caller)?;
        if *id == TenantId::default_tenant() {
            return Err(ServiceError::conflict(
                "the default tenant owns the data of open mode; it cannot be deleted",
            ));
        }
        let digests = self
            .store(|store| store.delete_tenant(id))
            .map_err(|error| match error.kind {
                StoreErrorKind::NotFound => no_tenant(id),
                _ => error.into(),
            })?;
        self.forget_tenant(id);
        self.inner.registry.collect(digests).await?;
        Ok(())
    }

    /// Creates a key for a tenant; the token is in the answer, and only there.
    ///
    /// # Errors
    /// `Forbidden` unless the admin; `NotFound`; `BadRequest`.
    pub fn create_key(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        request: NewKeyRequest,
    ) -> Result<CreatedKey, ServiceError> {
        self.admin(caller)?;
        if request.name.chars().count() > MAX_KEY_NAME_LEN
            || request.name.chars().any(char::is_control)
        {
            return Err(ServiceError::bad_request(format!(
                "a key's name is at most {MAX_KEY_NAME_LEN} printable characters"
            )));
        }
        let now = auth::now_secs();
        let expires_at = match (&request.expires_at, request.expires_in_secs) {
            (Some(_), Some(_)) => {
                return Err(ServiceError::bad_request(
                    "give expires_at or expires_in_secs, not both",
                ));
            }
            (Some(at), None) => Some(parse_time(at)?),
            (None, Some(secs)) if secs > MAX_KEY_LIFETIME_SECS => {
                return Err(ServiceError::bad_request(format!(
                    "expires_in_secs is at most {MAX_KEY_LIFETIME_SECS} (100 years)"
                )));
            }
            (None, Some(secs)) => Some(now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))),
            (None, None) => None,
        };
        if expires_at.is_some_and(|at| at <= now) {
            return Err(ServiceError::bad_request(
                "the key would be expired already",
            ));
        }
        let key = auth::new_key(tenant, request.name, request.scope, expires_at)
            .map_err(|e| ServiceError::internal("the random source failed", e))?;
        self.store(|store| store.insert_key(&key.record))
            .map_err(|error| match error.kind {
                StoreErrorKind::NotFound => no_tenant(tenant),
                _ => error.into(),
            })?;
        Ok(CreatedKey {
            record: self.key_view(&key.record),
            key: key.token,
        })
    }

    /// A tenant's keys (never their tokens).
    ///
    /// # Errors
    /// `Forbidden` unless the admin; `NotFound`.
    pub fn keys(&self, caller: &Caller, tenant: &TenantId) -> Result<Vec<KeyView>, ServiceError> {
        self.admin(caller)?;
        self.existing_tenant(tenant)?;
        let keys = self.store(|store| store.list_keys(tenant))?;
        Ok(keys.iter().map(|key| self.key_view(key)).collect())
    }

    /// Revokes a tenant's key, at once on this node.
    ///
    /// # Errors
    /// `Forbidden` unless the admin; `NotFound`.
    pub fn revoke_key(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        key: &KeyId,
    ) -> Result<(), ServiceError> {
        self.admin(caller)?;
        let revoked = self.store(|store| store.revoke_key(tenant, key))?;
        self.inner.keys.clear();
        match revoked {
            true => Ok(()),
            false => Err(ServiceError::not_found(format!(
                "tenant `{tenant}` has no key `{key}`"
            ))),
        }
    }

    pub(crate) fn key_view(&self, key: &KeyRecord) -> KeyView {
        let pending = self.inner.keys.last_touched(&key.id);
        KeyView {
            id: key.id.clone(),
            tenant: key.tenant.clone(),
            name: key.name.clone(),
            scope: key.scope,
            created_at: format_time(key.created_at),
            expires_at: key.expires_at.map(format_time),
            last_used_at: pending.or(key.last_used_at).map(format_time),
        }
    }

    pub(crate) fn existing_tenant(&self, id: &TenantId) -> Result<Tenant, ServiceError> {
        self.store(|store| store.tenant(id))?
            .ok_or_else(|| no_tenant(id))
    }

    pub(crate) fn check_tenant(&self, tenant: &Tenant) -> Result<(), ServiceError> {
        let config = &self.inner.config;
        tenants::check_profile(&tenant.limits, &config.limits, &config.engine)
            .map_err(ServiceError::invalid_limit)?;
        let zero = [
            ("max_components", tenant.quotas.max_components),
            ("max_stored_bytes", tenant.quotas.max_stored_bytes),
            (
                "runs_per_minute",
                tenant.quotas.runs_per_minute.map(u64::from),
            ),
            ("fuel_per_day", tenant.quotas.fuel_per_day),
            ("run_bytes_per_minute", tenant.quotas.run_bytes_per_minute),
            ("max_record_bytes", tenant.quotas.max_record_bytes),
        ];
        match zero.iter().find(|(_, value)| *value == Some(0)) {
            Some((name, _)) => Err(ServiceError::new(
                ErrorKind::InvalidLimit,
                format!("quota {name} must be greater than zero (leave it unset for no quota)"),
            )),
            None => Ok(()),
        }
    }
}

pub(crate) fn no_tenant(id: &TenantId) -> ServiceError {
    ServiceError::not_found(format!("no tenant `{id}`"))
}

/// Applies a JSON merge patch (RFC 7396) of one level to a settings struct.
pub(crate) fn merge_patch<T: Serialize + serde::de::DeserializeOwned>(
    current: &T,
    changes: serde_json::Map<String, serde_json::Value>,
    what: &str,
) -> Result<T, ServiceError> {
    let mut value = serde_json::to_value(current)
        .map_err(|e| ServiceError::internal(format!("serializing {what}"), e))?;
    let serde_json::Value::Object(fields) = &mut value else {
        return Err(ServiceError::new(
            ErrorKind::Internal,
            format!("{what} is not an object"),
        ));
    };
    for (key, change) in changes {
        match change {
            serde_json::Value::Null => fields.remove(&key),
            other => fields.insert(key, other),
        };
    }
    serde_json::from_value(value).map_err(|e| ServiceError::bad_request(format!("{what}: {e}")))
}

pub(crate) fn parse_time(text: &str) -> Result<i64, ServiceError> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|at| at.unix_timestamp())
        .map_err(|_| ServiceError::bad_request(format!("`{text}` is not an RFC 3339 time")))
}

pub(crate) fn format_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
