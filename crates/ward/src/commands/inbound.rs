//! `ward inbound` (to be written).

use super::CmdResult;

/// Arguments of `ward inbound`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `ward inbound`.
pub fn main(args: Args) -> CmdResult {
    let _ = args;
    Err("not implemented yet".into())
}
