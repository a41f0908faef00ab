//! End-to-end: `ward demo`, the README's first command. The real binary, on free
//! ports: the curl line it prints carries a request over real mTLS to the echo app with
//! the caller's SPIFFE ID; its admin answers; its Workload API serves `ward fetch`;
//! SIGTERM stops it with exit 0.

mod proxy_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use proxy_support::*;

#[tokio::test]
async fn demo_carries_the_printed_curl_request_over_mtls_with_the_callers_id() {
    let dir = tempdir();
    let printed = || std::fs::read_to_string(dir.path().join("demo.out")).unwrap_or_default();
    // The demo binds fixed ports it is given; a port picked free can be taken by a
    // parallel test before the demo binds it, so a start that fails is retried.
    let mut attempt = 0;
    let (mut demo, out, adm) = loop {
        attempt += 1;
        let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let (out, inb, app, adm) = (ports[0], ports[1], ports[2], ports[3]);
        let stdout = std::fs::File::create(dir.path().join("demo.out")).unwrap();
        let stderr = std::fs::File::create(dir.path().join("demo.log")).unwrap();
        let child = Command::new(ward_bin())
            .args(["demo", "--svid-ttl", "2m"])
            .args(["--outbound-port", &out.to_string()])
            .args(["--inbound-port", &inb.to_string()])
            .args(["--app-port", &app.to_string()])
            .args(["--admin-port", &adm.to_string()])
            .env("RUST_LOG", "info")
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn ward demo");
        let mut demo = Proc {
            child,
            name: "demo".into(),
        };
        let mut exited = false;
        wait_for(
            Duration::from_secs(20),
            || {
                exited = demo.child.try_wait().ok().flatten().is_some();
                exited || printed().contains("Ctrl-C to stop.")
            },
            "the demo's instructions",
        );
        if !exited {
            break (demo, out, adm);
        }
        let log = std::fs::read_to_string(dir.path().join("demo.log")).unwrap_or_default();
        assert!(attempt < 3, "ward demo did not start:\n{log}");
    };
    wait_port(local(out));
    let text = printed();
    let curl = format!("curl http://127.0.0.1:{out}/hello");
    assert!(text.contains(&curl), "{text}");

    // What that curl line does.
    let (status, body) = plain_get(local(out), "/hello", &[]).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("echo app got: GET /hello HTTP/1.1\n"),
        "{body}"
    );
    assert!(
        body.contains("x-spiffe-id: spiffe://example.org/client\n"),
        "{body}"
    );
    assert!(
        body.contains("By=spiffe://example.org/echo;Hash=")
            && body.contains(";URI=spiffe://example.org/client"),
        "{body}"
    );

    let (status, _) = plain_get(local(adm), "/readyz", &[]).await.unwrap();
    assert_eq!(status, 200);

    // The Workload API line it prints works with `ward fetch`.
    let socket = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("SPIFFE_ENDPOINT_SOCKET="))
        .expect("a Workload API line")
        .to_owned();
    let fetched = Command::new(ward_bin())
        .args(["fetch", "x509"])
        .env("SPIFFE_ENDPOINT_SOCKET", &socket)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(fetched.status.success(), "{fetched:?}");
    let fetched = String::from_utf8_lossy(&fetched.stdout);
    assert!(fetched.contains("spiffe://example.org/client"), "{fetched}");

    demo.signal("TERM");
    assert_eq!(demo.wait_exit(Duration::from_secs(15)), Some(0));
    let path = socket.strip_prefix("unix://").unwrap();
    assert!(
        !std::path::Path::new(path).exists(),
        "the demo left {path} behind"
    );
}
