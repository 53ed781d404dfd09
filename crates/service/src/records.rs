//! Reading a tenant's records (the admin names the tenant), and their retention.

use crate::auth::Caller;
use crate::{Service, ServiceError};
use warden_registry::{
    ComponentRef, DEFAULT_RECORD_PAGE, MAX_RECORD_PAGE, RecordQuery, RunId, RunRecord, TenantId,
};

impl Service {
    /// The tenant whose records `caller` reads: a tenant reads its own; the admin names one.
    pub(crate) fn records_tenant(
        &self,
        caller: &Caller,
        requested: Option<&TenantId>,
    ) -> Result<TenantId, ServiceError> {
        match (caller, requested) {
            (Caller::Admin, Some(tenant)) => {
                self.existing_tenant(tenant)?;
                Ok(tenant.clone())
            }
            (Caller::Admin, None) => Err(ServiceError::bad_request(
                "the admin token reads a tenant's runs with `?tenant=ID`",
            )),
            (Caller::Tenant { tenant, .. }, None) => Ok(tenant.clone()),
            (Caller::Tenant { tenant, .. }, Some(requested)) if requested == tenant => {
                Ok(tenant.clone())
            }
            (Caller::Tenant { .. }, Some(_)) => Err(ServiceError::forbidden(
                "only the admin token may read another tenant's runs",
            )),
        }
    }

    /// Writes waiting records first, so a caller reads its own calls.
    pub(crate) async fn settle_records(&self) {
        if self.inner.recorder.pending() {
            self.inner
                .recorder
                .write(&self.inner.store, &self.inner.metrics)
                .await;
        }
    }

    /// One page of a tenant's records, newest first; `component` (a digest, or a name: the
    /// component it points at now) narrows the query to that component's calls.
    ///
    /// # Errors
    /// `Forbidden`, `BadRequest`, `NotFound` (the admin named no such tenant; no such name).
    pub async fn runs(
        &self,
        caller: &Caller,
        tenant: Option<&TenantId>,
        component: Option<&ComponentRef>,
        mut query: RecordQuery,
    ) -> Result<Vec<RunRecord>, ServiceError> {
        let tenant = self.records_tenant(caller, tenant)?;
        query.component = match component {
            None => query.component,
            Some(ComponentRef::Digest(digest)) => Some(digest.clone()),
            Some(reference) => Some(
                self.inner
                    .registry
                    .component(&tenant, reference)
                    .await?
                    .digest,
            ),
        };
        if query.limit == 0 {
            query.limit = DEFAULT_RECORD_PAGE;
        }
        if query.limit > MAX_RECORD_PAGE {
            return Err(ServiceError::bad_request(format!(
                "limit is at most {MAX_RECORD_PAGE}"
            )));
        }
        self.settle_records().await;
        Ok(self.store(|store| store.records(&tenant, &query))?)
    }

    /// One of a tenant's records.
    ///
    /// # Errors
    /// `Forbidden`, `BadRequest`, `NotFound`.
    pub async fn run_record(
        &self,
        caller: &Caller,
        tenant: Option<&TenantId>,
        id: &RunId,
    ) -> Result<RunRecord, ServiceError> {
        let tenant = self.records_tenant(caller, tenant)?;
        if self.inner.recorder.holds(id) {
            self.settle_records().await;
        }
        self.store(|store| store.record(&tenant, id))?
            .ok_or_else(|| ServiceError::not_found(format!("no run `{id}`")))
    }

    /// The input kept with one of a tenant's records.
    ///
    /// # Errors
    /// `Forbidden`, `BadRequest`; `NotFound` when there is no such record or it kept no input.
    pub async fn run_input(
        &self,
        caller: &Caller,
        tenant: Option<&TenantId>,
        id: &RunId,
    ) -> Result<Vec<u8>, ServiceError> {
        let tenant = self.records_tenant(caller, tenant)?;
        if self.inner.recorder.holds(id) {
            self.settle_records().await;
        }
        self.store(|store| store.record_input(&tenant, id))?
            .ok_or_else(|| ServiceError::not_found(format!("run `{id}` has no recorded input")))
    }

    /// Applies record retention now (it also runs in the background).
    ///
    /// # Errors
    /// `Internal` when the store fails.
    pub fn prune_records(&self) -> Result<u64, ServiceError> {
        let retention = self.inner.recorder.retention();
        Ok(self.store(|store| store.prune_records(&retention))?)
    }
}
