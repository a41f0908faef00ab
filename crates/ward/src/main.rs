//! `ward`: the SPIFFE sidecar binary. Each subcommand lives in its own module under
//! `commands/`; this file only parses the command line and dispatches.
#![forbid(unsafe_code)]

mod commands;
mod logging;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ward gives unmodified services mutual-TLS identity from the SPIFFE Workload API.
#[derive(Debug, Parser)]
#[command(name = "ward", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local SPIFFE authority serving the Workload API (development, tests).
    Dev(commands::dev::Args),
    /// Print (or write) what the Workload API hands this process.
    Fetch(commands::fetch::Args),
    /// Check a certificate against the X509-SVID rules of the SPIFFE standard.
    Inspect(commands::inspect::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let result = match cli.command {
        Command::Dev(args) => commands::dev::main(args),
        Command::Fetch(args) => commands::fetch::main(args),
        Command::Inspect(args) => commands::inspect::main(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ward: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
