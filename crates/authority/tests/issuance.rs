//! X509-SVID issuance: every rule of X509-SVID.md (CHECKLIST section B) holds for what
//! the authority issues, checked by ward-spiffe's validator, by x509-parser field by
//! field, and by rustls-webpki path validation against the CA bundle.

use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, UnixTime};
use ward_authority::{Authority, AuthorityConfig, CaSource};
use ward_spiffe::{BundleSet, SpiffeId, TrustDomain};
use x509_parser::prelude::{FromDer, X509Certificate};

fn authority(svid_ttl: Duration) -> Authority {
    Authority::new(AuthorityConfig {
        trust_domain: TrustDomain::new("example.org").unwrap(),
        svid_ttl,
        jwt_ttl: Duration::from_secs(300),
        ca: CaSource::Generate,
        federated: Vec::new(),
    })
    .unwrap()
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::new(s).unwrap()
}

fn parse<'a>(der: &'a CertificateDer<'_>) -> X509Certificate<'a> {
    X509Certificate::from_der(der).unwrap().1
}

#[test]
fn issued_svid_breaks_no_leaf_rule() {
    let a = authority(Duration::from_secs(3600));
    let svid = a
        .issue_x509_svid(&id("spiffe://example.org/ns/prod/sa/api"))
        .unwrap();
    assert_eq!(
        svid.spiffe_id().as_str(),
        "spiffe://example.org/ns/prod/sa/api"
    );
    assert_eq!(ward_spiffe::x509::check_leaf(svid.leaf()), vec![]);
    // The SVID also goes through the full parser (chain + key) a workload runs.
    let reparsed =
        ward_spiffe::X509Svid::parse_der(&svid.chain_der(), svid.private_key().secret_pkcs8_der());
    assert!(reparsed.is_ok(), "{reparsed:?}");
}

#[test]
fn ca_certificate_breaks_no_signing_rule() {
    let a = authority(Duration::from_secs(3600));
    assert_eq!(
        ward_spiffe::x509::check_signing_cert(a.ca_certificate()),
        vec![]
    );
    let ca = parse(a.ca_certificate());
    let bc = ca.basic_constraints().unwrap().unwrap();
    assert!(bc.value.ca);
    let ku = ca.key_usage().unwrap().unwrap();
    assert!(ku.critical && ku.value.key_cert_sign());
    // B.14: a signing certificate may carry the trust domain's ID, without a path.
    let sans = ca.subject_alternative_name().unwrap().unwrap();
    let uris: Vec<String> = sans
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(uris, vec!["spiffe://example.org".to_string()]);
}

#[test]
fn issued_svid_chain_verifies_against_the_ca_bundle() {
    let a = authority(Duration::from_secs(3600));
    let svid = a.issue_x509_svid(&id("spiffe://example.org/web")).unwrap();
    let mut bundles = BundleSet::new();
    bundles.insert(a.x509_bundle());
    let peer = ward_spiffe::verify_chain(svid.chain(), &bundles, UnixTime::now()).unwrap();
    assert_eq!(peer.as_str(), "spiffe://example.org/web");

    // And with rustls-webpki directly, for both TLS roles.
    let anchor = webpki::anchor_from_trusted_cert(a.ca_certificate()).unwrap();
    let leaf = webpki::EndEntityCert::try_from(svid.leaf()).unwrap();
    for usage in [
        webpki::KeyUsage::server_auth(),
        webpki::KeyUsage::client_auth(),
    ] {
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            std::slice::from_ref(&anchor),
            &[],
            UnixTime::now(),
            usage,
            None,
            None,
        )
        .unwrap();
    }
}

#[test]
fn svid_of_one_authority_is_untrusted_by_another_with_the_same_trust_domain() {
    let a = authority(Duration::from_secs(3600));
    let b = authority(Duration::from_secs(3600));
    let svid = a.issue_x509_svid(&id("spiffe://example.org/web")).unwrap();
    let mut bundles = BundleSet::new();
    bundles.insert(b.x509_bundle());
    assert!(ward_spiffe::verify_chain(svid.chain(), &bundles, UnixTime::now()).is_err());
}

#[test]
fn leaf_has_one_uri_san_and_a_non_empty_subject() {
    let a = authority(Duration::from_secs(3600));
    let svid = a.issue_x509_svid(&id("spiffe://example.org/web")).unwrap();
    let leaf = parse(svid.leaf());
    let sans = leaf.subject_alternative_name().unwrap().unwrap();
    assert_eq!(sans.value.general_names.len(), 1);
    assert!(matches!(
        sans.value.general_names[0],
        x509_parser::extensions::GeneralName::URI("spiffe://example.org/web")
    ));
    let orgs: Vec<&str> = leaf
        .subject()
        .iter_organization()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert_eq!(orgs, vec!["SPIFFE"]);
}

#[test]
fn leaf_basic_constraints_are_critical_and_not_a_ca() {
    let a = authority(Duration::from_secs(3600));
    let svid = a.issue_x509_svid(&id("spiffe://example.org/web")).unwrap();
    let leaf = parse(svid.leaf());
    let bc = leaf.basic_constraints().unwrap().unwrap();
    assert!(bc.critical);
    assert!(!bc.value.ca);
}

#[test]
fn leaf_key_usage_is_critical_digital_signature_only() {
    let a = authority(Duration::from_secs(3600));
    let svid = a.issue_x509_svid(&id("spiffe://example.org/web")).unwrap();
    let leaf = parse(svid.leaf());
    let ku = leaf.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert!(ku.value.digital_signature());
    assert!(!ku.value.key_cert_sign());
    assert!(!ku.value.crl_sign());
}

#[test]
fn leaf_eku_has_both_server_auth_and_client_auth() {
    let a = authority(Duration::from_secs(3600));
    let svid = a.issue_x509_svid(&id("spiffe://example.org/web")).unwrap();
    let leaf = parse(svid.leaf());
    let eku = leaf.extended_key_usage().unwrap().unwrap();
    assert!(eku.value.server_auth);
    assert!(eku.value.client_auth);
}

#[test]
fn every_issuance_has_a_new_key_and_a_new_serial() {
    let a = authority(Duration::from_secs(3600));
    let web = id("spiffe://example.org/web");
    let first = a.issue_x509_svid(&web).unwrap();
    let second = a.issue_x509_svid(&web).unwrap();
    assert_ne!(
        first.private_key().secret_pkcs8_der(),
        second.private_key().secret_pkcs8_der()
    );
    let (l1, l2) = (parse(first.leaf()), parse(second.leaf()));
    assert_ne!(l1.public_key().raw, l2.public_key().raw);
    assert_ne!(l1.raw_serial(), l2.raw_serial());
    assert_eq!(
        l1.public_key().algorithm.algorithm.to_id_string(),
        "1.2.840.10045.2.1"
    );
}

#[test]
fn validity_is_backdated_for_clock_skew_and_lasts_the_ttl() {
    let ttl = Duration::from_secs(600);
    let a = authority(ttl);
    let before = SystemTime::now();
    let svid = a.issue_x509_svid(&id("spiffe://example.org/web")).unwrap();
    let after = SystemTime::now();
    // notBefore about 30 s in the past (second resolution in X.509).
    assert!(svid.not_before() <= before - Duration::from_secs(29));
    assert!(svid.not_before() >= before - Duration::from_secs(32));
    assert!(svid.not_after() <= after + ttl);
    assert!(svid.not_after() >= before + ttl - Duration::from_secs(2));
    assert!(svid.not_after() <= a.ca_not_after());
}

#[test]
fn svid_never_outlives_the_ca() {
    // A TTL far beyond the generated CA's one-year lifetime is clamped to the CA.
    let a = authority(Duration::from_secs(10 * 365 * 24 * 3600));
    let svid = a.issue_x509_svid(&id("spiffe://example.org/web")).unwrap();
    assert_eq!(svid.not_after(), a.ca_not_after());
}

#[test]
fn id_outside_the_trust_domain_is_not_issued() {
    let a = authority(Duration::from_secs(3600));
    let err = a
        .issue_x509_svid(&id("spiffe://other.org/web"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spiffe://other.org/web") && err.contains("example.org"),
        "{err}"
    );
}

#[test]
fn root_id_is_not_issued_as_a_workload_svid() {
    let a = authority(Duration::from_secs(3600));
    let err = a
        .issue_x509_svid(&id("spiffe://example.org"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs a path"), "{err}");
}

#[test]
fn svid_ttl_below_one_second_is_refused() {
    let err = Authority::new(AuthorityConfig {
        trust_domain: TrustDomain::new("example.org").unwrap(),
        svid_ttl: Duration::from_millis(500),
        jwt_ttl: Duration::from_secs(300),
        ca: CaSource::Generate,
        federated: Vec::new(),
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("X509-SVID lifetime"), "{err}");
}
