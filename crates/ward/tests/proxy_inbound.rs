//! End-to-end: `ward inbound` (tcp and http modes) with `ward dev` as the authority.

mod proxy_support;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use proxy_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn http_allowed_peer_reaches_the_app_with_its_spiffe_id_and_spoofed_headers_are_stripped() {
    let app = start_echo_tcp().await;
    let s = start_inbound("http", &app.to_string(), &[]);
    let client = source(&s.dir.path().join("client.sock")).await;
    for h2 in [false, true] {
        let req = Request::get("https://localhost/hello?x=1")
            .header("x-spiffe-id", "spiffe://example.org/admin")
            .header("X-Spiffe-Id", "spiffe://example.org/admin2")
            .header("x-forwarded-client-cert", "URI=spiffe://example.org/admin")
            .header("x-forwarded-client-cert", "URI=spiffe://example.org/admin3")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (status, _, body) = mtls_request(s.addr, &client, h2, req).await.unwrap();
        assert_eq!(status, 200, "h2={h2}: {body}");
        assert!(
            body.starts_with("GET /hello?x=1 HTTP/1.1"),
            "h2={h2}: {body}"
        );
        assert!(body.contains(&format!("x-spiffe-id: {CLIENT}\n")), "{body}");
        assert!(
            !body.contains("example.org/admin"),
            "spoofed header reached the app: {body}"
        );
        let xfcc = body
            .lines()
            .find(|l| l.starts_with("x-forwarded-client-cert: "))
            .unwrap();
        assert!(
            xfcc.contains(&format!("By={SERVER};Hash="))
                && xfcc.ends_with(&format!(";URI={CLIENT}")),
            "{xfcc}"
        );
    }
}

#[tokio::test]
async fn http_denied_peer_gets_403_with_the_reason() {
    let app = start_echo_tcp().await;
    let s = start_inbound("http", &app.to_string(), &[]);
    let other = source(&s.dir.path().join("other.sock")).await;
    let (status, _, body) = mtls_request(s.addr, &other, false, get("https://localhost/x"))
        .await
        .unwrap();
    assert_eq!(status, 403);
    assert_eq!(
        body,
        format!("ward: denied: {OTHER} is not allowed GET /x on listener inbound\n")
    );
}

#[tokio::test]
async fn grpc_over_h2_reaches_the_app_as_h2() {
    let app = start_echo_tcp().await;
    let s = start_inbound("http", &app.to_string(), &[]);
    let client = source(&s.dir.path().join("client.sock")).await;
    let req = Request::post("https://localhost/pkg.Svc/Method")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
        .unwrap();
    let (status, resp, body) = mtls_request(s.addr, &client, true, req).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/grpc"
    );
    // hyper shows an h2 request's URI in absolute form (:scheme + :authority + :path).
    let first = body.lines().next().unwrap();
    assert!(
        first.starts_with("POST http://") && first.ends_with("/pkg.Svc/Method HTTP/2.0"),
        "{body}"
    );
    assert!(body.contains(&format!("x-spiffe-id: {CLIENT}")), "{body}");
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    let app = start_echo_tcp().await;
    let s = start_inbound("http", &app.to_string(), &[]);
    let client = source(&s.dir.path().join("client.sock")).await;
    let mut tls = tls_connect(s.addr, &client, &[b"http/1.1"]).await.unwrap();
    tls.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tls.write_all(b"ping-over-upgrade").await.unwrap();
    let mut got = vec![0u8; 17];
    tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"ping-over-upgrade");
}

#[tokio::test]
async fn http_to_a_unix_socket_target() {
    let dir = tempdir();
    let app_sock = dir.path().join("app.sock");
    start_echo_unix(&app_sock).await;
    let target = format!("unix:{}", app_sock.display());
    let s = start_inbound("http", &target, &[]);
    let client = source(&s.dir.path().join("client.sock")).await;
    let (status, _, body) = mtls_request(s.addr, &client, false, get("https://localhost/u"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("x-spiffe-id: {CLIENT}")));
}

async fn tcp_echo() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn tcp_mode_copies_bytes_for_an_allowed_peer_and_half_close_works() {
    let app = tcp_echo().await;
    let s = start_inbound("tcp", &app.to_string(), &[]);
    let client = source(&s.dir.path().join("client.sock")).await;
    let mut tls = tls_connect(s.addr, &client, &[]).await.unwrap();
    let big = vec![7u8; 300_000];
    tls.write_all(&big).await.unwrap();
    tls.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.len(), big.len());
}

#[tokio::test]
async fn bytes_metric_counts_while_the_connection_is_still_open() {
    let app = tcp_echo().await;
    let s = start_inbound("tcp", &app.to_string(), &[]);
    let client = source(&s.dir.path().join("client.sock")).await;
    let mut tls = tls_connect(s.addr, &client, &[]).await.unwrap();
    let data = vec![5u8; 100_000];
    tls.write_all(&data).await.unwrap();
    tls.flush().await.unwrap();
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    // The connection stays open: a long-lived tunnel must show up before it ends.
    let series = |d: &str| format!("ward_bytes_total{{listener=\"inbound\",direction=\"{d}\"}}");
    let (_, text) = plain_get(s.admin, "/metrics", &[]).await.unwrap();
    let (bytes_in, bytes_out) = (metric(&text, &series("in")), metric(&text, &series("out")));
    // TLS bytes on the client socket: the payload plus record overhead and the handshake.
    assert!(bytes_in > 100_000.0, "in = {bytes_in}\n{text}");
    assert!(bytes_out > 100_000.0, "out = {bytes_out}\n{text}");
    drop(tls);
}

#[tokio::test]
async fn tcp_mode_denied_peer_is_closed_without_reaching_the_app() {
    let app = tcp_echo().await;
    let s = start_inbound("tcp", &app.to_string(), &[]);
    let other = source(&s.dir.path().join("other.sock")).await;
    // The handshake completes; the first read then sees the close.
    let mut tls = tls_connect(s.addr, &other, &[]).await.unwrap();
    let _ = tls.write_all(b"hello").await;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "denied peer got bytes back");
    wait_for(
        Duration::from_secs(5),
        || log_of(s.dir.path(), "inbound").contains("connection denied"),
        "deny log",
    );
}

#[tokio::test]
async fn garbage_plaintext_and_certless_clients_are_closed_and_ward_keeps_serving() {
    let app = start_echo_tcp().await;
    let s = start_inbound("http", &app.to_string(), &["--handshake-timeout", "1s"]);
    // Garbage bytes.
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5])
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap();
    // A plaintext HTTP request on the TLS port.
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out))
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&out).contains("HTTP/1.1 200"));
    // A client that never finishes its handshake is closed by the handshake timeout.
    let mut idle = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(8), idle.read(&mut buf)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "not closed: {r:?}");
    assert!(started.elapsed() >= Duration::from_millis(800));
    // No client certificate at all.
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(std::sync::Arc::new(AcceptAny))
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let res = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await;
    if let Ok(mut tls) = res {
        // TLS 1.3: the server's refusal arrives after the client's Finished.
        let _ = tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut out = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out))
            .await
            .unwrap();
        assert!(
            r.is_err() || out.is_empty(),
            "certless client got an answer"
        );
    }
    // Still serving.
    let client = source(&s.dir.path().join("client.sock")).await;
    let (status, _, _) = mtls_request(s.addr, &client, false, get("https://localhost/"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (_, metrics) = plain_get(s.admin, "/metrics", &[]).await.unwrap();
    let handshakes = |result: &str| {
        metric(
            &metrics,
            &format!("ward_handshakes_total{{listener=\"inbound\",result=\"{result}\"}}"),
        )
    };
    // Garbage, plaintext HTTP and the certless client failed (and the start-up port
    // probe, which connects and closes); the idle client timed out; only the last
    // client succeeded.
    assert_eq!(handshakes("error"), 4.0, "{metrics}");
    assert_eq!(handshakes("timeout"), 1.0, "{metrics}");
    assert_eq!(handshakes("ok"), 1.0, "{metrics}");
}

#[derive(Debug)]
struct AcceptAny;

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[tokio::test]
async fn admin_readyz_and_metrics_report_the_listener() {
    let app = start_echo_tcp().await;
    let mut s = start_inbound("http", &app.to_string(), &[]);
    let (status, _) = plain_get(s.admin, "/healthz", &[]).await.unwrap();
    assert_eq!(status, 200);
    let mut ready = 0;
    for _ in 0..100 {
        ready = plain_get(s.admin, "/readyz", &[])
            .await
            .map(|r| r.0)
            .unwrap_or(0);
        if ready == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, 200);
    let client = source(&s.dir.path().join("client.sock")).await;
    let (status, _, _) = mtls_request(s.addr, &client, false, get("https://localhost/m"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (_, text) = plain_get(s.admin, "/metrics", &[]).await.unwrap();
    for needle in [
        "ward_connections_accepted_total{listener=\"inbound\"}",
        "ward_handshakes_total{listener=\"inbound\",result=\"ok\"}",
        "ward_authz_decisions_total{listener=\"inbound\",rule=\"--allow\",decision=\"allow\"} 1",
        "ward_svid_expiry_seconds",
        "ward_svid_rotations_total",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    let (_, config) = plain_get(s.admin, "/config", &[]).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(v["identity"]["spiffe_id"], SERVER);
    assert_eq!(v["listeners"]["inbound"][0]["name"], "inbound");
    // The policy in force, rule by rule (here the one rule `--allow` makes).
    assert_eq!(v["policy_rules"], 1);
    assert_eq!(v["policy"][0]["name"], "--allow");
    assert_eq!(v["policy"][0]["effect"], "allow");
    assert_eq!(v["policy"][0]["ids"][0], CLIENT);
    // SIGTERM: exit 0.
    s.ward.signal("TERM");
    assert_eq!(s.ward.wait_exit(Duration::from_secs(15)), Some(0));
}

#[tokio::test]
async fn over_max_connections_a_new_connection_is_closed_at_once_and_counted() {
    let app = tcp_echo().await;
    let s = start_inbound("tcp", &app.to_string(), &["--max-connections", "1"]);
    let client = source(&s.dir.path().join("client.sock")).await;
    // wait_port's probe connection holds the one slot until ward sees its EOF.
    for _ in 0..100 {
        let (_, m) = plain_get(s.admin, "/metrics", &[]).await.unwrap();
        if m.contains("ward_connections_active{listener=\"inbound\"} 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut first = tls_connect(s.addr, &client, &[]).await.unwrap();
    first.write_all(b"hold").await.unwrap();
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), first.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    // The second connection is accepted by the kernel and closed by ward before TLS.
    let second = tls_connect(s.addr, &client, &[]).await;
    assert!(second.is_err(), "a second connection got through");
    let (_, metrics) = plain_get(s.admin, "/metrics", &[]).await.unwrap();
    assert!(
        metrics.contains("ward_connections_rejected_total{listener=\"inbound\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ward_connections_active{listener=\"inbound\"} 1"),
        "{metrics}"
    );
    // The first one is untouched.
    first.write_all(b"more").await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), first.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"more");
}

/// An app that numbers its connections and the requests on each, answers
/// `conn <n> request <m>`, and closes a connection after its `per_conn`-th answer
/// without saying so (as an app's keep-alive timeout does). The counter it returns
/// counts connections that ward closed.
async fn counting_app(
    per_conn: usize,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let closed_by_ward = std::sync::Arc::new(AtomicUsize::new(0));
    let closed = closed_by_ward.clone();
    tokio::spawn(async move {
        let mut conn = 0;
        while let Ok((mut s, _)) = l.accept().await {
            conn += 1;
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                for request in 1..=per_conn {
                    head.clear();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if s.read(&mut byte).await.unwrap_or(0) == 0 {
                            closed.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let body = format!("conn {conn} request {request}");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, closed_by_ward)
}

/// `n` HTTP/1.1 mTLS client connections to `s`.
async fn h1_clients(
    s: &Inbound,
    n: usize,
) -> Vec<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let client = source(&s.dir.path().join("client.sock")).await;
    let mut senders = Vec::new();
    for _ in 0..n {
        let tls = tls_connect(s.addr, &client, &[b"http/1.1"]).await.unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        senders.push(send);
    }
    senders
}

async fn get_on(send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>) -> String {
    send.ready().await.unwrap();
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        send.send_request(get("https://localhost/n")),
    )
    .await
    .unwrap()
    .unwrap();
    let (status, _, body) = read_body(resp).await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn an_http1_client_connection_keeps_its_own_app_connection_and_outlives_its_closing() {
    let (app, _) = counting_app(2).await;
    let s = start_inbound("http", &app.to_string(), &[]);
    let mut senders = h1_clients(&s, 2).await;
    let mut seen = Vec::new();
    for _round in 0..3 {
        for (i, send) in senders.iter_mut().enumerate() {
            seen.push((i, get_on(send).await));
        }
        // Time for the app's close to reach ward before the next request (well within
        // the second an unused app connection stays usable).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let conn_of = |b: &str| b.split(' ').nth(1).unwrap().to_string();
    for (i, pair) in [(0, [0, 2]), (1, [1, 3])] {
        // Two requests in a row from one client connection: one app connection.
        let (a, b) = (&seen[pair[0]].1, &seen[pair[1]].1);
        assert_eq!(conn_of(a), conn_of(b), "client {i}: {seen:?}");
        assert!(
            a.ends_with("request 1") && b.ends_with("request 2"),
            "{seen:?}"
        );
    }
    assert_ne!(conn_of(&seen[0].1), conn_of(&seen[1].1), "{seen:?}");
    // The third request of each found its app connection closed and got a new one.
    for k in [4, 5] {
        assert!(seen[k].1.ends_with("request 1"), "{seen:?}");
        assert!(!seen[..4]
            .iter()
            .any(|(_, b)| conn_of(b) == conn_of(&seen[k].1)));
    }
}

#[tokio::test]
async fn an_unused_app_connection_is_not_reused_after_a_second_and_is_closed() {
    use std::sync::atomic::Ordering;
    let (app, closed_by_ward) = counting_app(100).await;
    let s = start_inbound("http", &app.to_string(), &[]);
    let mut senders = h1_clients(&s, 1).await;
    let send = &mut senders[0];
    assert_eq!(get_on(send).await, "conn 1 request 1");
    assert_eq!(get_on(send).await, "conn 1 request 2");
    // Longer than an app connection may sit unused: the next request takes a new one
    // (the app might be closing the old one right now) and the old one is closed.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(get_on(send).await, "conn 2 request 1");
    let wait_closed = |n: usize, within: Duration| {
        let closed = closed_by_ward.clone();
        async move {
            let end = tokio::time::Instant::now() + within;
            while closed.load(Ordering::SeqCst) < n && tokio::time::Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            closed.load(Ordering::SeqCst)
        }
    };
    assert_eq!(wait_closed(1, Duration::from_secs(2)).await, 1);
    // The client connection stays open and idle: its app connection is closed by the
    // sweep (every 5 s) rather than held for the client's idle timeout.
    assert_eq!(wait_closed(2, Duration::from_secs(12)).await, 2);
    assert_eq!(get_on(send).await, "conn 3 request 1");
}

#[tokio::test]
async fn http_app_down_gets_502_naming_the_target_and_is_counted() {
    // A port bound but not listening: connections to it are refused, and no other test
    // can take it meanwhile.
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind(local(0)).unwrap();
    let app = reserved.local_addr().unwrap();
    let s = start_inbound("http", &app.to_string(), &[]);
    let client = source(&s.dir.path().join("client.sock")).await;
    for h2 in [false, true] {
        let (status, _, body) = mtls_request(s.addr, &client, h2, get("https://localhost/x"))
            .await
            .unwrap();
        assert_eq!(status, 502, "h2={h2}: {body}");
        assert!(
            body.starts_with(&format!(
                "ward: upstream error: the app at {app} did not answer: "
            )),
            "h2={h2}: {body}"
        );
        assert!(body.contains("onnection refused"), "h2={h2}: {body}");
    }
    let (_, text) = plain_get(s.admin, "/metrics", &[]).await.unwrap();
    let errors = metric(&text, "ward_upstream_errors_total{listener=\"inbound\"}");
    assert_eq!(errors, 2.0, "{text}");
}

#[tokio::test]
async fn pipelined_http1_requests_are_answered_in_order_on_one_app_connection() {
    let (app, _) = counting_app(2).await;
    let s = start_inbound("http", &app.to_string(), &[]);
    let client = source(&s.dir.path().join("client.sock")).await;
    let mut tls = tls_connect(s.addr, &client, &[b"http/1.1"]).await.unwrap();
    // Both requests in one write: the second is read while the first is answered.
    tls.write_all(
        b"GET /1 HTTP/1.1\r\nhost: localhost\r\n\r\nGET /2 HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out))
        .await
        .unwrap()
        .ok();
    let out = String::from_utf8_lossy(&out);
    let bodies: Vec<&str> = out
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|r| r.rsplit("\r\n\r\n").next().unwrap())
        .collect();
    assert_eq!(bodies.len(), 2, "{out}");
    assert!(out.matches("HTTP/1.1 200 OK").count() == 2, "{out}");
    let conn = bodies[0]
        .strip_suffix(" request 1")
        .expect("first on a new app connection");
    assert_eq!(bodies[1], format!("{conn} request 2"), "{out}");
}

/// A real gRPC service behind ward: the Workload API of a second `ward dev` (tonic on
/// a Unix socket), called by tonic's generated client over mTLS through `ward inbound`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_grpc_streaming_and_status_trailers_pass_through_inbound() {
    use ward_workload::proto::spiffe_workload_api_client::SpiffeWorkloadApiClient;
    use ward_workload::proto::X509svidRequest;

    const APP_ID: &str = "spiffe://example.org/grpc-app";
    let app_dir = tempdir();
    let _app = start_dev(app_dir.path(), &[("grpc.sock", APP_ID)], &[]);
    let target = format!("unix:{}", app_dir.path().join("grpc.sock").display());
    let s = start_inbound("http", &target, &[]);
    let grpc_client = |sock: &str| {
        let path = s.dir.path().join(sock);
        let addr = s.addr;
        async move {
            let svid = source(&path).await;
            let channel = tonic::transport::Endpoint::from_static("http://localhost")
                .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                    let svid = svid.clone();
                    async move {
                        let tls = tls_connect(addr, &svid, &[b"h2"]).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
                    }
                }))
                .await
                .expect("mTLS channel to ward inbound");
            SpiffeWorkloadApiClient::new(channel)
        }
    };
    let with_header = || {
        let mut req = tonic::Request::new(X509svidRequest {});
        req.metadata_mut()
            .insert("workload.spiffe.io", "true".parse().unwrap());
        req
    };
    async fn within<F: std::future::Future>(what: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), what)
            .await
            .expect("an answer within 10s")
    }

    let mut client = grpc_client("client.sock").await;
    // Server streaming: the first message arrives while the stream stays open.
    let mut stream = within(client.fetch_x509svid(with_header()))
        .await
        .expect("FetchX509SVID through ward")
        .into_inner();
    let first = within(stream.message())
        .await
        .expect("a message")
        .expect("not the end of the stream");
    assert_eq!(first.svids[0].spiffe_id, APP_ID);
    // A status sent in trailers (the app refuses a request without the header).
    let status = within(client.fetch_x509svid(tonic::Request::new(X509svidRequest {})))
        .await
        .expect_err("refused without the security header");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // A peer the policy denies gets a gRPC status from ward, with ward's reason.
    let mut other = grpc_client("other.sock").await;
    let status = within(other.fetch_x509svid(with_header()))
        .await
        .expect_err("denied");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert_eq!(
        status.message(),
        format!(
            "ward: denied: {OTHER} is not allowed POST \
             /SpiffeWorkloadAPI/FetchX509SVID on listener inbound"
        ),
        "{status:?}"
    );
}
