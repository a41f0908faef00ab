//! `ward demo`: the whole loop in one process, no SPIRE, nothing to configure.
//!
//! A dev authority (trust domain `example.org`, in memory) issues rotating SVIDs to two
//! sidecars: an inbound http proxy in front of a tiny echo app (identity
//! `spiffe://example.org/echo`, allowing `spiffe://example.org/client`) and an outbound
//! tunnel (identity `spiffe://example.org/client`, expecting `.../echo`). A plain
//! `curl` to the outbound port crosses real mTLS, and the echo app shows the caller's
//! SPIFFE ID arriving in its headers. The authority also serves the Workload API on a
//! Unix socket (identity `.../client`) so `ward fetch` can be pointed at it.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use ward_authority::{Assignment, Authority, AuthorityConfig, CaSource, DevProvider};
use ward_spiffe::{SpiffeId, TrustDomain};
use ward_workload::{WorkloadServer, X509Context, X509Source};

use super::CmdResult;
use crate::config::{
    Config, IdentityHeader, IdentitySource, Inbound, Limits, Outbound, OutboundMode, Protocol,
    Target,
};
use crate::policy::{IdPattern, Policy, PolicyHandle};
use crate::proxy::{Metrics, Proxy};

/// Arguments of `ward demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Port of the outbound proxy the app (you, with curl) calls in plaintext.
    #[arg(long, default_value_t = 9001)]
    pub outbound_port: u16,
    /// Port of the inbound mTLS listener in front of the echo app.
    #[arg(long, default_value_t = 9443)]
    pub inbound_port: u16,
    /// Port of the echo app (plain HTTP on 127.0.0.1).
    #[arg(long, default_value_t = 9080)]
    pub app_port: u16,
    /// Port of the admin listener of the inbound sidecar (/metrics, /readyz, /config).
    #[arg(long, default_value_t = 15000)]
    pub admin_port: u16,
    /// Lifetime of every SVID (rotated at half-life, without dropping a connection).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub svid_ttl: Duration,
}

const ECHO: &str = "spiffe://example.org/echo";
const CLIENT: &str = "spiffe://example.org/client";

/// Runs `ward demo`.
pub fn main(args: Args) -> CmdResult {
    super::run::runtime()?.block_on(demo(args))
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)
}

async fn demo(args: Args) -> CmdResult {
    let td = TrustDomain::new("example.org")?;
    let authority = Authority::new(AuthorityConfig {
        trust_domain: td,
        svid_ttl: args.svid_ttl,
        jwt_ttl: Duration::from_secs(300),
        ca: CaSource::Generate,
        federated: vec![],
    })?;
    let echo_id = SpiffeId::new(ECHO)?;
    let client_id = SpiffeId::new(CLIENT)?;
    let echo_source = issued_source(&authority, &echo_id)?;
    let client_source = issued_source(&authority, &client_id)?;
    let (stop_tx, stop) = watch::channel(false);

    let tmp = tempdir()?;
    let socket = tmp.join("agent.sock");
    let provider = DevProvider::new(authority.clone(), Assignment::Fixed(client_id.clone()));
    let server = WorkloadServer::new(provider).bind_unix(&socket)?;

    let app = tokio::net::TcpListener::bind(local(args.app_port))
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {} for the echo app: {e}",
                local(args.app_port)
            )
        })?;
    let limits = Limits::default();
    let inbound = Config {
        identity: IdentitySource::WorkloadApi {
            socket: None,
            startup_timeout: Duration::ZERO,
        },
        admin: Some(local(args.admin_port)),
        policy_file: None,
        inbound: vec![Inbound {
            name: "echo".into(),
            listen: local(args.inbound_port),
            target: Target::Tcp(local(args.app_port)),
            protocol: Protocol::Http,
            identity_headers: vec![IdentityHeader::XSpiffeId, IdentityHeader::Xfcc],
        }],
        outbound: vec![],
        limits: limits.clone(),
    };
    let outbound = Config {
        admin: None,
        inbound: vec![],
        outbound: vec![Outbound {
            name: "to-echo".into(),
            listen: local(args.outbound_port),
            mode: OutboundMode::Tunnel {
                upstream: local(args.inbound_port).to_string(),
                expect: vec![IdPattern::parse(ECHO)?],
            },
        }],
        ..inbound.clone()
    };
    let policy = Policy::allow_all_of("echo", vec![IdPattern::parse(CLIENT)?]);
    let in_proxy = Proxy::bind(
        &inbound,
        echo_source.clone(),
        PolicyHandle::new(policy),
        Arc::new(Metrics::new()),
    )
    .await?;
    let out_proxy = Proxy::bind(
        &outbound,
        client_source.clone(),
        PolicyHandle::new(Policy::default()),
        Arc::new(Metrics::new()),
    )
    .await?;

    tokio::spawn(rotate(
        authority.clone(),
        echo_id,
        echo_source,
        stop.clone(),
    ));
    tokio::spawn(rotate(authority, client_id, client_source, stop.clone()));
    tokio::spawn(echo_app(app, stop.clone()));
    let mut s = stop.clone();
    let wl = tokio::spawn(server.run(async move {
        let _ = s.wait_for(|v| *v).await;
    }));
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let a = tokio::spawn(in_proxy.run(stopped(stop.clone())));
    let b = tokio::spawn(out_proxy.run(stopped(stop.clone())));

    println!(
        "ward demo: a local SPIFFE authority for trust domain example.org issues real,\n\
         rotating X509-SVIDs (ttl {ttl}) to two sidecars in this process:\n\n\
         \x20 you (curl) --plain HTTP--> 127.0.0.1:{o}  outbound, as {CLIENT}\n\
         \x20           --mTLS-------->  127.0.0.1:{i}  inbound, as {ECHO}, allows {CLIENT}\n\
         \x20           --plain HTTP-->  127.0.0.1:{p}  echo app (shows the headers it got)\n\n\
         Try:\n\n  curl http://127.0.0.1:{o}/hello\n\n\
         Metrics and identity: curl http://127.0.0.1:{adm}/metrics  (and /readyz, /config)\n\
         Workload API (as {CLIENT}): SPIFFE_ENDPOINT_SOCKET=unix://{sock} ward fetch x509\n\
         Ctrl-C to stop.",
        ttl = humantime::format_duration(args.svid_ttl),
        o = args.outbound_port,
        i = args.inbound_port,
        p = args.app_port,
        adm = args.admin_port,
        sock = socket.display(),
    );
    super::run::shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = tokio::join!(a, b, wl);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(ExitCode::SUCCESS)
}

fn tempdir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ward-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn context(
    authority: &Authority,
    id: &SpiffeId,
) -> Result<X509Context, ward_authority::AuthorityError> {
    Ok(X509Context {
        svids: vec![authority.issue_x509_svid(id)?],
        bundles: authority.x509_bundles(),
    })
}

/// A source fed directly by the in-process authority.
fn issued_source(
    authority: &Authority,
    id: &SpiffeId,
) -> Result<X509Source, ward_authority::AuthorityError> {
    Ok(X509Source::from_context(context(authority, id)?))
}

/// Re-issues at half-life, like a Workload API push.
async fn rotate(
    authority: Authority,
    id: SpiffeId,
    source: X509Source,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let wait = source
            .svid()
            .and_then(|s| s.not_after().duration_since(s.not_before()).ok())
            .map_or(Duration::from_secs(1), |ttl| ttl / 2);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|v| *v) => return,
        }
        match context(&authority, &id).map_err(|e| e.to_string()) {
            Ok(ctx) => {
                if let Err(e) = source.publish(ctx) {
                    tracing::warn!(%id, error = %e, "rotation refused");
                }
            }
            Err(e) => tracing::warn!(%id, error = %e, "cannot issue a new SVID"),
        }
    }
}

/// The echo app: answers with the request line and the identity headers it received.
async fn echo_app(listener: tokio::net::TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        let sock = tokio::select! {
            r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
            _ = stop.wait_for(|v| *v) => return,
        };
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(echo_text(&req)))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(sock), svc)
                .await;
        });
    }
}

/// The text the echo app answers with.
pub fn echo_text<B>(req: &Request<B>) -> String {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)")
            .to_owned()
    };
    format!(
        "echo app got: {} {} {:?}\nx-spiffe-id: {}\nx-forwarded-client-cert: {}\n",
        req.method(),
        req.uri(),
        req.version(),
        header("x-spiffe-id"),
        header("x-forwarded-client-cert"),
    )
}
