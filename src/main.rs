//! The `warden` command: parse, set up logging, call [`cli::run`], map errors to exit codes.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
