//! This node's cache of tenant states ([`TenantStates`]) and its invalidation: a state is
//! built from the store on a tenant's first use and dropped by [`Service::forget_tenant`] after
//! any change; a generation counter keeps a state read before a change from being cached after
//! it. Under a daily fuel quota, a cached state reads the day's fuel again when it is due.

use super::{TenantState, today};
use crate::{Service, ServiceError};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use warden_registry::{GrantsOf, TenantId};

/// This node's tenant states, and a generation that every [`Service::forget_tenant`] bumps
/// under the same lock: a state built from reads that began before a change was forgotten is
/// never installed, so a stale state cannot outlive the change.
#[derive(Default)]
pub(crate) struct TenantStates {
    states: HashMap<TenantId, Arc<TenantState>>,
    generation: u64,
}

impl TenantStates {
    /// The tenant's state, if built.
    pub(crate) fn get(&self, id: &TenantId) -> Option<&Arc<TenantState>> {
        self.states.get(id)
    }
}

/// Times [`Service::tenant_state`] builds a state that a concurrent change made stale before
/// it answers one without caching it.
const STATE_BUILD_ATTEMPTS: usize = 3;

impl Service {
    /// The tenant's live state, built from the store on first use and kept until the tenant
    /// changes.
    pub(crate) fn tenant_state(&self, id: &TenantId) -> Result<Arc<TenantState>, ServiceError> {
        for _ in 0..STATE_BUILD_ATTEMPTS {
            let generation = {
                let states = self
                    .inner
                    .tenants
                    .read()
                    .unwrap_or_else(PoisonError::into_inner);
                if let Some(state) = states.get(id) {
                    let state = Arc::clone(state);
                    drop(states);
                    self.read_fuel_when_due(&state);
                    return Ok(state);
                }
                states.generation
            };
            let state = Arc::new(self.build_tenant_state(id)?);
            let mut states = self
                .inner
                .tenants
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if states.generation == generation {
                return Ok(Arc::clone(states.states.entry(id.clone()).or_insert(state)));
            }
            // A change was forgotten while this state was read: it may predate the change.
        }
        // Changes keep landing: answer a state read after the last of them, uncached.
        Ok(Arc::new(self.build_tenant_state(id)?))
    }

    /// A tenant's state as the store has it now.
    fn build_tenant_state(&self, id: &TenantId) -> Result<TenantState, ServiceError> {
        let tenant = self
            .store(|store| store.tenant(id))?
            .ok_or_else(|| ServiceError::unauthorized("the API key's tenant no longer exists"))?;
        let fuel = self.fuel_used_on(id, &today())?;
        let grants = self
            .store(|store| store.grants(id, GrantsOf::Tenant))?
            .unwrap_or_default();
        let posted = self
            .store(|store| store.grants(id, GrantsOf::PostedCode))?
            .map(|posted| posted.intersect(&grants))
            .unwrap_or_default();
        let engine_slots = self
            .secured()
            .then(|| self.inner.runtime.config().max_concurrent_runs);
        let mut state = TenantState::new(
            tenant,
            &self.inner.config.tenants,
            &self.inner.config.limits,
            engine_slots,
            fuel,
        );
        state.grants = Arc::new(grants);
        state.posted_grants = Arc::new(posted);
        Ok(state)
    }

    /// The tenant's fuel on `day`: as stored (every node's flushed calls) plus this node's
    /// pending.
    fn fuel_used_on(&self, id: &TenantId, day: &str) -> Result<u64, ServiceError> {
        let stored = self.store(|store| store.usage(id, day, day))?;
        Ok(self
            .inner
            .meter
            .merged(id, day, day, stored)
            .iter()
            .map(|row| row.counters.fuel)
            .sum())
    }

    /// Reads the day's fuel again when it is due ([`TenantState::fuel_read_due`]), so a daily
    /// quota holds against what every node used, within about a flush interval. A failed read
    /// is logged; the state then counts on until the next.
    fn read_fuel_when_due(&self, state: &TenantState) {
        let Some(day) = state.fuel_read_due() else {
            return;
        };
        match self.fuel_used_on(&state.tenant.id, &day) {
            Ok(used) => state.fuel_read(&day, used),
            Err(error) => tracing::warn!(
                %error,
                tenant = %state.tenant.id,
                "reading the day's fuel failed; counting on until the next read"
            ),
        }
    }

    /// Drops the tenant's state after a change (the next use builds it again), with the key
    /// cache and the component grants.
    pub(crate) fn forget_tenant(&self, id: &TenantId) {
        {
            let mut states = self
                .inner
                .tenants
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            states.states.remove(id);
            states.generation = states.generation.wrapping_add(1);
        }
        self.inner.keys.clear();
        self.forget_component_grants();
    }
}
