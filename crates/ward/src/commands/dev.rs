//! `ward dev`: a local SPIFFE authority serving the Workload API on Unix sockets, so
//! that a laptop or a test gets real, rotating SVIDs without SPIRE.
//!
//! ```text
//! ward dev --trust-domain example.org \
//!     --socket /tmp/app.sock=spiffe://example.org/app \
//!     --socket /tmp/shared.sock --entries entries.yaml
//! ```
//!
//! `--socket PATH=ID` gives every caller of that socket the identity ID; a bare
//! `--socket PATH` assigns identities from `--entries` (matched on the caller's uid, gid
//! and executable), or `spiffe://TD/workload` to everyone when there is no entries file.
//! Without any `--socket`, one socket is served at `SPIFFE_ENDPOINT_SOCKET` when that is
//! a `unix://` address, else at [`DEFAULT_SOCKET`].
//!
//! Every argument is validated, the CA created or loaded and every socket bound before
//! anything is served: a mistake exits with status 2 and leaves nothing running. On
//! SIGINT or SIGTERM the servers stop and their socket files are removed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ward_authority::{Assignment, Authority, AuthorityConfig, CaSource, DevProvider};
use ward_spiffe::{SpiffeId, TrustDomain};
use ward_workload::{EndpointAddress, IdentityProvider, WorkloadServer};

use super::CmdResult;

/// The socket served when neither `--socket` nor a `unix://` `SPIFFE_ENDPOINT_SOCKET`
/// says otherwise.
pub const DEFAULT_SOCKET: &str = "/tmp/ward-dev/workload.sock";

/// The identity callers of a bare socket get when there is no `--entries` file.
const DEFAULT_WORKLOAD_PATH: &str = "/workload";

/// Arguments of `ward dev`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The trust domain to issue identities in (e.g. example.org).
    #[arg(long, value_name = "TD", env = "WARD_TRUST_DOMAIN")]
    trust_domain: String,
    /// A socket to serve (repeatable): `PATH=SPIFFE_ID` gives every caller that
    /// identity; a bare `PATH` assigns by `--entries`, or spiffe://TD/workload to every
    /// caller without it. Default: `SPIFFE_ENDPOINT_SOCKET` when it is `unix://...`,
    /// else /tmp/ward-dev/workload.sock.
    #[arg(long = "socket", value_name = "PATH[=SPIFFE_ID]")]
    sockets: Vec<String>,
    /// Registration entries (YAML) for the bare sockets: identities by caller uid,
    /// gid and executable path.
    #[arg(long, value_name = "FILE")]
    entries: Option<PathBuf>,
    /// Lifetime of each X509-SVID; rotation happens at half of it.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    svid_ttl: Duration,
    /// Lifetime of each JWT-SVID.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    jwt_ttl: Duration,
    /// Keep the CA and JWT key here (created on first start) so restarts keep the same
    /// trust; without it the CA lives in memory only.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["ca_cert", "ca_key"])]
    state_dir: Option<PathBuf>,
    /// An existing CA certificate (PEM); needs --ca-key.
    #[arg(long, value_name = "FILE", requires = "ca_key")]
    ca_cert: Option<PathBuf>,
    /// The existing CA's private key (PEM, PKCS#8); needs --ca-cert.
    #[arg(long, value_name = "FILE", requires = "ca_cert")]
    ca_key: Option<PathBuf>,
    /// Also hand out a federated trust domain's SPIFFE bundle file (repeatable).
    #[arg(long = "federate", value_name = "TD=FILE")]
    federate: Vec<String>,
}

/// Why `ward dev` refused to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevError {
    /// The trust domain is not valid.
    #[error("--trust-domain {value:?}: {reason}")]
    TrustDomain {
        /// What was given.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A `--socket` value is wrong.
    #[error("--socket {value:?}: {reason}")]
    Socket {
        /// What was given.
        value: String,
        /// Why it is wrong.
        reason: String,
    },
    /// A `--federate` value is wrong.
    #[error("--federate {value:?}: {reason}")]
    Federate {
        /// What was given.
        value: String,
        /// Why it is wrong.
        reason: String,
    },
    /// `--entries` given but no bare socket to use it on.
    #[error("--entries {0} is given but every --socket has a fixed identity (PATH=ID); add a bare --socket PATH for the entries")]
    UnusedEntries(PathBuf),
}

/// One socket to serve and how its callers get identities.
struct SocketPlan {
    path: PathBuf,
    assignment: Assignment,
    describe: String,
}

/// Runs `ward dev`.
pub fn main(args: Args) -> CmdResult {
    let td = TrustDomain::new(&args.trust_domain).map_err(|e| DevError::TrustDomain {
        value: args.trust_domain.clone(),
        reason: e.to_string(),
    })?;
    let plans = plan_sockets(&args, &td)?;
    let federated = parse_federate(&args.federate, &td)?;
    let ca = match (&args.state_dir, &args.ca_cert, &args.ca_key) {
        (Some(dir), _, _) => CaSource::StateDir(dir.clone()),
        (None, Some(cert), Some(key)) => CaSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => CaSource::Generate,
    };
    let authority = Authority::new(AuthorityConfig {
        trust_domain: td,
        svid_ttl: args.svid_ttl,
        jwt_ttl: args.jwt_ttl,
        ca,
        federated,
    })?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(authority, plans))
}

/// Turns `--socket`/`--entries` into socket plans, checking every identity is in the
/// trust domain and no path is served twice.
fn plan_sockets(
    args: &Args,
    td: &TrustDomain,
) -> Result<Vec<SocketPlan>, Box<dyn std::error::Error + Send + Sync>> {
    let mut raw = args.sockets.clone();
    if raw.is_empty() {
        raw.push(default_socket());
    }
    let entries = match &args.entries {
        Some(path) => Some((path, Assignment::load_entries_for(path, td)?)),
        None => None,
    };
    let mut seen = HashSet::new();
    let mut plans = Vec::new();
    let mut entries_used = false;
    for value in &raw {
        let bad = |reason: String| DevError::Socket {
            value: value.clone(),
            reason,
        };
        let (path, id) = match value.split_once('=') {
            Some((p, id)) => (p, Some(id)),
            None => (value.as_str(), None),
        };
        let path = PathBuf::from(path.strip_prefix("unix://").unwrap_or(path));
        if path.as_os_str().is_empty() {
            return Err(bad("the socket path is empty".to_owned()).into());
        }
        check_socket_dir(&path).map_err(bad)?;
        if !seen.insert(path.clone()) {
            return Err(bad("this socket path is given twice".to_owned()).into());
        }
        let (assignment, describe) = match (id, &entries) {
            (Some(id), _) => {
                let id = parse_id_in(id, td).map_err(bad)?;
                let describe = id.to_string();
                (Assignment::Fixed(id), describe)
            }
            (None, Some((file, assignment))) => {
                entries_used = true;
                (
                    assignment.clone(),
                    format!("entries from {}", file.display()),
                )
            }
            (None, None) => {
                let id = SpiffeId::from_path(td, DEFAULT_WORKLOAD_PATH)
                    .map_err(|e| bad(e.to_string()))?;
                let describe = id.to_string();
                (Assignment::Fixed(id), describe)
            }
        };
        plans.push(SocketPlan {
            path,
            assignment,
            describe,
        });
    }
    if let (Some((file, _)), false) = (&entries, entries_used) {
        return Err(DevError::UnusedEntries((*file).clone()).into());
    }
    Ok(plans)
}

fn default_socket() -> String {
    match std::env::var("SPIFFE_ENDPOINT_SOCKET")
        .ok()
        .and_then(|v| EndpointAddress::parse(&v).ok())
    {
        Some(EndpointAddress::Unix(path)) => path.display().to_string(),
        _ => DEFAULT_SOCKET.to_owned(),
    }
}

/// The socket's directory must exist (the default one is created, private to the
/// user's group and others only for connecting).
fn check_socket_dir(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path == Path::new(DEFAULT_SOCKET) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the directory {}: {e}", dir.display()))?;
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("{} is not a directory", dir.display())),
        Err(e) => Err(format!(
            "the directory {} is not usable: {e}",
            dir.display()
        )),
    }
}

fn parse_id_in(id: &str, td: &TrustDomain) -> Result<SpiffeId, String> {
    let id = SpiffeId::new(id).map_err(|e| format!("{id:?} is not a SPIFFE ID: {e}"))?;
    if id.trust_domain() != *td {
        return Err(format!(
            "{id} is outside the trust domain {td} this authority issues for"
        ));
    }
    if id.is_root() {
        return Err(format!(
            "{id} names the trust domain itself; a workload identity needs a path (X509-SVID.md §3.1)"
        ));
    }
    Ok(id)
}

fn parse_federate(
    values: &[String],
    own: &TrustDomain,
) -> Result<Vec<(TrustDomain, PathBuf)>, DevError> {
    let mut out: Vec<(TrustDomain, PathBuf)> = Vec::new();
    for value in values {
        let bad = |reason: String| DevError::Federate {
            value: value.clone(),
            reason,
        };
        let (td, file) = value
            .split_once('=')
            .ok_or_else(|| bad("expected TD=FILE (a SPIFFE bundle file)".to_owned()))?;
        let td = TrustDomain::new(td.strip_prefix("spiffe://").unwrap_or(td))
            .map_err(|e| bad(e.to_string()))?;
        if td == *own {
            return Err(bad(format!("{td} is this authority's own trust domain")));
        }
        if out.iter().any(|(t, _)| *t == td) {
            return Err(bad(format!("{td} is federated twice")));
        }
        let file = PathBuf::from(file);
        if !file.is_file() {
            return Err(bad(format!("{} is not a readable file", file.display())));
        }
        out.push((td, file));
    }
    Ok(out)
}

/// Binds every socket first (any failure: nothing served), then serves all of them
/// until SIGINT/SIGTERM.
async fn serve(authority: Authority, plans: Vec<SocketPlan>) -> CmdResult {
    let mut bound = Vec::new();
    for plan in plans {
        let provider: Arc<dyn IdentityProvider> =
            DevProvider::new(authority.clone(), plan.assignment);
        let server = WorkloadServer::new(provider);
        match server.bind_unix(&plan.path) {
            Ok(b) => bound.push((b, plan.path, plan.describe)),
            Err(e) => {
                // Undo what was bound so far: nothing is left half-started.
                for (_, path, _) in &bound {
                    let _ = std::fs::remove_file(path);
                }
                return Err(e.into());
            }
        }
    }

    // Signal handlers go in before the ready lines: a supervisor that stops us right
    // after reading them must still get the clean shutdown that removes the sockets.
    let signals = Signals::install()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (server, path, describe) in bound {
        let mut rx = stop_rx.clone();
        let shutdown = async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        eprintln!("ward dev: serving {describe} on unix://{}", path.display());
        tasks.push((path, tokio::spawn(server.run(shutdown))));
    }

    let signal = signals.wait().await;
    eprintln!("ward dev: {signal} received, shutting down");
    let _ = stop_tx.send(true);
    let mut failed = false;
    for (path, task) in tasks {
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                eprintln!("ward dev: {e}");
                failed = true;
            }
            Ok(Err(e)) => {
                eprintln!(
                    "ward dev: the server on {} stopped abnormally: {e}",
                    path.display()
                );
                failed = true;
            }
            Err(_) => eprintln!(
                "ward dev: the server on {} did not stop within 5s",
                path.display()
            ),
        }
        // The server removes its socket; this covers a server that did not stop in time.
        remove_socket(&path);
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn remove_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

/// SIGINT and SIGTERM, both ending `ward dev` cleanly.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    async fn wait(mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}
