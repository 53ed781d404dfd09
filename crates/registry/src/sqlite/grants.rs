//! Capability grants in SQLite: one row per tenant (`digest` empty) and per granted component,
//! each a JSON document.

use super::{SqliteStore, component_in, corrupt, failed};
use crate::ids::{Digest, TenantId};
use crate::store::{GrantStore, StoreError};
use rusqlite::{OptionalExtension, params};
use warden_runtime::Grants;

impl GrantStore for SqliteStore {
    fn set_grants(
        &self,
        tenant: &TenantId,
        component: Option<&Digest>,
        grants: &Grants,
    ) -> Result<(), StoreError> {
        let document = serde_json::to_string(grants).map_err(StoreError::backend)?;
        self.try_with(|connection| {
            let tx = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(failed)?;
            if let Some(digest) = component
                && component_in(&tx, tenant, digest).map_err(failed)?.is_none()
            {
                return Err(StoreError::not_found(format!(
                    "no component with digest {digest}"
                )));
            }
            let digest = component.map_or("", Digest::as_str);
            match *grants == Grants::default() {
                true => tx.execute(
                    "DELETE FROM grants WHERE tenant = ?1 AND digest = ?2",
                    params![tenant.as_str(), digest],
                ),
                false => tx.execute(
                    "INSERT INTO grants (tenant, digest, document) VALUES (?1, ?2, ?3)
                     ON CONFLICT (tenant, digest) DO UPDATE SET document = excluded.document",
                    params![tenant.as_str(), digest, document],
                ),
            }
            .map_err(failed)?;
            tx.commit().map_err(failed)
        })
    }

    fn grants(
        &self,
        tenant: &TenantId,
        component: Option<&Digest>,
    ) -> Result<Option<Grants>, StoreError> {
        self.with(|connection| {
            connection
                .prepare_cached("SELECT document FROM grants WHERE tenant = ?1 AND digest = ?2")?
                .query_row(
                    params![tenant.as_str(), component.map_or("", Digest::as_str)],
                    |row| {
                        let document: String = row.get(0)?;
                        serde_json::from_str(&document).map_err(|e| corrupt(0, e))
                    },
                )
                .optional()
        })
    }
}
