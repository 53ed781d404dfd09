//! Pipelines in SQLite: one row per pipeline (its current and latest version), one row per
//! version holding the version as a JSON document.

use super::components::component_in;
use super::{SqliteStore, corrupt, failed, now};
use crate::ids::{PipelineName, TenantId};
use crate::pipelines::{
    MAX_LISTED_VERSIONS, PipelineRecord, PipelineStore, PipelineVersion, VersionEntry,
};
use crate::store::StoreError;
use rusqlite::{Connection, OptionalExtension, params};

fn read_version(row: &rusqlite::Row<'_>) -> rusqlite::Result<PipelineVersion> {
    let document: String = row.get(0)?;
    serde_json::from_str(&document).map_err(|e| corrupt(0, e))
}

/// The pipeline row and up to `history` of its versions, newest first.
fn record_in(
    connection: &Connection,
    tenant: &TenantId,
    name: &PipelineName,
    history: usize,
) -> rusqlite::Result<Option<PipelineRecord>> {
    let row: Option<(u32, String)> = connection
        .query_row(
            "SELECT current, updated_at FROM pipelines WHERE tenant = ?1 AND name = ?2",
            params![tenant.as_str(), name.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let Some((current, updated_at)) = row else {
        return Ok(None);
    };
    let mut statement = connection.prepare_cached(
        "SELECT version, created_at FROM pipeline_versions
         WHERE tenant = ?1 AND name = ?2 ORDER BY version DESC LIMIT ?3",
    )?;
    let versions = statement
        .query_map(
            params![tenant.as_str(), name.as_str(), history as i64],
            |row| {
                Ok(VersionEntry {
                    version: row.get(0)?,
                    created_at: row.get(1)?,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(PipelineRecord {
        name: name.clone(),
        current,
        updated_at,
        versions,
    }))
}

impl PipelineStore for SqliteStore {
    fn insert_pipeline_version(
        &self,
        tenant: &TenantId,
        version: &PipelineVersion,
    ) -> Result<u32, StoreError> {
        self.try_with(|connection| {
            let tx = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(failed)?;
            for node in &version.nodes {
                if component_in(&tx, tenant, &node.digest)
                    .map_err(failed)?
                    .is_none()
                {
                    return Err(StoreError::not_found(format!(
                        "node `{}`: no component with digest {}",
                        node.spec.id, node.digest
                    )));
                }
            }
            let name = version.name.as_str();
            let latest: Option<u32> = tx
                .query_row(
                    "SELECT latest FROM pipelines WHERE tenant = ?1 AND name = ?2",
                    params![tenant.as_str(), name],
                    |row| row.get(0),
                )
                .optional()
                .map_err(failed)?;
            let number = latest.unwrap_or(0).saturating_add(1);
            let stored = PipelineVersion {
                version: number,
                ..version.clone()
            };
            let document = serde_json::to_string(&stored).map_err(StoreError::backend)?;
            let at = now();
            tx.execute(
                "INSERT INTO pipeline_versions (tenant, name, version, created_at, document)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![tenant.as_str(), name, number, stored.created_at, document],
            )
            .map_err(failed)?;
            tx.execute(
                "INSERT INTO pipelines (tenant, name, current, latest, updated_at)
                 VALUES (?1, ?2, ?3, ?3, ?4)
                 ON CONFLICT (tenant, name) DO UPDATE
                 SET current = excluded.current, latest = excluded.latest,
                     updated_at = excluded.updated_at",
                params![tenant.as_str(), name, number, at],
            )
            .map_err(failed)?;
            tx.commit().map_err(failed)?;
            Ok(number)
        })
    }

    fn pipeline(
        &self,
        tenant: &TenantId,
        name: &PipelineName,
    ) -> Result<Option<PipelineRecord>, StoreError> {
        self.with(|connection| record_in(connection, tenant, name, MAX_LISTED_VERSIONS))
    }

    fn pipeline_version(
        &self,
        tenant: &TenantId,
        name: &PipelineName,
        version: Option<u32>,
    ) -> Result<Option<PipelineVersion>, StoreError> {
        self.with(|connection| {
            let sql = match version {
                Some(_) => {
                    "SELECT document FROM pipeline_versions
                     WHERE tenant = ?1 AND name = ?2 AND version = ?3"
                }
                None => {
                    "SELECT v.document FROM pipeline_versions v JOIN pipelines p
                     ON p.tenant = v.tenant AND p.name = v.name AND p.current = v.version
                     WHERE v.tenant = ?1 AND v.name = ?2 AND ?3 IS NULL"
                }
            };
            connection
                .query_row(
                    sql,
                    params![tenant.as_str(), name.as_str(), version],
                    read_version,
                )
                .optional()
        })
    }

    fn list_pipelines(&self, tenant: &TenantId) -> Result<Vec<PipelineRecord>, StoreError> {
        self.with(|connection| {
            let names: Vec<String> = {
                let mut statement = connection
                    .prepare_cached("SELECT name FROM pipelines WHERE tenant = ?1 ORDER BY name")?;
                statement
                    .query_map(params![tenant.as_str()], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()?
            };
            let mut records = Vec::with_capacity(names.len());
            for text in names {
                let name = PipelineName::parse(&text).map_err(|e| corrupt(0, e))?;
                records.extend(record_in(connection, tenant, &name, 1)?);
            }
            Ok(records)
        })
    }

    fn set_current_pipeline_version(
        &self,
        tenant: &TenantId,
        name: &PipelineName,
        version: u32,
    ) -> Result<(), StoreError> {
        self.try_with(|connection| {
            let tx = connection.transaction().map_err(failed)?;
            let exists = tx
                .query_row(
                    "SELECT 1 FROM pipeline_versions WHERE tenant = ?1 AND name = ?2 AND version = ?3",
                    params![tenant.as_str(), name.as_str(), version],
                    |row| row.get::<_, i64>(0),
                )
                .optional()
                .map_err(failed)?;
            if exists.is_none() {
                return Err(StoreError::not_found(format!(
                    "pipeline `{name}` has no version {version}"
                )));
            }
            tx.execute(
                "UPDATE pipelines SET current = ?3, updated_at = ?4 WHERE tenant = ?1 AND name = ?2",
                params![tenant.as_str(), name.as_str(), version, now()],
            )
            .map_err(failed)?;
            tx.commit().map_err(failed)
        })
    }

    fn delete_pipeline(&self, tenant: &TenantId, name: &PipelineName) -> Result<bool, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction()?;
            let removed = tx.execute(
                "DELETE FROM pipelines WHERE tenant = ?1 AND name = ?2",
                params![tenant.as_str(), name.as_str()],
            )?;
            tx.execute(
                "DELETE FROM pipeline_versions WHERE tenant = ?1 AND name = ?2",
                params![tenant.as_str(), name.as_str()],
            )?;
            tx.commit()?;
            Ok(removed > 0)
        })
    }
}
