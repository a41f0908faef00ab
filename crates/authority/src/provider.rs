//! The authority as a Workload API identity provider, with rotation.

use std::sync::Arc;

use crate::{Assignment, Authority};

/// Serves an [`Authority`]'s identities to callers of one socket.
pub struct DevProvider {
    authority: Authority,
    assignment: Assignment,
}

impl DevProvider {
    /// A provider; its rotation task runs on the current tokio runtime.
    pub fn new(authority: Authority, assignment: Assignment) -> Arc<Self> {
        let _ = (authority, assignment);
        todo!()
    }
}

impl ward_workload::IdentityProvider for DevProvider {
    fn x509_context(
        &self,
        caller: &ward_workload::Caller,
    ) -> Result<
        tokio::sync::watch::Receiver<Arc<ward_workload::X509Context>>,
        ward_workload::NoIdentity,
    > {
        let _ = (caller, &self.authority, &self.assignment);
        todo!()
    }
    fn x509_bundles(
        &self,
        caller: &ward_workload::Caller,
    ) -> Result<tokio::sync::watch::Receiver<Arc<ward_spiffe::BundleSet>>, ward_workload::NoIdentity>
    {
        let _ = caller;
        todo!()
    }
    fn jwt_bundles(
        &self,
        caller: &ward_workload::Caller,
    ) -> Result<
        tokio::sync::watch::Receiver<Arc<ward_spiffe::JwtBundleSet>>,
        ward_workload::NoIdentity,
    > {
        let _ = caller;
        todo!()
    }
    fn mint_jwt_svids(
        &self,
        caller: &ward_workload::Caller,
        audience: &[String],
        id: Option<&ward_spiffe::SpiffeId>,
    ) -> Result<Vec<ward_spiffe::JwtSvid>, ward_workload::ProviderError> {
        let _ = (caller, audience, id);
        todo!()
    }
}
