//! SPIFFE IDs and trust domain names (SPIFFE-ID.md; CHECKLIST section A).

use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid SPIFFE ID or trust domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Placeholder variant; the spiffe crate's owner defines the real variants.
    #[error("invalid SPIFFE ID: {0}")]
    Invalid(String),
}

/// A trust domain name: lowercase `[a-z0-9._-]`, 1..=255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain {
    name: String,
}

impl TrustDomain {
    /// Parses a trust domain name (`example.org`) or the trust domain of a SPIFFE ID
    /// (`spiffe://example.org/anything`).
    pub fn new(s: &str) -> Result<Self, IdError> {
        let _ = s;
        todo!()
    }
    /// The bare name, `example.org`.
    pub fn as_str(&self) -> &str {
        &self.name
    }
    /// The trust domain's own SPIFFE ID, `spiffe://example.org` (the key of
    /// `federated_bundles` and `bundles` maps in the Workload API).
    pub fn id_string(&self) -> String {
        format!("spiffe://{}", self.name)
    }
}

impl FromStr for TrustDomain {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A SPIFFE ID: `spiffe://<trust domain><path>`, up to 2048 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    /// The whole ID as text.
    full: String,
    /// Byte length of `spiffe://<td>`; the path starts there.
    td_end: usize,
}

impl SpiffeId {
    /// Parses and validates a SPIFFE ID.
    pub fn new(s: &str) -> Result<Self, IdError> {
        let _ = s;
        todo!()
    }
    /// Builds `spiffe://<td>/<seg>/<seg>...`; each segment validated.
    pub fn from_segments(td: &TrustDomain, segments: &[&str]) -> Result<Self, IdError> {
        let _ = (td, segments);
        todo!()
    }
    /// Builds `spiffe://<td><path>`; `path` is empty or starts with `/`.
    pub fn from_path(td: &TrustDomain, path: &str) -> Result<Self, IdError> {
        let _ = (td, path);
        todo!()
    }
    /// The trust domain.
    pub fn trust_domain(&self) -> TrustDomain {
        TrustDomain {
            name: self.full["spiffe://".len()..self.td_end].to_owned(),
        }
    }
    /// The trust domain name, borrowed.
    pub fn trust_domain_str(&self) -> &str {
        &self.full["spiffe://".len()..self.td_end]
    }
    /// The path, `""` or `/seg/...`.
    pub fn path(&self) -> &str {
        &self.full[self.td_end..]
    }
    /// The whole ID.
    pub fn as_str(&self) -> &str {
        &self.full
    }
    /// True when the path is empty (the ID of a trust domain, never a workload's).
    pub fn is_root(&self) -> bool {
        self.path().is_empty()
    }
}

impl FromStr for SpiffeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// Validates a path (`""` or `/seg/seg`), per SPIFFE-ID.md §2.2.
pub fn validate_path(path: &str) -> Result<(), IdError> {
    let _ = path;
    todo!()
}

/// Validates one path segment, per SPIFFE-ID.md §2.2.
pub fn validate_segment(segment: &str) -> Result<(), IdError> {
    let _ = segment;
    todo!()
}
