//! The CA and what it issues.

use std::path::PathBuf;
use std::time::Duration;

use ward_spiffe::{JwtBundle, JwtSvid, SpiffeId, TrustDomain, X509Bundle, X509Svid};

/// Why the authority could not start or issue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// Placeholder variant; the authority crate's owner defines the real variants.
    #[error("authority: {0}")]
    Other(String),
}

/// Where the CA comes from.
#[derive(Debug, Clone)]
pub enum CaSource {
    /// A new key and self-signed certificate, in memory only.
    Generate,
    /// Kept in this directory (`ca.pem`, `ca_key.pem`, mode 0600): created on first
    /// start, loaded afterwards, so restarts keep the same trust.
    StateDir(PathBuf),
    /// An existing CA certificate and PKCS#8 key (PEM files).
    Files {
        /// CA certificate (PEM).
        cert: PathBuf,
        /// CA private key (PEM, PKCS#8).
        key: PathBuf,
    },
}

/// How the authority is set up.
#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    /// The trust domain it issues for.
    pub trust_domain: TrustDomain,
    /// Lifetime of each X509-SVID; rotation happens at half of it.
    pub svid_ttl: Duration,
    /// Lifetime of each JWT-SVID.
    pub jwt_ttl: Duration,
    /// The CA.
    pub ca: CaSource,
    /// Federated trust domains' SPIFFE bundle files.
    pub federated: Vec<(TrustDomain, PathBuf)>,
}

/// A running local authority (cheap to clone).
#[derive(Debug, Clone)]
pub struct Authority {
    config: AuthorityConfig,
}

impl Authority {
    /// Creates or loads the CA and the JWT signing key, and loads federated bundles.
    pub fn new(config: AuthorityConfig) -> Result<Self, AuthorityError> {
        let _ = config;
        todo!()
    }
    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.config.trust_domain
    }
    /// The CA bundle of the authority's own trust domain.
    pub fn x509_bundle(&self) -> X509Bundle {
        todo!()
    }
    /// Issues a fresh X509-SVID for `id` (a new key each time).
    pub fn issue_x509_svid(&self, id: &SpiffeId) -> Result<X509Svid, AuthorityError> {
        let _ = id;
        todo!()
    }
    /// Mints an ES256 JWT-SVID.
    pub fn mint_jwt_svid(
        &self,
        id: &SpiffeId,
        audience: &[String],
    ) -> Result<JwtSvid, AuthorityError> {
        let _ = (id, audience);
        todo!()
    }
    /// The JWT bundle of the authority's own trust domain.
    pub fn jwt_bundle(&self) -> JwtBundle {
        todo!()
    }
}
