//! Metering: every call adds to per-(tenant, day, outcome) counters in memory, written to the
//! usage store in one transaction every flush (and at shutdown). Reads merge what is stored
//! with what is still pending, so usage is exact the moment a call returns. The API's view of it
//! (`GET /v1/usage`, `GET /v1/me`) is here too.

use crate::auth::{Caller, tenant_of};
use crate::{Service, ServiceError, tenants};
use serde::Serialize;
use warden_registry::{KeyId, Quotas, Scope, StorageUsed};
use warden_runtime::Limits;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use warden_registry::{TenantId, UsageCounters, UsageDelta};

/// Distinct (tenant, day, outcome) rows held before a flush is due anyway (a bound on memory;
/// past it rows still add up, a flush only comes sooner).
pub(crate) const FLUSH_AT_ROWS: usize = 10_000;

type Row = (TenantId, String, &'static str);

/// Pending usage, not yet in the store.
#[derive(Default)]
pub(crate) struct Meter {
    pending: Mutex<HashMap<Row, UsageCounters>>,
}

impl Meter {
    /// Adds one call; returns whether a flush is due early.
    pub(crate) fn add(
        &self,
        tenant: &TenantId,
        day: String,
        outcome: &'static str,
        counters: &UsageCounters,
    ) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending
            .entry((tenant.clone(), day, outcome))
            .or_default()
            .add(counters);
        pending.len() >= FLUSH_AT_ROWS
    }

    /// Takes everything pending, as deltas to store.
    pub(crate) fn take(&self) -> Vec<UsageDelta> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending
            .drain()
            .map(|((tenant, day, outcome), counters)| UsageDelta {
                tenant,
                day,
                outcome: outcome.to_owned(),
                counters,
            })
            .collect()
    }

    /// Puts deltas back after a failed write, so nothing is lost.
    pub(crate) fn restore(&self, deltas: Vec<UsageDelta>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for delta in deltas {
            let outcome = outcome_name(&delta.outcome);
            pending
                .entry((delta.tenant, delta.day, outcome))
                .or_default()
                .add(&delta.counters);
        }
    }

    /// `stored` plus what is pending for `tenant` on the days `from..=to`, by day then outcome.
    pub(crate) fn merged(
        &self,
        tenant: &TenantId,
        from: &str,
        to: &str,
        stored: Vec<UsageDelta>,
    ) -> Vec<UsageDelta> {
        let mut rows: BTreeMap<(String, String), UsageCounters> = BTreeMap::new();
        for delta in stored {
            rows.entry((delta.day, delta.outcome))
                .or_default()
                .add(&delta.counters);
        }
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for ((row_tenant, day, outcome), counters) in pending.iter() {
            if row_tenant == tenant && day.as_str() >= from && day.as_str() <= to {
                rows.entry((day.clone(), (*outcome).to_owned()))
                    .or_default()
                    .add(counters);
            }
        }
        rows.into_iter()
            .map(|((day, outcome), counters)| UsageDelta {
                tenant: tenant.clone(),
                day,
                outcome,
                counters,
            })
            .collect()
    }
}

/// The static name of an outcome read back from the store (unknown names are kept as `other`).
fn outcome_name(name: &str) -> &'static str {
    use warden_runtime::Outcome;
    Outcome::ALL
        .iter()
        .map(|outcome| outcome.as_str())
        .find(|known| *known == name)
        .unwrap_or("other")
}
/// Longest span of days one usage query may cover.
pub const MAX_USAGE_DAYS: i64 = 366;
/// The years a usage query may name (a day outside them is a 400, never date arithmetic at
/// the edge of `time`'s range).
pub const USAGE_YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

/// One row of usage.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageRow {
    /// UTC day.
    pub day: String,
    /// Outcome.
    pub outcome: String,
    /// Counters.
    #[serde(flatten)]
    pub counters: UsageCounters,
}

/// A tenant's usage over some days.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageReport {
    /// The tenant.
    pub tenant: TenantId,
    /// First day (UTC).
    pub from: String,
    /// Last day (UTC).
    pub to: String,
    /// Everything, summed.
    pub total: UsageCounters,
    /// By outcome, summed over the days.
    pub by_outcome: std::collections::BTreeMap<String, UsageCounters>,
    /// By day and outcome.
    pub days: Vec<UsageRow>,
    /// What it stores now.
    pub storage: StorageUsed,
}

/// Who the caller is, and what applies to it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    /// The tenant.
    pub tenant: TenantId,
    /// The key's scope.
    pub scope: Scope,
    /// The key's id (absent in open mode).
    pub key: Option<KeyId>,
    /// `open` or `secured`.
    pub mode: &'static str,
    /// The limits its calls run under.
    pub limits: Limits,
    /// Its share of concurrent calls.
    pub max_concurrent_runs: Option<u32>,
    /// The quotas that apply.
    pub quotas: Quotas,
    /// What it stores.
    pub storage: StorageUsed,
    /// Its usage so far today (UTC).
    pub usage_today: UsageCounters,
}

impl Service {
    /// The caller: tenant, scope, limits, quotas, storage.
    ///
    /// # Errors
    /// `Forbidden` for the admin.
    pub async fn me(&self, caller: &Caller) -> Result<Me, ServiceError> {
        let (tenant, scope) = tenant_of(caller, Scope::Run)?;
        let state = self.tenant_state(tenant)?;
        let key = match caller {
            Caller::Tenant { key, .. } => key.clone(),
            Caller::Admin => None,
        };
        let today = tenants::today();
        let usage_today = self
            .usage(caller, None, Some(&today), Some(&today))
            .await?
            .total;
        Ok(Me {
            usage_today,
            tenant: tenant.clone(),
            scope,
            key,
            mode: if self.secured() { "secured" } else { "open" },
            limits: state.limits,
            max_concurrent_runs: state.max_concurrent_runs(),
            quotas: state.quotas,
            storage: self.inner.registry.storage_used(tenant).await?,
        })
    }

    /// Usage of the caller's tenant (or, for the admin, of `tenant`) on the days `from..=to`
    /// (`YYYY-MM-DD`, UTC; default: the last 30 days).
    ///
    /// # Errors
    /// `BadRequest` for bad dates or a span over [`MAX_USAGE_DAYS`]; `NotFound`; `Forbidden`.
    pub async fn usage(
        &self,
        caller: &Caller,
        tenant: Option<&TenantId>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<UsageReport, ServiceError> {
        let tenant = match (caller, tenant) {
            (Caller::Admin, Some(tenant)) => {
                self.existing_tenant(tenant)?;
                tenant
            }
            (Caller::Admin, None) => {
                return Err(ServiceError::forbidden(
                    "the admin token has no usage of its own; ask for a tenant's",
                ));
            }
            (Caller::Tenant { tenant: own, .. }, asked) => {
                if asked.is_some_and(|asked| asked != own) {
                    return Err(ServiceError::forbidden(
                        "only the admin token may read another tenant's usage",
                    ));
                }
                own
            }
        };
        let (from, to) = day_range(from, to)?;
        let stored = self.store(|store| store.usage(tenant, &from, &to))?;
        let rows = self.inner.meter.merged(tenant, &from, &to, stored);
        let mut total = UsageCounters::default();
        let mut by_outcome = std::collections::BTreeMap::<String, UsageCounters>::new();
        for row in &rows {
            total.add(&row.counters);
            by_outcome
                .entry(row.outcome.clone())
                .or_default()
                .add(&row.counters);
        }
        Ok(UsageReport {
            tenant: tenant.clone(),
            from,
            to,
            total,
            by_outcome,
            days: rows
                .into_iter()
                .map(|row| UsageRow {
                    day: row.day,
                    outcome: row.outcome,
                    counters: row.counters,
                })
                .collect(),
            storage: self.inner.registry.storage_used(tenant).await?,
        })
    }
}

/// A day of a usage query: `YYYY-MM-DD` in [`USAGE_YEARS`].
pub(crate) fn parse_day(text: &str) -> Result<time::Date, ServiceError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(text, &format)
        .map_err(|_| ServiceError::bad_request(format!("`{text}` is not a day (YYYY-MM-DD)")))?;
    if !USAGE_YEARS.contains(&day.year()) {
        return Err(ServiceError::bad_request(format!(
            "`{text}` is outside the years {}..={}",
            USAGE_YEARS.start(),
            USAGE_YEARS.end()
        )));
    }
    Ok(day)
}

/// The days `from..=to` of a usage query (default: the 30 days up to `to`, not before 1970).
pub(crate) fn day_range(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(String, String), ServiceError> {
    let today = time::OffsetDateTime::now_utc().date();
    let to = to.map(parse_day).transpose()?.unwrap_or(today);
    let earliest = time::Date::from_ordinal_date(*USAGE_YEARS.start(), 1)
        .map_err(|e| ServiceError::internal("the first usage day", e))?;
    let from = match from {
        Some(from) => parse_day(from)?,
        None => to
            .checked_sub(time::Duration::days(29))
            .map_or(earliest, |from| from.max(earliest)),
    };
    if from > to {
        return Err(ServiceError::bad_request("`from` is after `to`"));
    }
    if (to - from).whole_days() >= MAX_USAGE_DAYS {
        return Err(ServiceError::bad_request(format!(
            "ask for at most {MAX_USAGE_DAYS} days at once"
        )));
    }
    let show = |date: time::Date| tenants::day_of(date.midnight().assume_utc());
    Ok((show(from), show(to)))
}
