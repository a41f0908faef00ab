//! `ward fetch` (to be written).

use super::CmdResult;

/// Arguments of `ward fetch`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `ward fetch`.
pub fn main(args: Args) -> CmdResult {
    let _ = args;
    Err("not implemented yet".into())
}
