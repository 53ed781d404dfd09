//! The `warden` command: parse, set up logging, call [`cli::run`], map errors to exit codes.

mod cli;

use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: a request allocates and frees many small objects across
/// two worker threads, and mimalloc's per-thread free lists cut that cost (measured in
/// `docs/BENCHMARKS.md`, "Server CPU per request").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
