//! Federated trust domains: their bundles are loaded from SPIFFE bundle documents (or
//! PEM), each kept under its own trust domain, never merged with ours.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use rustls_pki_types::UnixTime;
use ward_authority::{Authority, AuthorityConfig, CaSource};
use ward_spiffe::{JwtSvid, SpiffeBundle, SpiffeId, TrustDomain};

fn authority(
    td: &str,
    federated: Vec<(TrustDomain, PathBuf)>,
) -> Result<Authority, ward_authority::AuthorityError> {
    Authority::new(AuthorityConfig {
        trust_domain: TrustDomain::new(td).unwrap(),
        svid_ttl: Duration::from_secs(3600),
        jwt_ttl: Duration::from_secs(300),
        ca: CaSource::Generate,
        federated,
    })
}

fn other() -> TrustDomain {
    TrustDomain::new("other.org").unwrap()
}

#[test]
fn federated_spiffe_bundle_document_is_loaded_under_its_trust_domain() {
    let tmp = tempfile::tempdir().unwrap();
    let peer = authority("other.org", vec![]).unwrap();
    let doc = SpiffeBundle {
        x509: peer.x509_bundle(),
        jwt: peer.jwt_bundle(),
        sequence: Some(7),
        refresh_hint: None,
    };
    let file = tmp.path().join("other.json");
    std::fs::write(&file, doc.to_json()).unwrap();

    let ours = authority("example.org", vec![(other(), file)]).unwrap();
    assert_eq!(
        ours.federated_x509().get(&other()),
        Some(&peer.x509_bundle())
    );
    assert_eq!(ours.federated_jwt().get(&other()), Some(&peer.jwt_bundle()));
    let all = ours.x509_bundles();
    assert_eq!(all.len(), 2);
    assert_eq!(all.get(ours.trust_domain()), Some(&ours.x509_bundle()));

    // A peer's SVID verifies with our bundle set: its own trust domain's bundle is picked.
    let svid = peer
        .issue_x509_svid(&SpiffeId::new("spiffe://other.org/db").unwrap())
        .unwrap();
    let id = ward_spiffe::verify_chain(svid.chain(), &all, UnixTime::now()).unwrap();
    assert_eq!(id.as_str(), "spiffe://other.org/db");
    // And so does its JWT-SVID.
    let token = peer
        .mint_jwt_svid(
            &SpiffeId::new("spiffe://other.org/db").unwrap(),
            &["api".into()],
        )
        .unwrap();
    JwtSvid::parse_and_validate(
        token.token(),
        &ours.jwt_bundles(),
        &["api"],
        SystemTime::now(),
    )
    .unwrap();
}

#[test]
fn federated_pem_bundle_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let peer = authority("other.org", vec![]).unwrap();
    let file = tmp.path().join("other.pem");
    std::fs::write(&file, peer.x509_bundle().to_pem()).unwrap();
    let ours = authority("example.org", vec![(other(), file)]).unwrap();
    assert_eq!(
        ours.federated_x509().get(&other()),
        Some(&peer.x509_bundle())
    );
    assert!(ours.federated_jwt().get(&other()).is_none());
}

#[test]
fn conformance_spiffe_bundle_document_is_accepted() {
    let file =
        PathBuf::from("/work/shared/conformance/bundle/spiffebundle/spiffebundle_valid_1.json");
    let td = TrustDomain::new("domain.test").unwrap();
    let ours = authority("example.org", vec![(td.clone(), file)]).unwrap();
    assert_eq!(
        ours.federated_x509().get(&td).unwrap().authorities().len(),
        1
    );
    assert!(ours
        .federated_jwt()
        .get(&td)
        .unwrap()
        .authorities()
        .next()
        .is_some());
}

#[test]
fn unusable_federated_bundle_names_the_file_and_trust_domain() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("broken.json");
    std::fs::write(&file, "{\"keys\": 3}").unwrap();
    let err = authority("example.org", vec![(other(), file.clone())])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&file.display().to_string()) && err.contains("other.org"),
        "{err}"
    );

    let garbage = tmp.path().join("garbage.pem");
    std::fs::write(&garbage, "hello").unwrap();
    let err = authority("example.org", vec![(other(), garbage.clone())])
        .unwrap_err()
        .to_string();
    assert!(err.contains("garbage.pem"), "{err}");
}

#[test]
fn missing_federated_bundle_file_names_the_file() {
    let err = authority(
        "example.org",
        vec![(other(), PathBuf::from("/nonexistent/b.json"))],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("/nonexistent/b.json"), "{err}");
}

#[test]
fn own_trust_domain_as_federated_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let peer = authority("example.org", vec![]).unwrap();
    let file = tmp.path().join("same.pem");
    std::fs::write(&file, peer.x509_bundle().to_pem()).unwrap();
    let err = authority(
        "example.org",
        vec![(TrustDomain::new("example.org").unwrap(), file)],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("own trust domain"), "{err}");
}
