//! `ward inspect` (to be written).

use super::CmdResult;

/// Arguments of `ward inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `ward inspect`.
pub fn main(args: Args) -> CmdResult {
    let _ = args;
    Err("not implemented yet".into())
}
