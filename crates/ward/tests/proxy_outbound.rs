//! End-to-end: `ward outbound` (tunnel with `expect`) and the HTTP proxy mode of
//! `ward run`, in front of a `ward inbound`, with `ward dev` as the authority.

mod proxy_support;

use std::time::Duration;

use proxy_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An echo app behind a `ward inbound` in http mode.
type Mesh = Inbound;

async fn mesh() -> Mesh {
    let app = start_echo_tcp().await;
    start_inbound("http", &app.to_string(), &[])
}

fn outbound(m: &Mesh, expect: &str) -> (Proc, std::net::SocketAddr) {
    let port = free_port();
    let sock = socket_uri(&m.dir.path().join("client.sock"));
    let listen = local(port).to_string();
    let upstream = m.addr.to_string();
    let p = spawn_ward(
        m.dir.path(),
        "outbound",
        &[
            "outbound",
            "--listen",
            &listen,
            "--upstream",
            &upstream,
            "--expect",
            expect,
            "--socket",
            &sock,
        ],
    );
    wait_port(local(port));
    (p, local(port))
}

#[tokio::test]
async fn outbound_tunnel_carries_plain_http_over_mtls_with_the_callers_id() {
    let m = mesh().await;
    let (_p, addr) = outbound(&m, SERVER);
    let (status, body) = plain_get(addr, "/through", &[]).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("GET /through HTTP/1.1"), "{body}");
    assert!(body.contains(&format!("x-spiffe-id: {CLIENT}")), "{body}");
}

#[tokio::test]
async fn outbound_tunnel_refuses_a_server_with_an_unexpected_id() {
    let m = mesh().await;
    let (_p, addr) = outbound(&m, "spiffe://example.org/somebody-else");
    let r = plain_get(addr, "/x", &[]).await;
    assert!(r.is_err(), "request went through: {r:?}");
    wait_for(
        Duration::from_secs(5),
        || {
            let log = log_of(m.dir.path(), "outbound");
            log.contains(SERVER) && log.contains("spiffe://example.org/somebody-else")
        },
        "a warning naming the ID it got and the expected pattern",
    );
}

fn proxy_config(m: &Mesh, listen: &str, expect: &str) -> std::path::PathBuf {
    let path = m
        .dir
        .path()
        .join(format!("proxy-{}.yaml", listen.replace([':', '.'], "_")));
    let text = format!(
        "admin: off\nworkload_api:\n  socket: {sock}\noutbound:\n  - name: egress\n    listen: {listen}\n    http_proxy:\n      routes:\n        - host: echo.internal:80\n          upstream: {up}\n          expect: [\"{expect}\"]\n        - host: anyport.internal\n          upstream: {up}\n          expect: [\"{expect}\"]\n",
        sock = socket_uri(&m.dir.path().join("client.sock")),
        up = m.addr,
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn http_proxy_mode_serves_absolute_form_and_connect_and_refuses_unknown_hosts() {
    let m = mesh().await;
    let listen = local(free_port());
    let cfg = proxy_config(&m, &listen.to_string(), SERVER);
    let _p = spawn_ward(m.dir.path(), "proxy", &["run", "--config", &path_str(&cfg)]);
    wait_port(listen);
    // absolute-form
    let (status, body) = plain_get(listen, "http://echo.internal/abs", &[])
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}\n{}", log_of(m.dir.path(), "proxy"));
    assert!(body.starts_with("GET /abs HTTP/1.1"), "{body}");
    assert!(body.contains(&format!("x-spiffe-id: {CLIENT}")), "{body}");
    // A route written without a port serves every port of its host.
    let (status, body) = plain_get(listen, "http://anyport.internal:8080/any", &[])
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("GET /any HTTP/1.1"), "{body}");
    // unknown host
    let (status, body) = plain_get(listen, "http://nowhere.internal/abs", &[])
        .await
        .unwrap();
    assert_eq!(status, 403);
    assert!(
        body.contains("no route for host nowhere.internal:80"),
        "{body}"
    );
    // CONNECT, then HTTP/1.1 through the tunnel.
    let mut tcp = tokio::net::TcpStream::connect(listen).await.unwrap();
    tcp.write_all(b"CONNECT echo.internal:80 HTTP/1.1\r\nHost: echo.internal:80\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    tcp.write_all(b"GET /tunneled HTTP/1.1\r\nHost: echo.internal\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.contains("GET /tunneled HTTP/1.1") && out.contains(&format!("x-spiffe-id: {CLIENT}")),
        "{out}"
    );
}

#[tokio::test]
async fn http_proxy_mode_refuses_an_upstream_with_an_unexpected_id() {
    let m = mesh().await;
    let listen = local(free_port());
    let cfg = proxy_config(
        &m,
        &listen.to_string(),
        "spiffe://example.org/not-the-server",
    );
    let _p = spawn_ward(m.dir.path(), "proxy", &["run", "--config", &path_str(&cfg)]);
    wait_port(listen);
    let (status, body) = plain_get(listen, "http://echo.internal/abs", &[])
        .await
        .unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(body.contains(SERVER), "{body}");
}

#[tokio::test]
async fn an_upstream_that_never_finishes_the_handshake_times_out_and_is_counted() {
    let dir = tempdir();
    let _dev = start_dev(dir.path(), &[("client.sock", CLIENT)], &[]);
    // Accepts TCP and then says nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = silent.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let (port, admin) = (free_port(), local(free_port()));
    let (listen, admin_s) = (local(port).to_string(), admin.to_string());
    let sock = socket_uri(&dir.path().join("client.sock"));
    let _p = spawn_ward(
        dir.path(),
        "outbound",
        &[
            "outbound",
            "--listen",
            &listen,
            "--upstream",
            &upstream,
            "--expect",
            SERVER,
            "--socket",
            &sock,
            "--handshake-timeout",
            "1s",
            "--admin",
            &admin_s,
        ],
    );
    wait_port(local(port));
    let started = std::time::Instant::now();
    let r = plain_get(local(port), "/x", &[]).await;
    assert!(r.is_err(), "request went through: {r:?}");
    assert!(started.elapsed() >= Duration::from_millis(800));
    // Two: the start-up port probe also made ward dial the silent upstream.
    let (_, text) = plain_get(admin, "/metrics", &[]).await.unwrap();
    let count = |result: &str| {
        metric(
            &text,
            &format!("ward_handshakes_total{{listener=\"outbound\",result=\"{result}\"}}"),
        )
    };
    assert_eq!(count("timeout"), 2.0, "{text}");
    assert_eq!(count("error"), 0.0, "{text}");
    let log = log_of(dir.path(), "outbound");
    assert!(log.contains("did not finish within 1s"), "{log}");
}
