//! Trust bundles: X.509 bundles, JWT bundles, SPIFFE bundle documents, and sets of them
//! keyed by trust domain (CHECKLIST B.21-23, F.55-60). Bundles of different trust
//! domains are never merged: a verifier asks the set for the bundle of the peer's domain.

use std::collections::BTreeMap;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use crate::x509::{certs_to_pem, pem_certificates, split_der_certs};
use crate::{JwtAuthority, TrustDomain};

/// Why a bundle document or certificate set is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The X.509 authorities cannot be read.
    #[error("cannot read the X.509 authorities of trust domain {trust_domain}: {reason}")]
    Certificates {
        /// The bundle's trust domain.
        trust_domain: String,
        /// What is wrong.
        reason: String,
    },
    /// The document is not JSON of the expected shape.
    #[error("cannot parse the bundle document of trust domain {trust_domain}: {reason}")]
    Json {
        /// The bundle's trust domain.
        trust_domain: String,
        /// What is wrong.
        reason: String,
    },
    /// The document has no `keys` member (F.58).
    #[error("the bundle document of trust domain {trust_domain} has no `keys` member")]
    MissingKeys {
        /// The bundle's trust domain.
        trust_domain: String,
    },
    /// One entry of `keys` is unusable.
    #[error(
        "key {index} of the bundle document of trust domain {trust_domain} is invalid: {reason}"
    )]
    Key {
        /// The bundle's trust domain.
        trust_domain: String,
        /// Position in `keys`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The X.509 authorities (CA certificates) of one trust domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Bundle {
    trust_domain: TrustDomain,
    authorities: Vec<CertificateDer<'static>>,
}

impl X509Bundle {
    /// A bundle from already parsed certificates (duplicates removed).
    pub fn new(trust_domain: TrustDomain, authorities: Vec<CertificateDer<'static>>) -> Self {
        let mut unique: Vec<CertificateDer<'static>> = Vec::with_capacity(authorities.len());
        for ca in authorities {
            if !unique.contains(&ca) {
                unique.push(ca);
            }
        }
        Self {
            trust_domain,
            authorities: unique,
        }
    }
    /// Parses concatenated DER certificates (Workload API encoding).
    pub fn parse_der(trust_domain: TrustDomain, der: &[u8]) -> Result<Self, BundleError> {
        let certs = split_der_certs(der).map_err(|e| BundleError::Certificates {
            trust_domain: trust_domain.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self::new(trust_domain, certs))
    }
    /// Parses PEM CERTIFICATE blocks; an empty or certificate-less file is an error.
    ///
    /// Unlike go-spiffe (which returns an empty bundle), an empty file is an error: a
    /// trust domain with no authority cannot authenticate anyone (F.58), and an empty
    /// file is far more often a mistake (wrong path, truncated write) than intended.
    pub fn parse_pem(trust_domain: TrustDomain, pem: &[u8]) -> Result<Self, BundleError> {
        let bad = |reason: String| BundleError::Certificates {
            trust_domain: trust_domain.to_string(),
            reason,
        };
        let certs = pem_certificates(pem).map_err(bad)?;
        if certs.is_empty() {
            return Err(bad("no CERTIFICATE block found".into()));
        }
        for (index, cert) in certs.iter().enumerate() {
            split_der_certs(cert.as_ref())
                .map_err(|e| bad(format!("CERTIFICATE block {index}: {e}")))?;
        }
        Ok(Self::new(trust_domain, certs))
    }
    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }
    /// The CA certificates.
    pub fn authorities(&self) -> &[CertificateDer<'static>] {
        &self.authorities
    }
    /// Concatenated DER (Workload API encoding).
    pub fn to_der(&self) -> Vec<u8> {
        self.authorities
            .iter()
            .flat_map(|c| c.as_ref().iter().copied())
            .collect()
    }
    /// PEM text, one CERTIFICATE block per authority.
    pub fn to_pem(&self) -> String {
        certs_to_pem(&self.authorities)
    }
}

/// X.509 bundles keyed by trust domain, never merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleSet {
    bundles: BTreeMap<TrustDomain, X509Bundle>,
}

impl BundleSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds or replaces the bundle of its trust domain.
    pub fn insert(&mut self, bundle: X509Bundle) {
        self.bundles.insert(bundle.trust_domain().clone(), bundle);
    }
    /// The bundle of a trust domain, if any.
    pub fn get(&self, td: &TrustDomain) -> Option<&X509Bundle> {
        self.bundles.get(td)
    }
    /// Removes a trust domain's bundle.
    pub fn remove(&mut self, td: &TrustDomain) -> Option<X509Bundle> {
        self.bundles.remove(td)
    }
    /// All bundles, ordered by trust domain.
    pub fn iter(&self) -> impl Iterator<Item = &X509Bundle> {
        self.bundles.values()
    }
    /// Number of trust domains.
    pub fn len(&self) -> usize {
        self.bundles.len()
    }
    /// True when there are no bundles.
    pub fn is_empty(&self) -> bool {
        self.bundles.is_empty()
    }
}

/// The JWT authorities (public keys by key ID) of one trust domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtBundle {
    trust_domain: TrustDomain,
    authorities: BTreeMap<String, JwtAuthority>,
}

impl JwtBundle {
    /// An empty bundle.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            authorities: BTreeMap::new(),
        }
    }
    /// Parses a JWKS document (RFC 7517), as `FetchJWTBundles` returns: every key needs a
    /// `kid`; keys of unknown `kty` are ignored.
    pub fn parse_jwks(trust_domain: TrustDomain, json: &[u8]) -> Result<Self, BundleError> {
        let _ = (trust_domain, json);
        todo!()
    }
    /// Serialises as a JWKS document with `use: jwt-svid` on each key.
    pub fn to_jwks(&self) -> Vec<u8> {
        todo!()
    }
    /// Adds or replaces an authority under its key ID.
    pub fn insert(&mut self, authority: JwtAuthority) {
        self.authorities
            .insert(authority.key_id().to_owned(), authority);
    }
    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }
    /// The authority with this key ID.
    pub fn get(&self, kid: &str) -> Option<&JwtAuthority> {
        self.authorities.get(kid)
    }
    /// All authorities.
    pub fn authorities(&self) -> impl Iterator<Item = &JwtAuthority> {
        self.authorities.values()
    }
}

/// JWT bundles keyed by trust domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwtBundleSet {
    bundles: BTreeMap<TrustDomain, JwtBundle>,
}

impl JwtBundleSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds or replaces the bundle of its trust domain.
    pub fn insert(&mut self, bundle: JwtBundle) {
        self.bundles.insert(bundle.trust_domain().clone(), bundle);
    }
    /// The bundle of a trust domain, if any.
    pub fn get(&self, td: &TrustDomain) -> Option<&JwtBundle> {
        self.bundles.get(td)
    }
    /// All bundles, ordered by trust domain.
    pub fn iter(&self) -> impl Iterator<Item = &JwtBundle> {
        self.bundles.values()
    }
}

/// A SPIFFE bundle document (SPIFFE_Trust_Domain_and_Bundle.md §4): a JWKS whose keys
/// carry `use: x509-svid` (one CA in `x5c`) or `use: jwt-svid` (with `kid`), plus
/// `spiffe_sequence` and `spiffe_refresh_hint`. Unknown `kty` or `use` are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiffeBundle {
    /// The X.509 authorities.
    pub x509: X509Bundle,
    /// The JWT authorities.
    pub jwt: JwtBundle,
    /// `spiffe_sequence`, when present.
    pub sequence: Option<u64>,
    /// `spiffe_refresh_hint`, when present.
    pub refresh_hint: Option<Duration>,
}

impl SpiffeBundle {
    /// Parses a SPIFFE bundle document for a trust domain.
    pub fn parse(trust_domain: TrustDomain, json: &[u8]) -> Result<Self, BundleError> {
        let _ = (trust_domain, json);
        todo!()
    }
    /// Serialises as a SPIFFE bundle document.
    pub fn to_json(&self) -> Vec<u8> {
        todo!()
    }
}
