//! The X.509 state the Workload API hands a workload.

use ward_spiffe::{BundleSet, X509Svid};

/// What `FetchX509SVID` delivers: the caller's SVIDs (the first is the default identity)
/// and the X.509 bundles of its own and federated trust domains, each kept apart.
#[derive(Debug, Clone)]
pub struct X509Context {
    /// The SVIDs, default first. Never empty in a context a source publishes.
    pub svids: Vec<X509Svid>,
    /// Bundles by trust domain: the SVIDs' own trust domain plus federated ones.
    pub bundles: BundleSet,
}

impl X509Context {
    /// The default SVID (the first).
    pub fn default_svid(&self) -> Option<&X509Svid> {
        self.svids.first()
    }
}
