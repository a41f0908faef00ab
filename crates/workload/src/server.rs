//! A Workload API server over a pluggable identity provider.
//!
//! The server answers the X.509 and JWT profiles of the SPIFFE Workload API on a Unix
//! socket, identifies callers by the socket's peer credentials (SO_PEERCRED) and asks an
//! [`IdentityProvider`] what each caller is entitled to. It enforces the endpoint rules
//! (CHECKLIST D.34-35: the `workload.spiffe.io: true` header), answers
//! `PermissionDenied` to callers without identity (E.47) and `Unimplemented` to the
//! optional WIT profile (E.53).

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::{Stream, StreamExt};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::wrappers::{UnixListenerStream, WatchStream};
use tonic::{Request, Response, Status};
use ward_spiffe::{BundleSet, JwtBundleSet, JwtSvid, SpiffeId};

use crate::proto;
use crate::proto::spiffe_workload_api_server::{SpiffeWorkloadApi, SpiffeWorkloadApiServer};
use crate::{X509Context, SECURITY_HEADER};

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

/// The gRPC service over a provider; serve it on Unix sockets with
/// [`WorkloadServer::serve_unix`], or bind first with [`WorkloadServer::bind_unix`].
pub struct WorkloadServer {
    provider: Arc<dyn IdentityProvider>,
}

impl std::fmt::Debug for WorkloadServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadServer").finish_non_exhaustive()
    }
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
        self.bind_unix(path)?.run(shutdown).await
    }

    /// Binds the Unix socket at `path` now, so that a bind error stops start-up before
    /// anything is spawned; serve with [`BoundServer::run`].
    ///
    /// A socket file left behind by a previous run is removed first. Anything else at
    /// `path` (a regular file, a directory) is never deleted, and a socket that still
    /// accepts connections belongs to a live server: both are errors.
    pub fn bind_unix(&self, path: &Path) -> std::io::Result<BoundServer> {
        remove_stale_socket(path)?;
        let listener = UnixListener::bind(path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot bind the Workload API socket {}: {e}",
                    path.display()
                ),
            )
        })?;
        Ok(BoundServer {
            listener,
            path: path.to_path_buf(),
            provider: self.provider.clone(),
        })
    }
}

fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; refusing to replace it with the Workload API socket",
                path.display()
            ),
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("another server is already listening on {}", path.display()),
        ));
    }
    std::fs::remove_file(path)
}

/// A Workload API server bound to its Unix socket, ready to [`run`](BoundServer::run).
pub struct BoundServer {
    listener: UnixListener,
    path: PathBuf,
    provider: Arc<dyn IdentityProvider>,
}

impl std::fmt::Debug for BoundServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundServer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl BoundServer {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `shutdown` resolves. On shutdown every open stream is ended (so that
    /// clients reconnect instead of the server waiting on them forever), and the socket
    /// file is removed.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (closing_tx, closing_rx) = watch::channel(false);
        let service = Service {
            provider: self.provider,
            socket: self.path.clone(),
            closing: closing_rx,
        };
        let svc = SpiffeWorkloadApiServer::with_interceptor(service, check_security_header);
        let signal = async move {
            shutdown.await;
            let _ = closing_tx.send(true);
        };
        tracing::info!(socket = %self.path.display(), "Workload API server listening");
        let result = tonic::transport::Server::builder()
            .serve_with_incoming_shutdown(svc, UnixListenerStream::new(self.listener), signal)
            .await;
        let _ = std::fs::remove_file(&self.path);
        result.map_err(|e| {
            std::io::Error::other(format!(
                "Workload API server on {} failed: {e}",
                self.path.display()
            ))
        })
    }
}

/// D.34-35: every request carries `workload.spiffe.io: true` (exactly one value, case
/// sensitive); without it the answer is `InvalidArgument`, in SPIRE's words. The header
/// is what stops a browser or SSRF-able proxy from reaching the API.
#[allow(clippy::result_large_err)]
fn check_security_header(req: Request<()>) -> Result<Request<()>, Status> {
    let mut values = req.metadata().get_all(SECURITY_HEADER).iter();
    match (values.next(), values.next()) {
        (Some(v), None) if v.as_bytes() == b"true" => Ok(req),
        _ => Err(Status::invalid_argument(
            "security header missing from request",
        )),
    }
}

// === impl Service ===

struct Service {
    provider: Arc<dyn IdentityProvider>,
    socket: PathBuf,
    closing: watch::Receiver<bool>,
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl Service {
    fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let info = req
            .extensions()
            .get::<tonic::transport::server::UdsConnectInfo>();
        let Some(cred) = info.and_then(|i| i.peer_cred) else {
            // Without peer credentials the caller cannot be attested: no identity.
            return Err(Status::permission_denied("no identity issued"));
        };
        let pid = cred.pid();
        Ok(Caller {
            pid,
            uid: cred.uid(),
            gid: cred.gid(),
            exe: pid.and_then(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok()),
            socket: Some(self.socket.clone()),
        })
    }

    /// The provider's watch channel as a stream: the current value at once, then each
    /// change, each mapped to a full response; ends when the server shuts down.
    fn stream<S, T, F>(&self, rx: watch::Receiver<Arc<S>>, to_response: F) -> ResponseStream<T>
    where
        S: Send + Sync + 'static,
        T: Send + 'static,
        F: Fn(&S) -> Result<T, Status> + Send + 'static,
    {
        let mut closing = self.closing.clone();
        let stop = async move {
            let _ = closing.wait_for(|c| *c).await;
        };
        Box::pin(
            WatchStream::new(rx)
                .map(move |state| to_response(&state))
                .take_until(stop),
        )
    }
}

fn no_identity(e: NoIdentity) -> Status {
    tracing::debug!(error = %e, "Workload API caller has no identity");
    Status::permission_denied("no identity issued")
}

fn provider_status(e: ProviderError) -> Status {
    match e {
        ProviderError::NoIdentity(e) => no_identity(e),
        ProviderError::InvalidArgument(m) => Status::invalid_argument(m),
        ProviderError::Internal(m) => Status::internal(m),
    }
}

/// E.47-48: one entry per SVID, its own trust domain's bundle in `bundle`, every other
/// trust domain in `federated_bundles` keyed by the trust domain's SPIFFE ID.
#[allow(clippy::result_large_err)]
pub fn x509_svid_response(ctx: &X509Context) -> Result<proto::X509svidResponse, Status> {
    if ctx.svids.is_empty() {
        return Err(Status::permission_denied("no identity issued"));
    }
    let mut svids = Vec::with_capacity(ctx.svids.len());
    for svid in &ctx.svids {
        let td = svid.spiffe_id().trust_domain();
        let bundle = ctx
            .bundles
            .get(&td)
            .ok_or_else(|| Status::internal(format!("no X.509 bundle for trust domain {td}")))?;
        svids.push(proto::X509svid {
            spiffe_id: svid.spiffe_id().to_string(),
            x509_svid: svid.chain_der(),
            x509_svid_key: svid.private_key().secret_pkcs8_der().to_vec(),
            bundle: bundle.to_der(),
            hint: svid.hint().to_string(),
        });
    }
    let own: Vec<_> = ctx
        .svids
        .iter()
        .map(|s| s.spiffe_id().trust_domain())
        .collect();
    let federated_bundles = ctx
        .bundles
        .iter()
        .filter(|b| !own.contains(b.trust_domain()))
        .map(|b| (b.trust_domain().id_string(), b.to_der()))
        .collect();
    Ok(proto::X509svidResponse {
        svids,
        crl: Vec::new(),
        federated_bundles,
    })
}

fn x509_bundles_response(set: &BundleSet) -> proto::X509BundlesResponse {
    proto::X509BundlesResponse {
        crl: Vec::new(),
        bundles: set
            .iter()
            .map(|b| (b.trust_domain().id_string(), b.to_der()))
            .collect(),
    }
}

fn jwt_bundles_response(set: &JwtBundleSet) -> proto::JwtBundlesResponse {
    proto::JwtBundlesResponse {
        bundles: set
            .iter()
            .map(|b| (b.trust_domain().id_string(), b.to_jwks()))
            .collect(),
    }
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for Service {
    type FetchX509SVIDStream = ResponseStream<proto::X509svidResponse>;
    type FetchX509BundlesStream = ResponseStream<proto::X509BundlesResponse>;
    type FetchJWTBundlesStream = ResponseStream<proto::JwtBundlesResponse>;
    type FetchWITSVIDStream = ResponseStream<proto::WitsvidResponse>;
    type FetchWITBundlesStream = ResponseStream<proto::WitBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        request: Request<proto::X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        let caller = self.caller(&request)?;
        let rx = self.provider.x509_context(&caller).map_err(no_identity)?;
        Ok(Response::new(self.stream(rx, x509_svid_response)))
    }

    async fn fetch_x509_bundles(
        &self,
        request: Request<proto::X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        let caller = self.caller(&request)?;
        let rx = self.provider.x509_bundles(&caller).map_err(no_identity)?;
        Ok(Response::new(
            self.stream(rx, |s| Ok(x509_bundles_response(s))),
        ))
    }

    async fn fetch_jwtsvid(
        &self,
        request: Request<proto::JwtsvidRequest>,
    ) -> Result<Response<proto::JwtsvidResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        // E.50: the audience is mandatory.
        if req.audience.is_empty() || req.audience.iter().any(String::is_empty) {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        let id = if req.spiffe_id.is_empty() {
            None
        } else {
            Some(SpiffeId::new(&req.spiffe_id).map_err(|e| {
                Status::invalid_argument(format!("invalid requested SPIFFE ID: {e}"))
            })?)
        };
        let svids = self
            .provider
            .mint_jwt_svids(&caller, &req.audience, id.as_ref())
            .map_err(provider_status)?;
        // E.50: the response holds at least one JWT-SVID.
        if svids.is_empty() {
            return Err(Status::permission_denied("no identity issued"));
        }
        Ok(Response::new(proto::JwtsvidResponse {
            svids: svids
                .iter()
                .map(|s| proto::Jwtsvid {
                    spiffe_id: s.spiffe_id().to_string(),
                    svid: s.token().to_string(),
                    hint: s.hint().to_string(),
                })
                .collect(),
        }))
    }

    async fn fetch_jwt_bundles(
        &self,
        request: Request<proto::JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        let caller = self.caller(&request)?;
        let rx = self.provider.jwt_bundles(&caller).map_err(no_identity)?;
        Ok(Response::new(
            self.stream(rx, |s| Ok(jwt_bundles_response(s))),
        ))
    }

    async fn validate_jwtsvid(
        &self,
        request: Request<proto::ValidateJwtsvidRequest>,
    ) -> Result<Response<proto::ValidateJwtsvidResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        // E.52: both request fields are mandatory.
        if req.audience.is_empty() {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        if req.svid.is_empty() {
            return Err(Status::invalid_argument("svid must be specified"));
        }
        let bundles = self
            .provider
            .jwt_bundles(&caller)
            .map_err(no_identity)?
            .borrow()
            .clone();
        let svid = JwtSvid::parse_and_validate(
            &req.svid,
            &bundles,
            &[req.audience.as_str()],
            SystemTime::now(),
        )
        .map_err(|e| Status::invalid_argument(format!("invalid JWT-SVID: {e}")))?;
        Ok(Response::new(proto::ValidateJwtsvidResponse {
            spiffe_id: svid.spiffe_id().to_string(),
            claims: Some(crate::claims::json_to_struct(svid.claims())),
        }))
    }

    async fn fetch_witsvid(
        &self,
        _request: Request<proto::WitsvidRequest>,
    ) -> Result<Response<Self::FetchWITSVIDStream>, Status> {
        Err(Status::unimplemented(
            "the WIT-SVID profile is not supported",
        ))
    }

    async fn fetch_wit_bundles(
        &self,
        _request: Request<proto::WitBundlesRequest>,
    ) -> Result<Response<Self::FetchWITBundlesStream>, Status> {
        Err(Status::unimplemented(
            "the WIT-SVID profile is not supported",
        ))
    }
}
