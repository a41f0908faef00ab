//! `ward run` (to be written).

use super::CmdResult;

/// Arguments of `ward run`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `ward run`.
pub fn main(args: Args) -> CmdResult {
    let _ = args;
    Err("not implemented yet".into())
}
