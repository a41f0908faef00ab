//! The dev authority end to end: DevProvider behind ward-workload's server on a Unix
//! socket in a tempdir, read with ward-workload's client. The caller is this test
//! process, identified by the kernel (SO_PEERCRED), so entries match on our real uid.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use rustls_pki_types::UnixTime;
use ward_authority::{Assignment, Authority, AuthorityConfig, CaSource, DevProvider, Entry};
use ward_spiffe::{JwtSvid, SpiffeId, TrustDomain};
use ward_workload::{EndpointAddress, WorkloadClient, WorkloadServer};

struct Running {
    client: WorkloadClient,
    authority: Authority,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn serve(svid_ttl: Duration, uid_offset: u32) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let our_uid = std::fs::metadata(dir.path()).unwrap().uid();
    let authority = Authority::new(AuthorityConfig {
        trust_domain: TrustDomain::new("example.org").unwrap(),
        svid_ttl,
        jwt_ttl: Duration::from_secs(300),
        ca: CaSource::Generate,
        federated: Vec::new(),
    })
    .unwrap();
    let entries = Assignment::Entries(vec![
        Entry {
            spiffe_id: SpiffeId::new("spiffe://example.org/test").unwrap(),
            uid: Some(our_uid + uid_offset),
            gid: None,
            path: None,
        },
        Entry {
            spiffe_id: SpiffeId::new("spiffe://example.org/second").unwrap(),
            uid: Some(our_uid + uid_offset),
            gid: None,
            path: None,
        },
    ]);
    let provider = DevProvider::new(authority.clone(), entries);
    let socket = dir.path().join("api.sock");
    let bound = WorkloadServer::new(provider as Arc<dyn ward_workload::IdentityProvider>)
        .bind_unix(&socket)
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(bound.run(async move {
        let _ = stopped.await;
    }));
    let addr = EndpointAddress::parse(&format!("unix://{}", socket.display())).unwrap();
    let client = WorkloadClient::connect(&addr).await.unwrap();
    Running {
        client,
        authority,
        _stop: stop,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_gets_its_svids_over_the_socket() {
    let r = serve(Duration::from_secs(3600), 0).await;
    let ctx = tokio::time::timeout(Duration::from_secs(10), r.client.fetch_x509_context())
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<&str> = ctx.svids.iter().map(|s| s.spiffe_id().as_str()).collect();
    assert_eq!(
        ids,
        vec!["spiffe://example.org/test", "spiffe://example.org/second"]
    );
    let peer =
        ward_spiffe::verify_chain(ctx.svids[0].chain(), &ctx.bundles, UnixTime::now()).unwrap();
    assert_eq!(peer.as_str(), "spiffe://example.org/test");
    assert_eq!(
        ctx.bundles.get(r.authority.trust_domain()),
        Some(&r.authority.x509_bundle())
    );

    let bundles = r.client.fetch_x509_bundles().await.unwrap();
    assert_eq!(
        bundles.get(r.authority.trust_domain()),
        Some(&r.authority.x509_bundle())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_gets_jwt_svids_that_validate_with_the_served_bundles() {
    let r = serve(Duration::from_secs(3600), 0).await;
    let svids = r
        .client
        .fetch_jwt_svids(&["api".into()], None)
        .await
        .unwrap();
    assert_eq!(svids.len(), 2);
    let bundles = r.client.fetch_jwt_bundles().await.unwrap();
    for svid in &svids {
        JwtSvid::parse_and_validate(svid.token(), &bundles, &["api"], SystemTime::now()).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_without_entry_is_denied() {
    let r = serve(Duration::from_secs(3600), 1).await;
    let err = r.client.fetch_x509_context().await.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("no identity"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_svid_arrives_on_the_open_stream() {
    let r = serve(Duration::from_secs(2), 0).await;
    let mut stream = r.client.watch_x509_contexts().await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    let second = tokio::time::timeout(Duration::from_secs(3), stream.next())
        .await
        .expect("no rotation on the stream within 3 s")
        .unwrap()
        .unwrap();
    assert_eq!(first.svids[0].spiffe_id(), second.svids[0].spiffe_id());
    assert_ne!(first.svids[0].leaf(), second.svids[0].leaf());
}
