//! Command-line interface: `serve`, `run`, `check` (and registry clients).
//!
//! Exit codes: 0 success; 1 error (I/O, server unreachable, internal); 2 usage; 3 the
//! component was rejected (invalid, precompiled, incompatible world, too large). For `run` and
//! `invoke`, a call that ended in another outcome exits with its own code, see [`exit_code`].

mod admin;
mod author;
mod check;
mod client;
mod config;
mod grants;
mod local;
mod pipeline;
mod run;
mod runs;
mod telemetry;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use warden_runtime::Outcome;

/// Run untrusted WebAssembly components in a hard-limited sandbox.
#[derive(Parser)]
#[command(name = "warden", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "WARDEN_LOG_FORMAT")]
    log_format: telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

use telemetry::LogFormat;

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP server (default 127.0.0.1:8080, data in ./data).
    Serve(ServeArgs),
    /// Run a component's `run` export locally, with the server's runtime and defaults.
    Run(run::RunArgs),
    /// Tell which world a component implements, what it imports, and what would be denied.
    Check(check::CheckArgs),
    /// Upload a component to a server (compiled once, stored by digest).
    Push(client::PushArgs),
    /// Run a stored component on a server, by digest or name.
    Invoke(client::InvokeArgs),
    /// List a server's stored components.
    Ls(client::LsArgs),
    /// Manage tenants (secured mode, with the admin token).
    #[command(subcommand)]
    Tenant(admin::TenantCommand),
    /// Manage a tenant's API keys (secured mode, with the admin token).
    #[command(subcommand)]
    Key(admin::KeyCommand),
    /// Show a tenant's metered usage: calls, fuel, wall time, GB·s, by outcome.
    Usage(admin::UsageArgs),
    /// Show a component's capability grants (own and in effect), or narrow them (`--file`).
    Grants(grants::GrantsArgs),
    /// Store, list or delete the tenant's secrets (values are write-only).
    #[command(subcommand)]
    Secret(grants::SecretCommand),
    /// Create, list, show and run pipelines (on a server, or locally with `run --local`).
    #[command(subcommand)]
    Pipeline(pipeline::PipelineCommand),
    /// Start a plugin project at PATH, named after its last component, from a template
    /// (`--lang rust|js|python|c`, `--world …`).
    New(author::new::NewArgs),
    /// Build the plugin project in DIR (default `.`) into `dist/NAME.wasm`, and check it.
    Build(author::build::BuildArgs),
    /// Run the project's `tests/*.input` through its component and compare with
    /// `tests/*.expected` (exit 1 on a mismatch).
    Test(author::test::TestArgs),
    /// List or show a tenant's invocation records on a server.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Run a recorded call again locally (its component, input and limits) and compare.
    /// Exit 0 when the outcomes match, 4 when they differ.
    Replay(runs::ReplayArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (overrides the config file and WARDEN_LISTEN).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// TOML configuration file.
    #[arg(long, env = "WARDEN_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides the config file and WARDEN_DATA_DIR).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit (the admin token shows as `<set>`).
    #[arg(long)]
    print_config: bool,
    /// Allow open mode (no admin token) on an address other than loopback.
    #[arg(long)]
    insecure: bool,
}

/// Writes one line to stdout. A closed pipe (`warden check x.wasm | head -1`) ends the program
/// quietly with success instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format!($($arg)*).as_bytes(), true)
    };
}
pub(crate) use out;

/// Writes `bytes` (and a newline) to stdout; exits quietly if the reader has gone away.
pub(crate) fn write_stdout(bytes: &[u8], newline: bool) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(bytes)
        .and_then(|()| {
            if newline {
                stdout.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| stdout.flush());
    if let Err(error) = written {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {error}");
        std::process::exit(1);
    }
}

/// The guest configuration of `--set KEY=VALUE` flags.
pub(crate) fn guest_config(pairs: &[String]) -> anyhow::Result<warden_runtime::GuestConfig> {
    let mut values = std::collections::BTreeMap::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            anyhow::bail!("--set takes KEY=VALUE; got `{pair}`");
        };
        values.insert(key.to_owned(), value.to_owned());
    }
    Ok(warden_runtime::GuestConfig::new(values)?)
}

/// Exit code for the rejection of a component (invalid, incompatible, too large …).
pub(crate) const EXIT_REJECTED: u8 = 3;

/// Exit code of a call that ended with `outcome`: 0 only for `ok`.
///
/// | outcome | code |
/// |---|---|
/// | ok | 0 |
/// | guest_error | 10 |
/// | fuel_exhausted | 11 |
/// | timeout | 12 |
/// | memory_limit | 13 |
/// | stack_overflow | 14 |
/// | trap | 15 |
/// | output_limit | 16 |
/// | input_limit | 17 |
/// | cancelled | 18 |
pub(crate) fn exit_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Ok => 0,
        Outcome::GuestError => 10,
        Outcome::FuelExhausted => 11,
        Outcome::Timeout => 12,
        Outcome::MemoryLimit => 13,
        Outcome::StackOverflow => 14,
        Outcome::Trap => 15,
        Outcome::OutputLimit => 16,
        Outcome::InputLimit => 17,
        Outcome::Cancelled => 18,
    }
}

/// Parses the command line, sets up logging, runs the command.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs at info; one-shot commands only warn, since they print results themselves.
    let default_filter = match cli.command {
        Command::Serve(_) => "info,tower_http=warn",
        _ => "warn",
    };
    // `serve` exports spans when its configuration names a collector. A configuration that
    // does not load is reported by `serve` itself, after logging is up.
    let otlp_endpoint = match &cli.command {
        Command::Serve(args) => config::load(args.config.as_deref())
            .ok()
            .and_then(|config| config.telemetry.otlp_endpoint),
        _ => None,
    };
    let _telemetry = match telemetry::init(cli.log_format, default_filter, otlp_endpoint.as_deref())
    {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Serve(args) => serve(args).await.map(|()| 0),
        Command::Run(args) => run::run(args).await,
        Command::Check(args) => check::check(args).await,
        Command::Push(args) => client::push(args).await,
        Command::Invoke(args) => client::invoke(args).await,
        Command::Ls(args) => client::ls(args).await,
        Command::Tenant(command) => admin::tenant(command).await,
        Command::Key(command) => admin::key(command).await,
        Command::Usage(args) => admin::usage(args).await,
        Command::Pipeline(command) => pipeline::pipeline(command).await,
        Command::Grants(args) => grants::grants(args).await,
        Command::Secret(command) => grants::secret(command).await,
        Command::New(args) => author::new::new(args),
        Command::Build(args) => author::build::build(args).await,
        Command::Test(args) => author::test::test(args).await,
        Command::Runs(command) => runs::runs(command).await,
        Command::Replay(args) => runs::replay(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = config::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(data_dir) = args.data_dir {
        config.data_dir = data_dir;
    }
    config.insecure |= args.insecure;
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    if args.print_config {
        out!("{}", config::to_toml(&config)?.trim_end());
        return Ok(());
    }
    let scheme = if config.http.tls.is_some() {
        "https"
    } else {
        "http"
    };
    warden_server::serve(config, |address| {
        // One line on stdout, so scripts (and tests) can find a port chosen with `:0`.
        out!("warden listening on {scheme}://{address}");
    })
    .await
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command of the tree — walked from clap's own definition, so a new one cannot be
    /// missed — passes clap's consistency checks and answers `--help` (clap checks a
    /// command's definition only when it is parsed).
    #[test]
    fn every_command_parses() {
        let root = super::Cli::command();
        root.clone().debug_assert();
        fn walk(command: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
            for sub in command.get_subcommands() {
                let mut path = prefix.to_vec();
                path.push(sub.get_name().to_owned());
                walk(sub, &path, out);
                out.push(path);
            }
        }
        let mut commands = Vec::new();
        walk(&root, &[], &mut commands);
        for expected in [
            &["grants"][..],
            &["secret", "set"],
            &["pipeline", "run"],
            &["new"],
        ] {
            assert!(
                commands.iter().any(|path| path == expected),
                "{expected:?} is not in the tree: {commands:?}"
            );
        }
        for path in commands {
            let args = std::iter::once("warden".to_owned())
                .chain(path.iter().cloned())
                .chain(["--help".to_owned()]);
            let error = super::Cli::command()
                .try_get_matches_from(args)
                .expect_err("--help ends parsing");
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::DisplayHelp,
                "{path:?}: {error}"
            );
        }
    }
}
