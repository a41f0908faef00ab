//! X509-SVIDs (X509-SVID.md; CHECKLIST section B).

use std::sync::Arc;
use std::time::SystemTime;

use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use crate::SpiffeId;

/// Why a certificate chain and key are not a usable X509-SVID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SvidError {
    /// Placeholder variant; the spiffe crate's owner defines the real variants.
    #[error("invalid X509-SVID: {0}")]
    Invalid(String),
}

/// One broken rule found by [`check_leaf`] / [`check_signing_cert`]: which CHECKLIST
/// rule (e.g. `"B.12"`) and what is wrong, for `ward inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The CHECKLIST rule, e.g. `"B.17"`.
    pub rule: &'static str,
    /// What is wrong, as a sentence.
    pub message: String,
}

/// An X509-SVID: a leaf-first certificate chain whose leaf satisfies every SPIFFE leaf
/// rule, the signing certificates every signing rule, and a PKCS#8 key matching the leaf.
#[derive(Debug, Clone)]
pub struct X509Svid {
    id: SpiffeId,
    chain: Vec<CertificateDer<'static>>,
    /// Behind an Arc: private keys are deliberately not `Clone` in pki-types, and
    /// snapshots of an SVID are shared, not copied.
    key: Arc<PrivatePkcs8KeyDer<'static>>,
    not_before: SystemTime,
    not_after: SystemTime,
    hint: String,
}

impl X509Svid {
    /// Parses a chain given as concatenated DER certificates (leaf first, as the
    /// Workload API sends it) and an unencrypted PKCS#8 DER key.
    pub fn parse_der(chain: &[u8], key_pkcs8: &[u8]) -> Result<Self, SvidError> {
        let _ = (chain, key_pkcs8);
        todo!()
    }
    /// Parses PEM: `certs` holds one or more CERTIFICATE blocks (leaf first), `key` a
    /// PRIVATE KEY (PKCS#8) block. The two may be the same file.
    pub fn parse_pem(certs: &[u8], key: &[u8]) -> Result<Self, SvidError> {
        let _ = (certs, key);
        todo!()
    }
    /// Builds from already split DER certificates and a PKCS#8 key; same checks.
    pub fn from_parts(
        chain: Vec<CertificateDer<'static>>,
        key: PrivatePkcs8KeyDer<'static>,
    ) -> Result<Self, SvidError> {
        let _ = (chain, key);
        todo!()
    }
    /// Sets the Workload API hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }
    /// The SPIFFE ID in the leaf's URI SAN.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.id
    }
    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
    /// The leaf certificate.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }
    /// The private key (PKCS#8 DER).
    pub fn private_key(&self) -> &PrivatePkcs8KeyDer<'static> {
        &self.key
    }
    /// The leaf's notBefore.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }
    /// The leaf's notAfter.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }
    /// True when `now` is outside the leaf's validity period.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        now >= self.not_after || now < self.not_before
    }
    /// The Workload API hint ("" when none).
    pub fn hint(&self) -> &str {
        &self.hint
    }
    /// The chain as concatenated DER, leaf first (the Workload API's `x509_svid`).
    pub fn chain_der(&self) -> Vec<u8> {
        self.chain
            .iter()
            .flat_map(|c| c.as_ref().iter().copied())
            .collect()
    }
}

/// Splits concatenated DER certificates (the Workload API's encoding) into certificates.
pub fn split_der_certs(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, SvidError> {
    let _ = bytes;
    todo!()
}

/// Every SPIFFE leaf rule a certificate breaks (empty = a valid X509-SVID leaf), for
/// reporting; [`X509Svid`] parsing stops at the first.
pub fn check_leaf(der: &[u8]) -> Vec<Violation> {
    let _ = der;
    todo!()
}

/// Every SPIFFE signing-certificate rule a CA certificate breaks.
pub fn check_signing_cert(der: &[u8]) -> Vec<Violation> {
    let _ = der;
    todo!()
}

/// Reads the SPIFFE ID from a leaf certificate's single URI SAN (error when there is
/// none, more than one, or it is not a valid SPIFFE ID). Used by TLS peer verifiers.
pub fn spiffe_id_of_cert(der: &[u8]) -> Result<SpiffeId, SvidError> {
    let _ = der;
    todo!()
}

/// Verifies a peer's chain (leaf first) for authentication (X509-SVID.md §5): the leaf
/// obeys every leaf rule, and the path is built with rustls-webpki to an authority of
/// the bundle of the *leaf's own* trust domain, at `now`. No bundle for that trust
/// domain means the peer is untrusted. Returns the peer's SPIFFE ID.
pub fn verify_chain(
    chain: &[CertificateDer<'_>],
    bundles: &crate::BundleSet,
    now: rustls_pki_types::UnixTime,
) -> Result<SpiffeId, SvidError> {
    let _ = (chain, bundles, now);
    todo!()
}
