//! The `pgrelay` command: parse arguments, validate the config (exit 64 on
//! any problem, before binding anything), then run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use pgrelay::Config;

mod cmd;

/// Exit status for a bad config: sysexits' EX_USAGE, as the contract says.
const EXIT_BAD_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(name = "pgrelay", version, about = "PostgreSQL replication proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    init_tracing();
    match Cli::parse().command {
        Command::Check { config } => match Config::load(&config) {
            Ok(_) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => bad_config(&config, &e),
        },
        Command::Serve { config: path } => match Config::load(&path) {
            Ok(config) => exit(cmd::serve::serve(config)),
            Err(e) => bad_config(&path, &e),
        },
        Command::Demo(args) => exit(cmd::demo::demo(args)),
    }
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

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
