//! Bundle rules (CHECKLIST B.21-B.23, F.55-F.60) and every go-spiffe bundle vector in
//! tests/data/bundle_cases.json.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use ward_spiffe::{
    BundleError, BundleSet, JwtAuthority, JwtBundle, SpiffeBundle, SpiffeBundleMap, TrustDomain,
    X509Bundle,
};

fn td(s: &str) -> TrustDomain {
    TrustDomain::new(s).expect("td")
}

fn bundle_file(name: &str) -> Vec<u8> {
    data(&format!("bundle/{name}"))
}

fn expected_count(case: &Value, field: &str) -> usize {
    case["expected"][field].as_u64().expect(field) as usize
}

// === the go-spiffe vectors ===

#[test]
fn every_go_spiffe_spiffe_bundle_vector_has_the_expected_outcome() {
    let cases = json("bundle_cases.json");
    let cases = cases["spiffebundle_cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 7);
    for case in cases {
        let bytes = match case["file"].as_str() {
            Some(f) => bundle_file(f),
            None => case["input"].as_str().expect("input").as_bytes().to_vec(),
        };
        let name = case["file"].as_str().unwrap_or("(empty input)");
        let result = SpiffeBundle::parse(td("domain.test"), &bytes);
        match (case["valid"].as_bool().expect("valid"), name) {
            (true, _) => {
                let b = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    b.jwt.authorities().count(),
                    expected_count(case, "jwt_authorities"),
                    "{name}"
                );
                assert_eq!(
                    b.x509.authorities().len(),
                    expected_count(case, "x509_authorities"),
                    "{name}"
                );
                let hint = case["expected"]["refresh_hint_seconds"]
                    .as_u64()
                    .map(Duration::from_secs);
                assert_eq!(b.refresh_hint, hint, "{name}");
                assert_eq!(
                    b.sequence,
                    case["expected"]["sequence_number"].as_u64(),
                    "{name}"
                );
            }
            // B.23: the spec says ignore all x5c values but the first; go-spiffe errors.
            (false, "spiffebundle/spiffebundle_multiple_x509.json") => {
                let b = result.expect("the spec wins: extra x5c values are ignored");
                assert_eq!(b.x509.authorities().len(), 1);
            }
            (false, "spiffebundle/spiffebundle_missing_kid.json") => {
                assert!(
                    matches!(result, Err(BundleError::Key { index: 1, .. })),
                    "{result:?}"
                )
            }
            (false, "spiffebundle/spiffebundle_no_keys.json") => {
                assert!(
                    matches!(result, Err(BundleError::MissingKeys { .. })),
                    "{result:?}"
                )
            }
            (false, _) => assert!(
                matches!(result, Err(BundleError::Json { .. })),
                "{name}: {result:?}"
            ),
        }
    }
}

#[test]
fn b23_extra_x5c_values_are_ignored_per_spec_unlike_go_spiffe() {
    let b = SpiffeBundle::parse(
        td("domain.test"),
        &bundle_file("spiffebundle/spiffebundle_multiple_x509.json"),
    )
    .expect("spec 6.2: all but the first MUST be ignored");
    assert_eq!(b.x509.authorities().len(), 1);
}

#[test]
fn wit_svid_entries_are_ignored_as_an_unknown_use() {
    let b = SpiffeBundle::parse(
        td("domain.test"),
        &bundle_file("spiffebundle/spiffebundle_valid_with_wit.json"),
    )
    .expect("parses");
    assert_eq!(b.jwt.authorities().count(), 2);
    assert!(b.jwt.get("uNhqAaPI7NDn7IHOsa2ac1BF4O5qGxjZ").is_none());
}

#[test]
fn every_go_spiffe_jwt_bundle_vector_has_the_expected_outcome() {
    let cases = json("bundle_cases.json");
    let cases = cases["jwtbundle_cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 4);
    for case in cases {
        let bytes = case["file"].as_str().map(bundle_file).unwrap_or_default();
        let result = JwtBundle::parse_jwks(td("domain.test"), &bytes);
        if case["valid"].as_bool().expect("valid") {
            let b = result.expect("valid");
            assert_eq!(
                b.authorities().count(),
                expected_count(case, "jwt_authorities")
            );
        } else if case["file"].is_null() {
            assert!(
                matches!(result, Err(BundleError::Json { .. })),
                "{result:?}"
            );
        } else {
            assert!(
                matches!(result, Err(BundleError::Key { index: 1, .. })),
                "{result:?}"
            );
        }
    }
}

#[test]
fn every_go_spiffe_x509_bundle_vector_has_the_expected_outcome() {
    let cases = json("bundle_cases.json");
    let cases = cases["x509bundle_cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 6);
    for case in cases {
        let file = case["file"].as_str().expect("file");
        let bytes = bundle_file(file);
        let result = X509Bundle::parse_pem(td("domain.test"), &bytes);
        match file {
            "x509bundle/certs.pem" | "x509bundle/cert.pem" => {
                let b = result.expect(file);
                assert_eq!(
                    b.authorities().len(),
                    expected_count(case, "x509_authorities"),
                    "{file}"
                );
                // ParseRaw: the same certificates as concatenated DER.
                let raw = X509Bundle::parse_der(td("domain.test"), &b.to_der()).expect("der");
                assert_eq!(raw, b);
            }
            // go-spiffe returns an empty bundle; ward refuses (see the test below).
            "x509bundle/empty.pem" | "x509bundle/key.pem" => {
                assert!(
                    matches!(result, Err(BundleError::Certificates { .. })),
                    "{file}"
                )
            }
            "x509bundle/not-pem.pem" | "x509bundle/corrupted.pem" => {
                assert!(
                    matches!(result, Err(BundleError::Certificates { .. })),
                    "{file}: {result:?}"
                )
            }
            other => panic!("unknown fixture {other}"),
        }
    }
}

#[test]
fn f58_empty_pem_bundle_is_rejected_unlike_go_spiffe() {
    // An empty file yields no authority, so every SVID of the domain would be invalid
    // (F.58); refusing the file surfaces the mistake instead of failing every handshake.
    let err = X509Bundle::parse_pem(td("domain.test"), b"").expect_err("empty");
    assert!(err.to_string().contains("domain.test"), "{err}");
}

#[test]
fn x509_bundle_pem_round_trips_and_removes_duplicates() {
    let b = X509Bundle::parse_pem(td("domain.test"), &bundle_file("x509bundle/certs.pem"))
        .expect("pem");
    let again =
        X509Bundle::parse_pem(td("domain.test"), b.to_pem().as_bytes()).expect("round trip");
    assert_eq!(again, b);
    let doubled = [b.authorities(), b.authorities()].concat();
    assert_eq!(
        X509Bundle::new(td("domain.test"), doubled)
            .authorities()
            .len(),
        2
    );
    assert!(X509Bundle::parse_der(td("domain.test"), b"garbage").is_err());
}

// === B.21: one bundle per trust domain ===

#[test]
fn b21_bundle_set_keeps_trust_domains_apart() {
    let a = Ca::root("a.test");
    let b = Ca::root("b.test");
    let mut set = BundleSet::new();
    set.insert(X509Bundle::new(td("a.test"), vec![a.der.clone()]));
    set.insert(X509Bundle::new(td("b.test"), vec![b.der.clone()]));
    assert_eq!(set.len(), 2);
    assert_eq!(
        set.get(&td("a.test")).expect("a").authorities(),
        std::slice::from_ref(&a.der)
    );
    // Replacing a domain's bundle does not touch the other.
    set.insert(X509Bundle::new(td("a.test"), vec![b.der.clone()]));
    assert_eq!(
        set.get(&td("a.test")).expect("a").authorities(),
        std::slice::from_ref(&b.der)
    );
    assert_eq!(set.len(), 2);
    assert!(set.remove(&td("b.test")).is_some());
    assert!(set.get(&td("b.test")).is_none());
}

// === B.22 / B.23 / F.55-F.59: SPIFFE bundle documents ===

fn x5c(ca: &Ca) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(ca.der.as_ref())
}

fn p256_jwk(kid: Option<&str>) -> Value {
    let mut jwk = json!({
        "use": "jwt-svid", "kty": "EC", "crv": "P-256",
        "x": "ngLYQnlfF6GsojUwqtcEE3WgTNG2RUlsGhK73RNEl5k",
        "y": "tKbiDSUSsQ3F1P7wteeHNXIcU-cx6CgSbroeQrQHTLM"
    });
    if let Some(kid) = kid {
        jwk["kid"] = kid.into();
    }
    jwk
}

fn parse(doc: Value) -> Result<SpiffeBundle, BundleError> {
    SpiffeBundle::parse(td("example.org"), doc.to_string().as_bytes())
}

#[test]
fn b22_spiffe_bundle_round_trips_through_to_json() {
    let ca = Ca::root("example.org");
    let doc = json!({
        "keys": [
            {"use": "x509-svid", "kty": "EC", "x5c": [x5c(&ca)]},
            p256_jwk(Some("k1")),
        ],
        "spiffe_sequence": 42u64,
        "spiffe_refresh_hint": 300
    });
    let b = parse(doc).expect("parses");
    let out: Value = serde_json::from_slice(&b.to_json()).expect("json");
    let x509_entry = &out["keys"][0];
    assert_eq!(x509_entry["use"], "x509-svid");
    assert_eq!(x509_entry["kty"], "EC");
    assert_eq!(x509_entry["crv"], "P-256");
    assert!(
        x509_entry.get("kid").is_none(),
        "B.22: kid MUST NOT be set on x509-svid entries"
    );
    assert_eq!(x509_entry["x5c"].as_array().expect("x5c").len(), 1);
    assert_eq!(out["keys"][1]["kid"], "k1");
    assert_eq!(out["keys"][1]["use"], "jwt-svid");
    let again = SpiffeBundle::parse(td("example.org"), &b.to_json()).expect("round trip");
    assert_eq!(again, b);
}

#[test]
fn b23_x509_entry_without_x5c_or_with_empty_x5c_is_ignored() {
    let b = parse(json!({"keys": [
        {"use": "x509-svid", "kty": "EC"},
        {"use": "x509-svid", "kty": "EC", "x5c": []},
    ]}))
    .expect("parses");
    assert!(b.x509.authorities().is_empty());
}

#[test]
fn b23_x509_authorities_are_the_union_of_entries() {
    let (a, c) = (Ca::root("example.org"), Ca::root("example.org"));
    let b = parse(json!({"keys": [
        {"use": "x509-svid", "kty": "EC", "x5c": [x5c(&a)]},
        {"use": "x509-svid", "kty": "EC", "x5c": [x5c(&c), x5c(&a)]},
        {"use": "x509-svid", "kty": "EC", "x5c": [x5c(&a)]},
    ]}))
    .expect("parses");
    assert_eq!(b.x509.authorities(), &[a.der.clone(), c.der.clone()]);
}

#[test]
fn b23_x5c_that_is_not_a_certificate_is_rejected() {
    let err =
        parse(json!({"keys": [{"use": "x509-svid", "kty": "EC", "x5c": ["bm90IGEgY2VydA=="]}]}))
            .expect_err("garbage x5c");
    assert!(matches!(err, BundleError::Key { index: 0, .. }), "{err}");
}

#[test]
fn f55_extra_jwk_set_parameters_are_not_required_and_are_tolerated() {
    let b = parse(json!({"keys": [], "something_else": {"a": 1}})).expect("extra members");
    assert!(b.x509.authorities().is_empty() && b.jwt.authorities().count() == 0);
    assert_eq!((b.sequence, b.refresh_hint), (None, None));
}

#[test]
fn f56_spiffe_sequence_is_parsed_into_64_bits() {
    let b = parse(json!({"keys": [], "spiffe_sequence": u64::MAX})).expect("u64");
    assert_eq!(b.sequence, Some(u64::MAX));
    assert!(matches!(
        parse(json!({"keys": [], "spiffe_sequence": -1})),
        Err(BundleError::Json { .. })
    ));
    assert!(matches!(
        parse(json!({"keys": [], "spiffe_sequence": "1"})),
        Err(BundleError::Json { .. })
    ));
}

#[test]
fn f57_spiffe_refresh_hint_is_an_integer_number_of_seconds() {
    let b = parse(json!({"keys": [], "spiffe_refresh_hint": 60})).expect("int");
    assert_eq!(b.refresh_hint, Some(Duration::from_secs(60)));
    assert!(matches!(
        parse(json!({"keys": [], "spiffe_refresh_hint": 1.5})),
        Err(BundleError::Json { .. })
    ));
    assert!(matches!(
        parse(json!({"keys": [], "spiffe_refresh_hint": "60s"})),
        Err(BundleError::Json { .. })
    ));
}

#[test]
fn f58_keys_must_be_present_but_may_be_empty() {
    assert!(matches!(
        parse(json!({"spiffe_sequence": 1})),
        Err(BundleError::MissingKeys { .. })
    ));
    assert!(parse(json!({"keys": []})).is_ok());
    assert!(matches!(
        parse(json!({"keys": {}})),
        Err(BundleError::Json { .. })
    ));
}

#[test]
fn f59_unknown_kty_is_ignored_even_without_kid() {
    let b = parse(json!({"keys": [
        {"use": "jwt-svid", "kty": "oct", "k": "c2VjcmV0"},
        {"use": "jwt-svid", "kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "ed"},
        {"use": "x509-svid", "kty": "XYZ", "x5c": ["bm90IGEgY2VydA=="]},
        p256_jwk(Some("k1")),
    ]}))
    .expect("unknown key types are ignored");
    assert_eq!(
        b.jwt.authorities().map(|a| a.key_id()).collect::<Vec<_>>(),
        vec!["k1"]
    );
    assert!(b.x509.authorities().is_empty());
}

#[test]
fn f59_missing_or_unknown_use_is_ignored() {
    let mut no_use = p256_jwk(Some("a"));
    no_use.as_object_mut().expect("obj").remove("use");
    let mut other_use = p256_jwk(Some("b"));
    other_use["use"] = "sig".into();
    let mut wrong_case = p256_jwk(Some("c"));
    wrong_case["use"] = "JWT-SVID".into();
    let b = parse(json!({"keys": [no_use, other_use, wrong_case]})).expect("parses");
    assert_eq!(b.jwt.authorities().count(), 0);
}

#[test]
fn c31_jwt_svid_entry_without_kid_is_rejected() {
    let err = parse(json!({"keys": [p256_jwk(None)]})).expect_err("no kid");
    assert!(matches!(err, BundleError::Key { index: 0, .. }), "{err}");
    assert!(err.to_string().contains("key 0"), "{err}");
}

#[test]
fn c31_jwt_entry_of_known_type_with_bad_coordinates_is_rejected() {
    let mut bad = p256_jwk(Some("k"));
    bad["x"] = "AAAA".into();
    assert!(matches!(
        parse(json!({"keys": [bad]})),
        Err(BundleError::Key { .. })
    ));
}

#[test]
fn not_json_is_rejected_with_the_trust_domain_in_the_message() {
    let err = SpiffeBundle::parse(td("example.org"), b"{not json").expect_err("bad json");
    assert!(matches!(err, BundleError::Json { .. }));
    assert!(err.to_string().contains("example.org"), "{err}");
}

// === plain JWKS (FetchJWTBundles) ===

#[test]
fn jwks_round_trips_with_use_jwt_svid_on_each_key() {
    let b = JwtBundle::parse_jwks(
        td("domain.test"),
        &bundle_file("jwtbundle/jwks_valid_2.json"),
    )
    .expect("jwks");
    let out: Value = serde_json::from_slice(&b.to_jwks()).expect("json");
    for key in out["keys"].as_array().expect("keys") {
        assert_eq!(key["use"], "jwt-svid");
    }
    let again = JwtBundle::parse_jwks(td("domain.test"), &b.to_jwks()).expect("round trip");
    assert_eq!(again, b);
}

#[test]
fn c31_jwks_keys_with_another_use_are_not_extracted() {
    let mut x509_use = p256_jwk(Some("x"));
    x509_use["use"] = "x509-svid".into();
    let doc = json!({"keys": [x509_use, p256_jwk(Some("j"))]});
    let b = JwtBundle::parse_jwks(td("domain.test"), doc.to_string().as_bytes()).expect("jwks");
    assert_eq!(
        b.authorities().map(|a| a.key_id()).collect::<Vec<_>>(),
        vec!["j"]
    );
}

// === JWT authorities as JWKs ===

#[test]
fn jwt_authority_from_ec_point_serialises_as_base64url_without_padding() {
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("key");
    let a = JwtAuthority::ec_p256("k1", key.public_key().as_ref()).expect("authority");
    let jwk = a.to_jwk(false);
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["kid"], "k1");
    assert!(jwk.get("use").is_none());
    assert_eq!(a.to_jwk(true)["use"], "jwt-svid");
    for coord in ["x", "y"] {
        let s = jwk[coord].as_str().expect("coord");
        assert_eq!(s.len(), 43, "32 bytes in unpadded base64url");
        assert!(!s.contains('=') && !s.contains('+') && !s.contains('/'));
    }
    assert_eq!(JwtAuthority::from_jwk(&a.to_jwk(true)).expect("parse"), a);
    assert!(JwtAuthority::ec_p256("k1", &[0x04, 1, 2]).is_err());
    assert!(JwtAuthority::ec_p256("", key.public_key().as_ref()).is_err());
}

#[test]
fn jwt_authority_rsa_jwk_needs_n_and_e() {
    let ok = json!({"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"});
    assert!(JwtAuthority::from_jwk(&ok).is_ok());
    let no_n = json!({"kty": "RSA", "kid": "r", "e": "AQAB"});
    assert!(JwtAuthority::from_jwk(&no_n).is_err());
}

// === F.60: bundle maps ===

#[test]
fn f60_bundle_map_parses_each_trust_domain_with_its_own_refresh_hint() {
    let doc = json!({"trust_domains": {
        "a.test": {"keys": [p256_jwk(Some("ka"))], "spiffe_refresh_hint": 10},
        "spiffe://b.test": {"keys": [], "spiffe_refresh_hint": 20},
    }});
    let map = SpiffeBundleMap::parse(doc.to_string().as_bytes()).expect("map");
    assert_eq!(map.bundles.len(), 2);
    assert_eq!(
        map.bundles[&td("a.test")].refresh_hint,
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        map.bundles[&td("b.test")].refresh_hint,
        Some(Duration::from_secs(20))
    );
    assert!(map.bundles[&td("a.test")].jwt.get("ka").is_some());
    assert_eq!(
        SpiffeBundleMap::parse(&map.to_json()).expect("round trip"),
        map
    );
}

#[test]
fn f60_bundle_map_without_trust_domains_is_rejected() {
    assert!(matches!(
        SpiffeBundleMap::parse(b"{}"),
        Err(BundleError::Map { .. })
    ));
}

#[test]
fn f60_duplicate_trust_domain_keys_are_rejected() {
    let raw = r#"{"trust_domains": {"a.test": {"keys": []}, "a.test": {"keys": []}}}"#;
    assert!(matches!(
        SpiffeBundleMap::parse(raw.as_bytes()),
        Err(BundleError::Map { .. })
    ));
    let spelled_twice =
        r#"{"trust_domains": {"a.test": {"keys": []}, "spiffe://a.test": {"keys": []}}}"#;
    assert!(matches!(
        SpiffeBundleMap::parse(spelled_twice.as_bytes()),
        Err(BundleError::Map { .. })
    ));
}
