//! JWT-SVID rules (CHECKLIST section C): every go-spiffe recipe in
//! tests/data/jwtsvid_cases.json, signed at test time with aws-lc-rs keys, and one test
//! per rule.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use ward_spiffe::jwt::sign_es256;
use ward_spiffe::{JwtAuthority, JwtBundle, JwtBundleSet, JwtError, JwtSvid, TrustDomain};

// === keys and token building ===

struct Keys {
    p256: EcdsaKeyPair,
    p384: EcdsaKeyPair,
    p521: EcdsaKeyPair,
    rsa: RsaKeyPair,
}

fn ec_key(alg: &'static signature::EcdsaSigningAlgorithm) -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate");
    EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).expect("load")
}

/// Generated once: RSA key generation is the slow part of this file.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        p256: ec_key(&signature::ECDSA_P256_SHA256_FIXED_SIGNING),
        p384: ec_key(&signature::ECDSA_P384_SHA384_FIXED_SIGNING),
        p521: ec_key(&signature::ECDSA_P521_SHA512_FIXED_SIGNING),
        rsa: RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA-2048"),
    })
}

/// One DER TLV: (content, rest).
fn der_tlv(buf: &[u8]) -> (&[u8], &[u8]) {
    let (len, header) = match buf[1] {
        n if n < 0x80 => (n as usize, 2),
        n => {
            let k = (n & 0x7f) as usize;
            (
                buf[2..2 + k]
                    .iter()
                    .fold(0usize, |acc, b| acc << 8 | *b as usize),
                2 + k,
            )
        }
    };
    (&buf[header..header + len], &buf[header + len..])
}

/// The RSA authority from aws-lc-rs's RSAPublicKey DER: SEQUENCE { n INTEGER, e INTEGER }.
fn rsa_authority(kid: &str) -> JwtAuthority {
    let (seq, _) = der_tlv(keys().rsa.public_key().as_ref());
    let (n, rest) = der_tlv(seq);
    let (e, _) = der_tlv(rest);
    let strip = |b: &[u8]| {
        b.iter()
            .position(|x| *x != 0)
            .map_or(b.to_vec(), |i| b[i..].to_vec())
    };
    JwtAuthority::rsa(kid, &strip(n), &strip(e)).expect("rsa authority")
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

/// Signs a token with the key that fits `header.alg`.
fn sign(header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let rng = SystemRandom::new();
    let k = keys();
    let alg = header["alg"].as_str().expect("alg");
    let sig = match alg {
        "ES256" => k
            .p256
            .sign(&rng, input.as_bytes())
            .expect("sign")
            .as_ref()
            .to_vec(),
        "ES384" => k
            .p384
            .sign(&rng, input.as_bytes())
            .expect("sign")
            .as_ref()
            .to_vec(),
        "ES512" => k
            .p521
            .sign(&rng, input.as_bytes())
            .expect("sign")
            .as_ref()
            .to_vec(),
        rsa => {
            let enc: &'static dyn signature::RsaEncoding = match rsa {
                "RS256" => &signature::RSA_PKCS1_SHA256,
                "RS384" => &signature::RSA_PKCS1_SHA384,
                "RS512" => &signature::RSA_PKCS1_SHA512,
                "PS256" => &signature::RSA_PSS_SHA256,
                "PS384" => &signature::RSA_PSS_SHA384,
                "PS512" => &signature::RSA_PSS_SHA512,
                other => panic!("no key for {other}"),
            };
            let mut sig = vec![0; k.rsa.public_modulus_len()];
            k.rsa
                .sign(enc, &rng, input.as_bytes(), &mut sig)
                .expect("sign");
            sig
        }
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// The recipe's relative times ("now", "now+60s", "now-60s") made absolute.
fn resolve_times(claims: &Value, now: i64) -> Value {
    let mut out = claims.clone();
    for (_, v) in out.as_object_mut().expect("claims").iter_mut() {
        if let Some(s) = v.as_str() {
            if let Some(rest) = s.strip_prefix("now") {
                let offset: i64 = rest.trim_end_matches('s').parse().unwrap_or(0);
                *v = json!(now + offset);
            }
        }
    }
    out
}

fn td(s: &str) -> TrustDomain {
    TrustDomain::new(s).expect("td")
}

/// go-spiffe's bundle: trustdomain: {authority1: key1 (P-384), authority2: key2 (RSA)}.
fn bundles() -> JwtBundleSet {
    let mut b = JwtBundle::new(td("trustdomain"));
    b.insert(
        JwtAuthority::ec("authority1", "P-384", keys().p384.public_key().as_ref()).expect("p384"),
    );
    b.insert(rsa_authority("authority2"));
    b.insert(JwtAuthority::ec_p256("p256", keys().p256.public_key().as_ref()).expect("p256"));
    b.insert(JwtAuthority::ec("p521", "P-521", keys().p521.public_key().as_ref()).expect("p521"));
    let mut set = JwtBundleSet::new();
    set.insert(b);
    set
}

fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "typ": "JWT", "kid": kid})
}

fn claims() -> Value {
    json!({"sub": "spiffe://trustdomain/host", "aud": ["audience"], "exp": now_secs() + 60, "iat": now_secs()})
}

fn validate(token: &str) -> Result<JwtSvid, JwtError> {
    JwtSvid::parse_and_validate(token, &bundles(), &["audience"], SystemTime::now())
}

// === the go-spiffe recipes ===

fn matches_go_error(err: &JwtError, expected: &str) -> bool {
    match expected {
        "jwtsvid: unable to parse JWT token" => {
            matches!(
                err,
                JwtError::Malformed(_) | JwtError::AlgorithmNotAllowed(_)
            )
        }
        "jwtsvid: token header type not equal to either JWT or JOSE" => {
            matches!(err, JwtError::BadType(_))
        }
        "jwtsvid: token missing subject claim" => matches!(err, JwtError::MissingSubject),
        "jwtsvid: token missing exp claim" => matches!(err, JwtError::MissingExpiry),
        "jwtsvid: token has expired" => matches!(err, JwtError::Expired { .. }),
        "jwtsvid: token header missing key id" => matches!(err, JwtError::MissingKeyId),
        e if e.starts_with("jwtsvid: token has an invalid subject claim") => {
            matches!(err, JwtError::InvalidSubject(_))
        }
        e if e.starts_with("jwtsvid: expected audience in") => {
            matches!(err, JwtError::AudienceMismatch { .. })
        }
        e if e.starts_with("jwtsvid: no bundle found for trust domain") => {
            matches!(err, JwtError::NoBundle(_))
        }
        e if e.starts_with("jwtsvid: no JWT authority") => {
            matches!(err, JwtError::NoAuthority { .. })
        }
        e if e.starts_with("jwtsvid: unable to get claims from token") => {
            matches!(
                err,
                JwtError::KeyAlgorithmMismatch { .. } | JwtError::BadSignature(_)
            )
        }
        other => panic!("unmapped go-spiffe error {other:?}"),
    }
}

#[test]
fn every_go_spiffe_jwt_svid_recipe_has_the_expected_outcome() {
    let data = common::json("jwtsvid_cases.json");
    let cases = data["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 22);
    let now = now_secs();
    for case in cases {
        let name = case["test"].as_str().expect("test");
        let token = match case.get("token_recipe") {
            Some(recipe) => sign(&recipe["header"], &resolve_times(&recipe["claims"], now)),
            None => case["token"].as_str().expect("token").to_owned(),
        };
        let audience: Vec<&str> = case["audience_param"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().expect("aud")).collect())
            .unwrap_or_default();
        let result = match case["function"].as_str().expect("function") {
            // go-spiffe skips the aud check on a nil audience; ward requires one (C.29),
            // so the validator under test is given the token's own audience.
            "ParseAndValidate" => {
                let audience = if audience.is_empty() {
                    vec!["audience"]
                } else {
                    audience
                };
                JwtSvid::parse_and_validate(&token, &bundles(), &audience, SystemTime::now())
            }
            "ParseInsecure" => JwtSvid::parse_insecure(&token, &audience),
            other => panic!("unknown function {other}"),
        };
        if case["valid"].as_bool().expect("valid") {
            let svid = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                svid.spiffe_id().as_str(),
                "spiffe://trustdomain/host",
                "{name}"
            );
            assert_eq!(svid.audience(), ["audience".to_owned()], "{name}");
            assert_eq!(svid.token(), token, "{name}");
        } else {
            let err = result.expect_err(name);
            let expected = case["expected_error"].as_str().expect("error");
            assert!(
                matches_go_error(&err, expected),
                "{name}: got {err:?}, go-spiffe says {expected:?}"
            );
        }
    }
}

#[test]
fn fixed_hs256_vector_is_rejected_for_its_algorithm() {
    let data = common::json("jwtsvid_cases.json");
    let token = data["fixed_vectors"][0]["token"].as_str().expect("token");
    assert_eq!(
        validate(token).expect_err("hs256"),
        JwtError::AlgorithmNotAllowed("HS256".into())
    );
    assert_eq!(
        JwtSvid::parse_insecure(token, &[]).expect_err("hs256"),
        JwtError::AlgorithmNotAllowed("HS256".into())
    );
}

// === C.24: compact serialization only ===

#[test]
fn c24_jws_json_serialization_is_rejected() {
    let t = sign(&header("ES256", "p256"), &claims());
    let parts: Vec<&str> = t.split('.').collect();
    let json_form =
        json!({"payload": parts[1], "protected": parts[0], "signature": parts[2]}).to_string();
    assert!(matches!(validate(&json_form), Err(JwtError::Malformed(_))));
    assert!(matches!(
        validate(&format!("{t}.extra")),
        Err(JwtError::Malformed(_))
    ));
    assert!(matches!(validate("a.b"), Err(JwtError::Malformed(_))));
}

// === C.26: the algorithm allow-list, checked first ===

#[test]
fn c26_every_allowed_algorithm_verifies() {
    for (alg, kid) in [
        ("ES256", "p256"),
        ("ES384", "authority1"),
        ("ES512", "p521"),
        ("RS256", "authority2"),
        ("RS384", "authority2"),
        ("RS512", "authority2"),
        ("PS256", "authority2"),
        ("PS384", "authority2"),
        ("PS512", "authority2"),
    ] {
        let token = sign(&header(alg, kid), &claims());
        validate(&token).unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
}

#[test]
fn c26_none_hs256_and_eddsa_are_rejected_before_anything_else() {
    // The payload and signature are garbage: the algorithm must be refused first.
    for alg in ["none", "HS256", "EdDSA", "es256"] {
        let token = format!("{}.!!!.!!!", b64(&json!({"alg": alg, "typ": "JWT"})));
        assert_eq!(
            validate(&token).expect_err(alg),
            JwtError::AlgorithmNotAllowed(alg.into())
        );
        assert_eq!(
            JwtSvid::parse_insecure(&token, &["audience"]).expect_err(alg),
            JwtError::AlgorithmNotAllowed(alg.into())
        );
    }
    let no_alg = format!("{}.!!!.!!!", b64(&json!({"typ": "JWT"})));
    assert!(matches!(
        validate(&no_alg),
        Err(JwtError::AlgorithmNotAllowed(_))
    ));
}

#[test]
fn c26_algorithm_that_does_not_fit_the_key_is_rejected() {
    // go-spiffe "mismatched JWT authority": an RS256 token naming the EC key.
    let token = sign(&header("RS256", "authority1"), &claims());
    assert!(matches!(
        validate(&token),
        Err(JwtError::KeyAlgorithmMismatch { .. })
    ));
    // ES256 naming the P-384 key: curve and algorithm must agree.
    let token = sign(&header("ES256", "authority1"), &claims());
    assert!(matches!(
        validate(&token),
        Err(JwtError::KeyAlgorithmMismatch { .. })
    ));
}

#[test]
fn tampered_payload_fails_the_signature() {
    let token = sign(&header("ES256", "p256"), &claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut evil = claims();
    evil["sub"] = "spiffe://trustdomain/admin".into();
    parts[1] = b64(&evil);
    assert_eq!(
        validate(&parts.join(".")).expect_err("tampered"),
        JwtError::BadSignature("p256".into())
    );
}

// === C.27: kid and typ ===

#[test]
fn c27_typ_jose_or_absent_is_accepted_and_anything_else_rejected() {
    let mut h = header("ES256", "p256");
    h["typ"] = "JOSE".into();
    validate(&sign(&h, &claims())).expect("JOSE");
    h.as_object_mut().expect("obj").remove("typ");
    validate(&sign(&h, &claims())).expect("no typ");
    h["typ"] = "at+jwt".into();
    assert_eq!(
        validate(&sign(&h, &claims())).expect_err("typ"),
        JwtError::BadType("at+jwt".into())
    );
}

#[test]
fn c27_token_without_kid_is_rejected_by_the_validator() {
    let token = sign(&json!({"alg": "ES256", "typ": "JWT"}), &claims());
    assert_eq!(
        validate(&token).expect_err("no kid"),
        JwtError::MissingKeyId
    );
    JwtSvid::parse_insecure(&token, &["audience"]).expect("parse_insecure does not need a kid");
}

// === C.28: sub ===

#[test]
fn c28_sub_must_be_a_spiffe_id() {
    for sub in [
        "invalid subject",
        "https://trustdomain/host",
        "spiffe://TrustDomain/host",
    ] {
        let mut c = claims();
        c["sub"] = sub.into();
        assert!(
            matches!(
                validate(&sign(&header("ES256", "p256"), &c)),
                Err(JwtError::InvalidSubject(_))
            ),
            "{sub}"
        );
    }
}

// === C.29: aud ===

#[test]
fn c29_token_without_aud_is_rejected() {
    let mut c = claims();
    c.as_object_mut().expect("obj").remove("aud");
    assert_eq!(
        validate(&sign(&header("ES256", "p256"), &c)).expect_err("no aud"),
        JwtError::MissingAudience
    );
    c["aud"] = json!([]);
    assert_eq!(
        validate(&sign(&header("ES256", "p256"), &c)).expect_err("empty aud"),
        JwtError::MissingAudience
    );
}

#[test]
fn c29_aud_lacking_the_validators_audience_is_rejected() {
    let token = sign(&header("ES256", "p256"), &claims());
    let err = JwtSvid::parse_and_validate(&token, &bundles(), &["another"], SystemTime::now())
        .expect_err("aud");
    assert!(matches!(err, JwtError::AudienceMismatch { .. }));
    JwtSvid::parse_and_validate(
        &token,
        &bundles(),
        &["another", "audience"],
        SystemTime::now(),
    )
    .expect("any one expected audience is enough");
}

#[test]
fn c29_aud_as_a_single_string_is_accepted() {
    let mut c = claims();
    c["aud"] = "audience".into();
    let svid = validate(&sign(&header("ES256", "p256"), &c)).expect("string aud");
    assert_eq!(svid.audience(), ["audience".to_owned()]);
}

#[test]
fn c29_empty_expected_audience_is_rejected_unlike_go_spiffe() {
    let token = sign(&header("ES256", "p256"), &claims());
    let err = JwtSvid::parse_and_validate(&token, &bundles(), &[], SystemTime::now())
        .expect_err("no audience");
    assert_eq!(err, JwtError::NoExpectedAudience);
}

// === C.30: exp ===

#[test]
fn c30_token_without_exp_is_rejected() {
    let mut c = claims();
    c.as_object_mut().expect("obj").remove("exp");
    assert_eq!(
        validate(&sign(&header("ES256", "p256"), &c)).expect_err("no exp"),
        JwtError::MissingExpiry
    );
}

#[test]
fn c30_exp_is_enforced_with_zero_leeway() {
    let exp = now_secs() + 100;
    let mut c = claims();
    c["exp"] = exp.into();
    let token = sign(&header("ES256", "p256"), &c);
    let at = |secs: i64| UNIX_EPOCH + Duration::from_secs(secs as u64);
    let svid = JwtSvid::parse_and_validate(&token, &bundles(), &["audience"], at(exp - 1))
        .expect("one second left");
    assert_eq!(svid.expiry(), at(exp));
    let err = JwtSvid::parse_and_validate(&token, &bundles(), &["audience"], at(exp))
        .expect_err("at exp");
    assert_eq!(err, JwtError::Expired { exp, now: exp });
}

#[test]
fn nbf_in_the_future_beyond_the_skew_allowance_is_rejected() {
    let mut c = claims();
    c["nbf"] = (now_secs() + 120).into();
    assert!(matches!(
        validate(&sign(&header("ES256", "p256"), &c)),
        Err(JwtError::NotYetValid { .. })
    ));
    c["nbf"] = (now_secs() + 5).into();
    validate(&sign(&header("ES256", "p256"), &c)).expect("within 30 s of skew");
}

// === C.31 / C.32: the subject's trust domain's bundle ===

#[test]
fn c32_key_is_looked_up_in_the_bundle_of_the_subjects_trust_domain() {
    // A token claiming other.test, signed by trustdomain's key: trustdomain's bundle
    // must not vouch for other.test.
    let mut c = claims();
    c["sub"] = "spiffe://other.test/host".into();
    let token = sign(&header("ES256", "p256"), &c);
    assert_eq!(
        validate(&token).expect_err("no bundle"),
        JwtError::NoBundle("other.test".into())
    );
    // other.test has a bundle with the same kid but another key: the signature fails.
    let mut set = bundles();
    let mut other = JwtBundle::new(td("other.test"));
    other.insert(
        JwtAuthority::ec_p256(
            "p256",
            ec_key(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                .public_key()
                .as_ref(),
        )
        .expect("key"),
    );
    set.insert(other);
    let err = JwtSvid::parse_and_validate(&token, &set, &["audience"], SystemTime::now())
        .expect_err("wrong key");
    assert_eq!(err, JwtError::BadSignature("p256".into()));
}

#[test]
fn c32_unknown_kid_is_rejected() {
    let token = sign(&header("ES256", "nokey"), &claims());
    assert!(matches!(
        validate(&token),
        Err(JwtError::NoAuthority { .. })
    ));
}

// === signing helper ===

#[test]
fn c25_sign_es256_produces_a_token_with_only_alg_kid_typ_that_validates() {
    let k = &keys().p256;
    let claims: Map<String, Value> = claims().as_object().expect("obj").clone();
    let token = sign_es256(k, "p256", &claims).expect("sign");
    let header_json = URL_SAFE_NO_PAD
        .decode(token.split('.').next().expect("header"))
        .expect("b64");
    let header: Value = serde_json::from_slice(&header_json).expect("json");
    assert_eq!(header, json!({"alg": "ES256", "kid": "p256", "typ": "JWT"}));
    let svid = validate(&token).expect("validates").with_hint("h");
    assert_eq!(svid.claims()["sub"], "spiffe://trustdomain/host");
    assert_eq!(svid.hint(), "h");
}

#[test]
fn sign_es256_refuses_an_asn1_key() {
    let k = ec_key(&signature::ECDSA_P256_SHA256_ASN1_SIGNING);
    assert!(matches!(
        sign_es256(&k, "k", &Map::new()),
        Err(JwtError::Signing(_))
    ));
}
