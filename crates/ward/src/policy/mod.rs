//! Authorization policy: deny by default, explicit deny rules win over allow rules.
//! Patterns are validated at load: a typo is a load error, never "matches nothing".

use std::sync::Arc;

use ward_spiffe::SpiffeId;

/// Why a policy file or pattern is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Placeholder variant; the policy module's owner defines the real variants.
    #[error("policy: {0}")]
    Invalid(String),
}

/// A SPIFFE ID pattern: an exact ID, `*` for one path segment, a trailing `**` for any
/// rest, or a whole trust domain (`spiffe://example.org/**` or `spiffe://example.org`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPattern {
    text: String,
}

impl IdPattern {
    /// Parses and validates a pattern.
    pub fn parse(s: &str) -> Result<Self, PolicyError> {
        let _ = s;
        todo!()
    }
    /// True when `id` matches.
    pub fn matches(&self, id: &SpiffeId) -> bool {
        let _ = id;
        todo!()
    }
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// What is being authorized.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The listener's name.
    pub listener: &'a str,
    /// The verified peer.
    pub peer: &'a SpiffeId,
    /// HTTP method (http mode).
    pub method: Option<&'a str>,
    /// HTTP path (http mode).
    pub path: Option<&'a str>,
}

/// The outcome, with the rule that decided (None: the default deny).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allowed?
    pub allow: bool,
    /// Name of the deciding rule.
    pub rule: Option<Arc<str>>,
}

/// A loaded, validated policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<()>,
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(path: &std::path::Path) -> Result<Self, PolicyError> {
        let _ = path;
        todo!()
    }
    /// One allow rule for `listener` (used by `ward inbound --allow`).
    pub fn allow_all_of(listener: &str, ids: Vec<IdPattern>) -> Self {
        let _ = (listener, ids);
        todo!()
    }
    /// Decides a request.
    pub fn decide(&self, request: &Request<'_>) -> Decision {
        let _ = (request, &self.rules);
        todo!()
    }
}

/// The policy in force, swapped atomically on reload (lock-free reads on the data path).
#[derive(Debug)]
pub struct PolicyHandle {
    current: arc_swap::ArcSwap<Policy>,
}

impl PolicyHandle {
    /// A handle holding `policy`.
    pub fn new(policy: Policy) -> Arc<Self> {
        Arc::new(Self {
            current: arc_swap::ArcSwap::from_pointee(policy),
        })
    }
    /// The policy in force now.
    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }
    /// Replaces the policy.
    pub fn store(&self, policy: Policy) {
        self.current.store(Arc::new(policy));
    }
}
