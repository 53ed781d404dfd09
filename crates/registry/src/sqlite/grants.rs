//! Capability grants in SQLite: one row per tenant (`digest` empty), for its posted code
//! (`digest` = `posted`) and per granted component, each a JSON document.

use super::components::component_in;
use super::{SqliteStore, corrupt, failed};
use crate::ids::TenantId;
use crate::store::{GrantStore, GrantsOf, StoreError};
use rusqlite::{OptionalExtension, params};
use warden_runtime::Grants;

/// The `digest` column of a grant set's row.
fn row_key(of: GrantsOf<'_>) -> &str {
    match of {
        GrantsOf::Tenant => "",
        GrantsOf::PostedCode => "posted",
        GrantsOf::Component(digest) => digest.as_str(),
    }
}

impl GrantStore for SqliteStore {
    fn set_grants(
        &self,
        tenant: &TenantId,
        of: GrantsOf<'_>,
        grants: &Grants,
    ) -> Result<(), StoreError> {
        let document = serde_json::to_string(grants).map_err(StoreError::backend)?;
        self.try_with(|connection| {
            let tx = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(failed)?;
            if let GrantsOf::Component(digest) = of
                && component_in(&tx, tenant, digest).map_err(failed)?.is_none()
            {
                return Err(StoreError::not_found(format!(
                    "no component with digest {digest}"
                )));
            }
            let digest = row_key(of);
            // A tenant without grants has no row; a component's empty grants are kept (they
            // narrow it to nothing).
            let component = matches!(of, GrantsOf::Component(_));
            match !component && *grants == Grants::default() {
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

    fn grants(&self, tenant: &TenantId, of: GrantsOf<'_>) -> Result<Option<Grants>, StoreError> {
        self.with(|connection| {
            connection
                .prepare_cached("SELECT document FROM grants WHERE tenant = ?1 AND digest = ?2")?
                .query_row(params![tenant.as_str(), row_key(of)], |row| {
                    let document: String = row.get(0)?;
                    serde_json::from_str(&document).map_err(|e| corrupt(0, e))
                })
                .optional()
        })
    }

    fn put_secret(
        &self,
        tenant: &TenantId,
        key: &str,
        sealed: &[u8],
        max_secrets: u64,
    ) -> Result<(), StoreError> {
        self.try_with(|connection| {
            // Counted and written in one write transaction: two puts cannot both take the last
            // place, whichever connection (or process) they come from.
            let tx = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(failed)?;
            let (count, exists): (u64, bool) = tx
                .query_row(
                    "SELECT COUNT(*), COALESCE(MAX(key = ?2), 0) FROM secrets WHERE tenant = ?1",
                    params![tenant.as_str(), key],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(failed)?;
            if !exists && count >= max_secrets {
                return Err(StoreError::over_quota(format!(
                    "a tenant keeps at most {max_secrets} secrets"
                )));
            }
            tx.execute(
                "INSERT INTO secrets (tenant, key, sealed, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, key) DO UPDATE
                 SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                params![tenant.as_str(), key, sealed, super::now()],
            )
            .map_err(failed)?;
            tx.commit().map_err(failed)
        })
    }

    fn secret_names(&self, tenant: &TenantId) -> Result<Vec<String>, StoreError> {
        self.with(|connection| {
            let mut statement = connection
                .prepare_cached("SELECT key FROM secrets WHERE tenant = ?1 ORDER BY key")?;
            statement
                .query_map(params![tenant.as_str()], |row| row.get(0))?
                .collect()
        })
    }

    fn sealed_secrets(
        &self,
        tenant: &TenantId,
        keys: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.with(|connection| {
            let mut statement = connection
                .prepare_cached("SELECT sealed FROM secrets WHERE tenant = ?1 AND key = ?2")?;
            let mut found = Vec::new();
            for key in keys {
                let sealed: Option<Vec<u8>> = statement
                    .query_row(params![tenant.as_str(), key], |row| row.get(0))
                    .optional()?;
                found.extend(sealed.map(|sealed| (key.clone(), sealed)));
            }
            Ok(found)
        })
    }

    fn delete_secret(&self, tenant: &TenantId, key: &str) -> Result<bool, StoreError> {
        self.with(|connection| {
            connection
                .execute(
                    "DELETE FROM secrets WHERE tenant = ?1 AND key = ?2",
                    params![tenant.as_str(), key],
                )
                .map(|removed| removed > 0)
        })
    }
}
