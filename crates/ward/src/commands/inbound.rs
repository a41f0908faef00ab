//! `ward inbound`: one inbound listener from flags. Builds the same [`Config`] and
//! [`Policy`] a config file would (`Policy::allow_all_of` for `--allow`), then runs it
//! exactly like `ward run`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::CmdResult;
use crate::config::{Config, IdentityHeader, IdentitySource, Inbound, Limits, Protocol, Target};
use crate::policy::{IdPattern, Policy};

/// Where identity comes from and the settings every one-liner shares.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Workload API endpoint (default: SPIFFE_ENDPOINT_SOCKET). Not used with --cert: a
    /// sidecar's environment often carries SPIFFE_ENDPOINT_SOCKET anyway, so files win.
    #[arg(long, env = "SPIFFE_ENDPOINT_SOCKET")]
    pub socket: Option<String>,
    /// SVID certificate chain (PEM), instead of the Workload API; watched for changes.
    #[arg(long, requires_all = ["key", "bundle"])]
    pub cert: Option<PathBuf>,
    /// SVID private key (PEM, PKCS#8).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// CA bundle of the trust domain (PEM).
    #[arg(long, requires = "cert")]
    pub bundle: Option<PathBuf>,
    /// Admin listener (health, readiness, metrics, config); loopback unless --unsafe-admin.
    #[arg(long)]
    pub admin: Option<String>,
    /// Accept a non-loopback --admin address.
    #[arg(long)]
    pub unsafe_admin: bool,
    /// How long to wait for the first SVID.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub startup_timeout: Duration,
    /// TLS handshake timeout.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,
    /// Connect timeout to the target or upstream.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// Close a connection after this long without a byte in either direction.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// On SIGTERM, how long in-flight connections may take to finish.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Maximum concurrent connections on the listener.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
}

impl Common {
    /// The identity source these flags select.
    pub fn identity(&self) -> IdentitySource {
        match (&self.cert, &self.key, &self.bundle) {
            (Some(cert), Some(key), Some(bundle)) => IdentitySource::Files {
                cert: cert.clone(),
                key: key.clone(),
                bundle: bundle.clone(),
            },
            _ => IdentitySource::WorkloadApi {
                socket: self.socket.clone(),
                startup_timeout: self.startup_timeout,
            },
        }
    }
    /// The admin address, checked.
    pub fn admin(&self) -> Result<Option<SocketAddr>, crate::config::ConfigError> {
        self.admin
            .as_deref()
            .map(|a| crate::config::parse_plaintext_listen(a, self.unsafe_admin))
            .transpose()
    }
    /// The limits these flags select.
    pub fn limits(&self) -> Limits {
        Limits {
            handshake_timeout: self.handshake_timeout,
            connect_timeout: self.connect_timeout,
            idle_timeout: self.idle_timeout,
            drain_timeout: self.drain_timeout,
            max_connections: self.max_connections,
        }
    }
}

/// `--protocol`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProtocolArg {
    /// Bidirectional byte copy; policy per connection.
    Tcp,
    /// HTTP/1.1 and HTTP/2; policy per request; identity headers.
    Http,
}

/// Arguments of `ward inbound`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to accept mTLS on (e.g. 0.0.0.0:8443).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Where to forward plaintext: IP:PORT (loopback unless --unsafe-target) or unix:/path.
    #[arg(long)]
    pub target: String,
    /// Accept a non-loopback TCP --target.
    #[arg(long)]
    pub unsafe_target: bool,
    /// Allowed peer IDs or patterns (`spiffe://td/path`, `*` one segment, `/**` any rest).
    #[arg(long, num_args = 1.., required_unless_present = "policy")]
    pub allow: Vec<String>,
    /// A policy file instead of --allow (reloaded on change and SIGHUP).
    #[arg(long, conflicts_with = "allow")]
    pub policy: Option<PathBuf>,
    /// tcp or http.
    #[arg(long, value_enum, default_value = "tcp")]
    pub protocol: ProtocolArg,
    /// The listener's name in policy rules, metrics and logs.
    #[arg(long, default_value = "inbound")]
    pub name: String,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `ward inbound`.
pub fn main(args: Args) -> CmdResult {
    let target = Target::parse(&args.target, args.unsafe_target, Path::new("."))?;
    let protocol = match args.protocol {
        ProtocolArg::Tcp => Protocol::Tcp,
        ProtocolArg::Http => Protocol::Http,
    };
    let policy = match &args.policy {
        Some(path) => Policy::load(path)?,
        None => {
            let ids = args
                .allow
                .iter()
                .map(|s| IdPattern::parse(s))
                .collect::<Result<Vec<_>, _>>()?;
            Policy::allow_all_of(&args.name, ids)
        }
    };
    let config = Config {
        identity: args.common.identity(),
        admin: args.common.admin()?,
        policy_file: args.policy.clone(),
        inbound: vec![Inbound {
            name: args.name.clone(),
            listen: args.listen,
            target,
            protocol,
            identity_headers: vec![IdentityHeader::XSpiffeId, IdentityHeader::Xfcc],
        }],
        outbound: vec![],
        limits: args.common.limits(),
    };
    super::run::runtime()?.block_on(super::run::serve(config, policy))
}
