//! A Workload API server over a pluggable identity provider.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use ward_spiffe::{BundleSet, JwtBundleSet, JwtSvid, SpiffeId};

use crate::X509Context;

/// Who is calling, from the Unix socket's peer credentials (SO_PEERCRED).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Process ID, when the kernel reports it.
    pub pid: Option<i32>,
    /// User ID.
    pub uid: u32,
    /// Group ID.
    pub gid: u32,
    /// The caller's executable (`/proc/<pid>/exe`), when readable.
    pub exe: Option<PathBuf>,
    /// The socket the call came in on.
    pub socket: Option<PathBuf>,
}

/// The caller has no identity: answered with `PermissionDenied`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no identity issued: {0}")]
pub struct NoIdentity(pub String);

/// A provider failure other than "no identity".
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The caller has no identity (`PermissionDenied`).
    #[error(transparent)]
    NoIdentity(#[from] NoIdentity),
    /// The request is wrong (`InvalidArgument`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Anything else (`Internal`).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Where identities come from. The server turns each watch channel into a stream that
/// sends the current value at once and again on every change.
pub trait IdentityProvider: Send + Sync + 'static {
    /// The caller's X.509 state (SVIDs + bundles), live.
    fn x509_context(
        &self,
        caller: &Caller,
    ) -> Result<watch::Receiver<Arc<X509Context>>, NoIdentity>;
    /// The X.509 bundles the caller may see, live.
    fn x509_bundles(&self, caller: &Caller) -> Result<watch::Receiver<Arc<BundleSet>>, NoIdentity>;
    /// The JWT bundles the caller may see, live.
    fn jwt_bundles(
        &self,
        caller: &Caller,
    ) -> Result<watch::Receiver<Arc<JwtBundleSet>>, NoIdentity>;
    /// Mints JWT-SVIDs for `audience` (every identity of the caller when `id` is None).
    fn mint_jwt_svids(
        &self,
        caller: &Caller,
        audience: &[String],
        id: Option<&SpiffeId>,
    ) -> Result<Vec<JwtSvid>, ProviderError>;
}

/// The gRPC service over a provider; serve it on Unix sockets with [`WorkloadServer::serve_unix`].
pub struct WorkloadServer {
    provider: Arc<dyn IdentityProvider>,
}

impl WorkloadServer {
    /// A server over this provider.
    pub fn new(provider: Arc<dyn IdentityProvider>) -> Self {
        Self { provider }
    }
    /// Binds `path` (removing a stale socket file first), then serves until `shutdown`
    /// resolves. The bind happens before this returns its future's first poll result,
    /// so a bind error is reported at once.
    pub async fn serve_unix(
        &self,
        path: &std::path::Path,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let _ = (path, shutdown, &self.provider);
        todo!()
    }
}
