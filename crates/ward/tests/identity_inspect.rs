//! `ward inspect` on good and bad certificates: generated with rcgen, and go-spiffe's
//! conformance fixtures (tests/data/x509svid, see tests/data/PROVENANCE.md).

mod identity_support;

use std::path::{Path, PathBuf};

use identity_support::{data, run_ward, tempdir, text};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// A CA for example.org (self-signed, keyCertSign) and its key.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn ca(td: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "ward test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.subject_alt_names = vec![SanType::URI(format!("spiffe://{td}").try_into().unwrap())];
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

/// Leaf params that satisfy every X509-SVID leaf rule.
fn good_leaf_params(ids: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "SPIFFE");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.subject_alt_names = ids
        .iter()
        .map(|id| SanType::URI((*id).try_into().unwrap()))
        .collect();
    params
}

/// Signs `params` with the CA; writes `name.pem` (leaf + nothing else) and
/// `name_key.pem` into `dir`; returns both paths.
fn issue(dir: &Path, name: &str, params: &CertificateParams, ca: &Ca) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}_key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

fn write_ca(dir: &Path, name: &str, ca: &Ca) -> PathBuf {
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, &ca.pem).unwrap();
    path
}

fn inspect(args: &[&Path], flags: &[&str]) -> (Option<i32>, String, String) {
    let mut all: Vec<&str> = vec!["inspect"];
    all.extend(args.iter().map(|p| p.to_str().unwrap()));
    all.extend_from_slice(flags);
    let out = run_ward(&all);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn inspect_with(file: &Path, flags: &[(&str, &Path)]) -> (Option<i32>, String) {
    let mut all: Vec<String> = vec!["inspect".into(), file.display().to_string()];
    for (flag, path) in flags {
        all.push((*flag).to_owned());
        all.push(path.display().to_string());
    }
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = run_ward(&refs);
    (out.status.code(), text(&out.stdout))
}

// === generated certificates ===

#[test]
fn valid_svid_with_matching_key_and_bundle_exits_0() {
    let dir = tempdir();
    let ca = ca("example.org");
    let (cert, key) = issue(
        dir.path(),
        "leaf",
        &good_leaf_params(&["spiffe://example.org/app"]),
        &ca,
    );
    let bundle = write_ca(dir.path(), "bundle", &ca);
    let (code, out) = inspect_with(&cert, &[("--key", &key), ("--bundle", &bundle)]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("SPIFFE ID:  spiffe://example.org/app"),
        "{out}"
    );
    assert!(out.contains("subject:    O=SPIFFE"), "{out}");
    assert!(out.contains("validity:   valid"), "{out}");
    assert!(out.contains("key type:   ECDSA P-256"), "{out}");
    assert!(out.contains("violations: none"), "{out}");
    assert!(out.contains("the private key matches the leaf"), "{out}");
    assert!(out.contains("trust domain example.org"), "{out}");
    assert!(
        out.contains("result: valid X509-SVID for spiffe://example.org/app"),
        "{out}"
    );
}

#[test]
fn json_output_carries_the_same_verdict() {
    let dir = tempdir();
    let ca = ca("example.org");
    let (cert, _) = issue(
        dir.path(),
        "leaf",
        &good_leaf_params(&["spiffe://example.org/app"]),
        &ca,
    );
    let (code, out, _) = inspect(&[&cert], &["--json"]);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(v["valid"], true);
    assert_eq!(
        v["certificates"][0]["spiffe_id"],
        "spiffe://example.org/app"
    );
    assert_eq!(v["certificates"][0]["validity"], "valid");
}

#[test]
fn leaf_with_two_uri_sans_is_rejected_with_rule_b12() {
    let dir = tempdir();
    let ca = ca("example.org");
    let params = good_leaf_params(&["spiffe://example.org/a", "spiffe://example.org/b"]);
    let (cert, _) = issue(dir.path(), "two", &params, &ca);
    let (code, out, _) = inspect(&[&cert], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("[B.12]"), "{out}");
    assert!(out.contains("NOT a valid X509-SVID"), "{out}");
}

#[test]
fn leaf_that_is_a_ca_is_rejected_with_rule_b15() {
    let dir = tempdir();
    let ca = ca("example.org");
    let mut params = good_leaf_params(&["spiffe://example.org/app"]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let (cert, _) = issue(dir.path(), "ca-leaf", &params, &ca);
    let (code, out, _) = inspect(&[&cert], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("[B.15]"), "{out}");
}

#[test]
fn leaf_with_key_cert_sign_is_rejected_with_rule_b17() {
    let dir = tempdir();
    let ca = ca("example.org");
    let mut params = good_leaf_params(&["spiffe://example.org/app"]);
    params.key_usages.push(KeyUsagePurpose::KeyCertSign);
    let (cert, _) = issue(dir.path(), "certsign", &params, &ca);
    let (code, out, _) = inspect(&[&cert], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("[B.17]"), "{out}");
}

#[test]
fn leaf_with_a_root_spiffe_id_is_rejected_with_rule_b13() {
    let dir = tempdir();
    let ca = ca("example.org");
    let (cert, _) = issue(
        dir.path(),
        "root",
        &good_leaf_params(&["spiffe://example.org"]),
        &ca,
    );
    let (code, out, _) = inspect(&[&cert], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("[B.13]"), "{out}");
}

#[test]
fn expired_leaf_is_reported_expired_and_not_valid() {
    let dir = tempdir();
    let ca = ca("example.org");
    let mut params = good_leaf_params(&["spiffe://example.org/app"]);
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 1, 2);
    let (cert, _) = issue(dir.path(), "old", &params, &ca);
    let (code, out, _) = inspect(&[&cert], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("validity:   expired"), "{out}");
}

#[test]
fn leaf_not_yet_valid_is_reported() {
    let dir = tempdir();
    let ca = ca("example.org");
    let mut params = good_leaf_params(&["spiffe://example.org/app"]);
    params.not_before = rcgen::date_time_ymd(2090, 1, 1);
    params.not_after = rcgen::date_time_ymd(2091, 1, 1);
    let (cert, _) = issue(dir.path(), "future", &params, &ca);
    let (code, out, _) = inspect(&[&cert], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("validity:   not yet valid"), "{out}");
}

#[test]
fn key_of_another_certificate_does_not_match() {
    let dir = tempdir();
    let ca = ca("example.org");
    let (cert, _) = issue(
        dir.path(),
        "a",
        &good_leaf_params(&["spiffe://example.org/a"]),
        &ca,
    );
    let (_, other_key) = issue(
        dir.path(),
        "b",
        &good_leaf_params(&["spiffe://example.org/b"]),
        &ca,
    );
    let (code, out) = inspect_with(&cert, &[("--key", &other_key)]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("does not match"), "{out}");
}

#[test]
fn chain_from_another_ca_does_not_verify_against_the_bundle() {
    let dir = tempdir();
    let issuing = ca("example.org");
    let unrelated = ca("example.org");
    let (cert, _) = issue(
        dir.path(),
        "a",
        &good_leaf_params(&["spiffe://example.org/a"]),
        &issuing,
    );
    let bundle = write_ca(dir.path(), "unrelated", &unrelated);
    let (code, out) = inspect_with(&cert, &[("--bundle", &bundle)]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("does not verify against the bundle of trust domain example.org"),
        "{out}"
    );
}

#[test]
fn missing_file_exits_2_naming_it() {
    let dir = tempdir();
    let missing = dir.path().join("nothing.pem");
    let (code, _, err) = inspect(&[&missing], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("nothing.pem"), "{err}");
}

// === conformance fixtures (go-spiffe svid/x509svid/testdata) ===

/// A time inside the fixtures' validity (they were issued 2020-03-30 for five years).
const FIXTURE_TIME: &str = "2024-01-01T00:00:00Z";

#[test]
fn fixture_good_leaf_with_its_rsa_key_is_valid_at_a_time_inside_its_validity() {
    let cert = data("x509svid/good-leaf-only.pem");
    let key = data("x509svid/key-pkcs8-rsa.pem");
    let (code, out) = inspect_with(&cert, &[("--key", &key)]);
    assert_eq!(code, Some(1), "expired today: {out}");
    assert!(out.contains("validity:   expired"), "{out}");
    let (code, out, _) = inspect(
        &[&cert],
        &["--key", key.to_str().unwrap(), "--at", FIXTURE_TIME],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("spiffe://example.org/workload-1"), "{out}");
    assert!(out.contains("key type:   RSA"), "{out}");
}

#[test]
fn fixture_cert_and_key_in_one_file_is_valid() {
    let file = data("x509svid/good-cert-and-key.pem");
    let (code, out, _) = inspect(&[&file], &["--at", "2020-03-24T14:30:00Z"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("the private key matches the leaf"), "{out}");
}

#[test]
fn fixture_leaf_and_intermediate_with_the_wrong_key_does_not_match() {
    let cert = data("x509svid/good-leaf-and-intermediate.pem");
    let key = data("x509svid/key-pkcs8-rsa.pem");
    let (code, out, _) = inspect(
        &[&cert],
        &[
            "--key",
            key.to_str().unwrap(),
            "--at",
            "2020-03-24T14:30:00Z",
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("certificate 2 of 2 (signing certificate)"),
        "{out}"
    );
    assert!(out.contains("does not match"), "{out}");
}

#[test]
fn fixtures_breaking_a_leaf_or_signing_rule_name_the_rule() {
    let cases = [
        ("wrong-leaf-ca-true.pem", "B.15"),
        ("wrong-leaf-cert-sign.pem", "B.17"),
        ("wrong-leaf-crl-sign.pem", "B.17"),
        ("wrong-leaf-no-digital-signature.pem", "B.17"),
        ("wrong-leaf-empty-id.pem", "B.12"),
        ("wrong-intermediate-no-ca.pem", "B.15"),
        ("wrong-intermediate-no-key-cert-sign.pem", "B.17"),
    ];
    for (file, rule) in cases {
        let (code, out, _) = inspect(
            &[&data(&format!("x509svid/{file}"))],
            &["--at", FIXTURE_TIME],
        );
        assert_eq!(code, Some(1), "{file}: {out}");
        assert!(
            out.contains(&format!("[{rule}]")),
            "{file} names {rule}: {out}"
        );
    }
}

#[test]
fn fixture_that_is_not_pem_is_unreadable_input() {
    let (code, _, err) = inspect(&[&data("x509svid/not-pem")], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("CERTIFICATE"), "{err}");
}

#[test]
fn fixture_with_a_corrupt_certificate_is_not_a_valid_svid() {
    let (code, out, _) = inspect(&[&data("x509svid/corrupt-cert.pem")], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("NOT a valid X509-SVID"), "{out}");
}
