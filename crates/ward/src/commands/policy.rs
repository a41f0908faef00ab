//! `ward policy ...` (to be written).

use super::CmdResult;

/// `ward policy` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Dry-run a decision: prints allow/deny and the deciding rule.
    Check(CheckArgs),
}

/// Arguments of `ward policy check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

/// Runs a `ward policy` subcommand.
pub fn main(cmd: PolicyCommand) -> CmdResult {
    let _ = cmd;
    Err("not implemented yet".into())
}
