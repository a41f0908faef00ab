//! DevProvider: identities per caller, one live context per identity set, rotation at
//! half-life pushed to every watcher, JWT-SVIDs only for identities the caller holds.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use ward_authority::{Assignment, Authority, AuthorityConfig, CaSource, DevProvider, Entry};
use ward_spiffe::{JwtSvid, SpiffeId, TrustDomain};
use ward_workload::{Caller, IdentityProvider, ProviderError};

fn authority(svid_ttl: Duration, federated: Vec<(TrustDomain, PathBuf)>) -> Authority {
    Authority::new(AuthorityConfig {
        trust_domain: TrustDomain::new("example.org").unwrap(),
        svid_ttl,
        jwt_ttl: Duration::from_secs(300),
        ca: CaSource::Generate,
        federated,
    })
    .unwrap()
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::new(s).unwrap()
}

fn caller(uid: u32) -> Caller {
    Caller {
        pid: Some(1),
        uid,
        gid: 100,
        exe: Some(PathBuf::from("/usr/bin/app")),
        socket: None,
    }
}

fn entries() -> Assignment {
    let entry = |s: &str, uid: Option<u32>, gid: Option<u32>| Entry {
        spiffe_id: id(s),
        uid,
        gid,
        path: None,
    };
    Assignment::Entries(vec![
        entry("spiffe://example.org/app", Some(1000), None),
        entry("spiffe://example.org/shared", None, Some(100)),
        entry("spiffe://example.org/admin", Some(0), None),
    ])
}

fn serial(der: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    X509Certificate::from_der(der)
        .unwrap()
        .1
        .raw_serial()
        .to_vec()
}

#[tokio::test]
async fn context_holds_every_identity_default_first_and_the_bundles() {
    let a = authority(Duration::from_secs(3600), vec![]);
    let p = DevProvider::new(a.clone(), entries());
    let ctx = p.x509_context(&caller(1000)).unwrap().borrow().clone();
    let ids: Vec<&str> = ctx.svids.iter().map(|s| s.spiffe_id().as_str()).collect();
    assert_eq!(
        ids,
        vec!["spiffe://example.org/app", "spiffe://example.org/shared"]
    );
    assert_eq!(
        ctx.default_svid().unwrap().spiffe_id().as_str(),
        "spiffe://example.org/app"
    );
    assert_eq!(ctx.bundles.get(a.trust_domain()), Some(&a.x509_bundle()));
    for svid in &ctx.svids {
        assert_eq!(ward_spiffe::x509::check_leaf(svid.leaf()), vec![]);
    }
}

#[tokio::test]
async fn callers_with_the_same_identities_share_one_context() {
    let p = DevProvider::new(authority(Duration::from_secs(3600), vec![]), entries());
    let first = p.x509_context(&caller(1000)).unwrap().borrow().clone();
    let second = p.x509_context(&caller(1000)).unwrap().borrow().clone();
    assert_eq!(first.svids[0].leaf(), second.svids[0].leaf());
    // A caller with other identities gets its own SVIDs.
    let other = p.x509_context(&caller(0)).unwrap().borrow().clone();
    let ids: Vec<&str> = other.svids.iter().map(|s| s.spiffe_id().as_str()).collect();
    assert_eq!(
        ids,
        vec!["spiffe://example.org/shared", "spiffe://example.org/admin"]
    );
    assert_ne!(other.svids[0].leaf(), first.svids[1].leaf());
}

#[tokio::test]
async fn caller_without_identity_gets_no_identity() {
    let p = DevProvider::new(
        authority(Duration::from_secs(3600), vec![]),
        Assignment::Entries(vec![Entry {
            spiffe_id: id("spiffe://example.org/app"),
            uid: Some(1000),
            gid: None,
            path: None,
        }]),
    );
    let nobody = caller(7);
    assert!(p.x509_context(&nobody).is_err());
    assert!(p.x509_bundles(&nobody).is_err());
    assert!(p.jwt_bundles(&nobody).is_err());
    assert!(matches!(
        p.mint_jwt_svids(&nobody, &["api".into()], None),
        Err(ProviderError::NoIdentity(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svid_is_rotated_at_half_life_and_pushed_to_every_watcher() {
    let p = DevProvider::new(authority(Duration::from_secs(2), vec![]), entries());
    let mut first = p.x509_context(&caller(1000)).unwrap();
    let mut second = p.x509_context(&caller(1000)).unwrap();
    let before = first.borrow_and_update().clone();
    second.borrow_and_update();
    let started = Instant::now();
    // The SVID lives at most 2 s, so rotation is due within 1 s; allow scheduling slack.
    tokio::time::timeout(Duration::from_millis(1800), first.changed())
        .await
        .expect("no rotation within 1.8 s")
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(1800));
    let after = first.borrow_and_update().clone();
    assert_eq!(after.svids.len(), before.svids.len());
    for (old, new) in before.svids.iter().zip(&after.svids) {
        assert_eq!(old.spiffe_id(), new.spiffe_id());
        assert_ne!(serial(old.leaf()), serial(new.leaf()));
        assert_ne!(
            old.private_key().secret_pkcs8_der(),
            new.private_key().secret_pkcs8_der()
        );
        assert!(!new.is_expired_at(SystemTime::now()));
    }
    // The other stream of the same identity set sees the same new SVID.
    tokio::time::timeout(Duration::from_millis(200), second.changed())
        .await
        .ok();
    assert_eq!(second.borrow().svids[0].leaf(), after.svids[0].leaf());
}

#[tokio::test]
async fn bundles_include_federated_trust_domains() {
    let tmp = tempfile::tempdir().unwrap();
    let peer = Authority::new(AuthorityConfig {
        trust_domain: TrustDomain::new("other.org").unwrap(),
        svid_ttl: Duration::from_secs(3600),
        jwt_ttl: Duration::from_secs(300),
        ca: CaSource::Generate,
        federated: vec![],
    })
    .unwrap();
    let file = tmp.path().join("other.json");
    std::fs::write(
        &file,
        ward_spiffe::SpiffeBundle {
            x509: peer.x509_bundle(),
            jwt: peer.jwt_bundle(),
            sequence: None,
            refresh_hint: None,
        }
        .to_json(),
    )
    .unwrap();
    let other = TrustDomain::new("other.org").unwrap();
    let a = authority(Duration::from_secs(3600), vec![(other.clone(), file)]);
    let p = DevProvider::new(a.clone(), entries());
    let c = caller(1000);
    let ctx = p.x509_context(&c).unwrap().borrow().clone();
    assert_eq!(ctx.bundles.get(&other), Some(&peer.x509_bundle()));
    let x509 = p.x509_bundles(&c).unwrap().borrow().clone();
    assert_eq!(x509.len(), 2);
    assert_eq!(x509.get(a.trust_domain()), Some(&a.x509_bundle()));
    let jwt = p.jwt_bundles(&c).unwrap().borrow().clone();
    assert_eq!(jwt.get(&other), Some(&peer.jwt_bundle()));
    assert_eq!(jwt.get(a.trust_domain()), Some(&a.jwt_bundle()));
}

#[tokio::test]
async fn jwt_svids_are_minted_for_every_identity_of_the_caller() {
    let a = authority(Duration::from_secs(3600), vec![]);
    let p = DevProvider::new(a.clone(), entries());
    let svids = p
        .mint_jwt_svids(&caller(1000), &["api".into()], None)
        .unwrap();
    let ids: Vec<&str> = svids.iter().map(|s| s.spiffe_id().as_str()).collect();
    assert_eq!(
        ids,
        vec!["spiffe://example.org/app", "spiffe://example.org/shared"]
    );
    let bundles = p.jwt_bundles(&caller(1000)).unwrap().borrow().clone();
    for svid in &svids {
        JwtSvid::parse_and_validate(svid.token(), &bundles, &["api"], SystemTime::now()).unwrap();
    }
}

#[tokio::test]
async fn jwt_svid_for_one_held_identity_only() {
    let p = DevProvider::new(authority(Duration::from_secs(3600), vec![]), entries());
    let shared = id("spiffe://example.org/shared");
    let svids = p
        .mint_jwt_svids(&caller(1000), &["api".into()], Some(&shared))
        .unwrap();
    assert_eq!(svids.len(), 1);
    assert_eq!(svids[0].spiffe_id(), &shared);
}

#[tokio::test]
async fn jwt_svid_for_an_identity_not_held_is_denied() {
    let p = DevProvider::new(authority(Duration::from_secs(3600), vec![]), entries());
    let admin = id("spiffe://example.org/admin");
    let err = p
        .mint_jwt_svids(&caller(1000), &["api".into()], Some(&admin))
        .unwrap_err();
    assert!(matches!(err, ProviderError::NoIdentity(_)), "{err}");
    assert!(
        err.to_string().contains("spiffe://example.org/admin"),
        "{err}"
    );
}

#[tokio::test]
async fn jwt_svid_request_without_audience_is_invalid() {
    let p = DevProvider::new(authority(Duration::from_secs(3600), vec![]), entries());
    assert!(matches!(
        p.mint_jwt_svids(&caller(1000), &[], None),
        Err(ProviderError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn fixed_assignment_serves_every_caller() {
    let p = DevProvider::new(
        authority(Duration::from_secs(3600), vec![]),
        Assignment::Fixed(id("spiffe://example.org/everyone")),
    );
    for uid in [0, 1000, 65534] {
        let ctx = p.x509_context(&caller(uid)).unwrap().borrow().clone();
        assert_eq!(
            ctx.svids[0].spiffe_id().as_str(),
            "spiffe://example.org/everyone"
        );
    }
}
