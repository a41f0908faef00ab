//! Outbound listeners: plaintext in on loopback, mTLS out with the app's SVID.
//!
//! Tunnel mode sends every connection to one upstream; HTTP proxy mode takes
//! `CONNECT host:port` and absolute-form requests (so an app can set `HTTP_PROXY`) and
//! routes them by host. Either way the server's SPIFFE ID must match the route's
//! `expect` patterns, or the connection fails with a warning naming the ID it had.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use ward_spiffe::SpiffeId;

use super::http::{text, ProxyBody};
use super::io::{ConnStats, Metered, COPY_BUFFER};
use super::{bind_tcp, ListenerMetrics, ProxyError, Shared};
use crate::config::{Limits, Outbound, OutboundMode, Route};
use crate::policy::IdPattern;

/// Why an upstream connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// TCP connect failed or timed out.
    #[error("cannot connect to {upstream}: {source}")]
    Connect {
        /// `host:port`.
        upstream: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The upstream address has no usable host name.
    #[error("upstream {0} is not a valid host:port")]
    BadAddress(String),
    /// The TLS handshake failed.
    #[error("TLS handshake with {upstream} failed: {source}")]
    Handshake {
        /// `host:port`.
        upstream: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS handshake did not finish within `handshake_timeout`.
    #[error("TLS handshake with {upstream} did not finish within {after:?}")]
    HandshakeTimeout {
        /// `host:port`.
        upstream: String,
        /// The limit.
        after: std::time::Duration,
    },
    /// The server's SPIFFE ID matches none of the expected patterns.
    #[error(
        "upstream {upstream} presented {got}, which matches none of the expected [{expected}]"
    )]
    UnexpectedId {
        /// `host:port`.
        upstream: String,
        /// The ID it presented.
        got: String,
        /// The patterns, comma-separated.
        expected: String,
    },
}

/// Opens mTLS connections to upstreams and checks who answered.
#[derive(Clone)]
pub struct UpstreamConnector {
    tls: TlsConnector,
    limits: Limits,
}

/// An mTLS connection to an upstream whose ID has been checked.
pub struct Upstream {
    /// The stream.
    pub stream: TlsStream<TcpStream>,
    /// Who the server is.
    pub id: SpiffeId,
}

impl UpstreamConnector {
    /// A connector over one client config (kept for the listener's life).
    pub fn new(config: Arc<rustls::ClientConfig>, limits: Limits) -> Self {
        Self {
            tls: TlsConnector::from(config),
            limits,
        }
    }

    /// TCP connect, mTLS handshake, then the `expect` check.
    pub async fn connect(
        &self,
        upstream: &str,
        expect: &[IdPattern],
    ) -> Result<Upstream, UpstreamError> {
        let host =
            host_of(upstream).ok_or_else(|| UpstreamError::BadAddress(upstream.to_owned()))?;
        // The name only fills SNI: trust comes from the SPIFFE ID, never the DNS name.
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| UpstreamError::BadAddress(upstream.to_owned()))?;
        let connect = TcpStream::connect(upstream);
        let tcp = match tokio::time::timeout(self.limits.connect_timeout, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(UpstreamError::Connect {
                    upstream: upstream.to_owned(),
                    source,
                })
            }
            Err(_) => {
                return Err(UpstreamError::Connect {
                    upstream: upstream.to_owned(),
                    source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
                })
            }
        };
        let _ = tcp.set_nodelay(true);
        let handshake = self.tls.connect(name, tcp);
        let stream = match tokio::time::timeout(self.limits.handshake_timeout, handshake).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(UpstreamError::Handshake {
                    upstream: upstream.to_owned(),
                    source,
                })
            }
            Err(_) => {
                return Err(UpstreamError::HandshakeTimeout {
                    upstream: upstream.to_owned(),
                    after: self.limits.handshake_timeout,
                })
            }
        };
        let got = ward_tls::peer_id(stream.get_ref().1);
        match got {
            Some(id) if expect.iter().any(|p| p.matches(&id)) => Ok(Upstream { stream, id }),
            other => {
                let mut stream = stream;
                let _ = stream.shutdown().await;
                Err(UpstreamError::UnexpectedId {
                    upstream: upstream.to_owned(),
                    got: other.map_or_else(|| "no SPIFFE ID".to_owned(), |id| id.to_string()),
                    expected: expect
                        .iter()
                        .map(IdPattern::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        }
    }
}

/// The host of `host:port` (brackets of an IPv6 literal removed).
fn host_of(upstream: &str) -> Option<&str> {
    let (host, port) = upstream.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

/// A bound outbound listener.
pub struct OutboundListener {
    tcp: TcpListener,
    conn: Arc<OutboundConn>,
}

struct OutboundConn {
    config: Outbound,
    shared: Shared,
    metrics: ListenerMetrics,
    opaque: UpstreamConnector,
    http: Option<Client<RouteConnector, Incoming>>,
}

impl OutboundListener {
    /// Builds the listener's client configs and binds its address.
    pub async fn bind(config: &Outbound, shared: &Shared) -> Result<Self, ProxyError> {
        let what = format!("outbound listener {}", config.name);
        let tls_err = |source| ProxyError::Tls {
            what: what.clone(),
            source,
        };
        // Tunnels carry opaque bytes: no ALPN. Forwarded proxy requests are HTTP/1.1.
        let opaque = ward_tls::client_config(&shared.source, &[]).map_err(tls_err)?;
        let opaque = UpstreamConnector::new(opaque, shared.limits.clone());
        let http = match &config.mode {
            OutboundMode::HttpProxy { routes } => {
                let h1 =
                    ward_tls::client_config(&shared.source, &[b"http/1.1"]).map_err(tls_err)?;
                let connector = RouteConnector {
                    upstream: UpstreamConnector::new(h1, shared.limits.clone()),
                    routes: Arc::new(routes.clone()),
                };
                let mut b = Client::builder(TokioExecutor::new());
                b.pool_timer(TokioTimer::new());
                Some(b.build(connector))
            }
            OutboundMode::Tunnel { .. } => None,
        };
        let tcp = bind_tcp(&what, config.listen).await?;
        tracing::info!(listener = %config.name, listen = %tcp.local_addr().unwrap_or(config.listen),
            mode = mode_name(&config.mode), "outbound listener bound");
        Ok(Self {
            tcp,
            conn: Arc::new(OutboundConn {
                config: config.clone(),
                shared: shared.clone(),
                metrics: shared.metrics.listener(&config.name),
                opaque,
                http,
            }),
        })
    }

    /// Accepts until shutdown, then drains.
    pub async fn run(self) {
        let conn = self.conn;
        super::accept_loop(
            self.tcp,
            &conn.config.name,
            &conn.metrics,
            &conn.shared.limits,
            conn.shared.shutdown.clone(),
            |sock, remote, shutdown| conn.clone().serve(sock, remote, shutdown),
        )
        .await;
    }
}

fn mode_name(mode: &OutboundMode) -> &'static str {
    match mode {
        OutboundMode::Tunnel { .. } => "tunnel",
        OutboundMode::HttpProxy { .. } => "http_proxy",
    }
}

impl OutboundConn {
    async fn serve(
        self: Arc<Self>,
        sock: TcpStream,
        remote: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) {
        let _ = sock.set_nodelay(true);
        let stats = ConnStats::new(
            self.metrics.bytes_in.clone(),
            self.metrics.bytes_out.clone(),
        );
        let metered = Metered::new(sock, stats.clone());
        match &self.config.mode {
            OutboundMode::Tunnel { upstream, expect } => {
                self.tunnel(metered, remote, upstream, expect, &stats).await;
            }
            OutboundMode::HttpProxy { .. } => {
                self.clone()
                    .http_proxy(metered, remote, &stats, shutdown)
                    .await
            }
        }
    }

    async fn tunnel(
        &self,
        mut app: Metered<TcpStream>,
        remote: SocketAddr,
        upstream: &str,
        expect: &[IdPattern],
        stats: &ConnStats,
    ) {
        let start = Instant::now();
        let name = self.config.name.as_str();
        let mut up = match self.opaque.connect(upstream, expect).await {
            Ok(up) => {
                self.metrics.handshake_ok.inc();
                up
            }
            Err(e) => {
                self.count_failure(&e);
                tracing::warn!(target: "access", listener = name, %remote, upstream, error = %e,
                    "outbound connection failed");
                return;
            }
        };
        let result = tokio::select! {
            r = tokio::io::copy_bidirectional_with_sizes(&mut app, &mut up.stream, COPY_BUFFER, COPY_BUFFER) => r.map(|_| "closed"),
            () = stats.idle(self.shared.limits.idle_timeout) => Ok("idle_timeout"),
        };
        let (bytes_in, bytes_out) = stats.bytes();
        tracing::info!(target: "access", listener = name, %remote, upstream, peer = %up.id,
            bytes_in, bytes_out, end = result.as_ref().map_or("error", |e| *e),
            duration_ms = start.elapsed().as_millis() as u64, "outbound connection closed");
    }

    fn count_failure(&self, e: &UpstreamError) {
        match e {
            UpstreamError::HandshakeTimeout { .. } => {
                self.metrics.handshake_timeout.inc();
            }
            UpstreamError::Handshake { .. } | UpstreamError::UnexpectedId { .. } => {
                self.metrics.handshake_err.inc();
            }
            _ => {
                self.metrics.upstream_errors.inc();
            }
        }
    }

    async fn http_proxy(
        self: Arc<Self>,
        app: Metered<TcpStream>,
        remote: SocketAddr,
        stats: &ConnStats,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let this = self.clone();
        let svc = hyper::service::service_fn(move |req| {
            let this = this.clone();
            async move { Ok::<_, Infallible>(this.proxy_request(req, remote).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.shared.limits.idle_timeout)
            .serve_connection(TokioIo::new(app), svc)
            .with_upgrades();
        tokio::pin!(conn);
        let mut draining = false;
        loop {
            tokio::select! {
                _ = conn.as_mut() => break,
                () = super::stopped(&mut shutdown), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = stats.idle(self.shared.limits.idle_timeout) => break,
            }
        }
    }

    async fn proxy_request(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        remote: SocketAddr,
    ) -> Response<ProxyBody> {
        let start = Instant::now();
        let name = self.config.name.as_str();
        let OutboundMode::HttpProxy { routes } = &self.config.mode else {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ward: not a proxy listener\n".into(),
            );
        };
        let method = req.method().clone();
        let uri = req.uri().clone();
        let log = |resp: Response<ProxyBody>, host: &str| {
            tracing::info!(target: "access", listener = name, %remote, method = %method, uri = %uri, host,
                status = resp.status().as_u16(), duration_ms = start.elapsed().as_millis() as u64,
                "proxy request");
            resp
        };
        let Some(authority) = request_authority(&req) else {
            let body = "ward: this listener is an HTTP proxy: send CONNECT host:port or an absolute-form request (http://host/path)\n";
            return log(text(StatusCode::BAD_REQUEST, body.into()), "-");
        };
        let Some(route) = find_route(routes, &authority) else {
            let body = format!("ward: no route for host {authority} on outbound listener {name}\n");
            return log(text(StatusCode::FORBIDDEN, body), &authority);
        };
        if method == Method::CONNECT {
            let up = match self.opaque.connect(&route.upstream, &route.expect).await {
                Ok(up) => up,
                Err(e) => {
                    self.count_failure(&e);
                    tracing::warn!(listener = name, error = %e, "CONNECT failed");
                    return log(
                        text(StatusCode::BAD_GATEWAY, format!("ward: {e}\n")),
                        &authority,
                    );
                }
            };
            self.metrics.handshake_ok.inc();
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = on_upgrade.await else {
                    return;
                };
                let mut app = TokioIo::new(upgraded);
                let mut stream = up.stream;
                let _ = tokio::io::copy_bidirectional_with_sizes(
                    &mut app,
                    &mut stream,
                    COPY_BUFFER,
                    COPY_BUFFER,
                )
                .await;
            });
            let resp = Response::new(Either::Right(
                http_body_util::Full::new(bytes::Bytes::new()),
            ));
            return log(resp, &authority);
        }
        let Some(client) = &self.http else {
            return log(
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ward: no client\n".into(),
                ),
                &authority,
            );
        };
        // Proxy credentials and hop-by-hop proxy headers are for ward, not the upstream.
        req.headers_mut().remove("proxy-connection");
        req.headers_mut().remove(http::header::PROXY_AUTHORIZATION);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        if let Ok(u) = Uri::builder()
            .scheme("http")
            .authority(authority.as_str())
            .path_and_query(path)
            .build()
        {
            *req.uri_mut() = u;
        }
        match client.request(req).await {
            Ok(resp) => log(resp.map(Either::Left), &authority),
            Err(e) => {
                self.metrics.upstream_errors.inc();
                let cause =
                    std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
                tracing::warn!(listener = name, error = %cause, "proxied request failed");
                log(
                    text(StatusCode::BAD_GATEWAY, format!("ward: {cause}\n")),
                    &authority,
                )
            }
        }
    }
}

/// `host:port` of a CONNECT or absolute-form request (port 80 when absent).
fn request_authority<B>(req: &Request<B>) -> Option<String> {
    let a = req.uri().authority()?;
    if req.method() != Method::CONNECT && req.uri().scheme_str() != Some("http") {
        return None;
    }
    let host = a.host().to_ascii_lowercase();
    Some(format!("{host}:{}", a.port_u16().unwrap_or(80)))
}

/// The route for `authority` (`host:port`): an exact `host:port` match, or a route
/// written without a port matching the host.
fn find_route<'a>(routes: &'a [Route], authority: &str) -> Option<&'a Route> {
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    routes
        .iter()
        .find(|r| r.host.eq_ignore_ascii_case(authority))
        .or_else(|| {
            routes
                .iter()
                .find(|r| !r.host.contains(':') && r.host.eq_ignore_ascii_case(host))
        })
}

/// The HTTP proxy's connector: picks the route by the request's authority.
#[derive(Clone)]
struct RouteConnector {
    upstream: UpstreamConnector,
    routes: Arc<Vec<Route>>,
}

/// An upstream TLS stream usable by the pooled client.
pub struct UpstreamIo(TlsStream<TcpStream>);

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl tokio::io::AsyncRead for UpstreamIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for UpstreamIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tower::Service<Uri> for RouteConnector {
    type Response = TokioIo<UpstreamIo>;
    type Error = UpstreamError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let authority = uri
                .authority()
                .map(|a| {
                    format!(
                        "{}:{}",
                        a.host().to_ascii_lowercase(),
                        a.port_u16().unwrap_or(80)
                    )
                })
                .unwrap_or_default();
            let route = find_route(&this.routes, &authority)
                .ok_or(UpstreamError::BadAddress(authority.clone()))?;
            let up = this
                .upstream
                .connect(&route.upstream, &route.expect)
                .await?;
            Ok(TokioIo::new(UpstreamIo(up.stream)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_accepts_names_ipv4_and_bracketed_ipv6() {
        assert_eq!(host_of("payments.svc:8443"), Some("payments.svc"));
        assert_eq!(host_of("127.0.0.1:1"), Some("127.0.0.1"));
        assert_eq!(host_of("[::1]:443"), Some("::1"));
        assert_eq!(host_of("nohost"), None);
        assert_eq!(host_of(":443"), None);
        assert_eq!(host_of("h:notaport"), None);
    }

    #[test]
    fn route_without_port_matches_any_port_of_its_host() {
        let route = |host: &str| Route {
            host: host.into(),
            upstream: "u:1".into(),
            expect: vec![],
        };
        let routes = vec![route("api.local:8080"), route("web.local")];
        assert_eq!(
            find_route(&routes, "api.local:8080").map(|r| r.host.as_str()),
            Some("api.local:8080")
        );
        assert!(find_route(&routes, "api.local:80").is_none());
        assert_eq!(
            find_route(&routes, "web.local:80").map(|r| r.host.as_str()),
            Some("web.local")
        );
        assert!(find_route(&routes, "other:80").is_none());
    }
}
