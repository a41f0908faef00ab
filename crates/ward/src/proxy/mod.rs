//! The data path: inbound and outbound listeners, the admin listener, identity sources.
//!
//! Start-up follows ztunnel: every listener is *bound* first ([`Proxy::bind`]), so a
//! bind error stops start-up with the address in the message and nothing half-running;
//! then [`Proxy::run`] spawns each listener's accept loop and joins them at the top.
//! Shutdown: stop accepting, let in-flight connections finish (HTTP connections are
//! asked to close after their current request) for up to `drain_timeout`, then return.
//!
//! Every listener keeps one TLS config for its whole life: rotation reaches new
//! handshakes through ward-tls's resolver and verifier, which read the live source, so
//! nothing is rebuilt per handshake and established connections are never dropped.

pub mod admin;
mod h1_direct;
pub mod http;
pub mod identity;
pub mod inbound;
pub mod io;
pub mod metrics;
pub mod outbound;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use ward_workload::X509Source;

use crate::config::{Config, Limits};
use crate::policy::PolicyHandle;

pub use metrics::{ListenerMetrics, Metrics};

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind {
        /// Which listener (`inbound api`, `admin`, ...).
        what: String,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A TLS config could not be built from the identity source.
    #[error("cannot build the TLS config of {what}: {source}")]
    Tls {
        /// Which listener.
        what: String,
        /// The cause.
        source: ward_tls::TlsError,
    },
}

/// What every listener shares: identity, policy, metrics, limits, the shutdown signal.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The live identity.
    pub source: X509Source,
    /// The policy in force.
    pub policy: Arc<PolicyHandle>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// Timeouts and limits.
    pub limits: Limits,
    /// Flips to true when shutdown starts.
    pub shutdown: watch::Receiver<bool>,
}

/// A bound, not yet running sidecar.
pub struct Proxy {
    shared: Shared,
    shutdown_tx: watch::Sender<bool>,
    inbound: Vec<inbound::InboundListener>,
    outbound: Vec<outbound::OutboundListener>,
    admin: Option<admin::AdminServer>,
    ready: Arc<AtomicBool>,
}

impl Proxy {
    /// Builds and binds every listener of `config` (admin first). Nothing is served
    /// until [`Proxy::run`].
    pub async fn bind(
        config: &Config,
        source: X509Source,
        policy: Arc<PolicyHandle>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ProxyError> {
        let (shutdown_tx, shutdown) = watch::channel(false);
        let shared = Shared {
            source,
            policy,
            metrics,
            limits: config.limits.clone(),
            shutdown,
        };
        let ready = Arc::new(AtomicBool::new(false));
        let admin = match config.admin {
            Some(addr) => {
                Some(admin::AdminServer::bind(addr, &shared, config, ready.clone()).await?)
            }
            None => None,
        };
        let mut inbound = Vec::new();
        for l in &config.inbound {
            inbound.push(inbound::InboundListener::bind(l, &shared).await?);
        }
        let mut outbound = Vec::new();
        for l in &config.outbound {
            outbound.push(outbound::OutboundListener::bind(l, &shared).await?);
        }
        Ok(Self {
            shared,
            shutdown_tx,
            inbound,
            outbound,
            admin,
            ready,
        })
    }

    /// Serves until `shutdown` resolves, then drains for up to `drain_timeout`.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Self {
            shared,
            shutdown_tx,
            inbound,
            outbound,
            admin,
            ready,
        } = self;
        let rotations = tokio::spawn(count_rotations(shared.clone()));
        // The admin listener outlives the drain, so /readyz can say "draining" meanwhile.
        let (admin_stop, admin_rx) = watch::channel(false);
        let admin = admin.map(|a| tokio::spawn(a.run(admin_rx)));
        let mut tasks = Vec::new();
        for l in inbound {
            tasks.push(tokio::spawn(l.run()));
        }
        for l in outbound {
            tasks.push(tokio::spawn(l.run()));
        }
        ready.store(true, Ordering::Release);
        tracing::info!("ward is serving");
        shutdown.await;
        tracing::info!(
            drain_timeout = ?shared.limits.drain_timeout,
            "shutting down: no new connections; draining"
        );
        ready.store(false, Ordering::Release);
        let _ = shutdown_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        rotations.abort();
        let _ = admin_stop.send(true);
        if let Some(a) = admin {
            let _ = a.await;
        }
        tracing::info!("drained; bye");
    }
}

async fn count_rotations(shared: Shared) {
    let mut updates = shared.source.updates();
    while updates.changed().await.is_ok() {
        shared.metrics.svid_rotated();
        if let Some(svid) = shared.source.svid() {
            tracing::info!(id = %svid.spiffe_id(), not_after = ?svid.not_after(), "identity updated");
        }
    }
}

/// Resolves once shutdown has started (the value turned true, or the sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Binds a TCP listener, naming the listener and address on failure.
pub async fn bind_tcp(what: &str, addr: SocketAddr) -> Result<TcpListener, ProxyError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Bind {
            what: what.to_owned(),
            addr,
            source,
        })
}

/// One accept loop with the per-listener connection limit and the drain on shutdown.
/// `handle` serves one connection; it receives the shutdown signal to close gracefully.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    name: &str,
    metrics: &ListenerMetrics,
    limits: &Limits,
    mut shutdown: watch::Receiver<bool>,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let max =
        u32::try_from(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(max as usize));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = stopped(&mut shutdown) => break,
        };
        let (sock, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(listener = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        metrics.accepted.inc();
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics.rejected.inc();
            tracing::warn!(
                listener = name,
                %remote,
                max_connections = max,
                "connection refused: listener at max_connections"
            );
            drop(sock);
            continue;
        };
        let active = metrics.active.clone();
        let fut = handle(sock, remote, shutdown.clone());
        tokio::spawn(async move {
            active.inc();
            fut.await;
            active.dec();
            drop(permit);
        });
    }
    drop(listener);
    // Every connection holds one permit: holding all of them means all have ended.
    let drained = tokio::time::timeout(limits.drain_timeout, slots.acquire_many(max)).await;
    if drained.is_err() {
        tracing::warn!(
            listener = name,
            open = max as usize - slots.available_permits(),
            "drain timeout reached; closing the remaining connections"
        );
    }
}
