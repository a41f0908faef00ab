//! The rustls configs a listener builds once and keeps for its whole life.

use std::sync::{Arc, OnceLock};

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::server::NoServerSessionStorage;
use rustls::{ClientConfig, ServerConfig};
use ward_workload::X509Source;

use crate::{SpiffeVerifier, SvidResolver, TlsError};

/// The one crypto provider every ward config uses: aws-lc-rs, passed explicitly to
/// each builder so that nothing depends on (or races to set) a process default.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider())))
}

fn alpn_list(alpn: &[&[u8]]) -> Vec<Vec<u8>> {
    alpn.iter().map(|p| p.to_vec()).collect()
}

/// A server config that requires and verifies a client SVID; ALPN as given (e.g.
/// `[b"h2", b"http/1.1"]`), TLS 1.2 and 1.3, no session resumption.
///
/// Must be called inside a tokio runtime (the resolver follows the source's updates).
pub fn server_config(source: &X509Source, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crypto_provider();
    let verifier = SpiffeVerifier::with_provider(source.clone(), Arc::clone(&provider));
    let resolver = SvidResolver::with_provider(source.clone(), Arc::clone(&provider));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn_list(alpn);
    // Resumption is disabled rather than re-checked: a resumed session skips
    // certificate verification, so a peer whose trust domain's bundle was since
    // replaced or removed (or whose CA was rotated out) could come back without being
    // checked against the current bundles. No session cache (TLS 1.2 session IDs), no
    // TLS 1.3 tickets, and the default ticketer (which never produces tickets).
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// A client config presenting the source's SVID and verifying the server's chain; the
/// caller checks the server's SPIFFE ID with [`crate::peer_id`] after the handshake.
///
/// Must be called inside a tokio runtime (the resolver follows the source's updates).
pub fn client_config(source: &X509Source, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = crypto_provider();
    let verifier = SpiffeVerifier::with_provider(source.clone(), Arc::clone(&provider));
    let resolver = SvidResolver::with_provider(source.clone(), Arc::clone(&provider));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(resolver);
    config.alpn_protocols = alpn_list(alpn);
    // No resumption, for the same reason as the server: every connection re-verifies
    // the server's chain against the bundles current at that moment.
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}
