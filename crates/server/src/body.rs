//! Reading request bodies under the edge's rules: a hard byte cap (413 past it, refused
//! before reading when the declared length is already too large), a share of the global
//! body-memory budget (503 `overloaded` when none frees up in time), and a deadline of a grace
//! period plus a minimum transfer rate (408 `request_timeout` for a trickle).

use crate::ApiError;
use crate::config::HttpConfig;
use axum::body::{Body, Bytes};
use http_body::Body as _;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The budget is counted in units of this many bytes.
const UNIT: u64 = 1024;

/// The rules every body read follows.
pub(crate) struct BodyRules {
    budget: Arc<Semaphore>,
    units: u64,
    wait: Duration,
    grace: Duration,
    min_rate: u64,
}

/// A body read whole, holding its share of the budget until dropped.
pub(crate) struct HeldBody {
    pub(crate) bytes: Bytes,
    _share: OwnedSemaphorePermit,
}

/// The pace a body must keep: all of it within `grace + size / min_rate`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    grace: Duration,
    min_rate: u64,
}

impl Pace {
    /// How long a body of `size` bytes may take.
    pub(crate) fn allowed(&self, size: u64) -> Duration {
        self.grace + Duration::from_secs_f64(size as f64 / self.min_rate.max(1) as f64)
    }
}

/// A body read frame by frame (a pipeline run's, as the run drains it) under the edge's pace:
/// only the time spent waiting on the client counts, not the time the reader spends on what
/// it read, so backpressure is never mistaken for a slow client.
pub(crate) struct PacedBody {
    stream: axum::body::BodyDataStream,
    pace: Pace,
    received: u64,
    waited: Duration,
}

impl PacedBody {
    pub(crate) fn new(body: Body, pace: Pace) -> PacedBody {
        PacedBody {
            stream: body.into_data_stream(),
            pace,
            received: 0,
            waited: Duration::ZERO,
        }
    }

    /// The next frame; `Err` when the body broke off or fell behind the pace.
    pub(crate) async fn next(&mut self) -> Option<Result<Bytes, String>> {
        use futures::StreamExt as _;
        let allowed = self
            .pace
            .allowed(self.received.saturating_add(1))
            .saturating_sub(self.waited);
        let started = Instant::now();
        let next = tokio::time::timeout(allowed, self.stream.next()).await;
        self.waited += started.elapsed();
        match next {
            Err(_) => Some(Err(format!(
                "the request body fell behind {} bytes per second (after a {} ms grace)",
                self.pace.min_rate,
                self.pace.grace.as_millis()
            ))),
            Ok(None) => None,
            Ok(Some(Ok(bytes))) => {
                self.received += bytes.len() as u64;
                Some(Ok(bytes))
            }
            Ok(Some(Err(error))) => Some(Err(format!("could not read the request body: {error}"))),
        }
    }
}

impl BodyRules {
    /// The pace every body keeps.
    pub(crate) fn pace(&self) -> Pace {
        Pace {
            grace: self.grace,
            min_rate: self.min_rate,
        }
    }

    pub(crate) fn new(config: &HttpConfig) -> BodyRules {
        let units = config.body_budget_mb.saturating_mul(1024 * 1024 / UNIT);
        let permits = usize::try_from(units)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        BodyRules {
            budget: Arc::new(Semaphore::new(permits)),
            units: permits as u64,
            wait: Duration::from_millis(config.body_budget_wait_ms),
            grace: Duration::from_millis(config.body_grace_ms),
            min_rate: config.body_min_bytes_per_sec,
        }
    }

    /// Reads at most `max` bytes of `body` under the rules.
    pub(crate) async fn read(
        &self,
        body: Body,
        max: u64,
        what: &str,
    ) -> Result<HeldBody, ApiError> {
        let too_large = || ApiError::TooLarge(format!("the {what} is larger than {max} bytes"));
        let hint = body.size_hint();
        if hint.lower() > max {
            return Err(too_large());
        }
        // What this body may hold: its declared length, or the cap when it declares none.
        let expected = hint.exact().unwrap_or(max).min(max);
        let wanted = expected.div_ceil(UNIT).clamp(1, self.units);
        let share = tokio::time::timeout(
            self.wait,
            Arc::clone(&self.budget).acquire_many_owned(u32::try_from(wanted).unwrap_or(u32::MAX)),
        )
        .await;
        let share = match share {
            Ok(Ok(share)) => share,
            _ => {
                return Err(ApiError::Overloaded(
                    "the server holds as many request bodies as it may; retry later".into(),
                ));
            }
        };
        let allowed = self.pace().allowed(expected);
        let deadline = Instant::now() + allowed;
        let mut body = body;
        let mut bytes = Vec::with_capacity(usize::try_from(expected.min(1024 * 1024)).unwrap_or(0));
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => {
                    return Err(ApiError::RequestTimeout(format!(
                        "the {what} did not arrive within {} ms",
                        allowed.as_millis()
                    )));
                }
                Ok(None) => break,
                Ok(Some(Err(error))) => {
                    return Err(ApiError::BadRequest(format!(
                        "could not read the request body: {error}"
                    )));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                if bytes.len() as u64 + data.len() as u64 > max {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(HeldBody {
            bytes: Bytes::from(bytes),
            _share: share,
        })
    }
}
