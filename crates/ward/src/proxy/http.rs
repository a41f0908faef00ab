//! Inbound http mode: HTTP/1.1 and HTTP/2 on one listener (chosen by ALPN / preface),
//! policy per request, identity headers, a pooled keep-alive client to the app.
//!
//! To the app: gRPC requests (HTTP/2 with `content-type: application/grpc*`) go over a
//! pooled h2c (prior knowledge) client, because gRPC needs HTTP/2 trailers; every other
//! request goes over HTTP/1.1, which every app speaks. An inbound HTTP/1 connection
//! carries one request at a time, so it gets one app connection of its own, opened at
//! its first request and kept while both stay open (see [`AppSlot`]); requests that
//! arrive over HTTP/2 share a pooled HTTP/1.1 client. WebSocket (HTTP/1.1 Upgrade)
//! passes through on a pooled connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::watch;
use ward_spiffe::SpiffeId;

use super::inbound::InboundTls;
use super::io::{ConnStats, Rewind, TargetStream};
use super::{ListenerMetrics, Shared};
use crate::config::{IdentityHeader, Inbound, Target};

/// The body ward answers with: the app's, streamed, or ward's own short text.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// The header carrying the verified peer's SPIFFE ID.
pub static X_SPIFFE_ID: HeaderName = HeaderName::from_static("x-spiffe-id");
/// Envoy's forwarded-client-cert header.
pub static XFCC: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// Connects the app's pooled clients to the listener's target (TCP or Unix).
#[derive(Debug, Clone)]
pub struct AppConnector {
    target: Arc<Target>,
    timeout: Duration,
}

impl tower::Service<Uri> for AppConnector {
    type Response = TokioIo<TargetStream>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: Uri) -> Self::Future {
        let target = self.target.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            TargetStream::connect(&target, timeout)
                .await
                .map(TokioIo::new)
        })
    }
}

/// Why a request did not reach the app (or its answer did not come back).
type UpstreamError = Box<dyn std::error::Error + Send + Sync>;

/// One http inbound listener's request handling.
pub struct HttpInbound {
    pub(super) name: Arc<str>,
    pub(super) shared: Shared,
    pub(super) metrics: ListenerMetrics,
    headers: Vec<IdentityHeader>,
    pub(super) target: Arc<Target>,
    h1: Client<AppConnector, Incoming>,
    h2c: Client<AppConnector, Incoming>,
}

/// The app connection of one inbound HTTP/1 connection.
///
/// HTTP/1 serves one request at a time per connection, so a connection of its own to
/// the app needs no pool: no checkout, no shared map keyed by URI, no task per request
/// waiting for the connection to become idle again. It is opened at the first request
/// and closed with the inbound connection (dropping the sender ends its task); the app
/// sees one connection per client connection. One unused for [`APP_REUSE_WITHIN`] is
/// not used again, and is closed within [`APP_SWEEP_EVERY`]; if the app closed it in
/// the meantime, the next request opens a new one.
#[derive(Default)]
struct AppSlot(std::sync::Mutex<Option<IdleApp>>);

/// An app connection between two requests.
struct IdleApp {
    sender: http1::SendRequest<Incoming>,
    /// When its last response began (its body may have taken longer).
    since: Instant,
}

/// Longest an app connection may sit unused and still carry the next request. Shorter
/// than the keep-alive timeout of common app servers (gunicorn 2 s; Node, uvicorn and
/// Apache 5 s), so that ward does not send a request on a connection the app is closing
/// at that very moment: such a request cannot be retried, as it may have reached the
/// app. A new loopback connection costs far less than the pause.
pub(super) const APP_REUSE_WITHIN: Duration = Duration::from_secs(1);

/// How often an app connection's task closes it if it is unused (and would not be
/// used again): idle clients do not hold app connections open.
pub(super) const APP_SWEEP_EVERY: Duration = Duration::from_secs(5);

impl AppSlot {
    /// The connection, if it is fresh enough to use (a stale one is dropped, which
    /// closes it).
    fn take(&self) -> Option<http1::SendRequest<Incoming>> {
        let idle = self.0.lock().ok()?.take()?;
        (idle.since.elapsed() < APP_REUSE_WITHIN).then_some(idle.sender)
    }
    fn put(&self, sender: http1::SendRequest<Incoming>) {
        if let Ok(mut s) = self.0.lock() {
            *s = Some(IdleApp {
                sender,
                since: Instant::now(),
            });
        }
    }
    /// Drops the connection if it is stale and not busy (a response body still
    /// streaming): hyper then closes it once idle.
    fn sweep(&self) {
        if let Ok(mut s) = self.0.lock() {
            if s.as_ref()
                .is_some_and(|i| i.since.elapsed() >= APP_REUSE_WITHIN && i.sender.is_ready())
            {
                *s = None;
            }
        }
    }
}

/// Per connection: computed once, cloned into every request (header values are
/// reference-counted bytes).
pub(super) struct Peer {
    pub(super) id: SpiffeId,
    /// The client's address as the access log writes it.
    pub(super) remote: Box<str>,
    id_header: Option<HeaderValue>,
    xfcc: Option<HeaderValue>,
    /// The same identity headers as whole HTTP/1 header lines, for the direct path.
    pub(super) h1_lines: Box<[u8]>,
    app: Arc<AppSlot>,
}

/// How long a request waits for its client connection's app connection to finish a
/// previous exchange before it opens a new one.
const APP_BUSY_WAIT: Duration = Duration::from_secs(1);

/// Largest HTTP/1 read buffer per connection, each side. hyper's default (about
/// 400 KiB) lets every connection streaming a large body grow a buffer that size; 64
/// KiB still reads four whole TLS records at a time and keeps the peak resident memory
/// of many concurrent large transfers down.
pub(super) const H1_MAX_BUF: usize = 64 * 1024;

impl HttpInbound {
    /// The handler of listener `config`.
    pub fn new(config: &Inbound, shared: &Shared, metrics: ListenerMetrics) -> Self {
        let target = Arc::new(config.target.clone());
        let connector = AppConnector {
            target: target.clone(),
            timeout: shared.limits.connect_timeout,
        };
        let mut b = Client::builder(TokioExecutor::new());
        b.pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http1_max_buf_size(H1_MAX_BUF);
        let h1 = b.build(connector.clone());
        let h2c = b.http2_only(true).build(connector);
        Self {
            name: config.name.as_str().into(),
            shared: shared.clone(),
            metrics,
            headers: config.identity_headers.clone(),
            target,
            h1,
            h2c,
        }
    }

    /// Serves one authenticated connection until it ends, idles out, or drains:
    /// HTTP/1.1 on the direct path for as long as its requests allow, then (or for
    /// HTTP/2 from the start) on hyper's.
    pub async fn serve(
        self: Arc<Self>,
        mut tls: InboundTls,
        peer: SpiffeId,
        remote: SocketAddr,
        stats: Arc<ConnStats>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let peer = Arc::new(self.peer_headers(&tls, peer, remote));
        let idle = self.shared.limits.idle_timeout;
        let mut read = BytesMut::new();
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            let end = tokio::select! {
                biased;
                end = super::h1_direct::serve(&self, &mut tls, &peer, &mut shutdown) => end,
                () = stats.idle(idle) => super::h1_direct::End::Closed,
            };
            match end {
                super::h1_direct::End::Closed => return,
                super::h1_direct::End::HandOff(bytes) => read = bytes,
            }
        }
        let io = Rewind::new(read.freeze(), tls);
        let this = self.clone();
        let svc = hyper::service::service_fn(move |req| {
            let this = this.clone();
            let peer = peer.clone();
            async move { Ok::<_, Infallible>(this.handle(req, &peer).await) }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .max_buf_size(H1_MAX_BUF)
            .timer(TokioTimer::new())
            .header_read_timeout(self.shared.limits.idle_timeout);
        builder.http2().timer(TokioTimer::new());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
        tokio::pin!(conn);
        let mut draining = false;
        loop {
            tokio::select! {
                // The connection first: a request handed over by the direct path during
                // a drain is already read, and must be answered, not cancelled.
                biased;
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(listener = %self.name, %remote, error = %e, "http connection ended with an error");
                    }
                    break;
                }
                () = super::stopped(&mut shutdown), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = stats.idle(idle) => break,
            }
        }
    }

    fn peer_headers(&self, tls: &InboundTls, id: SpiffeId, remote: SocketAddr) -> Peer {
        let id_header = self
            .headers
            .contains(&IdentityHeader::XSpiffeId)
            .then(|| HeaderValue::from_str(id.as_str()).ok())
            .flatten();
        let xfcc = if self.headers.contains(&IdentityHeader::Xfcc) {
            let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
            let by = self.shared.source.svid().map(|s| s.spiffe_id().to_string());
            leaf.map(|leaf| xfcc_value(by.as_deref(), leaf.as_ref(), &id))
                .and_then(|v| HeaderValue::from_str(&v).ok())
        } else {
            None
        };
        let mut h1_lines = Vec::new();
        for (name, value) in [(&X_SPIFFE_ID, &id_header), (&XFCC, &xfcc)] {
            if let Some(v) = value {
                h1_lines.extend_from_slice(name.as_str().as_bytes());
                h1_lines.extend_from_slice(b": ");
                h1_lines.extend_from_slice(v.as_bytes());
                h1_lines.extend_from_slice(b"\r\n");
            }
        }
        Peer {
            id,
            remote: remote.to_string().into(),
            id_header,
            xfcc,
            h1_lines: h1_lines.into(),
            app: Arc::default(),
        }
    }

    async fn handle(&self, mut req: Request<Incoming>, peer: &Peer) -> Response<ProxyBody> {
        let start = Instant::now();
        // A client must never be able to claim an identity: whatever it sent under
        // these names is dropped before ward adds the verified ones.
        // (`remove` takes every value of the name.)
        let headers = req.headers_mut();
        headers.remove(&X_SPIFFE_ID);
        headers.remove(&XFCC);
        // Their underscore spellings too, which CGI-style apps read as the same header.
        let spoofs: Vec<HeaderName> = headers
            .keys()
            .filter(|k| k.as_str().contains('_'))
            .filter(|k| {
                [&X_SPIFFE_ID, &XFCC]
                    .iter()
                    .any(|h| ward_h1::same_name(k.as_str(), h.as_str()))
            })
            .cloned()
            .collect();
        for name in spoofs {
            headers.remove(name);
        }
        let method = req.method().clone();
        let grpc = is_grpc(&req);
        // ward's own answers: text, or a gRPC status for a gRPC client.
        let refuse = |status: StatusCode, message: String| {
            if grpc {
                grpc_status(status, &message)
            } else {
                text(status, message)
            }
        };
        // A refcounted view of the request's path, not a copy.
        let path_and_query = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let path = path_and_query.path();
        let respond = |resp: Response<ProxyBody>, decision: &str, rule: &str| {
            crate::logging::request(&crate::logging::RequestLog {
                listener: &self.name,
                remote: &peer.remote,
                peer: peer.id.as_str(),
                method: method.as_str(),
                path,
                status: resp.status().as_u16(),
                decision,
                rule,
                duration_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
            resp
        };
        if !path_is_normal(path) {
            // `/a/../b` or `%2e%2e` would let a policy on `/b/**` be bypassed by an app
            // that normalizes differently: refuse instead of guessing.
            let body = format!("ward: rejected: the path {path} is not in normal form\n");
            return respond(refuse(StatusCode::BAD_REQUEST, body), "reject", "-");
        }
        let decision = self
            .shared
            .policy
            .current()
            .decide(&crate::policy::Request {
                listener: &self.name,
                peer: &peer.id,
                method: Some(method.as_str()),
                path: Some(path),
            });
        self.metrics.authz(decision.rule.as_ref(), decision.allow);
        let rule = decision.rule.as_deref().unwrap_or("default-deny");
        if !decision.allow {
            let body = format!(
                "ward: denied: {} is not allowed {} {} on listener {}\n",
                peer.id, method, path, self.name
            );
            return respond(refuse(StatusCode::FORBIDDEN, body), "deny", rule);
        }
        let headers = req.headers_mut();
        if let Some(v) = &peer.id_header {
            headers.insert(X_SPIFFE_ID.clone(), v.clone());
        }
        if let Some(v) = &peer.xfcc {
            headers.insert(XFCC.clone(), v.clone());
        }
        let resp = match self
            .forward(req, grpc, path_and_query.clone(), &peer.app)
            .await
        {
            Ok(resp) => resp.map(Either::Left),
            Err(e) => {
                self.metrics.upstream_errors.inc();
                let e = error_chain(&*e);
                let target = super::io::target_display(&self.target);
                tracing::warn!(listener = %self.name, target, error = %e, "request to the app failed");
                let body =
                    format!("ward: upstream error: the app at {target} did not answer: {e}\n");
                return respond(refuse(StatusCode::BAD_GATEWAY, body), "allow", rule);
            }
        };
        respond(resp, "allow", rule)
    }

    async fn forward(
        &self,
        mut req: Request<Incoming>,
        grpc: bool,
        path_and_query: PathAndQuery,
        app: &Arc<AppSlot>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        if grpc {
            let authority = req
                .uri()
                .authority()
                .cloned()
                .unwrap_or_else(|| Authority::from_static("localhost"));
            *req.uri_mut() = app_uri(authority, path_and_query);
            return Ok(self.h2c.request(req).await?);
        }
        if req.version() < Version::HTTP_2 && req.method() != Method::CONNECT && !is_upgrade(&req) {
            // Origin form on the request line, as the client sent it; a request without
            // a Host header gets the one the pooled client would give it.
            *req.uri_mut() = Uri::from(path_and_query);
            req.headers_mut()
                .entry(HOST)
                .or_insert(HeaderValue::from_static("app"));
            return self.send_on_own_connection(req, app).await;
        }
        if req.version() == Version::HTTP_2 {
            // HTTP/2 to HTTP/1.1: the :authority becomes the Host header.
            if let Some(a) = req.uri().authority() {
                if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                    req.headers_mut().entry(HOST).or_insert(v);
                }
            }
            *req.version_mut() = Version::HTTP_11;
        }
        *req.uri_mut() = app_uri(Authority::from_static("app"), path_and_query);
        if is_upgrade(&req) {
            return self.forward_upgrade(req).await;
        }
        Ok(self.h1.request(req).await?)
    }

    /// Sends an HTTP/1 request on the inbound connection's own app connection, opening
    /// one if there is none or the app has closed it.
    async fn send_on_own_connection(
        &self,
        mut req: Request<Incoming>,
        app: &Arc<AppSlot>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        if let Some(mut sender) = app.take() {
            // Ready at once, unless the app closed the connection while it was idle or is
            // somehow still busy with the previous exchange; a busy one is given a moment
            // and then left to finish on its own while the request takes a new one.
            let ready = match sender.ready().now_or_never() {
                Some(r) => r.is_ok(),
                None => matches!(
                    tokio::time::timeout(APP_BUSY_WAIT, sender.ready()).await,
                    Ok(Ok(()))
                ),
            };
            if ready {
                match sender.try_send_request(req).await {
                    Ok(resp) => {
                        app.put(sender);
                        return Ok(resp);
                    }
                    // The app closed the connection before the request went out (a
                    // keep-alive timeout racing us): nothing was sent, so sending it on
                    // a new connection is safe, whatever the method.
                    Err(mut e) => match e.take_message() {
                        Some(unsent) => req = unsent,
                        None => return Err(e.into_error().into()),
                    },
                }
            }
        }
        let mut sender = self.connect_app(app).await?;
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        app.put(sender);
        Ok(resp)
    }

    /// A new HTTP/1.1 connection to the app for `app`'s client connection, its I/O
    /// driven by a task of its own that ends when the sender is dropped (the client
    /// connection closed, or the sweep found it unused) or the app closes it.
    async fn connect_app(
        &self,
        app: &Arc<AppSlot>,
    ) -> Result<http1::SendRequest<Incoming>, UpstreamError> {
        let stream =
            TargetStream::connect(&self.target, self.shared.limits.connect_timeout).await?;
        let (sender, conn) = http1::Builder::new()
            .max_buf_size(H1_MAX_BUF)
            .handshake(TokioIo::new(stream))
            .await?;
        let name = self.name.clone();
        // Weak: the slot lives as long as the client connection, not this task.
        let slot = Arc::downgrade(app);
        tokio::spawn(async move {
            tokio::pin!(conn);
            let start = tokio::time::Instant::now() + APP_SWEEP_EVERY;
            let mut sweep = tokio::time::interval_at(start, APP_SWEEP_EVERY);
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(listener = %name, error = %e, "app connection ended with an error");
                        }
                        return;
                    }
                    _ = sweep.tick() => {
                        if let Some(slot) = slot.upgrade() {
                            slot.sweep();
                        }
                    }
                }
            }
        });
        Ok(sender)
    }

    async fn forward_upgrade(
        &self,
        mut req: Request<Incoming>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let client_side = hyper::upgrade::on(&mut req);
        let mut resp = self.h1.request(req).await?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let app_side = hyper::upgrade::on(&mut resp);
            let name = self.name.clone();
            tokio::spawn(async move {
                match tokio::try_join!(client_side, app_side) {
                    Ok((c, a)) => {
                        let (mut c, mut a) = (TokioIo::new(c), TokioIo::new(a));
                        let _ = tokio::io::copy_bidirectional(&mut c, &mut a).await;
                    }
                    Err(e) => tracing::debug!(listener = %name, error = %e, "upgrade failed"),
                }
            });
        }
        Ok(resp)
    }
}

fn is_upgrade<B>(req: &Request<B>) -> bool {
    // Every `Connection` header line counts: `keep-alive` and `upgrade` may be sent on
    // separate lines.
    req.headers().contains_key(http::header::UPGRADE)
        && req
            .headers()
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// The URI of a request to the app, from parts already parsed (no string round trip).
fn app_uri(authority: Authority, path_and_query: PathAndQuery) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("http://app/"))
}

/// An error and its causes, outermost first ("client error (Connect): tcp connect
/// error: Connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_s = c.to_string();
        // Some errors repeat their cause in their own message.
        if !s.ends_with(&c_s) {
            s.push_str(": ");
            s.push_str(&c_s);
        }
        cause = c.source();
    }
    s
}

/// A gRPC call: HTTP/2 with a `application/grpc*` content type.
fn is_grpc<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_2
        && req
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// ward's own answer to a gRPC call: a trailers-only response (HTTP 200, the status in
/// `grpc-status` and `grpc-message`, no body), so the client reports
/// `PERMISSION_DENIED: ward: denied: ...` rather than a protocol error about an
/// unexpected HTTP 403 with a text body. Codes follow gRPC's HTTP-to-gRPC mapping.
pub fn grpc_status(http: StatusCode, message: &str) -> Response<ProxyBody> {
    let code: u16 = match http.as_u16() {
        400 => 13,             // INTERNAL
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => 12,             // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => 2,                // UNKNOWN
    };
    let mut resp = Response::new(Either::Right(Full::new(Bytes::new())));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from(code));
    // grpc-message is percent-encoded outside printable ASCII (and `%` itself).
    let mut encoded = String::with_capacity(message.len());
    for b in message.trim_end().bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    if let Ok(v) = HeaderValue::from_str(&encoded) {
        headers.insert("grpc-message", v);
    }
    resp
}

/// A short text answer from ward itself.
pub fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// False for paths with `.`/`..` segments, empty segments, or percent-encoded `.`/`/`/`\`.
pub fn path_is_normal(path: &str) -> bool {
    if !path.starts_with('/') {
        return path == "*";
    }
    // No allocation: this runs on every request.
    let b = path.as_bytes();
    let encoded_separator = b.windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1], w[2].to_ascii_lowercase()),
                (b'2', b'e' | b'f') | (b'5', b'c')
            )
    });
    if encoded_separator || b.contains(&b'\\') {
        return false;
    }
    let last = path[1..].split('/').count() - 1;
    // A trailing slash (an empty last segment) is normal; `//` inside is not.
    !path[1..]
        .split('/')
        .enumerate()
        .any(|(i, seg)| seg == "." || seg == ".." || (seg.is_empty() && i != last))
}

/// Envoy's XFCC element: `By=<our id>;Hash=<hex sha256 of the peer leaf DER>;URI=<peer id>`.
pub fn xfcc_value(by: Option<&str>, leaf_der: &[u8], peer: &SpiffeId) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf_der);
    let mut hash = String::with_capacity(64);
    for b in digest.as_ref() {
        hash.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hash.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    match by {
        Some(by) => format!("By={by};Hash={hash};URI={peer}"),
        None => format!("Hash={hash};URI={peer}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_refusals_are_trailers_only_responses_with_the_mapped_status() {
        let r = grpc_status(StatusCode::FORBIDDEN, "ward: denied: 100% not\tyou é\n");
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers();
        assert_eq!(h["content-type"], "application/grpc");
        assert_eq!(h["grpc-status"], "7");
        assert_eq!(h["grpc-message"], "ward: denied: 100%25 not%09you %C3%A9");
        assert_eq!(
            grpc_status(StatusCode::BAD_GATEWAY, "x").headers()["grpc-status"],
            "14"
        );
        assert_eq!(
            grpc_status(StatusCode::BAD_REQUEST, "x").headers()["grpc-status"],
            "13"
        );
        assert_eq!(
            grpc_status(StatusCode::IM_A_TEAPOT, "x").headers()["grpc-status"],
            "2"
        );
    }

    #[test]
    fn an_upgrade_is_seen_in_any_connection_header_line() {
        let req = |connection: &[&str], upgrade: bool| {
            let mut b = Request::get("/ws");
            for c in connection {
                b = b.header("connection", *c);
            }
            if upgrade {
                b = b.header("upgrade", "websocket");
            }
            b.body(()).unwrap()
        };
        assert!(is_upgrade(&req(&["Upgrade"], true)));
        assert!(is_upgrade(&req(&["keep-alive, upgrade"], true)));
        assert!(is_upgrade(&req(&["keep-alive", "upgrade"], true)));
        assert!(!is_upgrade(&req(&["keep-alive"], true)));
        assert!(!is_upgrade(&req(&["upgrade"], false)));
    }

    #[test]
    fn dot_segments_and_encoded_separators_are_not_normal() {
        assert!(path_is_normal("/"));
        assert!(path_is_normal("/v1/items"));
        assert!(path_is_normal("/v1/items/"));
        assert!(!path_is_normal("/v1/../admin"));
        assert!(!path_is_normal("/v1/./x"));
        assert!(!path_is_normal("/v1//x"));
        assert!(!path_is_normal("/v1/%2E%2e/admin"));
        assert!(!path_is_normal("/v1%2fadmin"));
    }

    #[test]
    fn xfcc_hash_is_hex_sha256_of_the_leaf() {
        // sha256("abc") is the FIPS 180-2 test vector.
        let id = SpiffeId::new("spiffe://example.org/client").unwrap();
        let v = xfcc_value(Some("spiffe://example.org/echo"), b"abc", &id);
        assert_eq!(
            v,
            "By=spiffe://example.org/echo;Hash=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad;URI=spiffe://example.org/client"
        );
    }
}
