//! SPIFFE IDs and trust domain names (SPIFFE-ID.md; CHECKLIST section A).
//!
//! Parsing is strict to the letter of the standard and deliberately does not go
//! through a general URI parser: a SPIFFE ID is `spiffe://` + trust domain + path and
//! nothing else, so userinfo, ports, queries, fragments and percent-encoding all show
//! up as a character outside the allowed classes and are rejected (A.1, A.2, A.5).

use std::fmt;
use std::str::FromStr;

/// The only scheme a SPIFFE ID may have (A.1). Matched case-sensitively: §2.1 requires
/// the host to be lowercase and go-spiffe rejects `SPIFFE://` as well, so ward never
/// has to normalise an ID before comparing it.
const SCHEME_PREFIX: &str = "spiffe://";

/// Longest SPIFFE ID in bytes an implementation must support (A.9, §2.3).
pub const MAX_ID_LEN: usize = 2048;

/// Longest trust domain name in bytes (A.9: the RFC 3986 host limit).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// Why a string is not a valid SPIFFE ID or trust domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The input is empty.
    #[error("the SPIFFE ID is empty")]
    Empty,
    /// The input does not start with `spiffe://` (A.1).
    #[error("the scheme is missing or invalid: a SPIFFE ID starts with `spiffe://` (lowercase)")]
    BadScheme,
    /// Nothing between `spiffe://` and the path (A.1, A.2).
    #[error("the trust domain is missing")]
    MissingTrustDomain,
    /// A byte outside `[a-z0-9._-]` in the trust domain (A.2, A.3: uppercase, `@`
    /// userinfo, `:` port, `%` escapes, `?` query and `#` fragment all land here).
    #[error(
        "trust domain characters are limited to lowercase letters, numbers, dots, dashes, \
         and underscores; found {found:?} at byte {position} of the trust domain"
    )]
    BadTrustDomainChar {
        /// The offending character.
        found: char,
        /// Its byte offset inside the trust domain name.
        position: usize,
    },
    /// The trust domain name is longer than 255 bytes (A.9).
    #[error("the trust domain is {len} bytes long; the limit is 255")]
    TrustDomainTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A byte outside `[a-zA-Z0-9._-]` in a path segment (A.5, A.8).
    #[error(
        "path segment characters are limited to letters, numbers, dots, dashes, and \
         underscores; found {found:?} at byte {position} of the path"
    )]
    BadPathChar {
        /// The offending character.
        found: char,
        /// Its byte offset inside the path.
        position: usize,
    },
    /// `//` in the path (A.6).
    #[error("the path cannot contain empty segments")]
    EmptySegment,
    /// A `.` or `..` segment (A.6).
    #[error("the path cannot contain dot segments (`.` or `..`)")]
    DotSegment,
    /// The path ends with `/` (A.7).
    #[error("the path cannot have a trailing slash")]
    TrailingSlash,
    /// A non-empty path that does not start with `/`.
    #[error("the path must have a leading slash")]
    MissingLeadingSlash,
    /// The whole ID is longer than 2048 bytes (A.9).
    #[error("the SPIFFE ID is {len} bytes long; the limit is 2048")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
}

/// A trust domain name: lowercase `[a-z0-9._-]`, 1..=255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain {
    name: String,
}

impl TrustDomain {
    /// Parses a trust domain name (`example.org`) or the trust domain of a SPIFFE ID
    /// (`spiffe://example.org/anything`).
    ///
    /// Like go-spiffe's `TrustDomainFromString`, any input containing `:/` is read as
    /// a whole SPIFFE ID (so its path must be valid too).
    pub fn new(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::MissingTrustDomain);
        }
        if s.contains(":/") {
            return SpiffeId::new(s).map(|id| id.trust_domain());
        }
        validate_trust_domain_name(s)?;
        Ok(Self { name: s.to_owned() })
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
    /// The trust domain's own SPIFFE ID as a [`SpiffeId`] (root path).
    pub fn id(&self) -> SpiffeId {
        SpiffeId {
            full: self.id_string(),
            td_end: SCHEME_PREFIX.len() + self.name.len(),
        }
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
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        let rest = s.strip_prefix(SCHEME_PREFIX).ok_or(IdError::BadScheme)?;
        let td_len = rest.find('/').unwrap_or(rest.len());
        let (td, path) = rest.split_at(td_len);
        if td.is_empty() {
            return Err(IdError::MissingTrustDomain);
        }
        validate_trust_domain_name(td)?;
        validate_path(path)?;
        Self::checked(s.to_owned(), SCHEME_PREFIX.len() + td_len)
    }
    /// Builds `spiffe://<td>/<seg>/<seg>...`; each segment validated.
    pub fn from_segments(td: &TrustDomain, segments: &[&str]) -> Result<Self, IdError> {
        let mut full = td.id_string();
        let td_end = full.len();
        for segment in segments {
            validate_segment(segment)?;
            full.push('/');
            full.push_str(segment);
        }
        Self::checked(full, td_end)
    }
    /// Builds `spiffe://<td><path>`; `path` is empty or starts with `/`.
    pub fn from_path(td: &TrustDomain, path: &str) -> Result<Self, IdError> {
        validate_path(path)?;
        let full = format!("{}{}", td.id_string(), path);
        Self::checked(full, SCHEME_PREFIX.len() + td.name.len())
    }
    /// This ID with `path` (empty or starting with `/`) appended to its path.
    pub fn append_path(&self, path: &str) -> Result<Self, IdError> {
        validate_path(path)?;
        Self::checked(format!("{}{}", self.full, path), self.td_end)
    }
    /// This ID's trust domain with a new path.
    pub fn replace_path(&self, path: &str) -> Result<Self, IdError> {
        Self::from_path(&self.trust_domain(), path)
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
    /// True when this ID belongs to `td`.
    pub fn is_member_of(&self, td: &TrustDomain) -> bool {
        self.trust_domain_str() == td.as_str()
    }

    /// Applies the total length limit (A.9) to an ID whose parts are already valid.
    fn checked(full: String, td_end: usize) -> Result<Self, IdError> {
        if full.len() > MAX_ID_LEN {
            return Err(IdError::TooLong { len: full.len() });
        }
        Ok(Self { full, td_end })
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

/// Validates a bare trust domain name: 1..=255 bytes of `[a-z0-9._-]` (A.2, A.3, A.9).
/// Uppercase is rejected rather than lowercased: §2.1 says the host MUST be lowercase,
/// and accepting `Example.org` would let two spellings of one domain reach policy.
fn validate_trust_domain_name(td: &str) -> Result<(), IdError> {
    if td.is_empty() {
        return Err(IdError::MissingTrustDomain);
    }
    if let Some((position, found)) = td.char_indices().find(|&(_, c)| !is_trust_domain_char(c)) {
        return Err(IdError::BadTrustDomainChar { found, position });
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(IdError::TrustDomainTooLong { len: td.len() });
    }
    Ok(())
}

fn is_trust_domain_char(c: char) -> bool {
    matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_')
}

fn is_path_char(c: char) -> bool {
    matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_')
}

/// Validates a path (`""` or `/seg/seg`), per SPIFFE-ID.md §2.2.
pub fn validate_path(path: &str) -> Result<(), IdError> {
    if path.is_empty() {
        return Ok(());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(IdError::MissingLeadingSlash);
    };
    let mut offset = 1;
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        if segment.is_empty() {
            // `/` alone or `/a/` end in an empty last segment: report the trailing
            // slash (A.7); an empty segment anywhere else is `//` (A.6).
            return Err(if segments.peek().is_none() {
                IdError::TrailingSlash
            } else {
                IdError::EmptySegment
            });
        }
        validate_segment(segment).map_err(|e| match e {
            IdError::BadPathChar { found, position } => IdError::BadPathChar {
                found,
                position: position + offset,
            },
            other => other,
        })?;
        offset += segment.len() + 1;
    }
    Ok(())
}

/// Validates one path segment, per SPIFFE-ID.md §2.2.
pub fn validate_segment(segment: &str) -> Result<(), IdError> {
    match segment {
        "" => Err(IdError::EmptySegment),
        "." | ".." => Err(IdError::DotSegment),
        _ => match segment.char_indices().find(|&(_, c)| !is_path_char(c)) {
            Some((position, found)) => Err(IdError::BadPathChar { found, position }),
            None => Ok(()),
        },
    }
}
