//! A long-lived `X509Source` against a real `ward dev` process: rotation, an authority
//! restart, an authority that appears late, and the Workload API security header.

mod identity_support;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use identity_support::{tempdir, Dev};
use ward_workload::{EndpointAddress, SourceOptions, X509Source};

const APP: &str = "spiffe://example.org/app";

fn options(sock: &Path, startup: Duration) -> SourceOptions {
    let mut options = SourceOptions::new(EndpointAddress::Unix(sock.to_owned()));
    options.startup_timeout = startup;
    options.initial_backoff = Duration::from_millis(50);
    options.max_backoff = Duration::from_millis(300);
    options
}

fn socket_arg(sock: &Path) -> String {
    format!("{}={APP}", sock.display())
}

/// Waits (bounded) until the source has accepted an update past `count`.
async fn next_update(source: &X509Source, count: u64, limit: Duration) -> bool {
    let mut updates = source.updates();
    tokio::time::timeout(limit, updates.wait_for(|n| *n > count))
        .await
        .is_ok_and(|r| r.is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_reaches_a_running_source_before_the_old_svid_expires() {
    let dir = tempdir();
    let sock = dir.path().join("app.sock");
    let arg = socket_arg(&sock);
    let _dev = Dev::start(
        &[
            "--trust-domain",
            "example.org",
            "--socket",
            &arg,
            "--svid-ttl",
            "2s",
        ],
        1,
    );
    let source = X509Source::new(options(&sock, Duration::from_secs(20)))
        .await
        .expect("first SVID");
    let first = source.svid().expect("an SVID");
    assert_eq!(first.spiffe_id().as_str(), APP);
    let count = *source.updates().borrow();

    // With a 2 s lifetime the authority pushes a new SVID at half-life, 1 s before the
    // old one expires: seeing it before that expiry means it arrived within a second
    // of the push.
    assert!(
        next_update(&source, count, Duration::from_secs(5)).await,
        "no rotation within 5s"
    );
    let seen_at = SystemTime::now();
    let second = source.svid().expect("an SVID after rotation");
    assert_ne!(first.leaf(), second.leaf(), "a new certificate");
    assert!(
        seen_at <= first.not_after(),
        "the rotated SVID arrived after the old one expired"
    );
    source.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_keeps_its_svid_while_the_authority_restarts_and_then_reconnects() {
    let dir = tempdir();
    let sock = dir.path().join("app.sock");
    let state = dir.path().join("state");
    let arg = socket_arg(&sock);
    let args = [
        "--trust-domain",
        "example.org",
        "--socket",
        &arg,
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let dev = Dev::start(&args, 1);
    let source = X509Source::new(options(&sock, Duration::from_secs(20)))
        .await
        .expect("first SVID");
    let before = source.svid().expect("an SVID");
    let bundle_before = source.bundles();

    dev.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = source
        .svid()
        .expect("the last good SVID is kept while the API is down");
    assert_eq!(held.leaf(), before.leaf());

    let count = *source.updates().borrow();
    let _dev = Dev::start(&args, 1);
    assert!(
        next_update(&source, count, Duration::from_secs(15)).await,
        "the source reconnected to the restarted authority"
    );
    let after = source.svid().expect("an SVID after restart");
    assert_eq!(after.spiffe_id().as_str(), APP);
    assert_eq!(
        source.bundles(),
        bundle_before,
        "the state dir kept the same CA, so trust is unchanged"
    );
    source.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_started_before_the_authority_gets_an_svid_once_it_appears() {
    let dir = tempdir();
    let sock = dir.path().join("late.sock");
    let pending = tokio::spawn(X509Source::new(options(&sock, Duration::from_secs(30))));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!pending.is_finished(), "still waiting for the API");

    let started = Instant::now();
    let arg = socket_arg(&sock);
    let _dev = Dev::start(&["--trust-domain", "example.org", "--socket", &arg], 1);
    let source = tokio::time::timeout(Duration::from_secs(20), pending)
        .await
        .expect("the source started within 20s of the authority")
        .expect("task")
        .expect("first SVID");
    assert_eq!(source.svid().expect("an SVID").spiffe_id().as_str(), APP);
    assert!(started.elapsed() < Duration::from_secs(20));
    source.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_without_the_security_header_is_invalid_argument() {
    use ward_workload::proto::spiffe_workload_api_client::SpiffeWorkloadApiClient;
    use ward_workload::proto::X509svidRequest;

    let dir = tempdir();
    let sock = dir.path().join("app.sock");
    let arg = socket_arg(&sock);
    let _dev = Dev::start(&["--trust-domain", "example.org", "--socket", &arg], 1);

    let path = sock.clone();
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .expect("connect to the socket");
    let mut client = SpiffeWorkloadApiClient::new(channel);
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        client.fetch_x509svid(X509svidRequest {}),
    )
    .await
    .expect("an answer within 10s")
    .expect_err("refused without the header");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
}
