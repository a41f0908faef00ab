//! # ward-tls
//!
//! rustls glue for SPIFFE. A [`SvidResolver`] hands rustls the current SVID of an
//! `X509Source` (the `CertifiedKey` is built once per identity update, never per
//! handshake); a [`SpiffeVerifier`] checks a peer's chain against the bundle of the
//! peer's own trust domain with every X509-SVID leaf rule, and never looks at DNS names.
//! [`server_config`] and [`client_config`] build the configs a listener keeps for its
//! whole life; [`peer_id`] reads the verified peer's SPIFFE ID off a connection.
//! [`files`] feeds a source from PEM files instead of the Workload API.
//! This crate opens no sockets.
//!
//! Every config uses the aws-lc-rs provider ([`crypto_provider`]), TLS 1.2 and 1.3,
//! mandatory client certificates, and no session resumption (so every connection is
//! checked against the bundles current at that moment).
#![forbid(unsafe_code)]

mod config;
pub mod files;
mod resolver;
mod verifier;

use ward_spiffe::SpiffeId;

pub use config::{client_config, crypto_provider, server_config};
pub use resolver::SvidResolver;
pub use verifier::SpiffeVerifier;

/// Why a TLS config could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rustls refused the configuration (e.g. no protocol version in common with the
    /// provider's cipher suites).
    #[error("the TLS library refused the configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The verified peer's SPIFFE ID, once the handshake has completed.
///
/// The leaf was checked by [`SpiffeVerifier`] during the handshake, so the ID read here
/// is the verified one; `None` before the handshake completes or without a peer
/// certificate. It parses the leaf on each call: call it once per connection.
pub fn peer_id(conn: &rustls::CommonState) -> Option<SpiffeId> {
    let leaf = conn.peer_certificates()?.first()?;
    match ward_spiffe::x509::spiffe_id_of_cert(leaf) {
        Ok(id) => Some(id),
        Err(err) => {
            tracing::debug!("the peer's leaf carries no SPIFFE ID: {err}");
            None
        }
    }
}
