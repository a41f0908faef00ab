//! The admin listener (loopback by default): `/healthz`, `/readyz`, `/metrics`,
//! `/config`. Plain HTTP/1.1; it must never share a port with the data path.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{bind_tcp, ProxyError, Shared};
use crate::config::{Config, OutboundMode, Protocol, Target};

/// A bound admin server.
pub struct AdminServer {
    tcp: TcpListener,
    state: Arc<AdminState>,
}

struct AdminState {
    shared: Shared,
    ready: Arc<AtomicBool>,
    listeners: serde_json::Value,
}

impl AdminServer {
    /// Binds `addr`. `ready` turns true once every data listener is bound and serving.
    pub async fn bind(
        addr: SocketAddr,
        shared: &Shared,
        config: &Config,
        ready: Arc<AtomicBool>,
    ) -> Result<Self, ProxyError> {
        let tcp = bind_tcp("the admin listener", addr).await?;
        tracing::info!(listen = %tcp.local_addr().unwrap_or(addr), "admin listener bound");
        Ok(Self {
            tcp,
            state: Arc::new(AdminState {
                shared: shared.clone(),
                ready,
                listeners: listeners_json(config),
            }),
        })
    }

    /// Serves until shutdown.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let (sock, _) = tokio::select! {
                r = self.tcp.accept() => match r {
                    Ok(a) => a,
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = super::stopped(&mut shutdown) => return,
            };
            let state = self.state.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(state.handle(&req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    }
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

impl AdminState {
    fn handle(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        match req.uri().path() {
            "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n"),
            "/readyz" => match self.not_ready_reason() {
                None => reply(StatusCode::OK, "text/plain", "ready\n"),
                Some(why) => reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("not ready: {why}\n"),
                ),
            },
            "/metrics" => {
                let expiry = self.shared.source.svid().map(|s| s.not_after());
                let text = self.shared.metrics.encode(expiry);
                reply(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                )
            }
            "/config" => {
                let body = serde_json::to_vec_pretty(&self.config_json()).unwrap_or_default();
                reply(StatusCode::OK, "application/json", body)
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found; try /healthz, /readyz, /metrics, /config\n",
            ),
        }
    }

    fn not_ready_reason(&self) -> Option<String> {
        if !self.ready.load(Ordering::Acquire) {
            return Some("listeners are not all bound and serving (starting or draining)".into());
        }
        if self.shared.source.svid().is_none() {
            let last = self
                .shared
                .source
                .last_error()
                .unwrap_or_else(|| "none reported".into());
            return Some(format!("no valid X509-SVID (last source error: {last})"));
        }
        None
    }

    fn config_json(&self) -> serde_json::Value {
        let identity = match self.shared.source.svid() {
            Some(svid) => {
                let serial = x509_parser::parse_x509_certificate(svid.leaf().as_ref())
                    .map(|(_, c)| c.tbs_certificate.raw_serial_as_string())
                    .unwrap_or_default();
                let unix = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                serde_json::json!({
                    "spiffe_id": svid.spiffe_id().as_str(),
                    "serial": serial,
                    "not_before_unix": unix(svid.not_before()),
                    "not_after_unix": unix(svid.not_after()),
                    "expires_in_seconds": svid.not_after().duration_since(SystemTime::now()).map_or(0, |d| d.as_secs()),
                })
            }
            None => serde_json::Value::Null,
        };
        let trust_domains: Vec<String> = self
            .shared
            .source
            .bundles()
            .iter()
            .map(|b| b.trust_domain().to_string())
            .collect();
        let policy = self.shared.policy.current();
        serde_json::json!({
            "identity": identity,
            "trust_domains": trust_domains,
            "listeners": self.listeners,
            "policy_rules": policy.len(),
            "policy": policy.rules_json(),
        })
    }
}

fn listeners_json(config: &Config) -> serde_json::Value {
    let target = |t: &Target| match t {
        Target::Tcp(a) => a.to_string(),
        Target::Unix(p) => format!("unix:{}", p.display()),
    };
    let inbound: Vec<_> = config
        .inbound
        .iter()
        .map(|l| {
            serde_json::json!({
                "name": l.name, "listen": l.listen.to_string(), "target": target(&l.target),
                "protocol": match l.protocol { Protocol::Tcp => "tcp", Protocol::Http => "http" },
            })
        })
        .collect();
    let outbound: Vec<_> = config
        .outbound
        .iter()
        .map(|l| match &l.mode {
            OutboundMode::Tunnel { upstream, expect } => serde_json::json!({
                "name": l.name, "listen": l.listen.to_string(), "mode": "tunnel", "upstream": upstream,
                "expect": expect.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            }),
            OutboundMode::HttpProxy { routes } => serde_json::json!({
                "name": l.name, "listen": l.listen.to_string(), "mode": "http_proxy",
                "routes": routes.iter().map(|r| serde_json::json!({
                    "host": r.host, "upstream": r.upstream,
                    "expect": r.expect.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            }),
        })
        .collect();
    serde_json::json!({ "inbound": inbound, "outbound": outbound })
}
