//! `ward demo` (to be written).

use super::CmdResult;

/// Arguments of `ward demo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `ward demo`.
pub fn main(args: Args) -> CmdResult {
    let _ = args;
    Err("not implemented yet".into())
}
