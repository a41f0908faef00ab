//! Inbound listeners: mTLS in, authorize the peer's SPIFFE ID, plaintext to the app.
//!
//! A denied peer in tcp mode: the handshake completes, then ward sends close_notify and
//! closes without forwarding a byte. The policy is not checked inside the certificate
//! verifier on purpose: the policy is hot-reloaded and its decisions are logged and
//! counted per rule; a denial raised inside the verifier would surface as an opaque
//! handshake failure, indistinguishable from an untrusted certificate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use ward_spiffe::SpiffeId;

use super::io::{target_display, ConnStats, Metered, TargetStream, COPY_BUFFER};
use super::{bind_tcp, ListenerMetrics, ProxyError, Shared};
use crate::config::{Inbound, Protocol};
use crate::policy::Request;

/// The TLS stream of an inbound connection.
pub type InboundTls = TlsStream<Metered<TcpStream>>;

/// A bound inbound listener.
pub struct InboundListener {
    tcp: TcpListener,
    conn: Arc<InboundConn>,
}

/// What each connection of one listener needs.
struct InboundConn {
    config: Inbound,
    shared: Shared,
    metrics: ListenerMetrics,
    acceptor: TlsAcceptor,
    http: Option<Arc<super::http::HttpInbound>>,
}

impl InboundListener {
    /// Builds the listener's one TLS config and binds its address.
    pub async fn bind(config: &Inbound, shared: &Shared) -> Result<Self, ProxyError> {
        let what = format!("inbound listener {}", config.name);
        // tcp mode forwards opaque bytes: advertising h2 there would be a lie.
        let alpn: &[&[u8]] = match config.protocol {
            Protocol::Http => &[b"h2", b"http/1.1"],
            Protocol::Tcp => &[],
        };
        let tls =
            ward_tls::server_config(&shared.source, alpn).map_err(|source| ProxyError::Tls {
                what: what.clone(),
                source,
            })?;
        let metrics = shared.metrics.listener(&config.name);
        let http = match config.protocol {
            Protocol::Http => Some(Arc::new(super::http::HttpInbound::new(
                config,
                shared,
                metrics.clone(),
            ))),
            Protocol::Tcp => None,
        };
        let tcp = bind_tcp(&what, config.listen).await?;
        tracing::info!(
            listener = %config.name,
            listen = %tcp.local_addr().unwrap_or(config.listen),
            target = %target_display(&config.target),
            protocol = ?config.protocol,
            "inbound listener bound"
        );
        Ok(Self {
            tcp,
            conn: Arc::new(InboundConn {
                config: config.clone(),
                shared: shared.clone(),
                metrics,
                acceptor: TlsAcceptor::from(tls),
                http,
            }),
        })
    }

    /// Accepts until shutdown, then drains.
    pub async fn run(self) {
        let conn = self.conn;
        super::accept_loop(
            self.tcp,
            &conn.config.name,
            &conn.metrics,
            &conn.shared.limits,
            conn.shared.shutdown.clone(),
            |sock, remote, shutdown| conn.clone().serve(sock, remote, shutdown),
        )
        .await;
    }
}

impl InboundConn {
    async fn serve(
        self: Arc<Self>,
        sock: TcpStream,
        remote: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) {
        let _ = sock.set_nodelay(true);
        let start = Instant::now();
        let stats = ConnStats::new(
            self.metrics.bytes_in.clone(),
            self.metrics.bytes_out.clone(),
        );
        let metered = Metered::new(sock, stats.clone());
        let timeout = self.shared.limits.handshake_timeout;
        let tls = match tokio::time::timeout(timeout, self.acceptor.accept(metered)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                self.metrics.handshake_err.inc();
                tracing::info!(target: "access", listener = %self.config.name, %remote,
                    decision = "handshake_failed", error = %e, "tls handshake failed");
                return;
            }
            Err(_) => {
                self.metrics.handshake_timeout.inc();
                tracing::info!(target: "access", listener = %self.config.name, %remote,
                    decision = "handshake_failed", error = "handshake timeout",
                    timeout = ?timeout, "tls handshake timed out");
                return;
            }
        };
        self.metrics.handshake_ok.inc();
        let Some(peer) = ward_tls::peer_id(tls.get_ref().1) else {
            // The verifier requires a client SVID, so this is a bug guard, not a path.
            tracing::warn!(listener = %self.config.name, %remote, "peer has no SPIFFE ID");
            return;
        };
        match &self.http {
            Some(http) => {
                http.clone()
                    .serve(tls, peer, remote, stats.clone(), shutdown)
                    .await
            }
            None => self.serve_tcp(tls, &peer, remote, &stats, start).await,
        }
    }

    async fn serve_tcp(
        &self,
        mut tls: InboundTls,
        peer: &SpiffeId,
        remote: SocketAddr,
        stats: &ConnStats,
        start: Instant,
    ) {
        let name = self.config.name.as_str();
        let decision = self.shared.policy.current().decide(&Request {
            listener: name,
            peer,
            method: None,
            path: None,
        });
        let rule = decision.rule.as_deref().unwrap_or("default-deny");
        self.metrics.authz(decision.rule.as_ref(), decision.allow);
        if !decision.allow {
            // Handshake done, policy says no: close_notify, then close. No byte of the
            // peer reaches the app.
            let _ = tls.shutdown().await;
            tracing::info!(target: "access", listener = name, %remote, peer = %peer,
                decision = "deny", rule, duration_ms = start.elapsed().as_millis() as u64,
                "connection denied");
            return;
        }
        let limits = &self.shared.limits;
        let mut target =
            match TargetStream::connect(&self.config.target, limits.connect_timeout).await {
                Ok(t) => t,
                Err(e) => {
                    self.metrics.upstream_errors.inc();
                    let _ = tls.shutdown().await;
                    tracing::warn!(target: "access", listener = name, %remote, peer = %peer,
                    decision = "allow", rule, error = %e,
                    upstream = %target_display(&self.config.target), "cannot reach the target");
                    return;
                }
            };
        let result = tokio::select! {
            r = tokio::io::copy_bidirectional_with_sizes(&mut tls, &mut target, COPY_BUFFER, COPY_BUFFER) => r.map(|_| "closed"),
            () = stats.idle(limits.idle_timeout) => Ok("idle_timeout"),
        };
        let (bytes_in, bytes_out) = stats.bytes();
        let end = match &result {
            Ok(end) => *end,
            Err(_) => "error",
        };
        tracing::info!(target: "access", listener = name, %remote, peer = %peer,
            decision = "allow", rule, bytes_in, bytes_out, end,
            error = result.err().map(|e| e.to_string()),
            duration_ms = start.elapsed().as_millis() as u64, "connection closed");
    }
}
