//! Shared test helpers: real certificates (rcgen, aws-lc-rs backend), real JWTs (ES256),
//! a small [`IdentityProvider`], a raw server that sends whatever a test tells it to, and
//! servers on real Unix sockets in a tempdir.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};
use ward_spiffe::{
    BundleSet, JwtAuthority, JwtBundle, JwtBundleSet, JwtSvid, SpiffeId, TrustDomain, X509Bundle,
    X509Svid,
};
use ward_workload::proto;
use ward_workload::proto::spiffe_workload_api_server::{
    SpiffeWorkloadApi, SpiffeWorkloadApiServer,
};
use ward_workload::{
    Caller, EndpointAddress, IdentityProvider, NoIdentity, ProviderError, WorkloadServer,
    X509Context,
};

// === certificates ===

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().expect("IA5 URI"))
}

fn key() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key")
}

/// A root CA of one trust domain.
pub struct Ca {
    pub td: TrustDomain,
    params: CertificateParams,
    key: KeyPair,
    pub der: Vec<u8>,
}

impl Ca {
    pub fn new(td: &str) -> Self {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, format!("ward test CA {td}"));
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.subject_alt_names = vec![uri(&format!("spiffe://{td}"))];
        p.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
        p.not_after = OffsetDateTime::now_utc() + Duration::days(1);
        let key = key();
        let der = p.self_signed(&key).expect("self-signed").der().to_vec();
        Self {
            td: td.parse().expect("trust domain"),
            params: p,
            key,
            der,
        }
    }

    pub fn bundle(&self) -> X509Bundle {
        X509Bundle::parse_der(self.td.clone(), &self.der).expect("bundle")
    }

    /// A leaf for `path` valid from `from` to `until` (relative to now): (chain DER, key DER).
    pub fn leaf_raw(&self, path: &str, from: Duration, until: Duration) -> (Vec<u8>, Vec<u8>) {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "ward test workload");
        p.distinguished_name = dn;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.subject_alt_names = vec![uri(&format!("spiffe://{}{path}", self.td))];
        p.not_before = OffsetDateTime::now_utc() + from;
        p.not_after = OffsetDateTime::now_utc() + until;
        let key = key();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let der = p.signed_by(&key, &issuer).expect("signed").der().to_vec();
        (der, key.serialize_der())
    }

    /// A leaf valid for an hour.
    pub fn svid(&self, path: &str) -> X509Svid {
        self.svid_valid(path, Duration::minutes(-5), Duration::hours(1))
    }

    pub fn svid_valid(&self, path: &str, from: Duration, until: Duration) -> X509Svid {
        let (chain, key) = self.leaf_raw(path, from, until);
        X509Svid::parse_der(&chain, &key).expect("X509-SVID")
    }
}

/// A context with these SVIDs and bundles of these CAs.
pub fn context(svids: Vec<X509Svid>, cas: &[&Ca]) -> X509Context {
    let mut bundles = BundleSet::new();
    for ca in cas {
        bundles.insert(ca.bundle());
    }
    X509Context { svids, bundles }
}

// === JWT ===

/// An ES256 JWT authority of one trust domain.
pub struct JwtSigner {
    pub td: TrustDomain,
    pub kid: String,
    key: EcdsaKeyPair,
}

impl JwtSigner {
    pub fn new(td: &str) -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("P-256 key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("P-256 key");
        Self {
            td: td.parse().expect("trust domain"),
            kid: format!("kid-{}", fastrand_id()),
            key,
        }
    }

    pub fn bundle(&self) -> JwtBundle {
        let mut b = JwtBundle::new(self.td.clone());
        b.insert(
            JwtAuthority::ec_p256(self.kid.clone(), self.key.public_key().as_ref()).expect("jwk"),
        );
        b
    }

    /// A signed JWT-SVID for `sub` and `aud`, valid for `lifetime`.
    pub fn mint(&self, sub: &SpiffeId, aud: &[String], lifetime: StdDuration) -> JwtSvid {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), sub.as_str().into());
        claims.insert("aud".into(), aud.to_vec().into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + lifetime.as_secs()).into());
        let token = ward_spiffe::jwt::sign_es256(&self.key, &self.kid, &claims).expect("sign");
        let aud: Vec<&str> = aud.iter().map(String::as_str).collect();
        JwtSvid::parse_insecure(&token, &aud).expect("JWT-SVID")
    }
}

fn fastrand_id() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
}

// === the test identity provider ===

/// One identity for every caller of the allowed uid (everyone when None); a JWT
/// authority; counters of the JWT-SVIDs minted.
pub struct TestProvider {
    pub x509: watch::Sender<Arc<X509Context>>,
    pub bundles: watch::Sender<Arc<BundleSet>>,
    pub jwt_bundles: watch::Sender<Arc<JwtBundleSet>>,
    pub signer: JwtSigner,
    pub jwt_lifetime: Mutex<StdDuration>,
    pub allowed_uid: Option<u32>,
    pub minted: AtomicUsize,
    pub callers: Mutex<Vec<Caller>>,
}

impl TestProvider {
    pub fn new(ctx: X509Context, allowed_uid: Option<u32>) -> Arc<Self> {
        let signer = JwtSigner::new(ctx.svids[0].spiffe_id().trust_domain_str());
        let mut jwt = JwtBundleSet::new();
        jwt.insert(signer.bundle());
        let bundles = ctx.bundles.clone();
        Arc::new(Self {
            x509: watch::channel(Arc::new(ctx)).0,
            bundles: watch::channel(Arc::new(bundles)).0,
            jwt_bundles: watch::channel(Arc::new(jwt)).0,
            signer,
            jwt_lifetime: Mutex::new(StdDuration::from_secs(300)),
            allowed_uid,
            minted: AtomicUsize::new(0),
            callers: Mutex::new(Vec::new()),
        })
    }

    pub fn publish(&self, ctx: X509Context) {
        self.bundles.send_replace(Arc::new(ctx.bundles.clone()));
        self.x509.send_replace(Arc::new(ctx));
    }

    fn check(&self, caller: &Caller) -> Result<(), NoIdentity> {
        self.callers.lock().unwrap().push(caller.clone());
        match self.allowed_uid {
            Some(uid) if uid != caller.uid => {
                Err(NoIdentity(format!("uid {} has no entry", caller.uid)))
            }
            _ => Ok(()),
        }
    }
}

impl IdentityProvider for TestProvider {
    fn x509_context(
        &self,
        caller: &Caller,
    ) -> Result<watch::Receiver<Arc<X509Context>>, NoIdentity> {
        self.check(caller)?;
        Ok(self.x509.subscribe())
    }
    fn x509_bundles(&self, caller: &Caller) -> Result<watch::Receiver<Arc<BundleSet>>, NoIdentity> {
        self.check(caller)?;
        Ok(self.bundles.subscribe())
    }
    fn jwt_bundles(
        &self,
        caller: &Caller,
    ) -> Result<watch::Receiver<Arc<JwtBundleSet>>, NoIdentity> {
        self.check(caller)?;
        Ok(self.jwt_bundles.subscribe())
    }
    fn mint_jwt_svids(
        &self,
        caller: &Caller,
        audience: &[String],
        id: Option<&SpiffeId>,
    ) -> Result<Vec<JwtSvid>, ProviderError> {
        self.check(caller)?;
        let own = self.x509.borrow().svids[0].spiffe_id().clone();
        if let Some(id) = id {
            if *id != own {
                return Err(NoIdentity(format!("not entitled to {id}")).into());
            }
        }
        self.minted.fetch_add(1, Ordering::SeqCst);
        let lifetime = *self.jwt_lifetime.lock().unwrap();
        Ok(vec![self.signer.mint(&own, audience, lifetime)])
    }
}

// === servers on Unix sockets ===

/// A running server; `stop()` shuts it down gracefully and waits for it.
pub struct Running {
    pub path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    pub fn address(&self) -> EndpointAddress {
        EndpointAddress::Unix(self.path.clone())
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(StdDuration::from_secs(10), t)
                .await
                .expect("server stops within 10 s")
                .expect("join")
                .expect("server result");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Serves `provider` on `path` with the real [`WorkloadServer`].
pub fn serve(provider: Arc<dyn IdentityProvider>, path: &Path) -> Running {
    let bound = WorkloadServer::new(provider).bind_unix(path).expect("bind");
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(bound.run(async {
        let _ = rx.await;
    }));
    Running {
        path: path.to_path_buf(),
        stop: Some(tx),
        task: Some(task),
    }
}

/// A server that sends, on `FetchX509SVID`, whatever the test puts in the channel (or
/// the status it is told to fail with), to exercise the client's validation.
pub struct RawServer {
    pub x509: watch::Sender<Result<proto::X509svidResponse, (tonic::Code, String)>>,
}

type RawStream<T> = Pin<Box<dyn futures_util::Stream<Item = Result<T, Status>> + Send>>;

pub struct RawService(Arc<RawServer>);

#[tonic::async_trait]
impl SpiffeWorkloadApi for RawService {
    type FetchX509SVIDStream = RawStream<proto::X509svidResponse>;
    type FetchX509BundlesStream = RawStream<proto::X509BundlesResponse>;
    type FetchJWTBundlesStream = RawStream<proto::JwtBundlesResponse>;
    type FetchWITSVIDStream = RawStream<proto::WitsvidResponse>;
    type FetchWITBundlesStream = RawStream<proto::WitBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        _r: Request<proto::X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        use futures_util::StreamExt;
        if let Err((code, msg)) = &*self.0.x509.borrow() {
            return Err(Status::new(*code, msg.clone()));
        }
        let s = tokio_stream::wrappers::WatchStream::new(self.0.x509.subscribe())
            .map(|m| m.map_err(|(code, msg)| Status::new(code, msg)));
        Ok(Response::new(Box::pin(s)))
    }
    async fn fetch_x509_bundles(
        &self,
        _r: Request<proto::X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        Err(Status::unimplemented("raw"))
    }
    async fn fetch_jwtsvid(
        &self,
        _r: Request<proto::JwtsvidRequest>,
    ) -> Result<Response<proto::JwtsvidResponse>, Status> {
        Err(Status::unimplemented("raw"))
    }
    async fn fetch_jwt_bundles(
        &self,
        _r: Request<proto::JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        Err(Status::unimplemented("raw"))
    }
    async fn validate_jwtsvid(
        &self,
        _r: Request<proto::ValidateJwtsvidRequest>,
    ) -> Result<Response<proto::ValidateJwtsvidResponse>, Status> {
        Err(Status::unimplemented("raw"))
    }
    async fn fetch_witsvid(
        &self,
        _r: Request<proto::WitsvidRequest>,
    ) -> Result<Response<Self::FetchWITSVIDStream>, Status> {
        Err(Status::unimplemented("raw"))
    }
    async fn fetch_wit_bundles(
        &self,
        _r: Request<proto::WitBundlesRequest>,
    ) -> Result<Response<Self::FetchWITBundlesStream>, Status> {
        Err(Status::unimplemented("raw"))
    }
}

/// Serves a [`RawServer`] on `path`; the streams never end, so stop by dropping the
/// runtime (each test has its own).
pub fn serve_raw(
    first: Result<proto::X509svidResponse, (tonic::Code, String)>,
    path: &Path,
) -> (Arc<RawServer>, JoinHandle<()>) {
    let raw = Arc::new(RawServer {
        x509: watch::channel(first).0,
    });
    let listener = tokio::net::UnixListener::bind(path).expect("bind raw");
    let svc = SpiffeWorkloadApiServer::new(RawService(raw.clone()));
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .serve_with_incoming_shutdown(
                svc,
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                std::future::pending::<()>(),
            )
            .await;
    });
    (raw, task)
}

/// Serves a [`RawServer`] on 127.0.0.1 (an ephemeral port).
pub async fn serve_raw_tcp(
    first: Result<proto::X509svidResponse, (tonic::Code, String)>,
) -> (Arc<RawServer>, std::net::SocketAddr, JoinHandle<()>) {
    let raw = Arc::new(RawServer {
        x509: watch::channel(first).0,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind raw tcp");
    let addr = listener.local_addr().expect("local addr");
    let svc = SpiffeWorkloadApiServer::new(RawService(raw.clone()));
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .serve_with_incoming_shutdown(
                svc,
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                std::future::pending::<()>(),
            )
            .await;
    });
    (raw, addr, task)
}

/// The wire form of an SVID as a server would send it.
pub fn wire_svid(
    svid_chain: Vec<u8>,
    key: Vec<u8>,
    id: &str,
    bundle: &Ca,
    hint: &str,
) -> proto::X509svid {
    proto::X509svid {
        spiffe_id: id.to_string(),
        x509_svid: svid_chain,
        x509_svid_key: key,
        bundle: bundle.der.clone(),
        hint: hint.to_string(),
    }
}

pub fn response(svids: Vec<proto::X509svid>, federated: &[&Ca]) -> proto::X509svidResponse {
    proto::X509svidResponse {
        svids,
        crl: vec![],
        federated_bundles: federated
            .iter()
            .map(|ca| (ca.td.id_string(), ca.der.clone()))
            .collect::<HashMap<_, _>>(),
    }
}

/// A fresh tempdir and a socket path inside it.
pub fn socket() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("api.sock");
    (dir, path)
}

/// The uid of this process (the caller's uid as the server sees it), from /proc.
pub fn my_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .expect("uid")
}

/// Waits (bounded) until `f` holds.
pub async fn eventually(what: &str, timeout: StdDuration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}
