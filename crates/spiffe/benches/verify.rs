//! What ward-spiffe costs on the paths that run per connection or per token: parsing a
//! SPIFFE ID, verifying a peer's X509-SVID chain against the bundle of its trust domain
//! (ward-tls's verifier calls this once per handshake, client and server side), and
//! validating a JWT-SVID (what `ValidateJWTSVID` does per call).
//!
//! `cargo bench -p ward-spiffe`. Figures are in the README's performance section.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::SystemTime;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};
use criterion::{criterion_group, criterion_main, Criterion};
use ward_spiffe::{
    jwt::sign_es256, verify_chain_for, BundleSet, ChainUsage, JwtAuthority, JwtBundle,
    JwtBundleSet, JwtSvid, SpiffeId, TrustDomain, X509Bundle,
};

fn ids(c: &mut Criterion) {
    let id = "spiffe://example.org/ns/prod/sa/payments-api";
    c.bench_function("spiffe_id_parse", |b| {
        b.iter(|| black_box(black_box(id).parse::<SpiffeId>().expect("valid")))
    });
}

fn x509(c: &mut Criterion) {
    let td = "example.org";
    let root = common::Ca::root(td);
    let (leaf, _key) = root.leaf(&common::leaf_params(
        "spiffe://example.org/ns/prod/sa/client",
    ));
    let mut bundles = BundleSet::new();
    bundles.insert(X509Bundle::new(
        td.parse::<TrustDomain>().expect("td"),
        vec![root.der.clone()],
    ));
    let chain = [leaf];
    let now = common::now();
    c.bench_function("verify_chain_for_client_leaf_p256", |b| {
        b.iter(|| {
            black_box(
                verify_chain_for(black_box(&chain), &bundles, now, ChainUsage::ClientAuth)
                    .expect("verifies"),
            )
        })
    });

    // A federated bundle set with 20 trust domains: the lookup is per trust domain,
    // never a scan of merged roots, so this should cost the same as one.
    for i in 0..20 {
        let other = common::Ca::root(&format!("partner{i}.org"));
        bundles.insert(X509Bundle::new(
            format!("partner{i}.org")
                .parse::<TrustDomain>()
                .expect("td"),
            vec![other.der.clone()],
        ));
    }
    c.bench_function("verify_chain_for_client_leaf_p256_21_trust_domains", |b| {
        b.iter(|| {
            black_box(
                verify_chain_for(black_box(&chain), &bundles, now, ChainUsage::ClientAuth)
                    .expect("verifies"),
            )
        })
    });
}

fn jwt(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate");
    let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).expect("load");
    let td: TrustDomain = "example.org".parse().expect("td");
    let mut bundle = JwtBundle::new(td);
    bundle.insert(JwtAuthority::ec_p256("k1", key.public_key().as_ref()).expect("jwk"));
    let mut bundles = JwtBundleSet::new();
    bundles.insert(bundle);
    let exp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + 3600;
    let claims = serde_json::json!({
        "sub": "spiffe://example.org/ns/prod/sa/client",
        "aud": ["payments"],
        "exp": exp,
    });
    let token = sign_es256(&key, "k1", claims.as_object().expect("object")).expect("sign");
    c.bench_function("jwt_svid_parse_and_validate_es256", |b| {
        b.iter(|| {
            black_box(
                JwtSvid::parse_and_validate(
                    black_box(&token),
                    &bundles,
                    &["payments"],
                    SystemTime::now(),
                )
                .expect("valid"),
            )
        })
    });
}

criterion_group!(benches, ids, x509, jwt);
criterion_main!(benches);
