//! The file-based identity feed: load, serve over TLS, reload, keep-last-good.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use ward_spiffe::TrustDomain;
use ward_tls::files::{FileError, FileIdentity, IdentityFiles};
use ward_tls::{client_config, server_config};

fn write_svid(dir: &Path, issued: &Issued) {
    fs::write(dir.join("svid.pem"), &issued.chain_pem).unwrap();
    fs::write(dir.join("svid_key.pem"), &issued.key_pem).unwrap();
}

fn files(dir: &Path) -> IdentityFiles {
    IdentityFiles {
        cert_chain: dir.join("svid.pem"),
        key: dir.join("svid_key.pem"),
        bundle: dir.join("bundle.pem"),
        federated: Vec::new(),
    }
}

fn setup(ca: &Ca) -> (tempfile::TempDir, Issued) {
    let dir = tempfile::tempdir().unwrap();
    let issued = ca.issue(&Leaf::svid("spiffe://example.org/server"));
    write_svid(dir.path(), &issued);
    fs::write(dir.path().join("bundle.pem"), ca.cert_pem()).unwrap();
    (dir, issued)
}

#[tokio::test]
async fn identity_loaded_from_files_is_served_over_tls() {
    let ca = Ca::new("example.org");
    let (dir, _) = setup(&ca);
    let identity = FileIdentity::load(files(dir.path())).unwrap();
    let mut server = Server::start(server_config(identity.source(), &[]).unwrap()).await;
    let client_source = source(ca.svid("/client"), &[&ca]);
    let client = client_config(&client_source, &[]).unwrap();
    let mut tls = connect(client, server.addr, "localhost").await.unwrap();
    round_trip(&mut tls).await.unwrap();
    let server_id = ward_tls::peer_id(tls.get_ref().1).unwrap();
    assert_eq!(server_id.as_str(), "spiffe://example.org/server");
    let client_id = server.next().await.unwrap().peer.unwrap();
    assert_eq!(client_id.as_str(), "spiffe://example.org/client");
}

#[tokio::test]
async fn reload_publishes_the_new_svid() {
    let ca = Ca::new("example.org");
    let (dir, _) = setup(&ca);
    let identity = FileIdentity::load(files(dir.path())).unwrap();
    let rotated = ca.issue(&Leaf::svid("spiffe://example.org/server"));
    write_svid(dir.path(), &rotated);
    identity.reload().unwrap();
    assert_eq!(identity.source().svid().unwrap().leaf(), &rotated.chain[0]);
}

#[tokio::test]
async fn broken_file_on_reload_keeps_the_previous_identity() {
    let ca = Ca::new("example.org");
    let (dir, first) = setup(&ca);
    let identity = FileIdentity::load(files(dir.path())).unwrap();
    // A new certificate next to the old key: a half-finished rotation.
    let rotated = ca.issue(&Leaf::svid("spiffe://example.org/server"));
    fs::write(dir.path().join("svid.pem"), &rotated.chain_pem).unwrap();
    let err = identity.reload().unwrap_err();
    assert!(matches!(err, FileError::Svid { .. }), "{err}");
    assert_eq!(identity.source().svid().unwrap().leaf(), &first.chain[0]);

    fs::write(dir.path().join("bundle.pem"), "not a certificate").unwrap();
    write_svid(dir.path(), &rotated);
    let err = identity.reload().unwrap_err();
    assert!(matches!(err, FileError::Bundle { .. }), "{err}");
    assert_eq!(identity.source().svid().unwrap().leaf(), &first.chain[0]);
}

#[tokio::test]
async fn second_bundle_for_one_trust_domain_is_refused() {
    let ca = Ca::new("example.org");
    let (dir, _) = setup(&ca);
    let mut paths = files(dir.path());
    let own = TrustDomain::new("example.org").unwrap();
    paths.federated.push((own, dir.path().join("bundle.pem")));
    let err = FileIdentity::load(paths).unwrap_err();
    assert!(
        matches!(err, FileError::DuplicateTrustDomain { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn missing_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = FileIdentity::load(files(dir.path())).unwrap_err();
    assert!(err.to_string().contains("svid.pem"), "{err}");
}
