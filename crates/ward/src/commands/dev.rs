//! `ward dev` (to be written).

use super::CmdResult;

/// Arguments of `ward dev`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `ward dev`.
pub fn main(args: Args) -> CmdResult {
    let _ = args;
    Err("not implemented yet".into())
}
