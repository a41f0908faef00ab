//! The cost of one full in-memory mTLS handshake between ward's server and client
//! configs (rustls connections pumping bytes through buffers, no sockets), and of one
//! resolver lookup (what every handshake pays to find our SVID).
//!
//! Measured 2026-11-30 on the idle 2-core dev machine (`cargo bench -p ward-tls`): full
//! TLS 1.3 mTLS handshake, P-256, both sides in one thread: 543 us; `SvidResolver`
//! resolve: 38 ns. (Under load on 2026-11-23: 879 us and 53 ns.)

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, Connection, ServerConnection, SignatureScheme};
use ward_tls::{client_config, server_config, SvidResolver};

/// Moves every pending TLS record from `from` to `to` and lets `to` process them.
fn pump(from: &mut Connection, to: &mut Connection) {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf)
            .expect("writing to a Vec cannot fail");
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        to.read_tls(&mut rd)
            .expect("reading from a slice cannot fail");
        to.process_new_packets().expect("the handshake failed");
    }
}

fn handshakes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let _guard = rt.enter();
    let ca = common::Ca::new("example.org");
    let server_source = common::source(ca.svid("/server"), &[&ca]);
    let client_source = common::source(ca.svid("/client"), &[&ca]);
    let alpn: &[&[u8]] = &[b"h2", b"http/1.1"];
    let server = server_config(&server_source, alpn).expect("server config");
    let client = client_config(&client_source, alpn).expect("client config");
    let name = ServerName::try_from("localhost").expect("a DNS name");

    c.bench_function("mtls_full_handshake_tls13_p256", |b| {
        b.iter(|| {
            let mut cl = Connection::Client(
                ClientConnection::new(client.clone(), name.clone()).expect("client"),
            );
            let mut sv = Connection::Server(ServerConnection::new(server.clone()).expect("server"));
            // A TLS 1.3 mTLS handshake takes two round trips; bound the loop anyway.
            for _ in 0..8 {
                if !cl.is_handshaking() && !sv.is_handshaking() {
                    break;
                }
                pump(&mut cl, &mut sv);
                pump(&mut sv, &mut cl);
            }
            assert!(!cl.is_handshaking() && !sv.is_handshaking());
            black_box((cl, sv))
        })
    });

    let resolver = SvidResolver::new(client_source.clone());
    let schemes = [SignatureScheme::ECDSA_NISTP256_SHA256];
    c.bench_function("svid_resolver_resolve", |b| {
        b.iter(|| black_box(ResolvesClientCert::resolve(&*resolver, &[], &schemes)))
    });
}

criterion_group!(benches, handshakes);
criterion_main!(benches);
