//! JWT-SVIDs (JWT-SVID.md; CHECKLIST section C) and JWT authorities (public keys).

use std::time::SystemTime;

use crate::{JwtBundleSet, SpiffeId};

/// Why a token is not a valid JWT-SVID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Placeholder variant; the spiffe crate's owner defines the real variants.
    #[error("invalid JWT-SVID: {0}")]
    Invalid(String),
}

/// A JWT signing authority's public key with its key ID. Supported: EC P-256/P-384/P-521
/// and RSA (for ES*, RS* and PS* algorithms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtAuthority {
    kid: String,
    /// The public key as a JWK object (`kty`, `crv`, `x`, `y` or `n`, `e`), without `kid`
    /// and `use`, kept as parsed so serialisation round-trips.
    jwk: serde_json::Map<String, serde_json::Value>,
}

impl JwtAuthority {
    /// From a JWK JSON object; `kid` is required.
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<Self, JwtError> {
        let _ = jwk;
        todo!()
    }
    /// An EC P-256 key from its uncompressed SEC1 point (`0x04 || x || y`).
    pub fn ec_p256(kid: impl Into<String>, uncompressed_point: &[u8]) -> Result<Self, JwtError> {
        let _ = (kid.into(), uncompressed_point);
        todo!()
    }
    /// The key ID.
    pub fn key_id(&self) -> &str {
        &self.kid
    }
    /// The JWK object including `kid` (and `use: jwt-svid` when `with_use`).
    pub fn to_jwk(&self, with_use: bool) -> serde_json::Value {
        let _ = with_use;
        todo!()
    }
}

/// A JWT-SVID: the token and its validated claims.
#[derive(Debug, Clone)]
pub struct JwtSvid {
    token: String,
    id: SpiffeId,
    audience: Vec<String>,
    expiry: SystemTime,
    claims: serde_json::Map<String, serde_json::Value>,
    hint: String,
}

impl JwtSvid {
    /// Parses and fully validates a token: algorithm on the allow-list (checked first),
    /// `typ` JWT or JOSE when present, `sub` a SPIFFE ID, `aud` containing one of
    /// `audience`, `exp` present and not past at `now`, signature by the key named by
    /// `kid` in the bundle of the subject's trust domain.
    pub fn parse_and_validate(
        token: &str,
        bundles: &JwtBundleSet,
        audience: &[&str],
        now: SystemTime,
    ) -> Result<Self, JwtError> {
        let _ = (token, bundles, audience, now);
        todo!()
    }
    /// Parses the claims without checking the signature (for a token this process just
    /// received from its own Workload API); the same structural checks otherwise.
    pub fn parse_insecure(token: &str, audience: &[&str]) -> Result<Self, JwtError> {
        let _ = (token, audience);
        todo!()
    }
    /// Sets the Workload API hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }
    /// The compact token.
    pub fn token(&self) -> &str {
        &self.token
    }
    /// The subject.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.id
    }
    /// The `aud` claim.
    pub fn audience(&self) -> &[String] {
        &self.audience
    }
    /// The `exp` claim.
    pub fn expiry(&self) -> SystemTime {
        self.expiry
    }
    /// All claims.
    pub fn claims(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.claims
    }
    /// The Workload API hint ("" when none).
    pub fn hint(&self) -> &str {
        &self.hint
    }
}
