//! `ward`: the SPIFFE sidecar binary. Each subcommand lives in its own module under
//! `commands/`; this file only parses the command line and dispatches.
#![forbid(unsafe_code)]

mod commands;
mod config;
mod logging;
mod policy;
mod proxy;
mod reload;

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
    /// Run the sidecar: every listener in the config file.
    Run(commands::run::Args),
    /// One inbound listener from flags (mTLS in, plaintext to a local target).
    Inbound(commands::inbound::Args),
    /// One outbound listener from flags (plaintext in on loopback, mTLS out).
    Outbound(commands::outbound::Args),
    /// Authority, echo app, inbound and outbound proxies in one process.
    Demo(commands::demo::Args),
    /// Check a config file and its policy without starting anything.
    Validate(commands::validate::Args),
    /// Policy tools.
    #[command(subcommand)]
    Policy(commands::policy::PolicyCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let result = match cli.command {
        Command::Dev(args) => commands::dev::main(args),
        Command::Fetch(args) => commands::fetch::main(args),
        Command::Inspect(args) => commands::inspect::main(args),
        Command::Run(args) => commands::run::main(args),
        Command::Inbound(args) => commands::inbound::main(args),
        Command::Outbound(args) => commands::outbound::main(args),
        Command::Demo(args) => commands::demo::main(args),
        Command::Validate(args) => commands::validate::main(args),
        Command::Policy(cmd) => commands::policy::main(cmd),
    };
    // Buffered log lines go out before anything else is printed or the process ends.
    logging::flush();
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ward: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
