//! The records a guest returns (`list<list<u8>>` from `process` and `finish`), lifted under the
//! call's output caps: their count and their bytes are checked before the host allocates any of
//! them.
//!
//! Why a `Lift` of Warden's own: wasmtime lifts a call's result inside `call_async` and then
//! runs the guest's post-return function (which frees the result's memory) before returning,
//! so the records must be copied during the lift; a `WasmList` kept past `call_async` would be
//! read after the guest freed it. But wasmtime's `Lift for Vec<Vec<u8>>` sizes the outer vector
//! from the guest's length (24 bytes per record, bounded only by the hostcall fuel, i.e. the
//! guest's memory): two million empty records from 16 MB of zeroed guest memory cost the host
//! 48 MB before any check after the call could run. [`Records`] has the same canonical ABI
//! (wasmtime type-checks it as `list<list<u8>>` and lifts each record), but first reads the
//! list's length and its records' lengths in guest memory, and refuses past
//! `max_output_records` or `max_output_bytes` (each record costing
//! [`RECORD_OVERHEAD_BYTES`] more) without allocating.
//!
//! A lift sees only wasmtime's `LiftContext`, not the store, so the caps reach it through a
//! thread-local that [`under_caps`] sets around every poll of the call's future: the lift
//! runs synchronously inside such a poll (on the thread polling it, wherever the call moved).
//! A lift with no caps in scope fails the call instead of lifting unbounded.

use crate::limits::{Limits, RECORD_OVERHEAD_BYTES};
use std::cell::Cell;
use std::future::Future;
use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext, bad_type_info,
};
use wasmtime::component::{ComponentType, Lift};
use wasmtime::{bail, format_err};

/// Bytes of one record's slot in the guest's list: a 32-bit pointer and a 32-bit length.
const SLOT_BYTES: usize = 8;
/// Alignment of the guest's list of slots.
const SLOT_ALIGN: usize = 4;

/// What one call may return as records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutputCaps {
    max_records: u64,
    max_bytes: u64,
}

impl OutputCaps {
    pub(crate) fn of(limits: &Limits) -> Self {
        OutputCaps {
            max_records: limits.max_output_records,
            max_bytes: limits.max_output_bytes,
        }
    }
}

thread_local! {
    /// The caps of the call being polled on this thread, if any.
    static CAPS: Cell<Option<OutputCaps>> = const { Cell::new(None) };
}

/// Puts `caps` in force on this thread until dropped (restoring what was there).
struct InScope(Option<OutputCaps>);

impl InScope {
    fn enter(caps: OutputCaps) -> Self {
        InScope(CAPS.replace(Some(caps)))
    }
}

impl Drop for InScope {
    fn drop(&mut self) {
        CAPS.set(self.0);
    }
}

/// Runs `call` (a `call_async` that returns [`Records`]) with `caps` in force during each of
/// its polls.
pub(crate) async fn under_caps<F: Future>(caps: OutputCaps, call: F) -> F::Output {
    let mut call = std::pin::pin!(call);
    std::future::poll_fn(|cx| {
        let _scope = InScope::enter(caps);
        call.as_mut().poll(cx)
    })
    .await
}

/// A guest's `list<list<u8>>`, copied when within the caps, else only measured.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Records {
    /// Within both caps: the records.
    Kept(Vec<Vec<u8>>),
    /// Past a cap: nothing was copied.
    Refused(Refusal),
}

/// Why records were refused, with what the guest asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// More records than `max_output_records`.
    #[error("the guest returned {count} records; the record limit (max_output_records) is {max}")]
    TooMany {
        /// Records returned.
        count: u64,
        /// The cap.
        max: u64,
    },
    /// More bytes, with each record's overhead, than `max_output_bytes`.
    #[error(
        "the guest returned {count} records of {bytes} bytes, {charged} bytes with {overhead} \
         bytes per record; the output limit (max_output_bytes) is {max} bytes",
        overhead = RECORD_OVERHEAD_BYTES
    )]
    TooLarge {
        /// Records returned.
        count: u64,
        /// Their bytes.
        bytes: u64,
        /// Their bytes plus the overhead of each.
        charged: u64,
        /// The cap.
        max: u64,
    },
}

// SAFETY: `Records` has exactly the canonical ABI of `Vec<Vec<u8>>` (a pointer and a length,
// lowered as two `ValRaw`s), and type-checks only against `list<list<u8>>`.
#[allow(unsafe_code)]
unsafe impl ComponentType for Records {
    type Lower = <Vec<Vec<u8>> as ComponentType>::Lower;

    const ABI: CanonicalAbiInfo = <Vec<Vec<u8>> as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <Vec<Vec<u8>> as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: both lifts read the list's pointer and length as the canonical ABI lays them out
// (as wasmtime's own list lift does), check them against guest memory before any read, and
// lift each record with wasmtime's `Lift for Vec<u8>`.
#[allow(unsafe_code)]
unsafe impl Lift for Records {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        let [ptr, len] = src;
        lift(cx, ty, ptr.get_u32(), len.get_u32())
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let (ptr, len) = pointer_pair(bytes).ok_or_else(|| format_err!("short list slot"))?;
        lift(cx, ty, ptr, len)
    }
}

/// A canonical-ABI pointer and length (two little-endian `u32`s).
fn pointer_pair(slot: &[u8]) -> Option<(u32, u32)> {
    let ptr = slot.get(..4)?.try_into().ok()?;
    let len = slot.get(4..8)?.try_into().ok()?;
    Some((u32::from_le_bytes(ptr), u32::from_le_bytes(len)))
}

/// Lifts the list at `ptr` of `count` records, after checking both caps.
fn lift(
    cx: &mut LiftContext<'_>,
    ty: InterfaceType,
    ptr: u32,
    count: u32,
) -> wasmtime::Result<Records> {
    let Some(caps) = CAPS.get() else {
        bail!("records lifted outside a call's output caps (a bug in Warden)");
    };
    let element = match ty {
        InterfaceType::List(list) => cx.types[list].element,
        _ => bad_type_info(),
    };
    let memory = cx.memory();
    let (ptr, len) = (ptr as usize, count as usize);
    // The checks wasmtime makes for every list, before anything is read.
    let slots = len
        .checked_mul(SLOT_BYTES)
        .and_then(|size| memory.get(ptr..)?.get(..size))
        .ok_or_else(|| format_err!("list pointer/length out of bounds of memory"))?;
    if ptr % SLOT_ALIGN != 0 {
        bail!("list pointer is not aligned");
    }
    if let Some(refusal) = measure(slots, caps) {
        return Ok(Records::Refused(refusal));
    }
    // As wasmtime's own list lift charges the hostcall fuel for the vector it is about to hold.
    cx.consume_fuel_array(len, std::mem::size_of::<Vec<u8>>())?;
    let mut records = Vec::with_capacity(len);
    for slot in slots.chunks_exact(SLOT_BYTES) {
        records.push(<Vec<u8> as Lift>::linear_lift_from_memory(
            cx, element, slot,
        )?);
    }
    Ok(Records::Kept(records))
}

/// Why `slots` (a guest's list of record slots, in bounds) are past `caps`, if they are. Reads
/// at most `max_records` slots and allocates nothing.
fn measure(slots: &[u8], caps: OutputCaps) -> Option<Refusal> {
    let count = (slots.len() / SLOT_BYTES) as u64;
    if count > caps.max_records {
        return Some(Refusal::TooMany {
            count,
            max: caps.max_records,
        });
    }
    let bytes: u64 = slots
        .chunks_exact(SLOT_BYTES)
        .filter_map(pointer_pair)
        .map(|(_, len)| u64::from(len))
        .sum();
    let charged = bytes.saturating_add(count.saturating_mul(RECORD_OVERHEAD_BYTES));
    (charged > caps.max_bytes).then_some(Refusal::TooLarge {
        count,
        bytes,
        charged,
        max: caps.max_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Poll;

    fn slots(lens: &[u32]) -> Vec<u8> {
        lens.iter()
            .flat_map(|len| [0u32.to_le_bytes(), len.to_le_bytes()].concat())
            .collect()
    }

    const CAPS_10_RECORDS_200_BYTES: OutputCaps = OutputCaps {
        max_records: 10,
        max_bytes: 200,
    };

    #[test]
    fn empty_records_cost_their_overhead() {
        let caps = CAPS_10_RECORDS_200_BYTES;
        // Ten empty records: 160 bytes of overhead, within 200.
        assert_eq!(measure(&slots(&[0; 10]), caps), None);
        // Eleven: one too many, whatever their size.
        assert_eq!(
            measure(&slots(&[0; 11]), caps),
            Some(Refusal::TooMany { count: 11, max: 10 })
        );
        // Ten records of 5 bytes: 50 + 160 = 210 > 200.
        assert_eq!(
            measure(&slots(&[5; 10]), caps),
            Some(Refusal::TooLarge {
                count: 10,
                bytes: 50,
                charged: 210,
                max: 200
            })
        );
        assert_eq!(measure(&slots(&[40, 0]), caps), None, "40 + 32 bytes");
        let huge = measure(&slots(&[u32::MAX; 3]), caps).expect("refused");
        assert!(huge.to_string().contains("max_output_bytes"), "{huge}");
    }

    #[test]
    fn the_caps_are_in_force_only_inside_a_poll() {
        let caps = CAPS_10_RECORDS_200_BYTES;
        assert_eq!(CAPS.get(), None);
        let seen = poll_once(under_caps(caps, async { CAPS.get() }));
        assert_eq!(seen, Some(caps));
        assert_eq!(CAPS.get(), None, "restored after the poll");
    }

    /// Polls a future that never waits to completion.
    fn poll_once<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("the future waited"),
        }
    }
}
