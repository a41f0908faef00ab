//! `ward validate` (to be written).

use super::CmdResult;

/// Arguments of `ward validate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `ward validate`.
pub fn main(args: Args) -> CmdResult {
    let _ = args;
    Err("not implemented yet".into())
}
