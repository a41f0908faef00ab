//! A Workload API client: every request carries `workload.spiffe.io: true`.

use ward_spiffe::{BundleSet, JwtBundleSet, JwtSvid, SpiffeId};

use crate::{EndpointAddress, X509Context};

/// Why a Workload API call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Placeholder variant; the workload crate's owner defines the real variants.
    #[error("Workload API call failed: {0}")]
    Other(String),
}

/// A connected Workload API client (cheap to clone).
#[derive(Debug, Clone)]
pub struct WorkloadClient {
    addr: EndpointAddress,
}

impl WorkloadClient {
    /// Connects (lazily for Unix sockets: the first call reports a missing socket).
    pub async fn connect(addr: &EndpointAddress) -> Result<Self, ClientError> {
        let _ = addr;
        todo!()
    }
    /// The address this client talks to.
    pub fn address(&self) -> &EndpointAddress {
        &self.addr
    }
    /// The first message of `FetchX509SVID`, validated.
    pub async fn fetch_x509_context(&self) -> Result<X509Context, ClientError> {
        todo!()
    }
    /// The first message of `FetchX509Bundles`.
    pub async fn fetch_x509_bundles(&self) -> Result<BundleSet, ClientError> {
        todo!()
    }
    /// `FetchJWTSVID` for an audience (all identities when `id` is None).
    pub async fn fetch_jwt_svids(
        &self,
        audience: &[String],
        id: Option<&SpiffeId>,
    ) -> Result<Vec<JwtSvid>, ClientError> {
        let _ = (audience, id);
        todo!()
    }
    /// The first message of `FetchJWTBundles`.
    pub async fn fetch_jwt_bundles(&self) -> Result<JwtBundleSet, ClientError> {
        todo!()
    }
    /// `ValidateJWTSVID`: the subject and the claims as JSON.
    pub async fn validate_jwt_svid(
        &self,
        audience: &str,
        token: &str,
    ) -> Result<(SpiffeId, serde_json::Map<String, serde_json::Value>), ClientError> {
        let _ = (audience, token);
        todo!()
    }
}
