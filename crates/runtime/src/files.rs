//! Writable file grants (`"mode": "rw"`): a per-call byte budget over every way a guest can
//! put bytes or entries under a writable directory.
//!
//! WASI itself confines paths to the preopen and refuses writes under read-only grants. What it
//! cannot do is bound how much a guest writes, so the linker wraps the filesystem functions
//! that write (see [`shadow_filesystem`]): positional writes, write and append streams,
//! `set-size`, and the creation of files, directories and hard links (each new entry costs
//! [`ENTRY_BYTES`]). A write past a file's end is charged the file's growth, its hole included:
//! a sparse file costs no disk until something reads or copies it, and then all of it. Symbolic links are refused outright under every grant: a link pointing out
//! of the directory is harmless to the guest (WASI will not follow it) but not to the host's own
//! programs that later read the directory.

use crate::sandbox::Sandbox;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::{
    DynOutputStream, FsError, OutputStream, Pollable, StreamError, StreamResult,
};

/// What creating one file, directory or hard link costs against the budget, in bytes (one
/// filesystem block): a guest cannot fill a disk's inodes with empty files for free.
pub const ENTRY_BYTES: u64 = 4096;

/// The WASI filesystem interface whose writing functions are wrapped (the version wasmtime-wasi
/// links; guests importing any 0.2.x version are served by it).
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Bytes one call may still write under its writable directory. Shared by the call's store and
/// the file streams it opened.
#[derive(Debug, Clone)]
pub(crate) struct WriteBudget {
    inner: Arc<BudgetInner>,
}

#[derive(Debug)]
struct BudgetInner {
    cap: u64,
    remaining: AtomicU64,
    /// A write was refused because the budget was spent.
    refused: AtomicBool,
}

impl WriteBudget {
    pub(crate) fn new(cap: u64) -> Self {
        WriteBudget {
            inner: Arc::new(BudgetInner {
                cap,
                remaining: AtomicU64::new(cap),
                refused: AtomicBool::new(false),
            }),
        }
    }

    /// The call's cap.
    pub(crate) fn cap(&self) -> u64 {
        self.inner.cap
    }

    /// Starts the next call of a reused instance with the whole cap.
    pub(crate) fn restart(&self) {
        self.inner
            .remaining
            .store(self.inner.cap, Ordering::Relaxed);
        self.inner.refused.store(false, Ordering::Relaxed);
    }

    fn remaining(&self) -> u64 {
        self.inner.remaining.load(Ordering::Relaxed)
    }

    /// Takes `bytes` from the budget, or refuses (and remembers the refusal) if fewer remain.
    fn take(&self, bytes: u64) -> bool {
        let taken = self
            .inner
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(bytes)
            })
            .is_ok();
        if !taken {
            self.inner.refused.store(true, Ordering::Relaxed);
        }
        taken
    }

    /// Gives back bytes taken for an operation that then failed.
    fn refund(&self, bytes: u64) {
        self.inner.remaining.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Whether a write was refused since the call started; clears it.
    pub(crate) fn take_refused(&self) -> bool {
        self.inner.refused.swap(false, Ordering::Relaxed)
    }
}

/// The error a write past the budget gets from a stream.
fn spent() -> StreamError {
    StreamError::LastOperationFailed(wasmtime::Error::new(std::io::Error::new(
        std::io::ErrorKind::QuotaExceeded,
        "the file grant's write cap is reached",
    )))
}

/// A file's write or append stream that charges every byte to the call's budget.
struct CappedStream {
    inner: DynOutputStream,
    budget: WriteBudget,
}

impl OutputStream for CappedStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if !self.budget.take(len) {
            return Err(spent());
        }
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        let permit = self.inner.check_write()?;
        let left = self.budget.remaining();
        if left == 0 && permit > 0 {
            self.budget.take(1);
            return Err(spent());
        }
        Ok(permit.min(usize::try_from(left).unwrap_or(usize::MAX)))
    }

    fn cancel<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        self.inner.cancel()
    }
}

impl Pollable for CappedStream {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        self.inner.ready()
    }
}

/// A borrowed handle to the same descriptor, for a second host call on it.
fn again(fd: &Resource<Descriptor>) -> Resource<Descriptor> {
    Resource::new_borrow(fd.rep())
}

/// The call's budget, if the descriptor is writable and the call has one. Descriptors under
/// read-only grants answer `None` and WASI refuses their writes itself.
fn budget_for(
    store: &mut StoreContextMut<'_, Sandbox>,
    fd: &Resource<Descriptor>,
) -> Option<WriteBudget> {
    let budget = store.data().file_budget.clone()?;
    let writable = match store.data_mut().filesystem().table.get(fd).ok()? {
        Descriptor::File(file) => !file.perms.write_not_permitted(),
        Descriptor::Dir(dir) => !dir.perms.write_not_permitted(),
    };
    writable.then_some(budget)
}

/// An `FsError` as the guest sees it: its error code, or a trap for a host failure.
fn code<T>(result: Result<T, FsError>) -> wasmtime::Result<Result<T, ErrorCode>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(error) => error.downcast().map(Err),
    }
}

/// Bytes written so far as a budget charge (saturating).
fn charge(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// What writing `bytes` at `offset` of a file of `size` bytes costs: the bytes, or the file's
/// growth (`offset + bytes - size`, its hole included) when that is more.
fn write_cost(size: u64, offset: u64, bytes: u64) -> u64 {
    let growth = offset.saturating_add(bytes).saturating_sub(size);
    bytes.max(growth)
}

type Reply<T> = wasmtime::Result<(Result<T, ErrorCode>,)>;
type HostFuture<'a, T> = Box<dyn Future<Output = Reply<T>> + Send + 'a>;

/// Runs `operation` with `bytes` taken from `budget` first (refused with `quota` when they are
/// not there), and gives them back if it fails. Without a budget it just runs.
async fn charged<T>(
    budget: Option<WriteBudget>,
    bytes: u64,
    operation: impl Future<Output = wasmtime::Result<Result<T, ErrorCode>>>,
) -> Reply<T> {
    if let Some(budget) = &budget
        && !budget.take(bytes)
    {
        return Ok((Err(ErrorCode::Quota),));
    }
    let result = operation.await?;
    if let (Some(budget), Err(_)) = (&budget, &result) {
        budget.refund(bytes);
    }
    Ok((result,))
}

/// Wraps the writing functions of `wasi:filesystem/types` in `linker` (which already holds
/// WASI's own) so that every write under a writable grant is charged to the call's budget.
pub(crate) fn shadow_filesystem(linker: &mut Linker<Sandbox>) -> anyhow::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;
    types.func_wrap_async(
        "[method]descriptor.write",
        |mut store: StoreContextMut<'_, Sandbox>,
         (fd, buf, offset): (Resource<Descriptor>, Vec<u8>, u64)|
         -> HostFuture<'_, u64> {
            Box::new(async move {
                let budget = budget_for(&mut store, &fd);
                let mut view = store.data_mut().filesystem();
                let len = charge(buf.len());
                // Written bytes, or the file's growth when more: a write far past the end
                // leaves a hole that is as much the file's as its bytes.
                let mut size = u64::MAX;
                if budget.is_some() {
                    size = match code(HostDescriptor::stat(&mut view, again(&fd)).await)? {
                        Ok(stat) => stat.size,
                        Err(error) => return Ok((Err(error),)),
                    };
                }
                let cost = |bytes: u64| write_cost(size, offset, bytes);
                if let Some(budget) = &budget
                    && !budget.take(cost(len))
                {
                    return Ok((Err(ErrorCode::Quota),));
                }
                let written = code(HostDescriptor::write(&mut view, fd, buf, offset).await)?;
                if let Some(budget) = &budget {
                    let used = written.as_ref().map_or(0, |written| cost(*written));
                    budget.refund(cost(len).saturating_sub(used));
                }
                Ok((written,))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.write-via-stream",
        |mut store: StoreContextMut<'_, Sandbox>,
         (fd, offset): (Resource<Descriptor>, u64)|
         -> HostFuture<'_, Resource<DynOutputStream>> {
            Box::new(async move {
                let budget = budget_for(&mut store, &fd);
                let mut view = store.data_mut().filesystem();
                // A stream that starts past the end leaves a hole: charged when it opens (each
                // byte it writes is charged as it goes).
                let mut hole = 0;
                if budget.is_some() {
                    hole = match code(HostDescriptor::stat(&mut view, again(&fd)).await)? {
                        Ok(stat) => offset.saturating_sub(stat.size),
                        Err(error) => return Ok((Err(error),)),
                    };
                }
                if let Some(budget) = &budget
                    && !budget.take(hole)
                {
                    return Ok((Err(ErrorCode::Quota),));
                }
                let stream = code(HostDescriptor::write_via_stream(&mut view, fd, offset))?;
                if let (Some(budget), Err(_)) = (&budget, &stream) {
                    budget.refund(hole);
                }
                Ok((capped(&mut store, stream, budget)?,))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.append-via-stream",
        |mut store: StoreContextMut<'_, Sandbox>,
         (fd,): (Resource<Descriptor>,)|
         -> HostFuture<'_, Resource<DynOutputStream>> {
            Box::new(async move {
                let budget = budget_for(&mut store, &fd);
                let mut view = store.data_mut().filesystem();
                let stream = code(HostDescriptor::append_via_stream(&mut view, fd))?;
                Ok((capped(&mut store, stream, budget)?,))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.set-size",
        |mut store: StoreContextMut<'_, Sandbox>,
         (fd, size): (Resource<Descriptor>, u64)|
         -> HostFuture<'_, ()> {
            Box::new(async move {
                let budget = budget_for(&mut store, &fd);
                let mut view = store.data_mut().filesystem();
                let mut growth = 0;
                if budget.is_some() {
                    let current = match code(HostDescriptor::stat(&mut view, again(&fd)).await)? {
                        Ok(stat) => stat.size,
                        Err(error) => return Ok((Err(error),)),
                    };
                    growth = size.saturating_sub(current);
                }
                charged(budget, growth, async {
                    code(HostDescriptor::set_size(&mut view, fd, size).await)
                })
                .await
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store: StoreContextMut<'_, Sandbox>,
         (fd, path_flags, path, open_flags, flags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )|
         -> HostFuture<'_, Resource<Descriptor>> {
            Box::new(async move {
                let budget =
                    budget_for(&mut store, &fd).filter(|_| open_flags.contains(OpenFlags::CREATE));
                let mut view = store.data_mut().filesystem();
                let mut charged = false;
                if let Some(budget) = &budget {
                    let exists = HostDescriptor::stat_at(
                        &mut view,
                        again(&fd),
                        PathFlags::empty(),
                        path.clone(),
                    )
                    .await
                    .is_ok();
                    if !exists {
                        if !budget.take(ENTRY_BYTES) {
                            return Ok((Err(ErrorCode::Quota),));
                        }
                        charged = true;
                    }
                }
                let opened = code(
                    HostDescriptor::open_at(&mut view, fd, path_flags, path, open_flags, flags)
                        .await,
                )?;
                if let (Some(budget), true, Err(_)) = (&budget, charged, &opened) {
                    budget.refund(ENTRY_BYTES);
                }
                Ok((opened,))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.create-directory-at",
        |mut store: StoreContextMut<'_, Sandbox>,
         (fd, path): (Resource<Descriptor>, String)|
         -> HostFuture<'_, ()> {
            Box::new(async move {
                let budget = budget_for(&mut store, &fd);
                let mut view = store.data_mut().filesystem();
                charged(budget, ENTRY_BYTES, async {
                    code(HostDescriptor::create_directory_at(&mut view, fd, path).await)
                })
                .await
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.link-at",
        |mut store: StoreContextMut<'_, Sandbox>,
         (fd, path_flags, old_path, new_fd, new_path): (
            Resource<Descriptor>,
            PathFlags,
            String,
            Resource<Descriptor>,
            String,
        )|
         -> HostFuture<'_, ()> {
            Box::new(async move {
                let budget = budget_for(&mut store, &new_fd);
                let mut view = store.data_mut().filesystem();
                charged(budget, ENTRY_BYTES, async {
                    code(
                        HostDescriptor::link_at(
                            &mut view, fd, path_flags, old_path, new_fd, new_path,
                        )
                        .await,
                    )
                })
                .await
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.symlink-at",
        |_store: StoreContextMut<'_, Sandbox>,
         (_fd, _target, _path): (Resource<Descriptor>, String, String)|
         -> HostFuture<'_, ()> {
            Box::new(async move { Ok((Err(ErrorCode::NotPermitted),)) })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Replaces a new file stream in the call's table by one charged to `budget` (when there is
/// one).
fn capped(
    store: &mut StoreContextMut<'_, Sandbox>,
    stream: Result<Resource<DynOutputStream>, ErrorCode>,
    budget: Option<WriteBudget>,
) -> wasmtime::Result<Result<Resource<DynOutputStream>, ErrorCode>> {
    let (Ok(stream), Some(budget)) = (&stream, budget) else {
        return Ok(stream);
    };
    let table = store.data_mut().filesystem().table;
    let inner = table.delete(Resource::<DynOutputStream>::new_own(stream.rep()))?;
    let wrapped: DynOutputStream = Box::new(CappedStream { inner, budget });
    Ok(Ok(table.push(wrapped)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_costs_its_bytes_or_the_files_growth() {
        // Overwriting inside the file: the bytes.
        assert_eq!(write_cost(100, 10, 20), 20);
        // Appending at the end: the bytes.
        assert_eq!(write_cost(100, 100, 20), 20);
        // Straddling the end: still the bytes (the growth, 10, is less).
        assert_eq!(write_cost(100, 90, 20), 20);
        // Three bytes at 1 TiB of an empty file: the whole growth.
        assert_eq!(write_cost(0, 1 << 40, 3), (1 << 40) + 3);
        // Offsets near the end of the range saturate rather than wrap.
        assert_eq!(write_cost(0, u64::MAX, 3), u64::MAX);
    }
}
