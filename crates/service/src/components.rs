//! A tenant's components and names: upload (within its quotas), list, read, delete, name.

use crate::auth::{Caller, tenant_of};
use crate::{Service, ServiceError};
use std::sync::Arc;
use std::time::Duration;
use warden_registry::{ComponentName, ComponentRecord, ComponentRef, Digest, NameRecord, Scope};

impl Service {
    /// Stores a component for the caller's tenant, within its storage quota.
    ///
    /// # Errors
    /// `Forbidden` without `manage` scope; `QuotaExceeded`; `Registry`.
    pub async fn upload(
        &self,
        caller: &Caller,
        bytes: Arc<[u8]>,
        name: Option<&ComponentName>,
    ) -> Result<(ComponentRecord, bool), ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Manage)?;
        let quota = self.tenant_state(tenant)?.quotas.storage();
        let (record, created) = self
            .inner
            .registry
            .upload(tenant, bytes, name, quota)
            .await?;
        if created {
            self.inner
                .metrics
                .compiled(Duration::from_millis(record.compile_ms));
        }
        Ok((record, created))
    }

    /// Waits until the background optimizing compiles are done (their code swapped in, their
    /// artifacts written): a local command waits for this before it exits, so its next run
    /// loads the optimized code from the cache instead of compiling again.
    pub async fn optimizations_finished(&self) {
        self.inner.registry.optimizations_finished().await;
    }

    /// Whether the caller may upload `declared` bytes, asked before the body is read: the
    /// scope, and a size no stored-bytes quota could ever take.
    ///
    /// # Errors
    /// `Forbidden` without `manage` scope; `QuotaExceeded`.
    pub fn may_upload(&self, caller: &Caller, declared: u64) -> Result<(), ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Manage)?;
        let quotas = self.tenant_state(tenant)?.quotas;
        match quotas.max_stored_bytes {
            Some(max) if declared > max => Err(ServiceError::quota_exceeded(
                format!(
                    "the component is {declared} bytes; tenant `{tenant}` may store {max} bytes"
                ),
                None,
            )),
            _ => Ok(()),
        }
    }

    /// One page of the caller's components.
    ///
    /// # Errors
    /// `Forbidden` for the admin; `Registry`.
    pub async fn list(
        &self,
        caller: &Caller,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<ComponentRecord>, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Run)?;
        Ok(self.inner.registry.list(tenant, after, limit).await?)
    }

    /// One of the caller's components.
    ///
    /// # Errors
    /// `Forbidden` for the admin; `Registry` (not found).
    pub async fn component(
        &self,
        caller: &Caller,
        reference: &ComponentRef,
    ) -> Result<ComponentRecord, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Run)?;
        Ok(self.inner.registry.component(tenant, reference).await?)
    }

    /// Deletes one of the caller's components; returns its record and the names removed.
    ///
    /// # Errors
    /// `Forbidden` without `manage` scope; `Registry` (not found, referenced).
    pub async fn delete(
        &self,
        caller: &Caller,
        reference: &ComponentRef,
        force: bool,
    ) -> Result<(ComponentRecord, Vec<ComponentName>), ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Manage)?;
        let registry = &self.inner.registry;
        let record = registry.component(tenant, reference).await?;
        let names = registry.delete(tenant, reference, force).await?;
        self.forget_component_grants();
        Ok((record, names))
    }

    /// Points one of the caller's names at one of its components.
    ///
    /// # Errors
    /// `Forbidden` without `manage` scope; `Registry` (not found).
    pub async fn set_name(
        &self,
        caller: &Caller,
        name: &ComponentName,
        target: &ComponentRef,
    ) -> Result<NameRecord, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Manage)?;
        Ok(self.inner.registry.set_name(tenant, name, target).await?)
    }

    /// One of the caller's names, with its history.
    ///
    /// # Errors
    /// `Forbidden` for the admin; `Registry` (not found).
    pub async fn name(
        &self,
        caller: &Caller,
        name: &ComponentName,
    ) -> Result<NameRecord, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Run)?;
        Ok(self.inner.registry.name(tenant, name).await?)
    }

    /// Removes one of the caller's names.
    ///
    /// # Errors
    /// `Forbidden` without `manage` scope; `Registry` (not found).
    pub async fn delete_name(
        &self,
        caller: &Caller,
        name: &ComponentName,
    ) -> Result<(), ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Manage)?;
        Ok(self.inner.registry.delete_name(tenant, name).await?)
    }

    /// The bytes of one of the caller's components (what a replay runs).
    ///
    /// # Errors
    /// `Forbidden` for the admin; `Registry` (not found).
    pub async fn component_bytes(
        &self,
        caller: &Caller,
        reference: &ComponentRef,
    ) -> Result<Vec<u8>, ServiceError> {
        let (tenant, _) = tenant_of(caller, Scope::Run)?;
        Ok(self
            .inner
            .registry
            .component_bytes(tenant, reference)
            .await?)
    }
}
