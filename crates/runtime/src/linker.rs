//! The one `Linker` of the process: WASI p2, `wasi:http` (network denied), and Warden's host
//! interfaces, built once at start-up and shared by every component.

use crate::capture::LogLevel;
use crate::config::MAX_CONFIG_KEY_BYTES;
use crate::sandbox::Sandbox;
use crate::world::{PLUGIN_VERSIONS, RUNNER_VERSIONS};
use wasmtime::component::{ComponentType, Lift, Linker, WasmStr};
use wasmtime::{Engine, StoreContextMut};

/// Builds the linker every component is instantiated against.
pub(crate) fn build_linker(engine: &Engine) -> anyhow::Result<Linker<Sandbox>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    crate::files::shadow_filesystem(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    for version in RUNNER_VERSIONS {
        let mut host = linker.instance(&format!("local:main/host@{version}"))?;
        host.func_wrap("log", |store, (message,): (WasmStr,)| {
            guest_log(store, LogLevel::Info, &message)
        })?;
    }
    for version in PLUGIN_VERSIONS {
        let mut plugin = linker.instance(&format!("warden:plugin/host@{version}"))?;
        plugin.func_wrap("log", |store, (level, message): (Level, WasmStr)| {
            guest_log(store, level.into(), &message)
        })?;
        if version != PLUGIN_VERSIONS[0] {
            plugin.func_wrap("config", |store, (key,): (WasmStr,)| {
                guest_config(store, &key).map(|value| (value,))
            })?;
        }
    }
    Ok(linker)
}

/// `warden:plugin/host.level`, as the guest passes it.
#[derive(ComponentType, Lift, Clone, Copy)]
#[allow(
    dead_code,
    reason = "variants are constructed by the Lift derive from guest values"
)]
#[component(enum)]
#[repr(u8)]
enum Level {
    #[component(name = "trace")]
    Trace,
    #[component(name = "debug")]
    Debug,
    #[component(name = "info")]
    Info,
    #[component(name = "warn")]
    Warn,
    #[component(name = "error")]
    Error,
}

impl From<Level> for LogLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        }
    }
}

/// The `log` host function. The text stays in guest memory until it is known to be kept, and
/// only the kept prefix is copied, so a 64 MiB line costs the host at most the line cap.
fn guest_log(
    mut store: StoreContextMut<'_, Sandbox>,
    level: LogLevel,
    message: &WasmStr,
) -> wasmtime::Result<()> {
    if store.data().logs.is_full() {
        store.data_mut().logs.drop_line();
        return Ok(());
    }
    // Invalid UTF-8 from the guest is an error here, which traps the call.
    let text = message.to_str(&store)?;
    // Copy a little more than the cap (one UTF-8 character) so the log buffer still sees that
    // the line was longer and marks the cut.
    let kept =
        crate::capture::prefix(&text, store.data().logs.line_cap().saturating_add(4)).to_owned();
    store.data_mut().log(level, &kept);
    Ok(())
}

/// The `config` host function: the value configured for `key`, or none. The key is read in
/// place (never copied), and a key longer than any configured key can be is answered `none`.
fn guest_config(
    store: StoreContextMut<'_, Sandbox>,
    key: &WasmStr,
) -> wasmtime::Result<Option<String>> {
    // Invalid UTF-8 from the guest is an error here, which traps the call.
    let key = key.to_str(&store)?;
    if key.len() > MAX_CONFIG_KEY_BYTES {
        return Ok(None);
    }
    Ok(store.data().config.get(&key).map(str::to_owned))
}
