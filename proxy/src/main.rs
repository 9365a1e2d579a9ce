//! The `pgrelay` command: parse arguments, validate the config (exit 64 on
//! any problem, before binding anything), then run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use pgrelay::Config;

mod cmd;

/// mimalloc's thread-local free lists: glibc malloc and free took about
/// 18,000 instructions of each client connection's 66,000 (callgrind).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for a bad config: sysexits' EX_USAGE, as the contract says.
const EXIT_BAD_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(name = "pgrelay", version, about = "PostgreSQL replication proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written (to stderr): `text` for people, `json`
    /// (one object per line, with the client's span fields) for log
    /// collectors. Which lines: `RUST_LOG` (e.g. `info`,
    /// `pgrelay=debug,pgrelay_health=info`); `info` when unset.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a config file and print every problem.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Start a local primary, replicas and the proxy; Ctrl-C removes it all.
    Demo(cmd::demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::Check { config } => match load(&config) {
            Ok(_) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => bad_config(&config, &e),
        },
        Command::Serve { config: path } => match load(&path) {
            Ok(config) => exit(cmd::serve::serve(config, path)),
            Err(e) => bad_config(&path, &e),
        },
        Command::Demo(args) => exit(cmd::demo::demo(args)),
    }
}

/// The config at `path`, and the state file it names readable: a corrupt
/// state file is reported (exit 64) like a bad key, not ignored.
fn load(path: &std::path::Path) -> Result<Config, pgrelay::config::ConfigError> {
    let config = Config::load(path)?;
    pgrelay::server::open_state_file(&config)
        .map_err(|e| pgrelay::config::ConfigError::single("failover.state_file", e.to_string()))?;
    Ok(config)
}

fn bad_config(path: &std::path::Path, e: &pgrelay::config::ConfigError) -> ExitCode {
    eprintln!("{}: invalid configuration", path.display());
    eprintln!("{e}");
    ExitCode::from(EXIT_BAD_CONFIG)
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgrelay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The default filter when `RUST_LOG` is not set.
const DEFAULT_LOG_FILTER: &str = "info";

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let (filter, bad) = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(text) if !text.trim().is_empty() => match EnvFilter::try_new(&text) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new(DEFAULT_LOG_FILTER), Some((text, e))),
        },
        _ => (EnvFilter::new(DEFAULT_LOG_FILTER), None),
    };
    // Colours only for a person at a terminal, not in a log file.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text if ansi => builder.init(),
        LogFormat::Text => builder.fmt_fields(pgrelay::log_fields::PlainFields).init(),
        LogFormat::Json => builder.json().init(),
    }
    if let Some((text, e)) = bad {
        tracing::warn!(rust_log = %text, error = %e,
            "RUST_LOG is not a valid filter; logging at {DEFAULT_LOG_FILTER}");
    }
}
