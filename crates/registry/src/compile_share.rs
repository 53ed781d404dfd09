//! Each tenant's share of the runtime's compile slots.
//!
//! The runtime's compile pool is small (Cranelift cannot be interrupted) and knows no tenants.
//! Without shares, one tenant's ten slow compiles hold every slot and every place in the
//! queue, and every other tenant's upload or cold run is a 503. With a [`CompileShare`], a
//! tenant's compiles run at most `running` at a time; up to `admitted` of them may wait for
//! that, in the tenant's own line (not in the runtime's queue, so another tenant's compile
//! takes a free slot at once); past that the compile is refused as the runtime's own overload
//! is (`CompileError::Overloaded`: 503 with `Retry-After`). A permit is charged before any
//! bytes are read from disk, and it travels into the compile thread, so a compile whose client
//! went away still counts against its tenant until it ends.

use crate::ids::TenantId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use warden_runtime::{CompileError, InvalidSetting};

/// How many compiles one tenant may have at once on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileShare {
    /// Compiles of one tenant running at once.
    pub running: u32,
    /// Compiles of one tenant admitted at once: running, or waiting for one of its `running`
    /// turns. At least `running`.
    pub admitted: u32,
}

impl CompileShare {
    /// The default running share of a runtime with `slots` compile slots: half of them, at
    /// least one, and never all of them when there are two or more (one is always left for
    /// other tenants).
    pub fn default_running(slots: u32) -> u32 {
        (slots / 2).clamp(1, slots.saturating_sub(1).max(1))
    }

    /// The share of a runtime with `slots` compile slots and `queue` places in its queue:
    /// `running` compiles at once (default [`CompileShare::default_running`]), and as many
    /// more waiting as half the queue.
    ///
    /// # Errors
    /// `max_concurrent_compiles` when `running` is zero, or takes every slot of two or more.
    pub fn of(
        slots: u32,
        queue: u32,
        running: Option<u32>,
    ) -> Result<CompileShare, InvalidSetting> {
        let running = running.unwrap_or_else(|| Self::default_running(slots));
        InvalidSetting::check_positive(&[("max_concurrent_compiles", u64::from(running))])?;
        if slots >= 2 && running >= slots {
            return Err(InvalidSetting::new(
                "max_concurrent_compiles",
                format!(
                    "({running}) must leave at least one of the engine's {slots} compile slots \
                     to other tenants"
                ),
            ));
        }
        Ok(CompileShare {
            running,
            admitted: running + queue / 2,
        })
    }
}

/// Every tenant's compiles in progress on this node.
pub(crate) struct CompileShares {
    share: Option<CompileShare>,
    tenants: Arc<Mutex<HashMap<TenantId, TenantCompiles>>>,
}

/// One tenant's compiles: how many are admitted, and the turns they run on.
struct TenantCompiles {
    admitted: u32,
    running: Arc<Semaphore>,
}

/// One compile charged to its tenant's share until dropped (by the compile thread, when the
/// compiler finishes).
pub(crate) struct SharePermit {
    // Dropped before `_admission`: the turn goes back before the count does.
    _turn: Option<OwnedSemaphorePermit>,
    _admission: Option<Admission>,
}

/// A place counted in a tenant's `admitted`; gives it back when dropped.
struct Admission {
    tenants: Arc<Mutex<HashMap<TenantId, TenantCompiles>>>,
    tenant: TenantId,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(compiles) = tenants.get_mut(&self.tenant) {
            compiles.admitted -= 1;
            if compiles.admitted == 0 {
                tenants.remove(&self.tenant);
            }
        }
    }
}

impl CompileShares {
    /// Shares of `share` each; `None`: no tenant share (open mode's one tenant), only the
    /// runtime's own bounds.
    pub(crate) fn new(share: Option<CompileShare>) -> CompileShares {
        CompileShares {
            share,
            tenants: Arc::default(),
        }
    }

    /// Charges one compile to `tenant`'s share: a place now, or `Overloaded`; then waits for
    /// one of its running turns (cancelling the wait gives the place back).
    ///
    /// # Errors
    /// [`CompileError::Overloaded`] when the tenant has its whole share admitted already.
    pub(crate) async fn charge(&self, tenant: &TenantId) -> Result<SharePermit, CompileError> {
        let Some(share) = self.share else {
            return Ok(SharePermit {
                _turn: None,
                _admission: None,
            });
        };
        let (admission, running) = {
            let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
            let compiles = tenants
                .entry(tenant.clone())
                .or_insert_with(|| TenantCompiles {
                    admitted: 0,
                    running: Arc::new(Semaphore::new(share.running as usize)),
                });
            if compiles.admitted >= share.admitted {
                return Err(CompileError::Overloaded);
            }
            compiles.admitted += 1;
            let admission = Admission {
                tenants: Arc::clone(&self.tenants),
                tenant: tenant.clone(),
            };
            (admission, Arc::clone(&compiles.running))
        };
        let turn = running
            .acquire_owned()
            .await
            .map_err(|e| CompileError::Internal {
                context: "a tenant's compile share closed",
                source: Some(e.into()),
            })?;
        Ok(SharePermit {
            _turn: Some(turn),
            _admission: Some(admission),
        })
    }

    /// Compiles of `tenant` admitted now (running or waiting for its turn).
    #[cfg(test)]
    pub(crate) fn admitted(&self, tenant: &TenantId) -> u32 {
        self.tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            .map_or(0, |compiles| compiles.admitted)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    #[test]
    fn the_default_share_is_half_and_always_leaves_one_slot() {
        let running = |slots| CompileShare::default_running(slots);
        assert_eq!(
            [1, 2, 3, 4, 5, 8].map(running),
            [1, 1, 1, 2, 2, 4],
            "half, at least one, never every slot of two or more"
        );
        assert_eq!(
            CompileShare::of(2, 8, None).unwrap(),
            CompileShare {
                running: 1,
                admitted: 5
            }
        );
        assert!(CompileShare::of(2, 8, Some(2)).is_err(), "every slot");
        assert!(CompileShare::of(4, 8, Some(0)).is_err());
        assert_eq!(CompileShare::of(1, 0, Some(1)).unwrap().admitted, 1);
    }

    #[tokio::test]
    async fn a_tenant_past_its_share_is_refused_and_others_are_not() {
        let shares = CompileShares::new(Some(CompileShare {
            running: 1,
            admitted: 2,
        }));
        let (acme, globex) = (tenant("acme"), tenant("globex"));
        let first = shares.charge(&acme).await.unwrap();
        // The second waits for acme's one turn; the third is refused at once.
        let second = {
            let shares = &shares;
            let acme = acme.clone();
            async move { shares.charge(&acme).await }
        };
        tokio::pin!(second);
        assert!(futures_poll_once(second.as_mut()).await.is_none(), "waits");
        assert_eq!(shares.admitted(&acme), 2);
        assert!(matches!(
            shares.charge(&acme).await,
            Err(CompileError::Overloaded)
        ));
        let other = shares.charge(&globex).await.unwrap();
        drop(first);
        let second = second.await.unwrap();
        drop((second, other));
        assert_eq!(shares.admitted(&acme), 0, "every place given back");
        assert!(shares.tenants.lock().unwrap().is_empty(), "and forgotten");
    }

    #[tokio::test]
    async fn a_cancelled_wait_gives_its_place_back() {
        let shares = CompileShares::new(Some(CompileShare {
            running: 1,
            admitted: 2,
        }));
        let acme = tenant("acme");
        let held = shares.charge(&acme).await.unwrap();
        let waiting = shares.charge(&acme);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), waiting)
                .await
                .is_err()
        );
        assert_eq!(shares.admitted(&acme), 1);
        drop(held);
        assert_eq!(shares.admitted(&acme), 0);
    }

    /// Polls `future` once: `Some` if it finished.
    async fn futures_poll_once<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
        let mut future = future;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
                std::task::Poll::Ready(output) => Some(output),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
