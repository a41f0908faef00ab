//! The Workload API server and client against each other over real Unix sockets
//! (CHECKLIST D.34-35, E.44-53).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use tonic::transport::{Endpoint, Uri};
use tonic::Code;
use ward_workload::proto;
use ward_workload::proto::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use ward_workload::{ClientError, EndpointAddress, WorkloadClient, WorkloadServer};

const STEP: Duration = Duration::from_secs(10);

/// A raw gRPC client on the socket that adds no header of its own.
async fn raw_client(path: &std::path::Path) -> SpiffeWorkloadApiClient<tonic::transport::Channel> {
    let path = path.to_path_buf();
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .expect("connect");
    SpiffeWorkloadApiClient::new(channel)
}

fn with_header<T>(msg: T, value: &'static str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("workload.spiffe.io", value.parse().unwrap());
    req
}

struct Fixture {
    _dir: tempfile::TempDir,
    ca: Ca,
    provider: Arc<TestProvider>,
    server: Running,
    client: WorkloadClient,
}

async fn fixture(allowed_uid: Option<u32>) -> Fixture {
    let (dir, path) = socket();
    let ca = Ca::new("example.org");
    let provider = TestProvider::new(context(vec![ca.svid("/api")], &[&ca]), allowed_uid);
    let server = serve(provider.clone(), &path);
    let client = WorkloadClient::connect(&server.address()).await.unwrap();
    Fixture {
        _dir: dir,
        ca,
        provider,
        server,
        client,
    }
}

#[tokio::test]
async fn request_without_security_header_is_invalid_argument() {
    let f = fixture(None).await;
    let mut raw = raw_client(&f.server.path).await;
    let err = raw
        .fetch_x509svid(proto::X509svidRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "security header missing from request");
    let err = raw
        .fetch_jwtsvid(proto::JwtsvidRequest {
            audience: vec!["a".into()],
            spiffe_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn security_header_value_must_be_exactly_lowercase_true() {
    let f = fixture(None).await;
    let mut raw = raw_client(&f.server.path).await;
    for bad in ["TRUE", "True", "1", ""] {
        let err = raw
            .fetch_x509svid(with_header(proto::X509svidRequest {}, bad))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "value {bad:?}");
    }
    let ok = raw
        .fetch_x509svid(with_header(proto::X509svidRequest {}, "true"))
        .await;
    assert!(ok.is_ok());
}

#[tokio::test]
async fn caller_without_identity_gets_permission_denied() {
    let f = fixture(Some(my_uid().wrapping_add(1))).await;
    let err = f.client.fetch_x509_context().await.unwrap_err();
    assert!(matches!(err, ClientError::PermissionDenied { .. }), "{err}");
    assert!(err.to_string().contains("no identity issued"), "{err}");
    let err = f
        .client
        .fetch_jwt_svids(&["aud".into()], None)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::PermissionDenied { .. }), "{err}");
    let err = f.client.fetch_x509_bundles().await.unwrap_err();
    assert!(matches!(err, ClientError::PermissionDenied { .. }), "{err}");
}

#[tokio::test]
async fn caller_is_identified_by_its_peer_credentials() {
    let f = fixture(Some(my_uid())).await;
    f.client.fetch_x509_context().await.unwrap();
    let callers = f.provider.callers.lock().unwrap().clone();
    let caller = callers.last().unwrap();
    assert_eq!(caller.uid, my_uid());
    assert_eq!(caller.pid, Some(std::process::id() as i32));
    assert_eq!(caller.exe, Some(std::env::current_exe().unwrap()));
    assert_eq!(caller.socket.as_deref(), Some(f.server.path.as_path()));
}

#[tokio::test]
async fn x509_context_holds_the_svid_and_its_trust_domain_bundle() {
    let f = fixture(None).await;
    let ctx = f.client.fetch_x509_context().await.unwrap();
    assert_eq!(ctx.svids.len(), 1);
    assert_eq!(
        ctx.default_svid().unwrap().spiffe_id().as_str(),
        "spiffe://example.org/api"
    );
    assert_eq!(ctx.bundles.get(&f.ca.td).unwrap(), &f.ca.bundle());
    assert_eq!(ctx.bundles.len(), 1);
}

#[tokio::test]
async fn x509_stream_sends_a_full_state_on_every_change() {
    let f = fixture(None).await;
    let mut stream = f.client.watch_x509_contexts().await.unwrap();
    let first = tokio::time::timeout(STEP, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.svids[0].spiffe_id().path(), "/api");

    let rotated = f.ca.svid("/api");
    let rotated_leaf = rotated.leaf().clone();
    f.provider.publish(context(vec![rotated], &[&f.ca]));
    let second = tokio::time::timeout(STEP, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.svids[0].leaf(), &rotated_leaf);
    assert_ne!(first.svids[0].leaf(), second.svids[0].leaf());
}

#[tokio::test]
async fn update_without_federated_bundles_removes_them() {
    let f = fixture(None).await;
    let partner = Ca::new("partner.org");
    f.provider
        .publish(context(vec![f.ca.svid("/api")], &[&f.ca, &partner]));
    let mut stream = f.client.watch_x509_contexts().await.unwrap();
    let with = tokio::time::timeout(STEP, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(with.bundles.get(&partner.td).unwrap(), &partner.bundle());
    assert_eq!(with.bundles.len(), 2);

    f.provider
        .publish(context(vec![f.ca.svid("/api")], &[&f.ca]));
    let without = tokio::time::timeout(STEP, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(without.bundles.get(&partner.td).is_none());
    assert_eq!(without.bundles.len(), 1);
}

#[tokio::test]
async fn federated_bundles_are_keyed_by_trust_domain_id_and_exclude_the_own_domain() {
    let f = fixture(None).await;
    let partner = Ca::new("partner.org");
    f.provider
        .publish(context(vec![f.ca.svid("/api")], &[&f.ca, &partner]));
    let mut raw = raw_client(&f.server.path).await;
    let mut stream = raw
        .fetch_x509svid(with_header(proto::X509svidRequest {}, "true"))
        .await
        .unwrap()
        .into_inner();
    let msg = stream.next().await.unwrap().unwrap();
    assert_eq!(msg.svids[0].bundle, f.ca.der);
    let keys: Vec<_> = msg.federated_bundles.keys().cloned().collect();
    assert_eq!(keys, vec!["spiffe://partner.org".to_string()]);
    assert_eq!(msg.federated_bundles["spiffe://partner.org"], partner.der);
}

#[tokio::test]
async fn x509_bundles_include_every_trust_domain() {
    let f = fixture(None).await;
    let partner = Ca::new("partner.org");
    f.provider
        .publish(context(vec![f.ca.svid("/api")], &[&f.ca, &partner]));
    let set = f.client.fetch_x509_bundles().await.unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(set.get(&partner.td).unwrap(), &partner.bundle());
}

#[tokio::test]
async fn jwt_bundles_round_trip_as_jwks() {
    let f = fixture(None).await;
    let set = f.client.fetch_jwt_bundles().await.unwrap();
    let bundle = set.get(&f.ca.td).unwrap();
    assert!(bundle.get(&f.provider.signer.kid).is_some());
}

#[tokio::test]
async fn jwt_svid_round_trips_through_validate_jwt_svid() {
    let f = fixture(None).await;
    let svids = f
        .client
        .fetch_jwt_svids(&["billing".into()], None)
        .await
        .unwrap();
    assert_eq!(svids.len(), 1);
    assert_eq!(svids[0].spiffe_id().as_str(), "spiffe://example.org/api");
    let (id, claims) = f
        .client
        .validate_jwt_svid("billing", svids[0].token())
        .await
        .unwrap();
    assert_eq!(id.as_str(), "spiffe://example.org/api");
    assert_eq!(claims["sub"], "spiffe://example.org/api");
    assert_eq!(claims["aud"], serde_json::json!(["billing"]));
    assert_eq!(claims["exp"], svids[0].claims()["exp"]);
    assert!(
        claims["exp"].is_u64() || claims["exp"].is_i64(),
        "{claims:?}"
    );

    let err = f
        .client
        .validate_jwt_svid("someone-else", svids[0].token())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidArgument { .. }), "{err}");
}

#[tokio::test]
async fn validate_jwt_svid_rejects_a_token_signed_by_an_unknown_key() {
    let f = fixture(None).await;
    let rogue = JwtSigner::new("example.org");
    let token = rogue.mint(
        &"spiffe://example.org/api".parse().unwrap(),
        &["billing".into()],
        Duration::from_secs(60),
    );
    let err = f
        .client
        .validate_jwt_svid("billing", token.token())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidArgument { .. }), "{err}");
}

#[tokio::test]
async fn fetch_jwt_svid_without_audience_is_invalid_argument() {
    let f = fixture(None).await;
    let mut raw = raw_client(&f.server.path).await;
    let err = raw
        .fetch_jwtsvid(with_header(
            proto::JwtsvidRequest {
                audience: vec![],
                spiffe_id: String::new(),
            },
            "true",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = f.client.fetch_jwt_svids(&[], None).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
}

#[tokio::test]
async fn validate_jwt_svid_requires_both_fields() {
    let f = fixture(None).await;
    let mut raw = raw_client(&f.server.path).await;
    for (audience, svid) in [("", "x.y.z"), ("aud", "")] {
        let err = raw
            .validate_jwtsvid(with_header(
                proto::ValidateJwtsvidRequest {
                    audience: audience.into(),
                    svid: svid.into(),
                },
                "true",
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{audience:?} {svid:?}");
    }
}

#[tokio::test]
async fn wit_rpcs_are_unimplemented() {
    let f = fixture(None).await;
    let mut raw = raw_client(&f.server.path).await;
    let err = raw
        .fetch_witsvid(with_header(proto::WitsvidRequest::default(), "true"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    let err = raw
        .fetch_wit_bundles(with_header(proto::WitBundlesRequest {}, "true"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
}

#[tokio::test]
async fn missing_socket_is_unavailable_and_names_the_socket() {
    let (_dir, path) = socket();
    let client = WorkloadClient::connect(&EndpointAddress::Unix(path.clone()))
        .await
        .unwrap();
    let err = client.fetch_x509_context().await.unwrap_err();
    assert!(matches!(err, ClientError::Unavailable { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn bind_replaces_a_stale_socket_but_not_a_live_server_or_a_regular_file() {
    let (dir, path) = socket();
    let ca = Ca::new("example.org");
    let provider = TestProvider::new(context(vec![ca.svid("/api")], &[&ca]), None);
    // A stale socket file: bound, then its listener dropped.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let server = serve(provider.clone(), &path);
    let client = WorkloadClient::connect(&server.address()).await.unwrap();
    client.fetch_x509_context().await.unwrap();

    let err = WorkloadServer::new(provider.clone())
        .bind_unix(&path)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");

    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, b"keep me").unwrap();
    let err = WorkloadServer::new(provider).bind_unix(&file).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    server.stop().await;
    assert!(!path.exists(), "the socket file is removed on shutdown");
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_completes() {
    let f = fixture(None).await;
    let mut stream = f.client.watch_x509_contexts().await.unwrap();
    stream.next().await.unwrap().unwrap();
    f.server.stop().await;
    let end = tokio::time::timeout(STEP, stream.next()).await.unwrap();
    assert!(end.is_none() || end.unwrap().is_err());
}

// === client-side validation (E.46-48) against a raw server ===

async fn raw_fixture(
    msg: proto::X509svidResponse,
) -> (tempfile::TempDir, WorkloadClient, Arc<RawServer>) {
    let (dir, path) = socket();
    let (raw, _task) = serve_raw(Ok(msg), &path);
    let client = WorkloadClient::connect(&EndpointAddress::Unix(path))
        .await
        .unwrap();
    (dir, client, raw)
}

fn invalid_response(err: ClientError, needle: &str) {
    match &err {
        ClientError::InvalidResponse { what, .. } => {
            assert!(what.contains(needle), "{err} should mention {needle}")
        }
        other => panic!("expected InvalidResponse, got {other}"),
    }
}

#[tokio::test]
async fn response_without_svids_is_an_invalid_response() {
    let (_d, client, _raw) = raw_fixture(response(vec![], &[])).await;
    invalid_response(
        client.fetch_x509_context().await.unwrap_err(),
        "svids is empty",
    );
}

#[tokio::test]
async fn svid_with_a_mandatory_field_at_default_is_an_invalid_response() {
    let ca = Ca::new("example.org");
    let (chain, key) = ca.leaf_raw(
        "/api",
        time::Duration::minutes(-1),
        time::Duration::hours(1),
    );
    let good = wire_svid(chain, key, "spiffe://example.org/api", &ca, "");
    for (field, svid) in [
        (
            "spiffe_id",
            proto::X509svid {
                spiffe_id: String::new(),
                ..good.clone()
            },
        ),
        (
            "x509_svid_key",
            proto::X509svid {
                x509_svid_key: vec![],
                ..good.clone()
            },
        ),
        (
            "x509_svid",
            proto::X509svid {
                x509_svid: vec![],
                ..good.clone()
            },
        ),
        (
            "bundle",
            proto::X509svid {
                bundle: vec![],
                ..good.clone()
            },
        ),
    ] {
        let (_d, client, _raw) = raw_fixture(response(vec![svid], &[])).await;
        invalid_response(client.fetch_x509_context().await.unwrap_err(), field);
    }
}

#[tokio::test]
async fn svid_whose_key_does_not_match_is_an_invalid_response() {
    let ca = Ca::new("example.org");
    let (chain, _) = ca.leaf_raw(
        "/api",
        time::Duration::minutes(-1),
        time::Duration::hours(1),
    );
    let (_, other_key) = ca.leaf_raw(
        "/api",
        time::Duration::minutes(-1),
        time::Duration::hours(1),
    );
    let msg = response(
        vec![wire_svid(
            chain,
            other_key,
            "spiffe://example.org/api",
            &ca,
            "",
        )],
        &[],
    );
    let (_d, client, _raw) = raw_fixture(msg).await;
    invalid_response(client.fetch_x509_context().await.unwrap_err(), "x509_svid");
}

#[tokio::test]
async fn spiffe_id_field_must_match_the_certificate() {
    let ca = Ca::new("example.org");
    let (chain, key) = ca.leaf_raw(
        "/api",
        time::Duration::minutes(-1),
        time::Duration::hours(1),
    );
    let msg = response(
        vec![wire_svid(chain, key, "spiffe://example.org/admin", &ca, "")],
        &[],
    );
    let (_d, client, _raw) = raw_fixture(msg).await;
    invalid_response(client.fetch_x509_context().await.unwrap_err(), "spiffe_id");
}

#[tokio::test]
async fn duplicate_hint_keeps_the_first_svid() {
    let ca = Ca::new("example.org");
    let (c1, k1) = ca.leaf_raw(
        "/one",
        time::Duration::minutes(-1),
        time::Duration::hours(1),
    );
    let (c2, k2) = ca.leaf_raw(
        "/two",
        time::Duration::minutes(-1),
        time::Duration::hours(1),
    );
    let (c3, k3) = ca.leaf_raw(
        "/three",
        time::Duration::minutes(-1),
        time::Duration::hours(1),
    );
    let msg = response(
        vec![
            wire_svid(c1, k1, "spiffe://example.org/one", &ca, "internal"),
            wire_svid(c2, k2, "spiffe://example.org/two", &ca, "internal"),
            wire_svid(c3, k3, "spiffe://example.org/three", &ca, "external"),
        ],
        &[],
    );
    let (_d, client, _raw) = raw_fixture(msg).await;
    let ctx = client.fetch_x509_context().await.unwrap();
    let ids: Vec<_> = ctx
        .svids
        .iter()
        .map(|s| s.spiffe_id().path().to_string())
        .collect();
    assert_eq!(ids, ["/one", "/three"]);
    assert_eq!(ctx.svids[0].hint(), "internal");
}

#[tokio::test]
async fn federated_bundle_key_must_be_a_trust_domain_id() {
    let ca = Ca::new("example.org");
    let partner = Ca::new("partner.org");
    let (chain, key) = ca.leaf_raw(
        "/api",
        time::Duration::minutes(-1),
        time::Duration::hours(1),
    );
    let mut msg = response(
        vec![wire_svid(chain, key, "spiffe://example.org/api", &ca, "")],
        &[],
    );
    msg.federated_bundles
        .insert("partner.org".into(), partner.der.clone());
    let (_d, client, _raw) = raw_fixture(msg.clone()).await;
    invalid_response(
        client.fetch_x509_context().await.unwrap_err(),
        "partner.org",
    );

    msg.federated_bundles.clear();
    msg.federated_bundles
        .insert("spiffe://partner.org/x".into(), partner.der.clone());
    let (_d, client, _raw) = raw_fixture(msg).await;
    invalid_response(client.fetch_x509_context().await.unwrap_err(), "no path");
}

#[tokio::test]
async fn client_speaks_to_a_tcp_endpoint_too() {
    let ca = Ca::new("example.org");
    let (chain, key) = ca.leaf_raw(
        "/api",
        time::Duration::minutes(-1),
        time::Duration::hours(1),
    );
    let msg = response(
        vec![wire_svid(chain, key, "spiffe://example.org/api", &ca, "")],
        &[],
    );
    let (_raw, addr, _task) = serve_raw_tcp(Ok(msg)).await;
    let client = WorkloadClient::connect(&EndpointAddress::Tcp(addr))
        .await
        .unwrap();
    let ctx = client.fetch_x509_context().await.unwrap();
    assert_eq!(ctx.svids[0].spiffe_id().path(), "/api");
}
