//! `ward outbound`: one outbound tunnel from flags (plaintext in on loopback, mTLS out
//! to `--upstream`, whose SPIFFE ID must match `--expect`). Same config types as
//! `ward run`.

use super::inbound::Common;
use super::CmdResult;
use crate::config::{Config, Outbound, OutboundMode};
use crate::policy::{IdPattern, Policy};

/// Arguments of `ward outbound`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Loopback address the app connects to (e.g. 127.0.0.1:9001).
    #[arg(long)]
    pub listen: String,
    /// Accept plaintext on a non-loopback --listen address.
    #[arg(long)]
    pub unsafe_listen: bool,
    /// The upstream's host:port (usually another ward's inbound listener).
    #[arg(long)]
    pub upstream: String,
    /// Server IDs or patterns accepted from the upstream (any match).
    #[arg(long, num_args = 1.., required = true)]
    pub expect: Vec<String>,
    /// The listener's name in metrics and logs.
    #[arg(long, default_value = "outbound")]
    pub name: String,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `ward outbound`.
pub fn main(args: Args) -> CmdResult {
    let listen = crate::config::parse_plaintext_listen(&args.listen, args.unsafe_listen)?;
    let upstream = crate::config::parse_upstream(&args.upstream)?;
    let expect = args
        .expect
        .iter()
        .map(|s| IdPattern::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let config = Config {
        identity: args.common.identity(),
        admin: args.common.admin()?,
        policy_file: None,
        inbound: vec![],
        outbound: vec![Outbound {
            name: args.name,
            listen,
            mode: OutboundMode::Tunnel { upstream, expect },
        }],
        limits: args.common.limits(),
    };
    super::run::runtime()?.block_on(super::run::serve(config, Policy::default()))
}
