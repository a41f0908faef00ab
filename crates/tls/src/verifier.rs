//! The SPIFFE peer verifier, for both sides of a connection: the peer's chain is
//! checked against the bundle of the trust domain named in the peer's own URI SAN.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError};
use rustls::{Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use ward_spiffe::{verify_chain_for, ChainUsage, SpiffeId, SvidError};
use ward_workload::X509Source;

/// Verifies peers (client certificates for servers, server certificates for clients)
/// against the source's bundle of the peer's trust domain.
///
/// DNS names and the TLS server name play no part: what makes a peer trusted is a
/// chain to the bundle of the trust domain in its single SPIFFE URI SAN (X509-SVID
/// §5, Workload API §4.6). Authorization of the verified ID is the caller's job, after
/// the handshake, so that a hot-reloaded policy is never baked into a connection.
#[derive(Debug)]
pub struct SpiffeVerifier {
    source: X509Source,
    provider: Arc<CryptoProvider>,
}

impl SpiffeVerifier {
    /// A verifier reading bundles from `source` on each handshake (lock-free).
    pub fn new(source: X509Source) -> Arc<Self> {
        Self::with_provider(source, crate::crypto_provider())
    }

    /// As [`SpiffeVerifier::new`], checking handshake signatures with `provider`.
    pub(crate) fn with_provider(source: X509Source, provider: Arc<CryptoProvider>) -> Arc<Self> {
        Arc::new(Self { source, provider })
    }

    /// Verifies a peer's chain at `now` with the current bundles, for `usage` (the
    /// EKU the peer's role needs); returns its ID.
    fn verify_peer(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: ChainUsage,
    ) -> Result<SpiffeId, Error> {
        let mut chain = Vec::with_capacity(1 + intermediates.len());
        chain.push(end_entity.clone());
        chain.extend(intermediates.iter().cloned());
        // verify_chain_for picks the bundle of the trust domain in the leaf's own URI
        // SAN, never a merged root store: a CA of a federated domain must not be able
        // to vouch for our IDs. The bundles are this instant's (one atomic load).
        let bundles = self.source.bundles();
        verify_chain_for(&chain, &bundles, now, usage).map_err(|err| {
            tracing::debug!("TLS peer rejected: {err}");
            Error::InvalidCertificate(certificate_error(err))
        })
    }

    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Maps a verification failure onto the certificate error whose TLS alert tells the
/// peer what went wrong: unknown_ca for an issuer outside its trust domain's bundle (or
/// no bundle at all), certificate_expired for a leaf outside its validity period,
/// bad_certificate for a leaf that breaks a SPIFFE rule. The reject decision never
/// depends on this mapping, only the alert does.
fn certificate_error(err: SvidError) -> CertificateError {
    if let SvidError::NoBundle { .. } = err {
        return CertificateError::UnknownIssuer;
    }
    if let SvidError::Untrusted { reason, .. } = &err {
        // rustls-webpki's Display is its Debug: the variant name comes first.
        let kind = reason.split([' ', '(', '{']).next().unwrap_or_default();
        match kind {
            "CertExpired" => return CertificateError::Expired,
            "CertNotValidYet" => return CertificateError::NotValidYet,
            "UnknownIssuer" => return CertificateError::UnknownIssuer,
            "InvalidSignatureForPublicKey" => return CertificateError::BadSignature,
            _ => {}
        }
    }
    CertificateError::Other(OtherError(Arc::new(err)))
}

// === impl ClientCertVerifier ===

impl ClientCertVerifier for SpiffeVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No hints: the client has one SVID and sends it whatever CAs we trust, and
    /// listing our bundles' subjects would only leak the federation set.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.verify_peer(end_entity, intermediates, now, ChainUsage::ClientAuth)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

// === impl ServerCertVerifier ===

impl ServerCertVerifier for SpiffeVerifier {
    /// `server_name` is deliberately ignored: the name the client dialled is not what
    /// makes a server trusted; the caller checks the verified SPIFFE ID instead.
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.verify_peer(end_entity, intermediates, now, ChainUsage::ServerAuth)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}
