//! X509-SVID rules (CHECKLIST section B): every go-spiffe parse fixture and verify
//! scenario in tests/data, and one rcgen certificate per rule that breaks exactly it.

mod common;

use common::*;
use rcgen::{DistinguishedName, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType};
use rustls_pki_types::{CertificateDer, UnixTime};
use ward_spiffe::x509::{check_leaf, check_signing_cert, spiffe_id_of_cert, split_der_certs};
use ward_spiffe::{
    verify_chain, verify_chain_for, BundleSet, ChainUsage, SvidError, TrustDomain, X509Bundle,
    X509Svid,
};

fn fixture(name: &str) -> Vec<u8> {
    data(&format!("x509svid/{name}"))
}

fn pem_der_blocks(pem: &[u8]) -> Vec<Vec<u8>> {
    use rustls_pki_types::pem::{PemObject, SectionKind};
    <(SectionKind, Vec<u8>)>::pem_slice_iter(pem)
        .map(|s| s.expect("pem").1)
        .collect()
}

fn leaf_rule(e: &SvidError) -> Option<(&'static str, String)> {
    match e {
        SvidError::Leaf(v) => Some((v.rule, v.message.clone())),
        _ => None,
    }
}

fn rules(violations: &[ward_spiffe::Violation]) -> Vec<&'static str> {
    violations.iter().map(|v| v.rule).collect()
}

/// Maps go-spiffe's error text to the kind of failure ward reports.
fn matches_go_parse_error(err: &SvidError, expected: &str) -> bool {
    let leaf = leaf_rule(err);
    let leaf_has = |rule: &str, word: &str| {
        leaf.as_ref()
            .is_some_and(|(r, m)| *r == rule && m.contains(word))
    };
    let signing = |rule: &str| matches!(err, SvidError::SigningCert { violation, .. } if violation.rule == rule);
    if expected.ends_with("no certificates found") {
        matches!(err, SvidError::NoCertificates)
    } else if expected.ends_with("no private key found") {
        matches!(err, SvidError::NoPrivateKey)
    } else if expected.contains("cannot parse PEM encoded private key: no PEM blocks found") {
        matches!(err, SvidError::KeyPem(_))
    } else if expected.contains("cannot parse PEM encoded certificate: no PEM blocks found") {
        matches!(err, SvidError::CertificatePem(_))
    } else if expected.contains("cannot parse PEM encoded private key: asn1") {
        matches!(err, SvidError::KeyPem(_) | SvidError::PrivateKey(_))
    } else if expected.contains("malformed certificate") {
        matches!(
            err,
            SvidError::CertificatePem(_) | SvidError::CertificateDer { .. }
        )
    } else if expected.contains("does not match private key") {
        matches!(err, SvidError::KeyMismatch)
    } else if expected.contains("no URI SAN") {
        leaf_has("B.12", "no URI SAN")
    } else if expected.contains("leaf certificate must not have CA flag") {
        leaf_has("B.15", "CA flag")
    } else if expected.contains("'digitalSignature'") {
        leaf_has("B.17", "digitalSignature")
    } else if expected.contains("leaf certificate must not have 'keyCertSign'") {
        leaf_has("B.17", "keyCertSign")
    } else if expected.contains("leaf certificate must not have 'cRLSign'") {
        leaf_has("B.17", "cRLSign")
    } else if expected.contains("signing certificate must have CA flag") {
        signing("B.15")
    } else if expected.contains("signing certificate must have 'keyCertSign'") {
        signing("B.17")
    } else {
        panic!("unmapped go-spiffe error {expected:?}")
    }
}

// === the go-spiffe fixtures ===

#[test]
fn every_go_spiffe_parse_fixture_has_the_expected_outcome() {
    let data = json("x509svid_cases.json");
    let cases = data["parse_cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 18);
    for case in cases {
        let name = case["test"].as_str().expect("test");
        let certs = fixture(case["cert_file"].as_str().expect("cert"));
        let key = fixture(case["key_file"].as_str().expect("key"));
        let result = X509Svid::parse_pem(&certs, &key);
        if case["valid"].as_bool().expect("valid") {
            let svid = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                svid.spiffe_id().as_str(),
                case["expected_spiffe_id"].as_str().expect("id"),
                "{name}"
            );
            assert_eq!(
                svid.chain().len() as u64,
                case["expected_num_certs"].as_u64().expect("n"),
                "{name}"
            );
        } else {
            let err = result.expect_err(name);
            let expected = case["expected_error"].as_str().expect("error");
            assert!(
                matches_go_parse_error(&err, expected),
                "{name}: got {err:?}, go-spiffe says {expected:?}"
            );
        }
    }
}

#[test]
fn go_spiffe_parse_raw_cases_have_the_expected_outcome() {
    let rsa_key = pem_der_blocks(&fixture("key-pkcs8-rsa.pem")).remove(0);
    let ec_key = pem_der_blocks(&fixture("key-pkcs8-ecdsa.pem")).remove(0);
    let leaf_only = pem_der_blocks(&fixture("good-leaf-only.pem")).concat();
    let with_intermediate = pem_der_blocks(&fixture("good-leaf-and-intermediate.pem")).concat();

    let svid = X509Svid::parse_der(&leaf_only, &rsa_key).expect("single certificate and key");
    assert_eq!(svid.chain().len(), 1);
    let svid =
        X509Svid::parse_der(&with_intermediate, &ec_key).expect("multiple certificates and key");
    assert_eq!(svid.chain().len(), 2);
    assert_eq!(svid.chain_der(), with_intermediate);

    assert!(matches!(
        X509Svid::parse_der(b"not-DER-encoded", &rsa_key),
        Err(SvidError::CertificateDer { index: 0, .. })
    ));
    assert!(matches!(
        X509Svid::parse_der(&leaf_only, b"not-DER-encoded"),
        Err(SvidError::PrivateKey(_))
    ));
}

#[test]
fn go_spiffe_fixture_validity_is_read_into_system_time() {
    let svid = X509Svid::parse_pem(
        &fixture("good-cert-and-key.pem"),
        &fixture("good-cert-and-key.pem"),
    )
    .expect("svid");
    // Mar 24 14:13:41 2020 GMT .. Mar 24 15:13:51 2020 GMT
    let nb = svid
        .not_before()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_secs();
    let na = svid
        .not_after()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_secs();
    assert_eq!(nb, 1_585_059_221);
    assert_eq!(na, 1_585_062_831);
    assert!(svid.is_expired_at(std::time::SystemTime::now()));
}

#[test]
fn go_spiffe_leaf_and_intermediate_verify_at_a_fixed_time_inside_their_validity() {
    let blocks = pem_der_blocks(&fixture("good-leaf-and-intermediate.pem"));
    let leaf = CertificateDer::from(blocks[0].clone());
    let ca = CertificateDer::from(blocks[1].clone());
    let td = TrustDomain::new("example.org").expect("td");
    let mut set = BundleSet::new();
    set.insert(X509Bundle::new(td, vec![ca]));
    // 2020-03-24T14:30:00Z, inside the leaf's 14:07:30..15:07:40.
    let inside = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_585_060_200));
    let id = verify_chain(std::slice::from_ref(&leaf), &set, inside).expect("verifies");
    assert_eq!(id.as_str(), "spiffe://example.org/workload-1");
    // 2020-03-24T15:30:00Z: the leaf has expired.
    let after = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_585_063_800));
    assert!(matches!(
        verify_chain(&[leaf], &set, after),
        Err(SvidError::Untrusted { .. })
    ));
}

// === go-spiffe's verify scenarios, with rcgen certificates ===

struct World {
    ca1: Ca,
    ca2: Ca,
    bundles: BundleSet,
}

fn world() -> World {
    let ca1 = Ca::root("domain1.test");
    let ca2 = Ca::root("domain2.test");
    let mut bundles = BundleSet::new();
    bundles.insert(X509Bundle::new(
        TrustDomain::new("domain1.test").expect("td"),
        vec![ca1.der.clone()],
    ));
    World { ca1, ca2, bundles }
}

const LEAF1: &str = "spiffe://domain1.test/workload";

#[test]
fn verify_scenario_success() {
    let w = world();
    let (leaf, _) = w.ca1.leaf(&leaf_params(LEAF1));
    assert_eq!(
        verify_chain(&[leaf], &w.bundles, now())
            .expect("ok")
            .as_str(),
        LEAF1
    );
}

#[test]
fn verify_scenario_empty_chain_is_rejected() {
    assert_eq!(
        verify_chain(&[], &world().bundles, now()),
        Err(SvidError::EmptyChain)
    );
}

#[test]
fn b21_verify_scenario_empty_bundle_set_means_untrusted() {
    // go-spiffe's "empty bundle" and "nil bundle" both come down to no bundle for the
    // leaf's domain; a nil source cannot be expressed in Rust.
    let w = world();
    let (leaf, _) = w.ca1.leaf(&leaf_params(LEAF1));
    let err = verify_chain(&[leaf], &BundleSet::new(), now()).expect_err("untrusted");
    assert_eq!(
        err,
        SvidError::NoBundle {
            trust_domain: "domain1.test".into()
        }
    );
    assert!(err
        .to_string()
        .contains("no bundle for trust domain domain1.test"));
}

#[test]
fn b21_verify_scenario_no_roots_for_leaf_cert_domain_means_untrusted() {
    let w = world();
    let mut only_domain2 = BundleSet::new();
    only_domain2.insert(X509Bundle::new(
        TrustDomain::new("domain2.test").expect("td"),
        vec![w.ca2.der.clone()],
    ));
    let (leaf, _) = w.ca1.leaf(&leaf_params(LEAF1));
    assert!(matches!(
        verify_chain(&[leaf], &only_domain2, now()),
        Err(SvidError::NoBundle { .. })
    ));
}

#[test]
fn verify_scenario_bundle_without_roots_is_rejected() {
    let w = world();
    let mut empty = BundleSet::new();
    empty.insert(X509Bundle::new(
        TrustDomain::new("domain1.test").expect("td"),
        vec![],
    ));
    let (leaf, _) = w.ca1.leaf(&leaf_params(LEAF1));
    assert!(matches!(
        verify_chain(&[leaf], &empty, now()),
        Err(SvidError::Untrusted { .. })
    ));
}

#[test]
fn verify_scenario_bad_leaf_id_scheme_is_rejected() {
    let w = world();
    let (leaf, _) = w.ca1.leaf(&leaf_params("sparfe://domain1.test/workload"));
    let err = verify_chain(&[leaf], &w.bundles, now()).expect_err("bad id");
    assert_eq!(leaf_rule(&err).map(|r| r.0), Some("B.20"), "{err}");
}

#[test]
fn b19_b21_other_ca_claiming_our_trust_domain_is_rejected() {
    // go-spiffe "verification fails": ca2 signs a leaf in domain1.test; only ca1 is
    // domain1.test's authority.
    let w = world();
    let (leaf, _) = w.ca2.leaf(&leaf_params(LEAF1));
    let err = verify_chain(&[leaf], &w.bundles, now()).expect_err("wrong CA");
    assert!(matches!(err, SvidError::Untrusted { .. }), "{err}");
}

#[test]
fn b21_peer_from_a_trust_domain_without_bundle_is_rejected_even_if_signed_by_a_known_ca() {
    // ca1 (domain1.test's authority) signs a leaf claiming domain2.test; bundles are
    // never merged, so domain1's CA cannot vouch for domain2.
    let w = world();
    let (leaf, _) = w.ca1.leaf(&leaf_params("spiffe://domain2.test/workload"));
    assert!(matches!(
        verify_chain(&[leaf], &w.bundles, now()),
        Err(SvidError::NoBundle { .. })
    ));
}

#[test]
fn b12_verify_scenario_no_uri_san_is_rejected() {
    let w = world();
    let mut p = leaf_params(LEAF1);
    p.subject_alt_names = vec![SanType::DnsName("workload.test".try_into().expect("dns"))];
    let (leaf, _) = w.ca1.leaf(&p);
    assert_eq!(
        leaf_rule(&verify_chain(&[leaf], &w.bundles, now()).expect_err("no uri")).map(|r| r.0),
        Some("B.12")
    );
}

#[test]
fn b12_verify_scenario_more_than_one_uri_san_is_rejected() {
    let w = world();
    let mut p = leaf_params(LEAF1);
    p.subject_alt_names.push(SanType::URI(
        "spiffe://domain1.test/other".try_into().expect("uri"),
    ));
    let (leaf, _) = w.ca1.leaf(&p);
    let err = verify_chain(&[leaf], &w.bundles, now()).expect_err("two uris");
    assert_eq!(leaf_rule(&err).map(|r| r.0), Some("B.12"), "{err}");
}

#[test]
fn b20_verify_scenario_leaf_is_ca_is_rejected() {
    let w = world();
    let mut p = leaf_params(LEAF1);
    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let (leaf, _) = w.ca1.leaf(&p);
    let err = verify_chain(&[leaf], &w.bundles, now()).expect_err("ca leaf");
    assert_eq!(leaf_rule(&err).map(|r| r.0), Some("B.15"), "{err}");
}

#[test]
fn b20_verify_scenario_leaf_with_key_cert_sign_or_crl_sign_is_rejected() {
    let w = world();
    for extra in [KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign] {
        let mut p = leaf_params(LEAF1);
        p.key_usages.push(extra);
        let (leaf, _) = w.ca1.leaf(&p);
        let err = verify_chain(&[leaf], &w.bundles, now()).expect_err("signing usage");
        assert_eq!(
            leaf_rule(&err).map(|r| r.0),
            Some("B.17"),
            "{extra:?}: {err}"
        );
    }
}

#[test]
fn b20_verify_rejects_a_leaf_with_a_root_path_id() {
    let w = world();
    let (leaf, _) = w.ca1.leaf(&leaf_params("spiffe://domain1.test"));
    let err = verify_chain(&[leaf], &w.bundles, now()).expect_err("root path");
    assert_eq!(leaf_rule(&err).map(|r| r.0), Some("B.13"), "{err}");
}

#[test]
fn verify_scenario_expired_leaf_is_rejected() {
    let w = world();
    let (leaf, _) = w.ca1.leaf(&leaf_params(LEAF1));
    // leaf_params: notAfter = now + 1h.
    let err = verify_chain(&[leaf], &w.bundles, at(3600 + 60)).expect_err("expired");
    assert!(
        matches!(&err, SvidError::Untrusted { reason, .. } if reason.contains("Expired")),
        "{err}"
    );
}

#[test]
fn not_yet_valid_leaf_is_rejected() {
    let w = world();
    // leaf_params: notBefore = now - 5 min.
    let (leaf, _) = w.ca1.leaf(&leaf_params(LEAF1));
    let err = verify_chain(&[leaf], &w.bundles, at(-600)).expect_err("not yet valid");
    assert!(
        matches!(&err, SvidError::Untrusted { reason, .. } if reason.contains("NotValidYet")),
        "{err}"
    );
}

#[test]
fn verify_scenario_corrupted_der_is_rejected() {
    let w = world();
    let (leaf, _) = w.ca1.leaf(&leaf_params(LEAF1));
    let mut raw = leaf.as_ref().to_vec();
    raw[0] = 0x27;
    let err = verify_chain(&[CertificateDer::from(raw)], &w.bundles, now()).expect_err("corrupt");
    assert!(
        matches!(err, SvidError::CertificateDer { index: 0, .. }),
        "{err}"
    );
}

#[test]
fn b19_chain_through_an_intermediate_verifies() {
    let w = world();
    let intermediate = w.ca1.intermediate("domain1.test");
    let (leaf, key) = intermediate.leaf(&leaf_params(LEAF1));
    let chain = vec![leaf, intermediate.der.clone()];
    assert_eq!(
        verify_chain(&chain, &w.bundles, now())
            .expect("ok")
            .as_str(),
        LEAF1
    );
    // Without the intermediate there is no path to the root.
    assert!(matches!(
        verify_chain(&chain[..1], &w.bundles, now()),
        Err(SvidError::Untrusted { .. })
    ));
    // The same chain parses as our own SVID with its key.
    let svid = X509Svid::from_parts(chain, key.into()).expect("svid");
    assert_eq!(svid.spiffe_id().as_str(), LEAF1);
}

#[test]
fn verify_chain_for_checks_the_eku_of_the_role() {
    let w = world();
    let mut p = leaf_params(LEAF1);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let (client_only, _) = w.ca1.leaf(&p);
    let chain = [client_only];
    verify_chain_for(&chain, &w.bundles, now(), ChainUsage::ClientAuth).expect("client role");
    assert!(verify_chain_for(&chain, &w.bundles, now(), ChainUsage::ServerAuth).is_err());
    verify_chain(&chain, &w.bundles, now()).expect("either role");
    let mut p = leaf_params(LEAF1);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let (code_signing, _) = w.ca1.leaf(&p);
    assert!(verify_chain(&[code_signing], &w.bundles, now()).is_err());
}

#[test]
fn verify_never_consults_dns_names() {
    // A DNS SAN naming something else entirely does not matter: identity is the URI SAN.
    let w = world();
    let mut p = leaf_params(LEAF1);
    p.subject_alt_names.push(SanType::DnsName(
        "evil.example.com".try_into().expect("dns"),
    ));
    let (leaf, _) = w.ca1.leaf(&p);
    assert_eq!(
        verify_chain(&[leaf], &w.bundles, now())
            .expect("ok")
            .as_str(),
        LEAF1
    );
}

// === one certificate per rule: check_leaf / check_signing_cert ===

fn leaf_violations(p: &rcgen::CertificateParams) -> Vec<&'static str> {
    let ca = Ca::root("example.org");
    let (leaf, _) = ca.leaf(p);
    rules(&check_leaf(&leaf))
}

const ID: &str = "spiffe://example.org/workload";

#[test]
fn conforming_leaf_has_no_violations() {
    assert_eq!(leaf_violations(&leaf_params(ID)), Vec::<&str>::new());
}

#[test]
fn a11_bytes_that_are_not_a_certificate_are_reported() {
    assert_eq!(rules(&check_leaf(b"garbage")), vec!["A.11"]);
    assert_eq!(rules(&check_signing_cert(b"garbage")), vec!["A.11"]);
}

#[test]
fn b12_leaf_with_two_uri_sans_is_rejected() {
    let mut p = leaf_params(ID);
    p.subject_alt_names.push(SanType::URI(
        "spiffe://example.org/other".try_into().expect("uri"),
    ));
    assert_eq!(leaf_violations(&p), vec!["B.12"]);
}

#[test]
fn b12_leaf_with_dns_and_one_uri_san_is_fine() {
    let mut p = leaf_params(ID);
    p.subject_alt_names.push(SanType::DnsName(
        "workload.example.org".try_into().expect("dns"),
    ));
    assert_eq!(leaf_violations(&p), Vec::<&str>::new());
}

#[test]
fn b12_leaf_without_uri_san_is_rejected() {
    let mut p = leaf_params(ID);
    p.subject_alt_names.clear();
    assert_eq!(leaf_violations(&p), vec!["B.12"]);
}

#[test]
fn b13_leaf_with_root_path_id_is_rejected() {
    let p = leaf_params("spiffe://example.org");
    assert_eq!(leaf_violations(&p), vec!["B.13"]);
    // go-spiffe TestParseRejectsLeafWithRootPathSPIFFEID: parsing our own SVID too.
    let ca = Ca::root("example.org");
    let (leaf, key) = ca.leaf(&p);
    let err = X509Svid::parse_der(leaf.as_ref(), &key).expect_err("root path");
    assert_eq!(leaf_rule(&err).map(|r| r.0), Some("B.13"));
}

#[test]
fn b13_empty_subject_with_non_critical_uri_san_is_rejected() {
    let mut p = leaf_params(ID);
    p.distinguished_name = DistinguishedName::new();
    p.subject_alt_names.clear();
    p.custom_extensions = vec![extension(OID_SAN, san_uri_der(ID), false)];
    assert_eq!(leaf_violations(&p), vec!["B.13"]);
    // rcgen marks the SAN critical when the subject is empty: that is conforming.
    let mut ok = leaf_params(ID);
    ok.distinguished_name = DistinguishedName::new();
    assert_eq!(leaf_violations(&ok), Vec::<&str>::new());
}

#[test]
fn b14_signing_cert_with_a_path_in_its_spiffe_id_is_rejected() {
    let mut p = ca_params("example.org");
    p.subject_alt_names = vec![SanType::URI(
        "spiffe://example.org/ca".try_into().expect("uri"),
    )];
    let ca = Ca::self_signed(p);
    assert_eq!(rules(&check_signing_cert(&ca.der)), vec!["B.14"]);
    assert_eq!(
        rules(&check_signing_cert(&Ca::root("example.org").der)),
        Vec::<&str>::new()
    );
}

#[test]
fn b15_leaf_with_ca_flag_is_rejected() {
    let mut p = leaf_params(ID);
    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    assert_eq!(leaf_violations(&p), vec!["B.15"]);
}

#[test]
fn b15_signing_cert_without_ca_flag_is_rejected() {
    let mut p = ca_params("example.org");
    p.is_ca = IsCa::ExplicitNoCa;
    assert_eq!(
        rules(&check_signing_cert(&Ca::self_signed(p).der)),
        vec!["B.15"]
    );
}

#[test]
fn b16_leaf_without_key_usage_is_rejected() {
    let mut p = leaf_params(ID);
    p.key_usages.clear();
    assert_eq!(leaf_violations(&p), vec!["B.16"]);
}

#[test]
fn b16_non_critical_key_usage_is_rejected() {
    let mut p = leaf_params(ID);
    p.key_usages.clear();
    // KeyUsage BIT STRING: 7 unused bits, digitalSignature (bit 0).
    p.custom_extensions = vec![extension(
        OID_KEY_USAGE,
        vec![0x03, 0x02, 0x07, 0x80],
        false,
    )];
    assert_eq!(leaf_violations(&p), vec!["B.16"]);
    let mut ca = ca_params("example.org");
    ca.key_usages.clear();
    // keyCertSign (bit 5) + cRLSign (bit 6): 0b0000_0110, 1 unused bit.
    ca.custom_extensions = vec![extension(
        OID_KEY_USAGE,
        vec![0x03, 0x02, 0x01, 0x06],
        false,
    )];
    assert_eq!(
        rules(&check_signing_cert(&Ca::self_signed(ca).der)),
        vec!["B.16"]
    );
}

#[test]
fn b16_signing_cert_without_key_usage_is_rejected() {
    let mut p = ca_params("example.org");
    p.key_usages.clear();
    assert_eq!(
        rules(&check_signing_cert(&Ca::self_signed(p).der)),
        vec!["B.16"]
    );
}

#[test]
fn b17_leaf_without_digital_signature_is_rejected() {
    let mut p = leaf_params(ID);
    p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    assert_eq!(leaf_violations(&p), vec!["B.17"]);
}

#[test]
fn b17_leaf_with_key_cert_sign_is_rejected() {
    let mut p = leaf_params(ID);
    p.key_usages.push(KeyUsagePurpose::KeyCertSign);
    assert_eq!(leaf_violations(&p), vec!["B.17"]);
}

#[test]
fn b17_leaf_with_crl_sign_is_rejected() {
    let mut p = leaf_params(ID);
    p.key_usages.push(KeyUsagePurpose::CrlSign);
    assert_eq!(leaf_violations(&p), vec!["B.17"]);
}

#[test]
fn b17_signing_cert_without_key_cert_sign_is_rejected() {
    let mut p = ca_params("example.org");
    p.key_usages = vec![KeyUsagePurpose::CrlSign];
    assert_eq!(
        rules(&check_signing_cert(&Ca::self_signed(p).der)),
        vec!["B.17"]
    );
}

#[test]
fn b18_eku_without_client_auth_is_rejected() {
    let mut p = leaf_params(ID);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    assert_eq!(leaf_violations(&p), vec!["B.18"]);
}

#[test]
fn b18_eku_without_server_auth_is_rejected() {
    let mut p = leaf_params(ID);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    assert_eq!(leaf_violations(&p), vec!["B.18"]);
}

#[test]
fn b18_leaf_without_eku_is_accepted_because_eku_is_a_should() {
    let mut p = leaf_params(ID);
    p.extended_key_usages.clear();
    assert_eq!(leaf_violations(&p), Vec::<&str>::new());
}

#[test]
fn check_leaf_reports_every_violation_not_just_the_first() {
    let mut p = leaf_params("spiffe://example.org");
    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    assert_eq!(
        leaf_violations(&p),
        vec!["B.13", "B.15", "B.17", "B.17", "B.17", "B.18"]
    );
}

#[test]
fn b20_parsing_stops_at_the_first_violation_in_go_spiffe_order() {
    let mut p = leaf_params(ID);
    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    let ca = Ca::root("example.org");
    let (leaf, key) = ca.leaf(&p);
    let err = X509Svid::parse_der(leaf.as_ref(), &key).expect_err("bad leaf");
    assert_eq!(leaf_rule(&err).map(|r| r.0), Some("B.15"), "{err}");
}

#[test]
fn signing_certificate_in_the_chain_must_be_a_ca() {
    let ca = Ca::root("example.org");
    let mut not_ca = ca_params("example.org");
    not_ca.is_ca = IsCa::ExplicitNoCa;
    let bad = Ca::self_signed(not_ca);
    let (leaf, key) = ca.leaf(&leaf_params(ID));
    let chain = [leaf.as_ref(), bad.der.as_ref()].concat();
    let err = X509Svid::parse_der(&chain, &key).expect_err("intermediate not CA");
    assert!(
        matches!(err, SvidError::SigningCert { index: 1, ref violation } if violation.rule == "B.15"),
        "{err}"
    );
}

// === keys, splitting, IDs ===

#[test]
fn key_of_another_certificate_is_rejected() {
    let ca = Ca::root("example.org");
    let (leaf, _) = ca.leaf(&leaf_params(ID));
    let other = key().serialize_der();
    assert_eq!(
        X509Svid::parse_der(leaf.as_ref(), &other).expect_err("mismatch"),
        SvidError::KeyMismatch
    );
}

#[test]
fn rsa_key_of_the_fixture_does_not_match_an_ec_leaf() {
    let ca = Ca::root("example.org");
    let (leaf, _) = ca.leaf(&leaf_params(ID));
    let rsa_key = pem_der_blocks(&fixture("key-pkcs8-rsa.pem")).remove(0);
    assert_eq!(
        X509Svid::parse_der(leaf.as_ref(), &rsa_key).expect_err("mismatch"),
        SvidError::KeyMismatch
    );
}

#[test]
fn sec1_and_encrypted_pem_keys_are_rejected_as_not_unencrypted_pkcs8() {
    let ca = Ca::root("example.org");
    let (leaf, _) = ca.leaf(&leaf_params(ID));
    let pem = certs_pem(&[leaf]);
    for label in ["EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"] {
        let key = format!("-----BEGIN {label}-----\nMAA=\n-----END {label}-----\n");
        let err = X509Svid::parse_pem(pem.as_bytes(), key.as_bytes()).expect_err(label);
        assert_eq!(err, SvidError::UnsupportedKeyFormat(label.into()));
    }
}

fn certs_pem(certs: &[CertificateDer<'_>]) -> String {
    use base64::Engine as _;
    certs
        .iter()
        .map(|c| {
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                base64::engine::general_purpose::STANDARD.encode(c.as_ref())
            )
        })
        .collect()
}

#[test]
fn generated_svid_round_trips_through_pem_and_der() {
    let ca = Ca::root("example.org");
    let (leaf, key) = ca.leaf(&leaf_params(ID));
    let key_pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(&key)
        }
    );
    let svid = X509Svid::parse_pem(
        certs_pem(std::slice::from_ref(&leaf)).as_bytes(),
        key_pem.as_bytes(),
    )
    .expect("pem");
    assert_eq!(svid.leaf(), &leaf);
    assert_eq!(svid.private_key().secret_pkcs8_der(), key.as_slice());
    assert!(!svid.is_expired_at(std::time::SystemTime::now()));
    let svid = svid.with_hint("internal");
    assert_eq!(svid.hint(), "internal");
}

#[test]
fn split_der_certs_splits_concatenated_certificates_and_rejects_garbage() {
    let ca = Ca::root("example.org");
    let (leaf, _) = ca.leaf(&leaf_params(ID));
    let joined = [leaf.as_ref(), ca.der.as_ref()].concat();
    let certs = split_der_certs(&joined).expect("two certs");
    assert_eq!(certs, vec![leaf.clone(), ca.der.clone()]);
    assert!(matches!(
        split_der_certs(b"garbage"),
        Err(SvidError::CertificateDer { index: 0, .. })
    ));
    let trailing = [joined.as_slice(), b"xx"].concat();
    assert!(matches!(
        split_der_certs(&trailing),
        Err(SvidError::CertificateDer { index: 2, .. })
    ));
    assert_eq!(split_der_certs(b""), Err(SvidError::NoCertificates));
}

#[test]
fn spiffe_id_of_cert_reads_the_single_uri_san() {
    let ca = Ca::root("example.org");
    let (leaf, _) = ca.leaf(&leaf_params(ID));
    assert_eq!(spiffe_id_of_cert(&leaf).expect("id").as_str(), ID);
    let mut two = leaf_params(ID);
    two.subject_alt_names.push(SanType::URI(
        "spiffe://example.org/b".try_into().expect("uri"),
    ));
    let (leaf, _) = ca.leaf(&two);
    assert!(spiffe_id_of_cert(&leaf).is_err());
}
