//! `ward outbound` (to be written).

use super::CmdResult;

/// Arguments of `ward outbound`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `ward outbound`.
pub fn main(args: Args) -> CmdResult {
    let _ = args;
    Err("not implemented yet".into())
}
