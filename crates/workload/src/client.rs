//! A Workload API client: every request carries `workload.spiffe.io: true`.
//!
//! Responses are validated into ward-spiffe types before anyone sees them: a message
//! with a mandatory field at its default value is an error (CHECKLIST E.46), never a
//! half-filled identity.

use std::collections::HashMap;
use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use hyper_util::rt::TokioIo;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Request, Status};
use ward_spiffe::{
    BundleSet, JwtBundle, JwtBundleSet, JwtSvid, SpiffeId, TrustDomain, X509Bundle, X509Svid,
};

use crate::proto;
use crate::proto::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use crate::{EndpointAddress, X509Context, SECURITY_HEADER};

/// Why a Workload API call failed. Each message names the endpoint.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The endpoint cannot be reached (no socket, nothing listening, connection lost).
    /// Retried with backoff by the sources (CHECKLIST D.40).
    #[error("the Workload API at {addr} is unavailable: {detail}")]
    Unavailable {
        /// The endpoint.
        addr: String,
        /// What failed.
        detail: String,
    },
    /// The endpoint has no identity for this workload (yet). Retried with backoff.
    #[error("the Workload API at {addr} denied this workload an identity: {detail}")]
    PermissionDenied {
        /// The endpoint.
        addr: String,
        /// The server's message.
        detail: String,
    },
    /// The endpoint rejected the request as malformed. Not retried.
    #[error("the Workload API at {addr} rejected the request as invalid: {detail}")]
    InvalidArgument {
        /// The endpoint.
        addr: String,
        /// The server's message.
        detail: String,
    },
    /// The endpoint does not implement this call. Not retried.
    #[error("the Workload API at {addr} does not implement this call: {detail}")]
    Unimplemented {
        /// The endpoint.
        addr: String,
        /// The server's message.
        detail: String,
    },
    /// Any other gRPC status.
    #[error("the Workload API at {addr} answered {code:?}: {detail}")]
    Status {
        /// The endpoint.
        addr: String,
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        detail: String,
    },
    /// The endpoint answered, but the message breaks the Workload API rules.
    #[error("the Workload API at {addr} sent an invalid response: {what}")]
    InvalidResponse {
        /// The endpoint.
        addr: String,
        /// What is wrong with it.
        what: String,
    },
    /// A stream ended before its first message.
    #[error("the Workload API at {addr} closed the stream without sending anything")]
    StreamEnded {
        /// The endpoint.
        addr: String,
    },
    /// The request was not sent because it is invalid on this side.
    #[error("invalid Workload API request: {0}")]
    InvalidRequest(String),
}

impl ClientError {
    /// True for failures the Workload API spec says to retry with backoff
    /// (`Unavailable`, `PermissionDenied`, a lost stream, other statuses); false for
    /// `InvalidArgument` and `Unimplemented` (CHECKLIST D.40, E.53).
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            Self::InvalidArgument { .. } | Self::Unimplemented { .. } | Self::InvalidRequest(_)
        )
    }

    fn from_status(addr: &EndpointAddress, status: &Status) -> Self {
        let addr = addr.to_string();
        let detail = status_detail(status);
        match status.code() {
            Code::Unavailable => Self::Unavailable { addr, detail },
            Code::PermissionDenied => Self::PermissionDenied { addr, detail },
            Code::InvalidArgument => Self::InvalidArgument { addr, detail },
            Code::Unimplemented => Self::Unimplemented { addr, detail },
            code => Self::Status { addr, code, detail },
        }
    }
}

/// The status message plus the transport error under it (e.g. "No such file or
/// directory" for a missing socket), which tonic keeps in the source chain.
fn status_detail(status: &Status) -> String {
    let mut detail = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        let text = err.to_string();
        if !detail.contains(&text) {
            detail = format!("{detail}: {text}");
        }
        source = err.source();
    }
    if detail.is_empty() {
        detail = format!("{:?}", status.code());
    }
    detail
}

/// Adds `workload.spiffe.io: true` to every request (CHECKLIST D.34).
#[derive(Debug, Clone, Copy)]
pub struct SecurityHeader;

impl tonic::service::Interceptor for SecurityHeader {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert(
            SECURITY_HEADER,
            tonic::metadata::MetadataValue::from_static("true"),
        );
        Ok(req)
    }
}

type Grpc = SpiffeWorkloadApiClient<InterceptedService<Channel, SecurityHeader>>;

/// A stream of validated X.509 contexts, one per `FetchX509SVID` message.
pub type X509ContextStream =
    Pin<Box<dyn Stream<Item = Result<X509Context, ClientError>> + Send + 'static>>;

/// A connected Workload API client (cheap to clone).
#[derive(Debug, Clone)]
pub struct WorkloadClient {
    addr: EndpointAddress,
    grpc: Grpc,
}

impl WorkloadClient {
    /// Connects (lazily for Unix sockets: the first call reports a missing socket).
    pub async fn connect(addr: &EndpointAddress) -> Result<Self, ClientError> {
        // The URI is only used for the HTTP/2 :authority; the connector picks the socket.
        let endpoint = match addr {
            EndpointAddress::Unix(_) => Endpoint::from_static("http://localhost"),
            EndpointAddress::Tcp(sa) => Endpoint::from_shared(format!("http://{sa}"))
                .map_err(|e| ClientError::InvalidRequest(format!("bad address {addr}: {e}")))?,
        };
        let channel = match addr {
            EndpointAddress::Unix(path) => {
                let path = path.clone();
                endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(&path).await.map_err(|e| {
                            std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                        })?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
            }
            EndpointAddress::Tcp(_) => endpoint.connect_lazy(),
        };
        Ok(Self {
            addr: addr.clone(),
            grpc: SpiffeWorkloadApiClient::with_interceptor(channel, SecurityHeader),
        })
    }

    /// The address this client talks to.
    pub fn address(&self) -> &EndpointAddress {
        &self.addr
    }

    fn status(&self, status: &Status) -> ClientError {
        ClientError::from_status(&self.addr, status)
    }

    fn invalid(&self, what: impl Into<String>) -> ClientError {
        ClientError::InvalidResponse {
            addr: self.addr.to_string(),
            what: what.into(),
        }
    }

    /// The first message of `FetchX509SVID`, validated.
    pub async fn fetch_x509_context(&self) -> Result<X509Context, ClientError> {
        let mut stream = self.watch_x509_contexts().await?;
        stream.next().await.unwrap_or_else(|| {
            Err(ClientError::StreamEnded {
                addr: self.addr.to_string(),
            })
        })
    }

    /// `FetchX509SVID` as a stream of validated contexts: each message is a full state.
    /// An invalid message is an `Err(InvalidResponse)` item and the stream goes on; a
    /// gRPC error is the last item.
    pub async fn watch_x509_contexts(&self) -> Result<X509ContextStream, ClientError> {
        let mut grpc = self.grpc.clone();
        let stream = grpc
            .fetch_x509svid(proto::X509svidRequest {})
            .await
            .map_err(|s| self.status(&s))?
            .into_inner();
        let this = self.clone();
        Ok(Box::pin(stream.map(move |item| match item {
            Ok(msg) => this.x509_context(msg),
            Err(status) => Err(this.status(&status)),
        })))
    }

    /// Validates one `X509SVIDResponse` (E.46-48).
    fn x509_context(&self, msg: proto::X509svidResponse) -> Result<X509Context, ClientError> {
        if msg.svids.is_empty() {
            return Err(self.invalid("X509SVIDResponse.svids is empty"));
        }
        let mut svids: Vec<X509Svid> = Vec::with_capacity(msg.svids.len());
        let mut bundles = BundleSet::new();
        for (i, s) in msg.svids.into_iter().enumerate() {
            let field = |f: &str| format!("X509SVIDResponse.svids[{i}].{f}");
            for (name, empty) in [
                ("spiffe_id", s.spiffe_id.is_empty()),
                ("x509_svid", s.x509_svid.is_empty()),
                ("x509_svid_key", s.x509_svid_key.is_empty()),
                ("bundle", s.bundle.is_empty()),
            ] {
                if empty {
                    return Err(self.invalid(format!("{} is empty", field(name))));
                }
            }
            // E.47: on a duplicate non-empty hint, the first SVID wins.
            if !s.hint.is_empty() && svids.iter().any(|prev| prev.hint() == s.hint) {
                tracing::warn!(hint = %s.hint, index = i, "ignoring an X.509-SVID with a duplicate hint");
                continue;
            }
            let svid = X509Svid::parse_der(&s.x509_svid, &s.x509_svid_key)
                .map_err(|e| self.invalid(format!("{}: {e}", field("x509_svid"))))?
                .with_hint(s.hint);
            if svid.spiffe_id().as_str() != s.spiffe_id {
                return Err(self.invalid(format!(
                    "{} is {:?} but the certificate's SPIFFE ID is {}",
                    field("spiffe_id"),
                    s.spiffe_id,
                    svid.spiffe_id()
                )));
            }
            let td = svid.spiffe_id().trust_domain();
            if bundles.get(&td).is_none() {
                let bundle = X509Bundle::parse_der(td, &s.bundle)
                    .map_err(|e| self.invalid(format!("{}: {e}", field("bundle"))))?;
                bundles.insert(bundle);
            }
            svids.push(svid);
        }
        for (key, der) in &msg.federated_bundles {
            let td = self.bundle_key(key, "X509SVIDResponse.federated_bundles")?;
            // The SVIDs' own trust domains come from `bundle`; the map cannot override them.
            if bundles.get(&td).is_some() {
                continue;
            }
            let bundle = X509Bundle::parse_der(td, der).map_err(|e| {
                self.invalid(format!("X509SVIDResponse.federated_bundles[{key:?}]: {e}"))
            })?;
            bundles.insert(bundle);
        }
        Ok(X509Context { svids, bundles })
    }

    /// Map keys are trust domain SPIFFE IDs, `spiffe://example.org` (E.48).
    fn bundle_key(&self, key: &str, map: &str) -> Result<TrustDomain, ClientError> {
        let id = SpiffeId::new(key)
            .map_err(|e| self.invalid(format!("{map} key {key:?} is not a SPIFFE ID: {e}")))?;
        if !id.is_root() {
            return Err(self.invalid(format!(
                "{map} key {key:?} must be a trust domain's SPIFFE ID (no path)"
            )));
        }
        Ok(id.trust_domain())
    }

    /// The first message of `FetchX509Bundles`.
    pub async fn fetch_x509_bundles(&self) -> Result<BundleSet, ClientError> {
        let mut grpc = self.grpc.clone();
        let mut stream = grpc
            .fetch_x509_bundles(proto::X509BundlesRequest {})
            .await
            .map_err(|s| self.status(&s))?
            .into_inner();
        let msg = self.first(stream.next().await)?;
        self.x509_bundles(msg.bundles)
    }

    fn first<T>(&self, item: Option<Result<T, Status>>) -> Result<T, ClientError> {
        match item {
            Some(Ok(msg)) => Ok(msg),
            Some(Err(status)) => Err(self.status(&status)),
            None => Err(ClientError::StreamEnded {
                addr: self.addr.to_string(),
            }),
        }
    }

    fn x509_bundles(&self, map: HashMap<String, Vec<u8>>) -> Result<BundleSet, ClientError> {
        // E.49: at least the server's own trust domain.
        if map.is_empty() {
            return Err(self.invalid("X509BundlesResponse.bundles is empty"));
        }
        let mut set = BundleSet::new();
        for (key, der) in &map {
            let td = self.bundle_key(key, "X509BundlesResponse.bundles")?;
            let bundle = X509Bundle::parse_der(td, der)
                .map_err(|e| self.invalid(format!("X509BundlesResponse.bundles[{key:?}]: {e}")))?;
            set.insert(bundle);
        }
        Ok(set)
    }

    /// `FetchJWTSVID` for an audience (all identities when `id` is None).
    pub async fn fetch_jwt_svids(
        &self,
        audience: &[String],
        id: Option<&SpiffeId>,
    ) -> Result<Vec<JwtSvid>, ClientError> {
        // E.50: the audience is mandatory.
        if audience.is_empty() || audience.iter().any(String::is_empty) {
            return Err(ClientError::InvalidRequest(
                "a JWT-SVID needs at least one non-empty audience".into(),
            ));
        }
        let mut grpc = self.grpc.clone();
        let msg = grpc
            .fetch_jwtsvid(proto::JwtsvidRequest {
                audience: audience.to_vec(),
                spiffe_id: id.map(|i| i.to_string()).unwrap_or_default(),
            })
            .await
            .map_err(|s| self.status(&s))?
            .into_inner();
        if msg.svids.is_empty() {
            return Err(self.invalid("JWTSVIDResponse.svids is empty"));
        }
        let wanted: Vec<&str> = audience.iter().map(String::as_str).collect();
        let mut out = Vec::with_capacity(msg.svids.len());
        for (i, s) in msg.svids.into_iter().enumerate() {
            if s.spiffe_id.is_empty() || s.svid.is_empty() {
                return Err(self.invalid(format!(
                    "JWTSVIDResponse.svids[{i}] has an empty spiffe_id or svid"
                )));
            }
            // The token comes straight from our own Workload API over a local socket;
            // its structure and claims are still checked.
            let svid = JwtSvid::parse_insecure(&s.svid, &wanted)
                .map_err(|e| self.invalid(format!("JWTSVIDResponse.svids[{i}].svid: {e}")))?
                .with_hint(s.hint);
            if svid.spiffe_id().as_str() != s.spiffe_id {
                return Err(self.invalid(format!(
                    "JWTSVIDResponse.svids[{i}].spiffe_id is {:?} but the token's subject is {}",
                    s.spiffe_id,
                    svid.spiffe_id()
                )));
            }
            out.push(svid);
        }
        Ok(out)
    }

    /// The first message of `FetchJWTBundles`.
    pub async fn fetch_jwt_bundles(&self) -> Result<JwtBundleSet, ClientError> {
        let mut grpc = self.grpc.clone();
        let mut stream = grpc
            .fetch_jwt_bundles(proto::JwtBundlesRequest {})
            .await
            .map_err(|s| self.status(&s))?
            .into_inner();
        let msg = self.first(stream.next().await)?;
        if msg.bundles.is_empty() {
            return Err(self.invalid("JWTBundlesResponse.bundles is empty"));
        }
        let mut set = JwtBundleSet::new();
        for (key, jwks) in &msg.bundles {
            let td = self.bundle_key(key, "JWTBundlesResponse.bundles")?;
            let bundle = JwtBundle::parse_jwks(td, jwks)
                .map_err(|e| self.invalid(format!("JWTBundlesResponse.bundles[{key:?}]: {e}")))?;
            set.insert(bundle);
        }
        Ok(set)
    }

    /// `ValidateJWTSVID`: the subject and the claims as JSON.
    pub async fn validate_jwt_svid(
        &self,
        audience: &str,
        token: &str,
    ) -> Result<(SpiffeId, serde_json::Map<String, serde_json::Value>), ClientError> {
        // E.52: both fields are mandatory.
        if audience.is_empty() || token.is_empty() {
            return Err(ClientError::InvalidRequest(
                "ValidateJWTSVID needs both an audience and a token".into(),
            ));
        }
        let mut grpc = self.grpc.clone();
        let msg = grpc
            .validate_jwtsvid(proto::ValidateJwtsvidRequest {
                audience: audience.to_string(),
                svid: token.to_string(),
            })
            .await
            .map_err(|s| self.status(&s))?
            .into_inner();
        let id = SpiffeId::new(&msg.spiffe_id).map_err(|e| {
            self.invalid(format!(
                "ValidateJWTSVIDResponse.spiffe_id {:?}: {e}",
                msg.spiffe_id
            ))
        })?;
        let claims = msg
            .claims
            .ok_or_else(|| self.invalid("ValidateJWTSVIDResponse.claims is missing"))?;
        Ok((id, crate::claims::struct_to_json(&claims)))
    }
}
