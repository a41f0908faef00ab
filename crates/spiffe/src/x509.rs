//! X509-SVIDs (X509-SVID.md; CHECKLIST section B).
//!
//! Two kinds of checking live here. [`check_leaf`] and [`check_signing_cert`] report
//! *every* broken rule with its CHECKLIST id, for `ward inspect`. [`X509Svid`] parsing
//! (our own identity) and [`verify_chain`] (a peer's identity) stop at the first broken
//! rule, in the order go-spiffe checks them, so errors match the reference library.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer, UnixTime};
use webpki::{ExtendedKeyUsageValidator, KeyPurposeId, KeyPurposeIdIter};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME;
use x509_parser::prelude::FromDer;

use crate::{BundleSet, SpiffeId};

/// Why a certificate chain and key are not a usable X509-SVID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SvidError {
    /// The chain holds no certificate.
    #[error("no certificates found: an X509-SVID chain needs at least the leaf certificate")]
    NoCertificates,
    /// The certificate PEM text is not PEM.
    #[error("cannot parse the PEM encoded certificates: {0}")]
    CertificatePem(String),
    /// The key PEM text is not PEM.
    #[error("cannot parse the PEM encoded private key: {0}")]
    KeyPem(String),
    /// A certificate is not valid DER X.509.
    #[error("cannot parse certificate {index} of the chain (0 = leaf) as DER X.509: {reason}")]
    CertificateDer {
        /// Position in the chain, 0 being the leaf.
        index: usize,
        /// What the parser said.
        reason: String,
    },
    /// No PRIVATE KEY block was found.
    #[error("no private key found: expected a PEM `PRIVATE KEY` (PKCS#8) block")]
    NoPrivateKey,
    /// The key is in a format the Workload API forbids (encrypted, or not PKCS#8).
    #[error("the private key is a PEM `{0}` block; an X509-SVID key must be unencrypted PKCS#8 (`PRIVATE KEY`)")]
    UnsupportedKeyFormat(String),
    /// The key bytes are not an unencrypted PKCS#8 key of a supported algorithm.
    #[error("cannot parse the private key as unencrypted PKCS#8 (EC P-256/P-384/P-521, RSA or Ed25519): {0}")]
    PrivateKey(String),
    /// The key is valid but belongs to another certificate.
    #[error("the private key does not match the leaf certificate's public key")]
    KeyMismatch,
    /// The leaf breaks a SPIFFE leaf rule.
    #[error("the leaf certificate is not a valid X509-SVID: {0}")]
    Leaf(Violation),
    /// A signing certificate breaks a SPIFFE signing-certificate rule.
    #[error("signing certificate {index} of the chain is not valid: {violation}")]
    SigningCert {
        /// Position in the chain (1 = the leaf's issuer).
        index: usize,
        /// The broken rule.
        violation: Violation,
    },
    /// An empty chain was presented for verification.
    #[error("the peer presented an empty certificate chain")]
    EmptyChain,
    /// No bundle is held for the peer's trust domain (B.21): the peer is untrusted.
    #[error("no bundle for trust domain {trust_domain}: the peer is untrusted")]
    NoBundle {
        /// The peer's trust domain.
        trust_domain: String,
    },
    /// Path validation against the trust domain's bundle failed.
    #[error("the chain of {id} does not verify against the bundle of trust domain {trust_domain}: {reason}")]
    Untrusted {
        /// The peer's SPIFFE ID, as claimed by its leaf.
        id: String,
        /// Its trust domain.
        trust_domain: String,
        /// What rustls-webpki reported.
        reason: String,
    },
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

impl Violation {
    fn new(rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            rule,
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (rule {})", self.message, self.rule)
    }
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
        let chain = split_der_certs(chain)?;
        Self::from_parts(chain, PrivatePkcs8KeyDer::from(key_pkcs8.to_vec()))
    }
    /// Parses PEM: `certs` holds one or more CERTIFICATE blocks (leaf first), `key` a
    /// PRIVATE KEY (PKCS#8) block. The two may be the same file.
    pub fn parse_pem(certs: &[u8], key: &[u8]) -> Result<Self, SvidError> {
        let chain = pem_certificates(certs).map_err(SvidError::CertificatePem)?;
        let key = pem_private_key(key)?;
        // go-spiffe's order: the certificates are validated before a missing key is
        // reported.
        let checked = check_chain(&chain)?;
        let key = key.ok_or(SvidError::NoPrivateKey)?;
        Self::with_key(chain, checked, key)
    }
    /// Builds from already split DER certificates and a PKCS#8 key; same checks.
    pub fn from_parts(
        chain: Vec<CertificateDer<'static>>,
        key: PrivatePkcs8KeyDer<'static>,
    ) -> Result<Self, SvidError> {
        let checked = check_chain(&chain)?;
        Self::with_key(chain, checked, key)
    }

    fn with_key(
        chain: Vec<CertificateDer<'static>>,
        checked: CheckedChain,
        key: PrivatePkcs8KeyDer<'static>,
    ) -> Result<Self, SvidError> {
        check_key_matches(&checked.leaf_public_key, key.secret_pkcs8_der())?;
        Ok(Self {
            id: checked.id,
            chain,
            key: Arc::new(key),
            not_before: checked.not_before,
            not_after: checked.not_after,
            hint: String::new(),
        })
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
    let mut rest = bytes;
    let mut certs = Vec::new();
    while !rest.is_empty() {
        let index = certs.len();
        match X509Certificate::from_der(rest) {
            Ok((remaining, _)) => {
                let used = rest.len() - remaining.len();
                certs.push(CertificateDer::from(rest[..used].to_vec()));
                rest = remaining;
            }
            Err(e) => {
                return Err(SvidError::CertificateDer {
                    index,
                    reason: e.to_string(),
                })
            }
        }
    }
    if certs.is_empty() {
        return Err(SvidError::NoCertificates);
    }
    Ok(certs)
}

/// Every SPIFFE leaf rule a certificate breaks (empty = a valid X509-SVID leaf), for
/// reporting; [`X509Svid`] parsing stops at the first.
pub fn check_leaf(der: &[u8]) -> Vec<Violation> {
    match parse_cert(der) {
        Ok(cert) => leaf_violations(&cert),
        Err(reason) => vec![not_a_certificate(reason)],
    }
}

/// Every SPIFFE signing-certificate rule a CA certificate breaks.
pub fn check_signing_cert(der: &[u8]) -> Vec<Violation> {
    match parse_cert(der) {
        Ok(cert) => signing_violations(&cert),
        Err(reason) => vec![not_a_certificate(reason)],
    }
}

/// Reads the SPIFFE ID from a leaf certificate's single URI SAN (error when there is
/// none, more than one, or it is not a valid SPIFFE ID). Used by TLS peer verifiers.
pub fn spiffe_id_of_cert(der: &[u8]) -> Result<SpiffeId, SvidError> {
    let cert = parse_cert(der).map_err(|reason| SvidError::CertificateDer { index: 0, reason })?;
    leaf_spiffe_id(&cert).map_err(SvidError::Leaf)
}

/// Which TLS role a peer's certificate is verified for; selects the extended key usage
/// rustls-webpki requires *when the leaf carries one* (a leaf without EKU passes, B.18
/// makes EKU a SHOULD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainUsage {
    /// The peer is a TLS client (inbound mTLS): `id-kp-clientAuth`.
    ClientAuth,
    /// The peer is a TLS server (outbound mTLS): `id-kp-serverAuth`.
    ServerAuth,
    /// Either role: the leaf's EKU, if present, must hold clientAuth or serverAuth.
    Any,
}

/// Verifies a peer's chain (leaf first) for authentication (X509-SVID.md §5): the leaf
/// obeys every leaf rule, and the path is built with rustls-webpki to an authority of
/// the bundle of the *leaf's own* trust domain, at `now`. No bundle for that trust
/// domain means the peer is untrusted. Returns the peer's SPIFFE ID.
///
/// The EKU accepted is that of [`ChainUsage::Any`]; TLS verifiers that know their role
/// should call [`verify_chain_for`].
pub fn verify_chain(
    chain: &[CertificateDer<'_>],
    bundles: &BundleSet,
    now: UnixTime,
) -> Result<SpiffeId, SvidError> {
    verify_chain_for(chain, bundles, now, ChainUsage::Any)
}

/// [`verify_chain`] for a given TLS role. Order: the leaf's authentication rules
/// (B.20: one URI SAN holding a SPIFFE ID with a non-root path, cA false, no
/// keyCertSign / cRLSign), then the bundle of the leaf's trust domain (B.21), then
/// RFC 5280 path validation with rustls-webpki (B.19). DNS names are never consulted.
pub fn verify_chain_for(
    chain: &[CertificateDer<'_>],
    bundles: &BundleSet,
    now: UnixTime,
    usage: ChainUsage,
) -> Result<SpiffeId, SvidError> {
    let leaf_der = chain.first().ok_or(SvidError::EmptyChain)?;
    let leaf =
        parse_cert(leaf_der).map_err(|reason| SvidError::CertificateDer { index: 0, reason })?;
    let id = leaf_spiffe_id(&leaf).map_err(SvidError::Leaf)?;
    if let Some(v) = authentication_violations(&leaf, &id).into_iter().next() {
        return Err(SvidError::Leaf(v));
    }
    let td = id.trust_domain();
    let bundle = bundles.get(&td).ok_or_else(|| SvidError::NoBundle {
        trust_domain: td.to_string(),
    })?;
    let untrusted = |reason: String| SvidError::Untrusted {
        id: id.to_string(),
        trust_domain: td.to_string(),
        reason,
    };
    let anchors = bundle
        .authorities()
        .iter()
        .filter_map(|ca| webpki::anchor_from_trusted_cert(ca).ok())
        .collect::<Vec<_>>();
    if anchors.is_empty() {
        return Err(untrusted("the bundle holds no usable authority".into()));
    }
    let end_entity =
        webpki::EndEntityCert::try_from(leaf_der).map_err(|e| untrusted(e.to_string()))?;
    end_entity
        .verify_for_usage(
            SUPPORTED_SIG_ALGS,
            &anchors,
            &chain[1..],
            now,
            EkuPolicy(usage),
            None,
            None,
        )
        .map_err(|e| untrusted(e.to_string()))?;
    Ok(id)
}

// === impl internals ===

/// What [`check_chain`] extracts from a chain that obeys every SPIFFE rule.
struct CheckedChain {
    id: SpiffeId,
    leaf_public_key: Vec<u8>,
    not_before: SystemTime,
    not_after: SystemTime,
}

/// Every leaf rule on chain[0], every signing rule on chain[1..], first failure wins.
/// Validity period and signatures are not looked at (as in go-spiffe's Parse): that is
/// [`verify_chain`]'s job and the holder's own SVID may be checked before it is valid.
fn check_chain(chain: &[CertificateDer<'_>]) -> Result<CheckedChain, SvidError> {
    let leaf_der = chain.first().ok_or(SvidError::NoCertificates)?;
    let leaf =
        parse_cert(leaf_der).map_err(|reason| SvidError::CertificateDer { index: 0, reason })?;
    if let Some(v) = leaf_violations(&leaf).into_iter().next() {
        return Err(SvidError::Leaf(v));
    }
    for (index, der) in chain.iter().enumerate().skip(1) {
        let cert = parse_cert(der).map_err(|reason| SvidError::CertificateDer { index, reason })?;
        if let Some(violation) = signing_violations(&cert).into_iter().next() {
            return Err(SvidError::SigningCert { index, violation });
        }
    }
    let id = leaf_spiffe_id(&leaf).map_err(SvidError::Leaf)?;
    let validity = leaf.validity();
    Ok(CheckedChain {
        id,
        leaf_public_key: leaf.public_key().subject_public_key.data.to_vec(),
        not_before: unix_to_system_time(validity.not_before.timestamp()),
        not_after: unix_to_system_time(validity.not_after.timestamp()),
    })
}

/// The signature algorithms accepted in a peer chain: every algorithm rustls-webpki
/// implements with aws-lc-rs (ECDSA P-256/384/521, RSA PKCS#1 and PSS, Ed25519).
static SUPPORTED_SIG_ALGS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] =
    webpki::ALL_VERIFICATION_ALGS;

const EKU_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const EKU_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

/// The EKU rule of [`ChainUsage`] for rustls-webpki: absent EKU passes; present EKU
/// must contain one of the usage's purposes.
struct EkuPolicy(ChainUsage);

impl ExtendedKeyUsageValidator for EkuPolicy {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let wanted: &[&[u8]] = match self.0 {
            ChainUsage::ClientAuth => &[EKU_CLIENT_AUTH],
            ChainUsage::ServerAuth => &[EKU_SERVER_AUTH],
            ChainUsage::Any => &[EKU_CLIENT_AUTH, EKU_SERVER_AUTH],
        };
        let mut empty = true;
        for id in iter {
            empty = false;
            let id = id?;
            if wanted.iter().any(|w| id == KeyPurposeId::new(w)) {
                return Ok(());
            }
        }
        if empty {
            Ok(())
        } else {
            #[allow(deprecated)]
            Err(webpki::Error::RequiredEkuNotFound)
        }
    }
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok((rest, _)) => Err(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn not_a_certificate(reason: String) -> Violation {
    Violation::new(
        "A.11",
        format!(
            "the input is not a DER X.509 certificate, the only X.509-SVID document type: {reason}"
        ),
    )
}

/// The URI SANs of a certificate, or the violation that makes them unreadable.
fn uri_sans<'a>(cert: &'a X509Certificate<'_>) -> Result<Vec<&'a str>, Violation> {
    match cert.subject_alternative_name() {
        Ok(None) => Ok(Vec::new()),
        Ok(Some(san)) => Ok(san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some(*u),
                _ => None,
            })
            .collect()),
        Err(e) => Err(Violation::new(
            "B.12",
            format!("the subject alternative name extension cannot be read: {e}"),
        )),
    }
}

/// B.12 and the SPIFFE ID syntax: exactly one URI SAN, holding a valid SPIFFE ID.
fn leaf_spiffe_id(cert: &X509Certificate<'_>) -> Result<SpiffeId, Violation> {
    let uris = uri_sans(cert)?;
    match uris.as_slice() {
        [] => Err(Violation::new(
            "B.12",
            "the certificate contains no URI SAN",
        )),
        [uri] => SpiffeId::new(uri).map_err(|e| {
            Violation::new(
                "B.20",
                format!("the URI SAN {uri:?} is not a valid SPIFFE ID: {e}"),
            )
        }),
        more => Err(Violation::new(
            "B.12",
            format!(
                "the certificate contains {} URI SANs; an X509-SVID has exactly one",
                more.len()
            ),
        )),
    }
}

fn is_ca(cert: &X509Certificate<'_>) -> Result<bool, Violation> {
    cert.basic_constraints()
        .map(|bc| bc.is_some_and(|bc| bc.value.ca))
        .map_err(|e| {
            Violation::new(
                "B.15",
                format!("the basic constraints extension cannot be read: {e}"),
            )
        })
}

/// The rules a validator must check when authenticating a peer (B.20), after the ID:
/// non-root path, cA false, no keyCertSign, no cRLSign.
fn authentication_violations(cert: &X509Certificate<'_>, id: &SpiffeId) -> Vec<Violation> {
    let mut out = Vec::new();
    if id.is_root() {
        out.push(Violation::new(
            "B.13",
            format!("the leaf SPIFFE ID {id} has no path; a leaf must have a non-root path"),
        ));
    }
    match is_ca(cert) {
        Ok(true) => out.push(Violation::new(
            "B.15",
            "the leaf certificate has the CA flag set to true",
        )),
        Ok(false) => {}
        Err(v) => out.push(v),
    }
    if let Ok(Some(ku)) = cert.key_usage() {
        if ku.value.key_cert_sign() {
            out.push(Violation::new(
                "B.17",
                "the leaf certificate has 'keyCertSign' set as key usage",
            ));
        }
        if ku.value.crl_sign() {
            out.push(Violation::new(
                "B.17",
                "the leaf certificate has 'cRLSign' set as key usage",
            ));
        }
    }
    out
}

/// Every leaf rule, in go-spiffe's parse order: URI SAN and ID, root path, CA flag,
/// key usage (presence, digitalSignature, keyCertSign, cRLSign, criticality), then the
/// rules go-spiffe does not check (SAN criticality, EKU).
fn leaf_violations(cert: &X509Certificate<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    match leaf_spiffe_id(cert) {
        Ok(id) if id.is_root() => out.push(Violation::new(
            "B.13",
            format!("the leaf SPIFFE ID {id} has no path; a leaf must have a non-root path"),
        )),
        Ok(_) => {}
        Err(v) => out.push(v),
    }
    match is_ca(cert) {
        Ok(true) => out.push(Violation::new(
            "B.15",
            "the leaf certificate has the CA flag set to true",
        )),
        Ok(false) => {}
        Err(v) => out.push(v),
    }
    match cert.key_usage() {
        Ok(None) => out.push(Violation::new("B.16", "the key usage extension is missing")),
        Ok(Some(ku)) => {
            if !ku.value.digital_signature() {
                out.push(Violation::new(
                    "B.17",
                    "the leaf certificate lacks 'digitalSignature' in its key usage",
                ));
            }
            if ku.value.key_cert_sign() {
                out.push(Violation::new(
                    "B.17",
                    "the leaf certificate has 'keyCertSign' set as key usage",
                ));
            }
            if ku.value.crl_sign() {
                out.push(Violation::new(
                    "B.17",
                    "the leaf certificate has 'cRLSign' set as key usage",
                ));
            }
            if !ku.critical {
                out.push(Violation::new(
                    "B.16",
                    "the key usage extension is not marked critical",
                ));
            }
        }
        Err(e) => out.push(Violation::new(
            "B.16",
            format!("the key usage extension cannot be read: {e}"),
        )),
    }
    if cert.subject().iter().next().is_none() {
        if let Ok(Some(san)) = cert.get_extension_unique(&OID_X509_EXT_SUBJECT_ALT_NAME) {
            if !san.critical {
                out.push(Violation::new(
                    "B.13",
                    "the subject is empty but the URI SAN extension is not marked critical",
                ));
            }
        }
    }
    match cert.extended_key_usage() {
        Ok(Some(eku)) if !(eku.value.server_auth && eku.value.client_auth) => {
            let missing = match (eku.value.server_auth, eku.value.client_auth) {
                (false, false) => "id-kp-serverAuth and id-kp-clientAuth",
                (false, true) => "id-kp-serverAuth",
                _ => "id-kp-clientAuth",
            };
            out.push(Violation::new(
                "B.18",
                format!("the extended key usage extension is present but lacks {missing}"),
            ));
        }
        Ok(_) => {}
        Err(e) => out.push(Violation::new(
            "B.18",
            format!("the extended key usage extension cannot be read: {e}"),
        )),
    }
    out
}

/// Every signing-certificate rule: cA true (B.15), key usage present and critical
/// (B.16) with keyCertSign (B.17), and a SPIFFE ID, if any, without a path (B.14).
fn signing_violations(cert: &X509Certificate<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    match is_ca(cert) {
        Ok(false) => out.push(Violation::new(
            "B.15",
            "the signing certificate does not have the CA flag set to true",
        )),
        Ok(true) => {}
        Err(v) => out.push(v),
    }
    match cert.key_usage() {
        Ok(None) => out.push(Violation::new("B.16", "the key usage extension is missing")),
        Ok(Some(ku)) => {
            if !ku.value.key_cert_sign() {
                out.push(Violation::new(
                    "B.17",
                    "the signing certificate does not have 'keyCertSign' set as key usage",
                ));
            }
            if !ku.critical {
                out.push(Violation::new(
                    "B.16",
                    "the key usage extension is not marked critical",
                ));
            }
        }
        Err(e) => out.push(Violation::new(
            "B.16",
            format!("the key usage extension cannot be read: {e}"),
        )),
    }
    match uri_sans(cert) {
        Ok(uris) => {
            for uri in uris.into_iter().filter(|u| u.starts_with("spiffe://")) {
                match SpiffeId::new(uri) {
                    Ok(id) if !id.is_root() => out.push(Violation::new(
                        "B.14",
                        format!("the signing certificate's SPIFFE ID {id} has a path; a signing certificate's ID must not"),
                    )),
                    Ok(_) => {}
                    Err(e) => out.push(Violation::new(
                        "B.14",
                        format!("the signing certificate's URI SAN {uri:?} is not a valid SPIFFE ID: {e}"),
                    )),
                }
            }
        }
        Err(v) => out.push(v),
    }
    out
}

/// Checks that the PKCS#8 key is the leaf's: the public key derived from the private
/// key must equal the leaf's SPKI public key bits (go-spiffe's "leaf certificate does
/// not match private key"). aws-lc-rs rejects encrypted PKCS#8 as unparsable.
fn check_key_matches(cert_key: &[u8], pkcs8: &[u8]) -> Result<(), SvidError> {
    use aws_lc_rs::signature::{self, KeyPair};
    let derived: Vec<u8> = if let Some(kp) = [
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
    ]
    .into_iter()
    .find_map(|alg| signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8).ok())
    {
        kp.public_key().as_ref().to_vec()
    } else if let Ok(kp) = signature::RsaKeyPair::from_pkcs8(pkcs8) {
        kp.public_key().as_ref().to_vec()
    } else {
        match signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8) {
            Ok(kp) => kp.public_key().as_ref().to_vec(),
            Err(e) => return Err(SvidError::PrivateKey(e.to_string())),
        }
    };
    if derived == cert_key {
        Ok(())
    } else {
        Err(SvidError::KeyMismatch)
    }
}

/// All CERTIFICATE blocks of a PEM text, in order (other blocks are skipped, so a file
/// holding both key and chain works). Text without any PEM block is an error.
pub(crate) fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = Vec::new();
    let mut blocks = 0;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        let (kind, der) = section.map_err(|e| e.to_string())?;
        blocks += 1;
        if kind == SectionKind::Certificate {
            certs.push(CertificateDer::from(der));
        }
    }
    if blocks == 0 && !has_unknown_pem_block(pem) {
        return Err("no PEM blocks found".into());
    }
    Ok(certs)
}

/// True when the text holds a PEM header pki-types does not know (it skips those).
fn has_unknown_pem_block(pem: &[u8]) -> bool {
    pem.windows(11).any(|w| w == b"-----BEGIN ")
}

/// The PKCS#8 key of a PEM text: `Ok(None)` when there is none; an error for text
/// that is not PEM, or for a key in another format (encrypted, SEC1, PKCS#1), which
/// the Workload API forbids and which would otherwise surface as "no key".
fn pem_private_key(pem: &[u8]) -> Result<Option<PrivatePkcs8KeyDer<'static>>, SvidError> {
    let mut blocks = 0;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        let (kind, der) = section.map_err(|e| SvidError::KeyPem(e.to_string()))?;
        blocks += 1;
        match kind {
            SectionKind::PrivateKey => return Ok(Some(PrivatePkcs8KeyDer::from(der))),
            SectionKind::EcPrivateKey => {
                return Err(SvidError::UnsupportedKeyFormat("EC PRIVATE KEY".into()))
            }
            SectionKind::RsaPrivateKey => {
                return Err(SvidError::UnsupportedKeyFormat("RSA PRIVATE KEY".into()))
            }
            _ => {}
        }
    }
    const ENCRYPTED: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY";
    if pem.windows(ENCRYPTED.len()).any(|w| w == ENCRYPTED) {
        return Err(SvidError::UnsupportedKeyFormat(
            "ENCRYPTED PRIVATE KEY".into(),
        ));
    }
    if blocks == 0 && !has_unknown_pem_block(pem) {
        return Err(SvidError::KeyPem("no PEM blocks found".into()));
    }
    Ok(None)
}

/// Seconds since the epoch (possibly negative) as a `SystemTime`.
pub(crate) fn unix_to_system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// PEM text of certificates, one CERTIFICATE block each.
pub(crate) fn certs_to_pem(certs: &[CertificateDer<'_>]) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    for cert in certs {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}
