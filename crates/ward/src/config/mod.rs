//! The config file (`ward run --config ward.yaml`): types, loading, validation.
//! Loading is all-or-nothing: a file with an unknown key, a bad address or a bad
//! pattern is an error naming the line, and nothing starts.

mod build;
mod net;
mod raw;
pub(crate) mod yaml;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::policy::IdPattern;

pub use net::{parse_plaintext_listen, parse_upstream};
pub use yaml::Problem;

/// Why a config file is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file (or a command-line value) is wrong; one line per problem, each
    /// `file:line: field: what is wrong`.
    #[error("{}", yaml::join(problems))]
    Invalid {
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// An error about a single value that does not come from a file (a flag).
    pub fn value(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            problems: vec![Problem {
                file: String::new(),
                line: None,
                field: field.to_owned(),
                message: message.into(),
            }],
        }
    }
}

/// The whole config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where identity comes from.
    pub identity: IdentitySource,
    /// The admin listener (loopback by default), or None to disable it.
    pub admin: Option<SocketAddr>,
    /// The policy file; None means the inline rules of the one-liner commands.
    pub policy_file: Option<PathBuf>,
    /// Inbound listeners.
    pub inbound: Vec<Inbound>,
    /// Outbound listeners.
    pub outbound: Vec<Outbound>,
    /// Timeouts and limits.
    pub limits: Limits,
}

/// Where the SVID and bundles come from.
#[derive(Debug, Clone)]
pub enum IdentitySource {
    /// The SPIFFE Workload API (`socket` None: `SPIFFE_ENDPOINT_SOCKET`).
    WorkloadApi {
        /// Endpoint address, `unix:///path` or `tcp://IP:PORT`.
        socket: Option<String>,
        /// How long to wait for the first SVID at start-up.
        startup_timeout: Duration,
    },
    /// PEM files, watched and reloaded on change.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// PKCS#8 private key.
        key: PathBuf,
        /// CA bundle of the own trust domain.
        bundle: PathBuf,
    },
}

/// Where an inbound listener forwards plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A TCP address (loopback unless `unsafe_target: true`).
    Tcp(SocketAddr),
    /// A Unix socket (`unix:/run/app.sock`).
    Unix(PathBuf),
}

/// L4 copy or L7 HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Bidirectional byte copy after the handshake; policy per connection.
    Tcp,
    /// HTTP/1.1 and HTTP/2; policy per request.
    Http,
}

/// Identity headers added to requests forwarded by an http inbound listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityHeader {
    /// `x-spiffe-id: <peer id>`
    XSpiffeId,
    /// `x-forwarded-client-cert: By=<our id>;Hash=<sha256 of peer cert>;URI=<peer id>`
    Xfcc,
}

/// An inbound listener: mTLS in, plaintext to the local app.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Name, used by policy rules and metrics.
    pub name: String,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where to forward.
    pub target: Target,
    /// tcp or http.
    pub protocol: Protocol,
    /// Headers to add (http only).
    pub identity_headers: Vec<IdentityHeader>,
}

/// An outbound listener: plaintext in on loopback, mTLS out.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Name, used by metrics.
    pub name: String,
    /// Loopback address to listen on (unless `unsafe_listen: true`).
    pub listen: SocketAddr,
    /// Tunnel to one upstream, or HTTP proxy.
    pub mode: OutboundMode,
}

/// What an outbound listener does with a connection.
#[derive(Debug, Clone)]
pub enum OutboundMode {
    /// Every connection goes to `upstream`, whose SPIFFE ID must match `expect`.
    Tunnel {
        /// `host:port`.
        upstream: String,
        /// Accepted server IDs (any match).
        expect: Vec<IdPattern>,
    },
    /// `CONNECT host:port` and absolute-form requests, routed by host.
    HttpProxy {
        /// Routes by requested host.
        routes: Vec<Route>,
    },
}

/// One HTTP proxy route.
#[derive(Debug, Clone)]
pub struct Route {
    /// The `host:port` the app asks for (in CONNECT or the absolute URI).
    pub host: String,
    /// Where to connect (defaults to `host`).
    pub upstream: String,
    /// Accepted server IDs.
    pub expect: Vec<IdPattern>,
}

/// Timeouts and limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// TLS handshake timeout.
    pub handshake_timeout: Duration,
    /// Connect timeout to a target or upstream.
    pub connect_timeout: Duration,
    /// Idle timeout of a connection.
    pub idle_timeout: Duration,
    /// How long SIGTERM waits for connections to drain.
    pub drain_timeout: Duration,
    /// Maximum concurrent connections per listener.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// The default admin listener: loopback only, so metrics and the config view never
/// leave the host unless the config says so.
pub const DEFAULT_ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 15000);

/// How long start-up waits for the first SVID when the config does not say.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

impl Config {
    /// Reads and validates a config file. All or nothing: every problem found is
    /// reported (`file:line: field: message`), and no partial config is returned.
    /// Relative paths in the file resolve against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::from_yaml(&text, &yaml::display_name(path), base)
    }

    /// Parses and validates config text; `file` names it in errors and `base` is the
    /// directory relative paths resolve against.
    pub fn from_yaml(text: &str, file: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: raw::RawConfig =
            yaml::parse(text, file).map_err(|problem| ConfigError::Invalid {
                problems: vec![problem],
            })?;
        build::build(raw, file, base).map_err(|problems| ConfigError::Invalid { problems })
    }

    /// Every listener name (inbound first, then outbound), as policy rules name them.
    pub fn listener_names(&self) -> impl Iterator<Item = &str> {
        self.inbound
            .iter()
            .map(|l| l.name.as_str())
            .chain(self.outbound.iter().map(|l| l.name.as_str()))
    }
}

impl Target {
    /// Parses `IP:PORT` or `unix:/path` (also `unix:///path`); a relative Unix path
    /// resolves against `base`. A TCP target off this host is refused unless
    /// `unsafe_target` is set: the forwarded bytes are plaintext.
    pub fn parse(s: &str, unsafe_target: bool, base: &Path) -> Result<Self, ConfigError> {
        net::parse_target(s, unsafe_target, base).map_err(|m| ConfigError::value("target", m))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(addr) => write!(f, "{addr}"),
            Target::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(text, "ward.yaml", Path::new("/etc/ward"))
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let config = load(
            "identity_files: {cert: svid.pem, key: /abs/key.pem, bundle: b/bundle.pem}\n\
             policy_file: policy.yaml\n\
             inbound: [{name: api, listen: 0.0.0.0:8443, target: \"unix:app.sock\"}]\n",
        )
        .unwrap();
        assert_eq!(
            config.policy_file.as_deref(),
            Some(Path::new("/etc/ward/policy.yaml"))
        );
        match &config.identity {
            IdentitySource::Files { cert, key, bundle } => {
                assert_eq!(cert, Path::new("/etc/ward/svid.pem"));
                assert_eq!(key, Path::new("/abs/key.pem"));
                assert_eq!(bundle, Path::new("/etc/ward/b/bundle.pem"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            config.inbound[0].target,
            Target::Unix("/etc/ward/app.sock".into())
        );
    }

    #[test]
    fn omitted_keys_take_their_documented_defaults() {
        let config = load(
            "policy_file: p.yaml\ninbound: [{name: api, listen: 0.0.0.0:8443, target: 127.0.0.1:8080, protocol: http}]\n",
        )
        .unwrap();
        assert_eq!(config.admin, Some(DEFAULT_ADMIN));
        assert!(matches!(
            config.identity,
            IdentitySource::WorkloadApi { socket: None, startup_timeout } if startup_timeout == DEFAULT_STARTUP_TIMEOUT
        ));
        assert_eq!(config.limits.idle_timeout, Duration::from_secs(300));
        assert_eq!(config.limits.max_connections, 10_000);
        assert_eq!(
            config.inbound[0].identity_headers,
            vec![IdentityHeader::XSpiffeId, IdentityHeader::Xfcc]
        );
    }

    #[test]
    fn limits_and_durations_are_parsed() {
        let config = load(
            "limits: {handshake_timeout: 500ms, idle_timeout: 1h 30m, max_connections: 7}\n\
             outbound: [{name: o, listen: 127.0.0.1:9001, upstream: p:1, expect: [spiffe://td]}]\n",
        )
        .unwrap();
        assert_eq!(config.limits.handshake_timeout, Duration::from_millis(500));
        assert_eq!(config.limits.idle_timeout, Duration::from_secs(5400));
        assert_eq!(config.limits.max_connections, 7);
        assert_eq!(config.limits.connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn zero_duration_and_zero_connections_are_refused() {
        let err = load(
            "limits: {drain_timeout: 0s, max_connections: 0}\n\
             outbound: [{name: o, listen: 127.0.0.1:9001, upstream: p:1, expect: [spiffe://td]}]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ward.yaml:1: limits.drain_timeout: must be longer than zero"),
            "{err}"
        );
        assert!(
            err.contains("ward.yaml:1: limits.max_connections: must be at least 1"),
            "{err}"
        );
    }
}
