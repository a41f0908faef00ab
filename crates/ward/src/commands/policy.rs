//! `ward policy check`: dry-runs one decision against a policy file and prints it,
//! `allow (rule NAME)` / `deny (rule NAME)` / `deny (no rule matched: default deny)`.
//! Exit status: 0 allow, 1 deny, 2 error (bad file, bad ID).

use std::path::PathBuf;
use std::process::ExitCode;

use ward_spiffe::SpiffeId;

use super::CmdResult;
use crate::config::Config;
use crate::policy::{Policy, Request};

/// `ward policy` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Dry-run a decision: prints allow/deny and the deciding rule.
    Check(CheckArgs),
}

/// Arguments of `ward policy check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The policy file (default: the policy_file of --config).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// A config file whose policy_file is checked when --policy is not given.
    #[arg(long, env = "WARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The inbound listener's name.
    #[arg(long)]
    listener: String,
    /// The peer's SPIFFE ID.
    #[arg(long, value_name = "SPIFFE_ID")]
    id: String,
    /// HTTP method (http listeners).
    #[arg(long)]
    method: Option<String>,
    /// HTTP path (http listeners).
    #[arg(long)]
    path: Option<String>,
}

/// Runs a `ward policy` subcommand.
pub fn main(cmd: PolicyCommand) -> CmdResult {
    match cmd {
        PolicyCommand::Check(args) => check(args),
    }
}

fn check(args: CheckArgs) -> CmdResult {
    let path = match (args.policy, args.config) {
        (Some(path), _) => path,
        (None, Some(config)) => Config::load(&config)?
            .policy_file
            .ok_or_else(|| format!("{} has no policy_file", config.display()))?,
        (None, None) => {
            return Err("give --policy FILE (or --config FILE with a policy_file)".into())
        }
    };
    let policy = Policy::load(&path)?;
    let peer = SpiffeId::new(&args.id).map_err(|e| format!("--id {:?}: {e}", args.id))?;
    let decision = policy.decide(&Request {
        listener: &args.listener,
        peer: &peer,
        method: args.method.as_deref(),
        path: args.path.as_deref(),
    });
    println!("{decision}");
    Ok(if decision.allow {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
