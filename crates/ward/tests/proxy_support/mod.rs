//! Shared helpers of the proxy end-to-end tests: the real `ward` binary, `ward dev` as
//! the authority, an echo app, and a small mTLS client. Every wait is bounded.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ward_workload::{EndpointAddress, SourceOptions, X509Source};

pub const TD: &str = "example.org";
/// The identities every inbound set-up registers with `ward dev`.
pub const SERVER: &str = "spiffe://example.org/server";
pub const CLIENT: &str = "spiffe://example.org/client";
pub const OTHER: &str = "spiffe://example.org/other";

/// `ward dev` (sockets `server.sock`, `client.sock`, `other.sock` in `dir`) and a
/// `ward inbound` served as [`SERVER`], allowing [`CLIENT`], with an admin listener.
pub struct Inbound {
    pub dir: tempfile::TempDir,
    /// Kept alive for the authority's lifetime.
    pub dev: Proc,
    pub ward: Proc,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

/// Starts an [`Inbound`] in `protocol` mode in front of `target`, with `extra` flags.
pub fn start_inbound(protocol: &str, target: &str, extra: &[&str]) -> Inbound {
    let dir = tempdir();
    let dev = start_dev(
        dir.path(),
        &[
            ("server.sock", SERVER),
            ("client.sock", CLIENT),
            ("other.sock", OTHER),
        ],
        &[],
    );
    let addr = local(free_port());
    let admin = local(free_port());
    let sock = socket_uri(&dir.path().join("server.sock"));
    let (listen, admin_s) = (addr.to_string(), admin.to_string());
    let mut args = vec![
        "inbound",
        "--listen",
        &listen,
        "--target",
        target,
        "--allow",
        CLIENT,
        "--protocol",
        protocol,
        "--socket",
        &sock,
        "--admin",
        &admin_s,
    ];
    args.extend_from_slice(extra);
    let ward = spawn_ward(dir.path(), "inbound", &args);
    wait_port(addr);
    Inbound {
        dir,
        dev,
        ward,
        addr,
        admin,
    }
}

/// A child process killed (SIGKILL) on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Sends a signal by pid (the child we started).
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
    }
    /// Waits (bounded) for the exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

pub fn ward_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ward")
}

/// Starts `ward ARGS`, logs to `dir/<name>.log`.
pub fn spawn_ward(dir: &Path, name: &str, args: &[&str]) -> Proc {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file");
    let child = Command::new(ward_bin())
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("SPIFFE_ENDPOINT_SOCKET")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn ward");
    Proc {
        child,
        name: name.into(),
    }
}

/// The log of a process started with [`spawn_ward`].
pub fn log_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts `ward dev` with one socket per (file name, SPIFFE ID) in `dir`.
pub fn start_dev(dir: &Path, sockets: &[(&str, &str)], extra: &[&str]) -> Proc {
    let mut args: Vec<String> = vec!["dev".into(), "--trust-domain".into(), TD.into()];
    for (file, id) in sockets {
        args.push("--socket".into());
        args.push(format!("{}={id}", dir.join(file).display()));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let p = spawn_ward(dir, "dev", &refs);
    for (file, _) in sockets {
        wait_for(
            Duration::from_secs(20),
            || dir.join(file).exists(),
            "ward dev socket",
        );
    }
    p
}

pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool, what: &str) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// Waits until `addr` accepts TCP connections.
pub fn wait_port(addr: SocketAddr) {
    wait_for(
        Duration::from_secs(30),
        || std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
        &format!("port {addr}"),
    );
}

pub fn socket_uri(path: &Path) -> String {
    format!("unix://{}", path.display())
}

/// An X509Source over a `ward dev` socket (the test client's identity).
pub async fn source(path: &Path) -> X509Source {
    let mut o = SourceOptions::new(EndpointAddress::Unix(path.to_owned()));
    o.startup_timeout = Duration::from_secs(20);
    X509Source::new(o).await.expect("client X509Source")
}

/// An mTLS connection to `addr` with `source`'s SVID, offering `alpn`.
pub async fn tls_connect(
    addr: SocketAddr,
    source: &X509Source,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let config = ward_tls::client_config(source, alpn).map_err(std::io::Error::other)?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// One HTTP request over a fresh mTLS connection. `h2` picks HTTP/2 (ALPN h2).
pub async fn mtls_request(
    addr: SocketAddr,
    source: &X509Source,
    h2: bool,
    req: Request<Full<Bytes>>,
) -> Result<(u16, Response<()>, String), String> {
    let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
    let tls = tls_connect(addr, source, alpn)
        .await
        .map_err(|e| e.to_string())?;
    let io = TokioIo::new(tls);
    let fut = async {
        let resp = if h2 {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            send.send_request(req).await.map_err(|e| e.to_string())?
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            send.send_request(req).await.map_err(|e| e.to_string())?
        };
        read_body(resp).await
    };
    tokio::time::timeout(Duration::from_secs(15), fut)
        .await
        .map_err(|_| "request timed out".to_string())?
}

pub async fn read_body(resp: Response<Incoming>) -> Result<(u16, Response<()>, String), String> {
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((
        parts.status.as_u16(),
        Response::from_parts(parts, ()),
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

pub fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri)
        .body(Full::new(Bytes::new()))
        .expect("request")
}

/// Plain HTTP/1.1 GET over TCP (for outbound listeners and the admin port).
pub async fn plain_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let fut = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut b = Request::get(path).header("host", addr.to_string());
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = send
            .send_request(b.body(Full::new(Bytes::new())).expect("req"))
            .await
            .map_err(|e| e.to_string())?;
        let (s, _, body) = read_body(resp).await?;
        Ok((s, body))
    };
    tokio::time::timeout(Duration::from_secs(15), fut)
        .await
        .map_err(|_| "request timed out".to_string())?
}

/// The echo app: answers `<METHOD> <URI> <VERSION>` and every request header, one per
/// line; answers `/big` with 1 MiB; speaks h2c too (auto-detected).
pub async fn start_echo_tcp() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind echo");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve_echo(TokioIo::new(s)));
        }
    });
    addr
}

/// The echo app on a Unix socket.
pub async fn start_echo_unix(path: &Path) {
    let l = tokio::net::UnixListener::bind(path).expect("bind echo unix");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve_echo(TokioIo::new(s)));
        }
    });
}

async fn serve_echo<I>(io: TokioIo<I>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
        if req.uri().path() == "/ws" {
            return Ok::<_, std::convert::Infallible>(websocket_echo(req));
        }
        let mut text = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
        for (k, v) in req.headers() {
            text.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
        }
        let body = if req.uri().path() == "/big" {
            Bytes::from(vec![b'x'; 1 << 20])
        } else {
            Bytes::from(text)
        };
        let mut resp = Response::new(Full::new(body));
        if req
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
        {
            resp.headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
        }
        Ok(resp)
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(io, svc)
        .await;
}

/// A minimal upgrade: answers 101 and echoes raw bytes back on the upgraded stream.
fn websocket_echo(mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(up) = on.await {
            let mut io = TokioIo::new(up);
            let (mut r, mut w) = tokio::io::split(&mut io);
            let _ = tokio::io::copy(&mut r, &mut w).await;
        }
    });
    Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(Full::new(Bytes::new()))
        .expect("101")
}

/// The value of one metric series in Prometheus text, 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

pub fn join(dir: &Path, f: &str) -> PathBuf {
    dir.join(f)
}
