//! JWT-SVIDs: ES256 tokens that validate against the authority's JWT bundle with the
//! same code a relying party runs (JWT-SVID.md; CHECKLIST section C).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ward_authority::{Authority, AuthorityConfig, CaSource};
use ward_spiffe::{JwtBundleSet, JwtSvid, SpiffeId, TrustDomain};

fn authority() -> Authority {
    Authority::new(AuthorityConfig {
        trust_domain: TrustDomain::new("example.org").unwrap(),
        svid_ttl: Duration::from_secs(3600),
        jwt_ttl: Duration::from_secs(300),
        ca: CaSource::Generate,
        federated: Vec::new(),
    })
    .unwrap()
}

fn web() -> SpiffeId {
    SpiffeId::new("spiffe://example.org/web").unwrap()
}

fn segment(token: &str, i: usize) -> serde_json::Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[test]
fn jwt_svid_validates_against_the_jwt_bundle() {
    let a = authority();
    let svid = a
        .mint_jwt_svid(&web(), &["api".into(), "db".into()])
        .unwrap();
    let mut bundles = JwtBundleSet::new();
    bundles.insert(a.jwt_bundle());
    for audience in ["api", "db"] {
        let checked =
            JwtSvid::parse_and_validate(svid.token(), &bundles, &[audience], SystemTime::now())
                .unwrap();
        assert_eq!(checked.spiffe_id(), &web());
    }
    assert!(
        JwtSvid::parse_and_validate(svid.token(), &bundles, &["other"], SystemTime::now()).is_err()
    );
}

#[test]
fn jwt_svid_from_another_authority_does_not_validate() {
    let a = authority();
    let b = authority();
    let svid = a.mint_jwt_svid(&web(), &["api".into()]).unwrap();
    let mut bundles = JwtBundleSet::new();
    bundles.insert(b.jwt_bundle());
    assert!(
        JwtSvid::parse_and_validate(svid.token(), &bundles, &["api"], SystemTime::now()).is_err()
    );
}

#[test]
fn jwt_header_is_es256_with_kid_and_typ_only() {
    let a = authority();
    let svid = a.mint_jwt_svid(&web(), &["api".into()]).unwrap();
    let header = segment(svid.token(), 0);
    let kid = a
        .jwt_bundle()
        .authorities()
        .next()
        .unwrap()
        .key_id()
        .to_owned();
    assert_eq!(
        header,
        serde_json::json!({ "alg": "ES256", "kid": kid, "typ": "JWT" })
    );
}

#[test]
fn jwt_claims_are_sub_aud_array_exp_and_iat() {
    let a = authority();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let svid = a.mint_jwt_svid(&web(), &["api".into()]).unwrap();
    let claims = segment(svid.token(), 1);
    assert_eq!(claims["sub"], "spiffe://example.org/web");
    assert_eq!(claims["aud"], serde_json::json!(["api"]));
    let iat = claims["iat"].as_u64().unwrap();
    let exp = claims["exp"].as_u64().unwrap();
    assert!(iat >= before && iat <= before + 2);
    assert_eq!(exp - iat, 300);
    assert_eq!(svid.audience(), &["api".to_string()]);
}

#[test]
fn jwt_svid_without_audience_is_refused() {
    let err = authority()
        .mint_jwt_svid(&web(), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("audience"), "{err}");
}

#[test]
fn jwt_bundle_key_id_is_derived_from_the_key() {
    let a = authority();
    let bundle = a.jwt_bundle();
    let keys: Vec<_> = bundle.authorities().collect();
    assert_eq!(keys.len(), 1);
    // 16 bytes of SHA-256, base64url without padding.
    assert_eq!(keys[0].key_id().len(), 22);
    let jwk = keys[0].to_jwk(true);
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["use"], "jwt-svid");
}
