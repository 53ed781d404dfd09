//! The connection budget: open connections in total and per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Counts open connections; [`ConnectionBudget::admit`] hands out slots released on drop.
pub(crate) struct ConnectionBudget {
    max: u32,
    per_address: u32,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: u32,
    by_address: HashMap<IpAddr, u32>,
}

/// One admitted connection; dropping it frees its place.
pub(crate) struct Slot {
    budget: Arc<ConnectionBudget>,
    address: IpAddr,
}

impl ConnectionBudget {
    pub(crate) fn new(max: u32, per_address: u32) -> Arc<ConnectionBudget> {
        Arc::new(ConnectionBudget {
            max,
            per_address,
            open: Mutex::new(Open::default()),
        })
    }

    /// A slot for a connection from `address`, unless the total or the address's share is full.
    pub(crate) fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max {
            return None;
        }
        let count = open.by_address.entry(address).or_default();
        if *count >= self.per_address {
            return None;
        }
        *count += 1;
        open.total += 1;
        Some(Slot {
            budget: Arc::clone(self),
            address,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    pub(crate) fn open(&self) -> u32 {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .budget
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_total_and_each_address_are_capped_and_slots_come_back() {
        let budget = ConnectionBudget::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = budget.admit(a).unwrap();
        let _second = budget.admit(a).unwrap();
        assert!(budget.admit(a).is_none(), "per address");
        let _third = budget.admit(b).unwrap();
        assert!(budget.admit(b).is_none(), "in total");
        drop(first);
        assert_eq!(budget.open(), 2);
        assert!(budget.admit(b).is_some());
    }
}
