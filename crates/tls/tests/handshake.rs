//! Real mTLS handshakes over 127.0.0.1 between ward's configs (and hand-made peers that
//! break one SPIFFE rule each), checking what the verifier accepts and rejects.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rustls::{CertificateError, HandshakeKind};
use time::OffsetDateTime;
use ward_tls::{client_config, server_config};

const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];
const SERVER: &str = "spiffe://example.org/server";
const CLIENT: &str = "spiffe://example.org/client";

/// Our CA and a server listening with `server_config` on an SVID of it.
async fn ward_server(ca: &Ca, extra: &[&Ca]) -> (Server, ward_workload::X509Source) {
    let mut cas = vec![ca];
    cas.extend_from_slice(extra);
    let source = source(ca.svid("/server"), &cas);
    let config = server_config(&source, ALPN).unwrap();
    (Server::start(config).await, source)
}

/// Asserts that the server rejected the last handshake with a certificate error that
/// `expected` accepts (the error decides the TLS alert the peer gets).
async fn assert_rejected(server: &mut Server, expected: fn(&CertificateError) -> bool) {
    let err = server
        .next()
        .await
        .expect_err("the server accepted a peer it must reject");
    match tls_error(&err) {
        Some(rustls::Error::InvalidCertificate(got)) => {
            assert!(expected(got), "unexpected certificate error: {got:?}")
        }
        _ => panic!("expected a certificate error, got {err}"),
    }
}

/// A SPIFFE rule broken by the leaf itself: bad_certificate.
fn bad_leaf(err: &CertificateError) -> bool {
    matches!(err, CertificateError::Other(_))
}

/// Presents `leaf` (signed by `issuer`) as a client to a ward server of `ca`.
async fn client_presenting(ca: &Ca, issuer: &Ca, leaf: &Leaf) -> Server {
    let (server, trust) = ward_server(ca, &[]).await;
    let issued = issuer.issue(leaf);
    let client = fixed_client(&trust, Some(&issued));
    // Under TLS 1.3 the client finishes before the server has judged its certificate;
    // the verdict is the server's.
    if let Ok(mut tls) = connect(client, server.addr, "localhost").await {
        assert!(round_trip(&mut tls).await.is_err());
    }
    server
}

#[tokio::test]
async fn server_reads_the_verified_client_id() {
    let ca = Ca::new("example.org");
    let (mut server, _) = ward_server(&ca, &[]).await;
    let client_source = source(ca.svid("/client"), &[&ca]);
    let mut tls = connect(
        client_config(&client_source, ALPN).unwrap(),
        server.addr,
        "localhost",
    )
    .await
    .unwrap();
    round_trip(&mut tls).await.unwrap();
    let accepted = server.next().await.unwrap();
    assert_eq!(accepted.peer.unwrap().as_str(), CLIENT);
}

#[tokio::test]
async fn client_reads_the_verified_server_id() {
    let ca = Ca::new("example.org");
    let (server, _) = ward_server(&ca, &[]).await;
    let client_source = source(ca.svid("/client"), &[&ca]);
    let mut tls = connect(
        client_config(&client_source, ALPN).unwrap(),
        server.addr,
        "localhost",
    )
    .await
    .unwrap();
    round_trip(&mut tls).await.unwrap();
    let id = ward_tls::peer_id(tls.get_ref().1).unwrap();
    assert_eq!(id.as_str(), SERVER);
}

#[tokio::test]
async fn client_without_certificate_is_rejected() {
    let ca = Ca::new("example.org");
    let (mut server, trust) = ward_server(&ca, &[]).await;
    if let Ok(mut tls) = connect(fixed_client(&trust, None), server.addr, "localhost").await {
        assert!(round_trip(&mut tls).await.is_err());
    }
    let err = server
        .next()
        .await
        .expect_err("accepted without a certificate");
    assert!(
        matches!(
            tls_error(&err),
            Some(rustls::Error::NoCertificatesPresented)
        ),
        "{err}"
    );
}

#[tokio::test]
async fn leaf_from_another_ca_claiming_our_trust_domain_is_rejected() {
    let ca = Ca::new("example.org");
    let impostor = Ca::new("example.org");
    let mut server = client_presenting(&ca, &impostor, &Leaf::svid(CLIENT)).await;
    assert_rejected(&mut server, |e| {
        matches!(
            e,
            CertificateError::UnknownIssuer | CertificateError::BadSignature
        )
    })
    .await;
}

#[tokio::test]
async fn peer_from_trust_domain_without_bundle_is_rejected() {
    let ca = Ca::new("example.org");
    let stranger = Ca::new("stranger.org");
    let leaf = Leaf::svid("spiffe://stranger.org/client");
    let mut server = client_presenting(&ca, &stranger, &leaf).await;
    assert_rejected(&mut server, |e| *e == CertificateError::UnknownIssuer).await;
}

#[tokio::test]
async fn federated_trust_domain_with_its_own_bundle_is_accepted() {
    let ca = Ca::new("example.org");
    let partner = Ca::new("partner.org");
    let (mut server, _) = ward_server(&ca, &[&partner]).await;
    let client_source = source(partner.svid("/client"), &[&partner, &ca]);
    let mut tls = connect(
        client_config(&client_source, ALPN).unwrap(),
        server.addr,
        "localhost",
    )
    .await
    .unwrap();
    round_trip(&mut tls).await.unwrap();
    let accepted = server.next().await.unwrap();
    assert_eq!(
        accepted.peer.unwrap().as_str(),
        "spiffe://partner.org/client"
    );
}

#[tokio::test]
async fn federated_ca_cannot_vouch_for_our_trust_domain() {
    let ca = Ca::new("example.org");
    let partner = Ca::new("partner.org");
    let (mut server, trust) = ward_server(&ca, &[&partner]).await;
    let issued = partner.issue(&Leaf::svid(CLIENT));
    if let Ok(mut tls) = connect(
        fixed_client(&trust, Some(&issued)),
        server.addr,
        "localhost",
    )
    .await
    {
        assert!(round_trip(&mut tls).await.is_err());
    }
    assert_rejected(&mut server, |e| *e == CertificateError::UnknownIssuer).await;
}

#[tokio::test]
async fn ca_certificate_presented_as_leaf_is_rejected() {
    let ca = Ca::new("example.org");
    let mut leaf = Leaf::svid(CLIENT);
    leaf.is_ca = true;
    let mut server = client_presenting(&ca, &ca, &leaf).await;
    assert_rejected(&mut server, bad_leaf).await;
}

#[tokio::test]
async fn leaf_with_two_uri_sans_is_rejected() {
    let ca = Ca::new("example.org");
    let mut leaf = Leaf::svid(CLIENT);
    leaf.uris.push("spiffe://example.org/admin".to_owned());
    let mut server = client_presenting(&ca, &ca, &leaf).await;
    assert_rejected(&mut server, bad_leaf).await;
}

#[tokio::test]
async fn expired_leaf_is_rejected() {
    let ca = Ca::new("example.org");
    let mut leaf = Leaf::svid(CLIENT);
    let now = OffsetDateTime::now_utc();
    leaf.not_before = now - time::Duration::hours(2);
    leaf.not_after = now - time::Duration::hours(1);
    let mut server = client_presenting(&ca, &ca, &leaf).await;
    assert_rejected(&mut server, |e| *e == CertificateError::Expired).await;
}

#[tokio::test]
async fn not_yet_valid_leaf_is_rejected() {
    let ca = Ca::new("example.org");
    let mut leaf = Leaf::svid(CLIENT);
    let now = OffsetDateTime::now_utc();
    leaf.not_before = now + time::Duration::hours(1);
    leaf.not_after = now + time::Duration::hours(2);
    let mut server = client_presenting(&ca, &ca, &leaf).await;
    assert_rejected(&mut server, |e| *e == CertificateError::NotValidYet).await;
}

#[tokio::test]
async fn dns_only_server_certificate_is_rejected_even_when_the_server_name_matches() {
    let ca = Ca::new("example.org");
    let client_source = source(ca.svid("/client"), &[&ca]);
    let mut leaf = Leaf::svid(SERVER);
    leaf.uris.clear();
    leaf.dns.push("localhost".to_owned());
    let issued = ca.issue(&leaf);
    let mut server = Server::start(fixed_server(&client_source, &issued)).await;
    let client = client_config(&client_source, ALPN).unwrap();
    let err = connect(client, server.addr, "localhost")
        .await
        .expect_err("the client accepted a server without a SPIFFE ID");
    assert!(
        matches!(tls_error(&err), Some(rustls::Error::InvalidCertificate(_))),
        "{err}"
    );
    assert!(server.next().await.is_err());
}

#[tokio::test]
async fn rotation_serves_the_new_svid_and_keeps_established_connections() {
    let ca = Ca::new("example.org");
    let (server, server_source) = ward_server(&ca, &[]).await;
    let client_source = source(ca.svid("/client"), &[&ca]);
    let client = client_config(&client_source, ALPN).unwrap();
    let mut old = connect(client.clone(), server.addr, "localhost")
        .await
        .unwrap();
    round_trip(&mut old).await.unwrap();

    let rotated = ca.svid("/server");
    let new_leaf = rotated.leaf().clone();
    server_source.publish(context(rotated, &[&ca])).unwrap();

    // The resolver rebuilds on the source's update tick: within a second (DESIGN).
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let mut tls = connect(client.clone(), server.addr, "localhost")
            .await
            .unwrap();
        round_trip(&mut tls).await.unwrap();
        let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        if presented == new_leaf {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new SVID was not served within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    round_trip(&mut old).await.unwrap();
}

#[tokio::test]
async fn expired_own_svid_is_never_served() {
    let ca = Ca::new("example.org");
    let mut leaf = Leaf::svid(SERVER);
    leaf.not_after = OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let server_source = source(ca.issue(&leaf).svid(), &[&ca]);
    let mut server = Server::start(server_config(&server_source, ALPN).unwrap()).await;
    let client_source = source(ca.svid("/client"), &[&ca]);
    let client = client_config(&client_source, ALPN).unwrap();
    let mut tls = connect(client.clone(), server.addr, "localhost")
        .await
        .unwrap();
    round_trip(&mut tls).await.unwrap();
    server.next().await.unwrap();

    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(connect(client, server.addr, "localhost").await.is_err());
    assert!(server.next().await.is_err());
}

#[tokio::test]
async fn resumption_is_disabled() {
    let ca = Ca::new("example.org");
    let (mut server, _) = ward_server(&ca, &[]).await;
    let client_source = source(ca.svid("/client"), &[&ca]);
    let client = client_config(&client_source, ALPN).unwrap();
    for _ in 0..2 {
        let mut tls = connect(client.clone(), server.addr, "localhost")
            .await
            .unwrap();
        round_trip(&mut tls).await.unwrap();
        assert_eq!(tls.get_ref().1.handshake_kind(), Some(HandshakeKind::Full));
        assert_eq!(server.next().await.unwrap().kind, Some(HandshakeKind::Full));
    }
}

#[tokio::test]
async fn alpn_negotiates_h2() {
    let ca = Ca::new("example.org");
    let (mut server, _) = ward_server(&ca, &[]).await;
    let client_source = source(ca.svid("/client"), &[&ca]);
    let client = client_config(&client_source, &[b"h2"]).unwrap();
    let mut tls = connect(client, server.addr, "localhost").await.unwrap();
    round_trip(&mut tls).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(
        server.next().await.unwrap().alpn.as_deref(),
        Some(&b"h2"[..])
    );
}

#[tokio::test]
async fn handshake_fails_without_svid() {
    let ca = Ca::new("example.org");
    let mut bundles = ward_spiffe::BundleSet::new();
    bundles.insert(ca.bundle());
    let empty = ward_workload::X509Source::from_context(ward_workload::X509Context {
        svids: Vec::new(),
        bundles,
    });
    assert!(empty.svid().is_none());
    let mut server = Server::start(server_config(&empty, ALPN).unwrap()).await;
    let client_source = source(ca.svid("/client"), &[&ca]);
    let client = client_config(&client_source, ALPN).unwrap();
    assert!(connect(client, server.addr, "localhost").await.is_err());
    assert!(server.next().await.is_err());
}

#[tokio::test]
async fn tls12_peer_is_verified_like_tls13() {
    let ca = Ca::new("example.org");
    let (mut server, trust) = ward_server(&ca, &[]).await;
    let issued = ca.issue(&Leaf::svid(CLIENT));
    let client = fixed_client_with(&trust, Some(&issued), &[&rustls::version::TLS12]);
    let mut tls = connect(client, server.addr, "localhost").await.unwrap();
    round_trip(&mut tls).await.unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(ward_tls::peer_id(tls.get_ref().1).unwrap().as_str(), SERVER);
    assert_eq!(server.next().await.unwrap().peer.unwrap().as_str(), CLIENT);

    let impostor = Ca::new("example.org").issue(&Leaf::svid(CLIENT));
    let client = fixed_client_with(&trust, Some(&impostor), &[&rustls::version::TLS12]);
    assert!(connect(client, server.addr, "localhost").await.is_err());
    assert!(server.next().await.is_err());
}
