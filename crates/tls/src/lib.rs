//! # ward-tls
//!
//! rustls glue for SPIFFE. A [`SvidResolver`] hands rustls the current SVID of an
//! `X509Source` (the `CertifiedKey` is built once per identity update, never per
//! handshake); a [`SpiffeVerifier`] checks a peer's chain against the bundle of the
//! peer's own trust domain with every X509-SVID leaf rule, and never looks at DNS names.
//! [`server_config`] and [`client_config`] build the configs a listener keeps for its
//! whole life; [`peer_id`] reads the verified peer's SPIFFE ID off a connection.
//! This crate opens no sockets.
#![forbid(unsafe_code)]

use std::sync::Arc;

use rustls::{ClientConfig, ServerConfig};
use ward_spiffe::SpiffeId;
use ward_workload::X509Source;

/// Why a TLS config could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Placeholder variant; the tls crate's owner defines the real variants.
    #[error("tls: {0}")]
    Other(String),
}

/// Resolves the current SVID for rustls servers and clients.
#[derive(Debug)]
pub struct SvidResolver {
    source: X509Source,
}

impl SvidResolver {
    /// A resolver following `source`; spawns the task that rebuilds the `CertifiedKey`
    /// on each update (must be called inside a tokio runtime).
    pub fn new(source: X509Source) -> Arc<Self> {
        let _ = source;
        todo!()
    }
}

/// Verifies peers (client certificates for servers, server certificates for clients)
/// against the source's bundle of the peer's trust domain.
#[derive(Debug)]
pub struct SpiffeVerifier {
    source: X509Source,
}

impl SpiffeVerifier {
    /// A verifier reading bundles from `source` on each handshake (lock-free).
    pub fn new(source: X509Source) -> Arc<Self> {
        let _ = source;
        todo!()
    }
}

/// A server config that requires and verifies a client SVID; ALPN as given (e.g.
/// `[b"h2", b"http/1.1"]`), TLS 1.2 and 1.3, no session resumption.
pub fn server_config(source: &X509Source, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
    let _ = (source, alpn);
    todo!()
}

/// A client config presenting the source's SVID and verifying the server's chain; the
/// caller checks the server's SPIFFE ID with [`peer_id`] after the handshake.
pub fn client_config(source: &X509Source, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
    let _ = (source, alpn);
    todo!()
}

/// The verified peer's SPIFFE ID, once the handshake has completed.
pub fn peer_id(conn: &rustls::CommonState) -> Option<SpiffeId> {
    let _ = conn;
    todo!()
}
