//! Capability grants: a tenant's (set by the admin: the ceiling), a component's (set by the
//! tenant: only narrower), and what one call runs with (the component's cut to the tenant's,
//! or the tenant's).

use crate::auth::tenant_of;
use crate::tenants::TenantState;
use crate::{Caller, Service, ServiceError};
use serde::Serialize;
use std::sync::{Arc, PoisonError};
use warden_registry::{ComponentRef, Digest, GrantsOf, Scope, TenantId};
use warden_runtime::{Capabilities, Grants, GuestConfig};

/// A component's grants, as set and as in effect.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComponentGrants {
    /// What the tenant set for the component; none: the tenant's grants apply.
    pub own: Option<Grants>,
    /// What its calls run with: its own cut to the tenant's, or the tenant's.
    pub effective: Grants,
}

impl Service {
    /// Sets a tenant's grants, the ceiling of its components' (admin only).
    ///
    /// # Errors
    /// `Forbidden` for a tenant key; `NotFound`; `BadRequest` for unusable grants.
    pub async fn set_tenant_grants(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        grants: Grants,
    ) -> Result<Grants, ServiceError> {
        self.may_grant(caller, tenant)?;
        grants
            .validate()
            .map_err(|e| ServiceError::bad_request(e.to_string()))?;
        self.existing_tenant(tenant)?;
        self.store(|store| store.set_grants(tenant, GrantsOf::Tenant, &grants))?;
        self.forget_tenant(tenant);
        self.forget_component_grants();
        Ok(grants)
    }

    /// A tenant's grants (admin only).
    ///
    /// # Errors
    /// `Forbidden` for a tenant key; `NotFound`.
    pub async fn tenant_grants(
        &self,
        caller: &Caller,
        tenant: &TenantId,
    ) -> Result<Grants, ServiceError> {
        self.stored_grants(caller, tenant, GrantsOf::Tenant)
    }

    /// Sets what component bytes posted to `/run` by the tenant's keys run with (admin only):
    /// posted code has no grants of its own, so it runs with none unless the tenant is opted
    /// in here, and never with more than the tenant's ceiling.
    ///
    /// # Errors
    /// `Forbidden` for a tenant key or beyond the tenant's grants; `NotFound`; `BadRequest`
    /// for unusable grants.
    pub async fn set_run_grants(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        grants: Grants,
    ) -> Result<Grants, ServiceError> {
        self.may_grant(caller, tenant)?;
        grants
            .validate()
            .map_err(|e| ServiceError::bad_request(e.to_string()))?;
        // The admin names any tenant: one that does not exist is 404 (the tenant's state would
        // answer 401, meant for a key whose tenant is gone).
        self.existing_tenant(tenant)?;
        let state = self.tenant_state(tenant)?;
        grants
            .check_within(&state.grants)
            .map_err(|e| ServiceError::forbidden(e.to_string()))?;
        self.store(|store| store.set_grants(tenant, GrantsOf::PostedCode, &grants))?;
        self.forget_tenant(tenant);
        Ok(grants)
    }

    /// What code posted to `/run` by the tenant runs with (admin only; default none).
    ///
    /// # Errors
    /// `Forbidden` for a tenant key; `NotFound`.
    pub async fn run_grants(
        &self,
        caller: &Caller,
        tenant: &TenantId,
    ) -> Result<Grants, ServiceError> {
        self.stored_grants(caller, tenant, GrantsOf::PostedCode)
    }

    /// One of a tenant's grant sets as stored (none set: empty), for the admin.
    fn stored_grants(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        of: GrantsOf<'_>,
    ) -> Result<Grants, ServiceError> {
        self.may_grant(caller, tenant)?;
        self.existing_tenant(tenant)?;
        Ok(self
            .store(|store| store.grants(tenant, of))?
            .unwrap_or_default())
    }

    /// Sets one of the caller's components' grants: only narrower than the tenant's.
    ///
    /// # Errors
    /// `Forbidden` without `manage` scope or beyond the tenant's grants; `NotFound`;
    /// `BadRequest` for unusable grants.
    pub async fn set_component_grants(
        &self,
        caller: &Caller,
        reference: &ComponentRef,
        grants: Grants,
    ) -> Result<ComponentGrants, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Manage)?;
        grants
            .validate()
            .map_err(|e| ServiceError::bad_request(e.to_string()))?;
        let state = self.tenant_state(tenant)?;
        grants
            .check_within(&state.grants)
            .map_err(|e| ServiceError::forbidden(e.to_string()))?;
        let digest = self
            .inner
            .registry
            .component(tenant, reference)
            .await?
            .digest;
        self.store(|store| store.set_grants(tenant, GrantsOf::Component(&digest), &grants))?;
        self.forget_component_grants();
        self.component_grants(caller, reference).await
    }

    /// The admin sets any tenant's grants; in open mode (loopback, no admin token) the machine's
    /// operator is the `default` tenant and sets its own.
    fn may_grant(&self, caller: &Caller, tenant: &TenantId) -> Result<(), ServiceError> {
        match caller {
            Caller::Tenant {
                tenant: own,
                key: None,
                ..
            } if !self.secured() && own == tenant => Ok(()),
            _ => self.may_administer(caller),
        }
    }

    /// One of the caller's components' grants, as set and in effect.
    ///
    /// # Errors
    /// `Forbidden` for the admin; `NotFound`.
    pub async fn component_grants(
        &self,
        caller: &Caller,
        reference: &ComponentRef,
    ) -> Result<ComponentGrants, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Run)?;
        let digest = self
            .inner
            .registry
            .component(tenant, reference)
            .await?
            .digest;
        let state = self.tenant_state(tenant)?;
        let own = self.store(|store| store.grants(tenant, GrantsOf::Component(&digest)))?;
        let effective = effective(own.as_ref(), &state.grants);
        Ok(ComponentGrants { own, effective })
    }

    /// What one call of `digest` for the tenant may use.
    pub(crate) fn capabilities(
        &self,
        state: &TenantState,
        digest: &Digest,
        config: GuestConfig,
    ) -> Result<Capabilities, ServiceError> {
        self.capabilities_within(state, digest, config, None)
    }

    /// As [`Service::capabilities`], cut further to `narrower` (a pipeline node's grants).
    pub(crate) fn capabilities_within(
        &self,
        state: &TenantState,
        digest: &Digest,
        config: GuestConfig,
        narrower: Option<&Grants>,
    ) -> Result<Capabilities, ServiceError> {
        let caller: Arc<str> = Arc::from(state.tenant.id.as_str());
        // A tenant without grants needs no lookup: its components cannot have any.
        if *state.grants == Grants::default() {
            return Ok(Capabilities {
                config,
                grants: Arc::clone(&state.grants),
                caller,
                secrets: Arc::new([]),
            });
        }
        let own = self.own_grants(&state.tenant.id, digest)?;
        let mut grants = effective(own.as_deref(), &state.grants);
        if let Some(narrower) = narrower {
            grants = narrower.intersect(&grants);
        }
        self.capabilities_with(state, config, Arc::new(grants))
    }

    /// What one call of component bytes posted to `/run` may use: the tenant's run grants
    /// (default none) within its ceiling, never a stored component's.
    pub(crate) fn posted_capabilities(
        &self,
        state: &TenantState,
        config: GuestConfig,
    ) -> Result<Capabilities, ServiceError> {
        self.capabilities_with(state, config, Arc::clone(&state.posted_grants))
    }

    /// A call's capabilities under `grants`, with the granted secrets opened.
    fn capabilities_with(
        &self,
        state: &TenantState,
        config: GuestConfig,
        grants: Arc<Grants>,
    ) -> Result<Capabilities, ServiceError> {
        let caller: Arc<str> = Arc::from(state.tenant.id.as_str());
        if grants.secrets.is_empty() {
            return Ok(Capabilities {
                config,
                grants,
                caller,
                secrets: Arc::new([]),
            });
        }
        // Granted secrets answer `host.config` under their names, over the call's own config.
        let secrets = self.open_secrets(&state.tenant.id, &grants.secrets)?;
        let (config, secrets) = match secrets.is_empty() {
            true => (config, Vec::new()),
            false => {
                let mut values = config.values().clone();
                let mut shown = Vec::with_capacity(secrets.len());
                for (key, value) in secrets {
                    shown.push(value.clone());
                    values.insert(key, value);
                }
                let merged = GuestConfig::new(values)
                    .map_err(|e| ServiceError::bad_request(e.to_string()))?;
                (merged, shown)
            }
        };
        Ok(Capabilities {
            config,
            grants,
            caller,
            secrets: secrets.into(),
        })
    }
}

/// A component's own grants as stored (`None`: none set).
pub(crate) type OwnGrants = Option<Arc<Grants>>;

/// Component grants remembered before the cache is emptied (a bound on memory).
const MAX_CACHED_GRANTS: usize = 100_000;

impl Service {
    /// A component's own grants, from memory when known.
    fn own_grants(&self, tenant: &TenantId, digest: &Digest) -> Result<OwnGrants, ServiceError> {
        let key = (tenant.clone(), digest.clone());
        let cache = &self.inner.component_grants;
        if let Some(own) = cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(own.clone());
        }
        let own = self
            .store(|store| store.grants(tenant, GrantsOf::Component(digest)))?
            .map(Arc::new);
        let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED_GRANTS {
            cache.clear();
        }
        cache.insert(key, own.clone());
        Ok(own)
    }

    /// Empties the component-grants cache (after any change of grants or components).
    pub(crate) fn forget_component_grants(&self) {
        self.inner
            .component_grants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

fn effective(own: Option<&Grants>, tenant: &Grants) -> Grants {
    match own {
        Some(own) => own.intersect(tenant),
        None => tenant.clone(),
    }
}
