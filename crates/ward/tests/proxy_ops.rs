//! End-to-end operations: rotation under traffic, the authority restarted under
//! traffic, policy reload through `ward run`, SIGTERM drain.

mod proxy_support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use proxy_support::*;

const SERVER: &str = "spiffe://example.org/server";
const CLIENT: &str = "spiffe://example.org/client";

/// Sends requests over fresh connections for `dur`; returns (ok, failures).
async fn traffic(
    addr: std::net::SocketAddr,
    client: &ward_workload::X509Source,
    dur: Duration,
) -> (usize, Vec<String>) {
    let end = Instant::now() + dur;
    let (mut ok, mut failed) = (0, Vec::new());
    while Instant::now() < end {
        match mtls_request(addr, client, false, get("https://localhost/t")).await {
            Ok((200, _, _)) => ok += 1,
            Ok((s, _, b)) => failed.push(format!("{s} {b}")),
            Err(e) => failed.push(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (ok, failed)
}

fn start_inbound(dir: &std::path::Path, target: &str) -> (Proc, std::net::SocketAddr) {
    let port = free_port();
    let sock = socket_uri(&dir.join("server.sock"));
    let listen = local(port).to_string();
    let p = spawn_ward(
        dir,
        "inbound",
        &[
            "inbound",
            "--listen",
            &listen,
            "--target",
            target,
            "--allow",
            CLIENT,
            "--protocol",
            "http",
            "--socket",
            &sock,
        ],
    );
    wait_port(local(port));
    (p, local(port))
}

#[tokio::test]
async fn rotation_during_continuous_traffic_fails_no_request() {
    let app = start_echo_tcp().await;
    let dir = tempdir();
    let _dev = start_dev(
        dir.path(),
        &[("server.sock", SERVER), ("client.sock", CLIENT)],
        &["--svid-ttl", "2s"],
    );
    let (_w, addr) = start_inbound(dir.path(), &app.to_string());
    let client = source(&dir.path().join("client.sock")).await;
    let first = client.svid().unwrap().not_after();
    let (ok, failed) = traffic(addr, &client, Duration::from_secs(5)).await;
    assert!(
        failed.is_empty(),
        "{} failed of {}: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(ok > 20, "only {ok} requests");
    assert_ne!(
        client.svid().unwrap().not_after(),
        first,
        "the client SVID never rotated"
    );
    assert!(
        log_of(dir.path(), "inbound")
            .matches("identity updated")
            .count()
            >= 2,
        "ward's SVID did not rotate"
    );
}

#[tokio::test]
async fn authority_restart_during_traffic_fails_no_request() {
    let app = start_echo_tcp().await;
    let dir = tempdir();
    let state = dir.path().join("state");
    let state_s = path_str(&state);
    let sockets = [("server.sock", SERVER), ("client.sock", CLIENT)];
    let dev = start_dev(dir.path(), &sockets, &["--state-dir", &state_s]);
    let (_w, addr) = start_inbound(dir.path(), &app.to_string());
    let client = source(&dir.path().join("client.sock")).await;
    let traffic = tokio::spawn({
        let client = client.clone();
        async move { traffic(addr, &client, Duration::from_secs(5)).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(dev);
    for (f, _) in &sockets {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _dev2 = start_dev(dir.path(), &sockets, &["--state-dir", &state_s]);
    let (ok, failed) = traffic.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(ok > 20);
}

#[tokio::test]
async fn policy_reload_applies_a_good_file_and_keeps_the_old_policy_on_a_broken_one() {
    let app = start_echo_tcp().await;
    let dir = tempdir();
    let _dev = start_dev(
        dir.path(),
        &[("server.sock", SERVER), ("client.sock", CLIENT)],
        &[],
    );
    let port = free_port();
    let admin = local(free_port());
    let policy = dir.path().join("policy.yaml");
    let allow_x = |path: &str| {
        format!("rules:\n  - name: reads\n    listener: api\n    allow: [\"{CLIENT}\"]\n    methods: [GET]\n    paths: [\"{path}\"]\n")
    };
    std::fs::write(&policy, allow_x("/a/**")).unwrap();
    let cfg = dir.path().join("ward.yaml");
    std::fs::write(
        &cfg,
        format!(
            "workload_api:\n  socket: {}\nadmin:\n  listen: {admin}\npolicy_file: policy.yaml\ninbound:\n  - name: api\n    listen: {}\n    target: {app}\n    protocol: http\n",
            socket_uri(&dir.path().join("server.sock")),
            local(port),
        ),
    )
    .unwrap();
    let _w = spawn_ward(dir.path(), "run", &["run", "--config", &path_str(&cfg)]);
    wait_port(local(port));
    let client = source(&dir.path().join("client.sock")).await;
    let status = |path: &'static str| {
        let client = client.clone();
        async move {
            mtls_request(
                local(port),
                &client,
                false,
                get(&format!("https://localhost{path}")),
            )
            .await
            .unwrap()
            .0
        }
    };
    assert_eq!(status("/a/1").await, 200);
    assert_eq!(status("/b/1").await, 403);
    std::fs::write(&policy, allow_x("/b/**")).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while status("/b/1").await != 200 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status("/b/1").await, 200, "good policy not applied");
    assert_eq!(status("/a/1").await, 403);
    std::fs::write(
        &policy,
        "rules:\n  - name: broken\n    allow: [\"not-a-spiffe-id\"]\n",
    )
    .unwrap();
    wait_for(
        Duration::from_secs(10),
        || log_of(dir.path(), "run").contains("policy reload refused"),
        "reload error log",
    );
    assert_eq!(
        status("/b/1").await,
        200,
        "broken policy replaced the good one"
    );
    let (_, metrics) = plain_get(admin, "/metrics", &[]).await.unwrap();
    assert!(
        metrics.contains("ward_policy_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ward_policy_reloads_total{result=\"error\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    // A slow app: answers after 1.5 s.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                        tokio::time::sleep(Duration::from_millis(1500)).await;
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(b"slow"),
                        )))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let dir = tempdir();
    let _dev = start_dev(
        dir.path(),
        &[("server.sock", SERVER), ("client.sock", CLIENT)],
        &[],
    );
    let (mut w, addr) = start_inbound(dir.path(), &app.to_string());
    let client = source(&dir.path().join("client.sock")).await;
    let mut inflight = Vec::new();
    for _ in 0..5 {
        let client = client.clone();
        inflight.push(tokio::spawn(async move {
            mtls_request(addr, &client, false, get("https://localhost/slow")).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.signal("TERM");
    for r in inflight {
        let (status, _, body) = r.await.unwrap().unwrap();
        assert_eq!((status, body.as_str()), (200, "slow"));
    }
    assert_eq!(w.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err());
}

fn fetch_x509(dir: &std::path::Path, socket: &std::path::Path, out: &std::path::Path) {
    let status = std::process::Command::new(ward_bin())
        .args([
            "fetch",
            "x509",
            "--socket",
            &socket_uri(socket),
            "--write",
            &path_str(out),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "ward fetch x509 failed");
}

#[tokio::test]
async fn identity_files_are_reloaded_on_change_and_a_broken_file_keeps_the_previous_identity() {
    let app = start_echo_tcp().await;
    let dir = tempdir();
    // ward dev hands out the same SVID until half its lifetime: 10 s, re-fetched at 5.5 s.
    let _dev = start_dev(
        dir.path(),
        &[("server.sock", SERVER), ("client.sock", CLIENT)],
        &["--svid-ttl", "10s"],
    );
    let files = dir.path().join("files");
    fetch_x509(dir.path(), &dir.path().join("server.sock"), &files);
    let port = free_port();
    let admin = local(free_port());
    let (listen, admin_s, target) = (local(port).to_string(), admin.to_string(), app.to_string());
    let (cert, key, bundle) = (
        files.join("svid.pem"),
        files.join("svid_key.pem"),
        files.join("bundle.pem"),
    );
    let _w = spawn_ward(
        dir.path(),
        "inbound",
        &[
            "inbound",
            "--listen",
            &listen,
            "--target",
            &target,
            "--allow",
            CLIENT,
            "--protocol",
            "http",
            "--cert",
            &path_str(&cert),
            "--key",
            &path_str(&key),
            "--bundle",
            &path_str(&bundle),
            "--admin",
            &admin_s,
        ],
    );
    wait_port(local(port));
    let client = source(&dir.path().join("client.sock")).await;
    let serial = || async {
        let (_, c) = plain_get(admin, "/config", &[]).await.unwrap();
        serde_json::from_str::<serde_json::Value>(&c).unwrap()["identity"]["serial"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = serial().await;
    assert_eq!(
        mtls_request(local(port), &client, false, get("https://localhost/"))
            .await
            .unwrap()
            .0,
        200
    );
    // New files: picked up without a restart.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    fetch_x509(dir.path(), &dir.path().join("server.sock"), &files);
    let end = Instant::now() + Duration::from_secs(10);
    while serial().await == first && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = serial().await;
    assert_ne!(second, first, "new identity files were not picked up");
    // A broken certificate file: the previous identity stays and keeps serving.
    std::fs::write(&cert, "not a certificate").unwrap();
    wait_for(
        Duration::from_secs(10),
        || log_of(dir.path(), "inbound").contains("identity files not reloaded"),
        "reload error",
    );
    assert_eq!(serial().await, second);
    assert_eq!(
        mtls_request(local(port), &client, false, get("https://localhost/"))
            .await
            .unwrap()
            .0,
        200
    );
}
