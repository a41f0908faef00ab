//! X509Source and JwtSource over real Unix sockets: full-state replacement (E.45),
//! keep-last-good (E.46), expired SVIDs refused, reconnect with backoff, no retry on
//! InvalidArgument (D.40), start-up timeout, JWT-SVID caching at half life.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use tonic::Code;
use ward_workload::{EndpointAddress, JwtSource, SourceError, SourceOptions, X509Source};

const STEP: Duration = Duration::from_secs(10);

fn options(addr: EndpointAddress) -> SourceOptions {
    SourceOptions {
        startup_timeout: STEP,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..SourceOptions::new(addr)
    }
}

async fn next_update(rx: &mut tokio::sync::watch::Receiver<u64>) {
    tokio::time::timeout(STEP, rx.changed())
        .await
        .expect("an update within 10 s")
        .expect("source alive");
}

#[tokio::test]
async fn source_starts_with_the_first_svid_and_follows_rotation() {
    let (_dir, path) = socket();
    let ca = Ca::new("example.org");
    let provider = TestProvider::new(context(vec![ca.svid("/api")], &[&ca]), None);
    let server = serve(provider.clone(), &path);
    let source = X509Source::new(options(server.address())).await.unwrap();
    let first = source.svid().unwrap();
    assert_eq!(first.spiffe_id().as_str(), "spiffe://example.org/api");
    assert_eq!(source.bundles().get(&ca.td).unwrap(), &ca.bundle());

    let mut updates = source.updates();
    let rotated = ca.svid("/api");
    let leaf = rotated.leaf().clone();
    provider.publish(context(vec![rotated], &[&ca]));
    next_update(&mut updates).await;
    assert_eq!(source.svid().unwrap().leaf(), &leaf);
    assert!(source.last_error().is_none());
    source.close();
    assert!(!source.is_running());
}

#[tokio::test]
async fn update_without_federated_bundles_removes_them_from_the_source() {
    let (_dir, path) = socket();
    let ca = Ca::new("example.org");
    let partner = Ca::new("partner.org");
    let provider = TestProvider::new(context(vec![ca.svid("/api")], &[&ca, &partner]), None);
    let server = serve(provider.clone(), &path);
    let source = X509Source::new(options(server.address())).await.unwrap();
    assert!(source.bundles().get(&partner.td).is_some());

    let mut updates = source.updates();
    provider.publish(context(vec![ca.svid("/api")], &[&ca]));
    next_update(&mut updates).await;
    assert!(source.bundles().get(&partner.td).is_none());
    assert!(source.context().unwrap().bundles.get(&partner.td).is_none());
}

#[tokio::test]
async fn invalid_update_is_counted_and_the_last_good_context_stays() {
    let (_dir, path) = socket();
    let ca = Ca::new("example.org");
    let (chain, key) = ca.leaf_raw(
        "/api",
        time::Duration::minutes(-1),
        time::Duration::hours(1),
    );
    let good = wire_svid(chain, key, "spiffe://example.org/api", &ca, "");
    let (raw, _task) = serve_raw(Ok(response(vec![good], &[])), &path);
    let source = X509Source::new(options(EndpointAddress::Unix(path)))
        .await
        .unwrap();
    let before = source.svid().unwrap();

    // The provider publishes an SVID whose key does not match its certificate.
    let (chain2, _) = ca.leaf_raw(
        "/api",
        time::Duration::minutes(-1),
        time::Duration::hours(1),
    );
    let (_, wrong_key) = ca.leaf_raw(
        "/api",
        time::Duration::minutes(-1),
        time::Duration::hours(1),
    );
    let _ = raw.x509.send_replace(Ok(response(
        vec![wire_svid(
            chain2,
            wrong_key,
            "spiffe://example.org/api",
            &ca,
            "",
        )],
        &[],
    )));
    eventually("the bad update to be rejected", STEP, || {
        source.rejected_updates() == 1
    })
    .await;
    assert_eq!(source.svid().unwrap().leaf(), before.leaf());
    assert!(
        source.last_error().unwrap().contains("invalid response"),
        "{:?}",
        source.last_error()
    );

    // The stream stays usable: the next good update is accepted.
    let mut updates = source.updates();
    let (chain3, key3) = ca.leaf_raw(
        "/api",
        time::Duration::minutes(-1),
        time::Duration::hours(1),
    );
    let _ = raw.x509.send_replace(Ok(response(
        vec![wire_svid(
            chain3.clone(),
            key3,
            "spiffe://example.org/api",
            &ca,
            "",
        )],
        &[],
    )));
    next_update(&mut updates).await;
    assert_eq!(source.svid().unwrap().leaf().as_ref(), chain3.as_slice());
    assert!(source.last_error().is_none());
}

#[tokio::test]
async fn update_with_an_expired_svid_is_refused() {
    let (_dir, path) = socket();
    let ca = Ca::new("example.org");
    let provider = TestProvider::new(context(vec![ca.svid("/api")], &[&ca]), None);
    let server = serve(provider.clone(), &path);
    let source = X509Source::new(options(server.address())).await.unwrap();
    let before = source.svid().unwrap();

    let expired = ca.svid_valid("/api", time::Duration::hours(-2), time::Duration::hours(-1));
    provider.publish(context(vec![expired], &[&ca]));
    eventually("the expired update to be refused", STEP, || {
        source.rejected_updates() == 1
    })
    .await;
    assert_eq!(source.svid().unwrap().leaf(), before.leaf());
    assert!(
        source.last_error().unwrap().contains("not valid now"),
        "{:?}",
        source.last_error()
    );
}

#[tokio::test]
async fn source_never_starts_with_only_an_expired_svid() {
    let (_dir, path) = socket();
    let ca = Ca::new("example.org");
    let expired = ca.svid_valid("/api", time::Duration::hours(-2), time::Duration::hours(-1));
    let server = serve(
        TestProvider::new(context(vec![expired], &[&ca]), None),
        &path,
    );
    let err = X509Source::new(SourceOptions {
        startup_timeout: Duration::from_millis(500),
        ..options(server.address())
    })
    .await
    .unwrap_err();
    assert!(matches!(err, SourceError::StartupTimeout { .. }), "{err}");
    assert!(err.to_string().contains("not valid now"), "{err}");
}

#[tokio::test]
async fn published_context_is_refused_when_expired_and_reads_check_expiry() {
    let ca = Ca::new("example.org");
    let short = ca.svid_valid(
        "/api",
        time::Duration::minutes(-1),
        time::Duration::seconds(2),
    );
    let source = X509Source::from_context(context(vec![short], &[&ca]));
    assert!(source.svid().is_some());

    let expired = ca.svid_valid("/api", time::Duration::hours(-2), time::Duration::hours(-1));
    let err = source.publish(context(vec![expired], &[&ca])).unwrap_err();
    assert!(matches!(err, SourceError::Expired { .. }), "{err}");
    assert!(
        source.svid().is_some(),
        "the refused update leaves the good one"
    );

    // Once the accepted SVID itself expires, reads return nothing rather than it.
    eventually("the short SVID to expire", STEP, || source.svid().is_none()).await;
    assert!(source.context().is_none());
    assert_eq!(source.bundles().get(&ca.td).unwrap(), &ca.bundle());

    source
        .publish(context(vec![ca.svid("/api")], &[&ca]))
        .unwrap();
    assert!(source.svid().is_some());
}

#[tokio::test]
async fn from_context_without_svids_holds_nothing() {
    let ca = Ca::new("example.org");
    let source = X509Source::from_context(context(vec![], &[&ca]));
    assert!(source.context().is_none());
    assert_eq!(source.rejected_updates(), 1);
    assert!(matches!(
        source.publish(context(vec![], &[&ca])),
        Err(SourceError::NoSvid)
    ));
}

#[tokio::test]
async fn source_reconnects_after_a_server_restart_and_keeps_its_svid_meanwhile() {
    let (_dir, path) = socket();
    let ca = Ca::new("example.org");
    let provider = TestProvider::new(context(vec![ca.svid("/api")], &[&ca]), None);
    let server = serve(provider.clone(), &path);
    let source = X509Source::new(options(server.address())).await.unwrap();
    let before = source.svid().unwrap();

    server.stop().await;
    eventually("the source to notice", STEP, || {
        source.last_error().is_some()
    })
    .await;
    assert_eq!(
        source.svid().unwrap().leaf(),
        before.leaf(),
        "kept while the server is away"
    );
    assert!(source.is_running(), "Unavailable is retried");

    let rotated = ca.svid("/api");
    let leaf = rotated.leaf().clone();
    let provider2 = TestProvider::new(context(vec![rotated], &[&ca]), None);
    let mut updates = source.updates();
    let _server2 = serve(provider2, &path);
    next_update(&mut updates).await;
    assert_eq!(source.svid().unwrap().leaf(), &leaf);
    assert!(source.last_error().is_none());
}

#[tokio::test]
async fn source_without_server_fails_within_the_timeout_naming_the_socket() {
    let (_dir, path) = socket();
    let started = Instant::now();
    let err = X509Source::new(SourceOptions {
        startup_timeout: Duration::from_millis(400),
        ..options(EndpointAddress::Unix(path.clone()))
    })
    .await
    .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("unavailable"), "names the last error: {msg}");
}

#[tokio::test]
async fn source_waits_for_a_server_that_appears_after_start() {
    let (_dir, path) = socket();
    let ca = Ca::new("example.org");
    let provider = TestProvider::new(context(vec![ca.svid("/api")], &[&ca]), None);
    let path2 = path.clone();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        serve(provider, &path2)
    });
    let source = X509Source::new(options(EndpointAddress::Unix(path)))
        .await
        .unwrap();
    assert!(source.svid().is_some());
    let _server = late.await.unwrap();
}

#[tokio::test]
async fn permission_denied_is_retried_until_an_identity_is_issued() {
    let (_dir, path) = socket();
    let (raw, _task) = serve_raw(
        Err((Code::PermissionDenied, "no identity issued".into())),
        &path,
    );
    let ca = Ca::new("example.org");
    let (chain, key) = ca.leaf_raw(
        "/api",
        time::Duration::minutes(-1),
        time::Duration::hours(1),
    );
    let addr = EndpointAddress::Unix(path);
    let start = tokio::spawn(X509Source::new(options(addr)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = raw.x509.send_replace(Ok(response(
        vec![wire_svid(chain, key, "spiffe://example.org/api", &ca, "")],
        &[],
    )));
    let source = start.await.unwrap().unwrap();
    assert!(source.svid().is_some());
}

#[tokio::test]
async fn invalid_argument_is_not_retried() {
    let (_dir, path) = socket();
    let (_raw, _task) = serve_raw(
        Err((
            Code::InvalidArgument,
            "security header missing from request".into(),
        )),
        &path,
    );
    let started = Instant::now();
    let err = X509Source::new(options(EndpointAddress::Unix(path)))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fails at once, not at the timeout"
    );
    assert!(matches!(err, SourceError::Fatal { .. }), "{err}");
    assert!(err.to_string().contains("security header missing"), "{err}");
}

#[tokio::test]
async fn unimplemented_is_not_retried() {
    let (_dir, path) = socket();
    let (_raw, _task) = serve_raw(Err((Code::Unimplemented, "nope".into())), &path);
    let err = X509Source::new(options(EndpointAddress::Unix(path)))
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Fatal { .. }), "{err}");
}

#[tokio::test]
async fn jwt_source_caches_per_audience_set_and_refreshes_at_half_life() {
    let (_dir, path) = socket();
    let ca = Ca::new("example.org");
    let provider = TestProvider::new(context(vec![ca.svid("/api")], &[&ca]), None);
    let server = serve(provider.clone(), &path);
    let source = JwtSource::new(options(server.address())).await.unwrap();

    let a = source.fetch(&["b".into(), "a".into()]).await.unwrap();
    let again = source
        .fetch(&["a".into(), "b".into(), "a".into()])
        .await
        .unwrap();
    assert_eq!(a.token(), again.token(), "same audience set, cached");
    assert_eq!(provider.minted.load(Ordering::SeqCst), 1);

    let other = source.fetch(&["c".into()]).await.unwrap();
    assert_eq!(other.audience(), ["c"]);
    assert_eq!(provider.minted.load(Ordering::SeqCst), 2);

    // A 2-second token is refreshed once a second (half its life) has passed.
    *provider.jwt_lifetime.lock().unwrap() = Duration::from_secs(2);
    source.fetch(&["short".into()]).await.unwrap();
    source.fetch(&["short".into()]).await.unwrap();
    assert_eq!(provider.minted.load(Ordering::SeqCst), 3);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    source.fetch(&["short".into()]).await.unwrap();
    assert_eq!(provider.minted.load(Ordering::SeqCst), 4);
}
