//! Test fixtures: rcgen-made SPIFFE CAs and SVIDs, sources, and a TLS echo server on
//! 127.0.0.1. Every wait is bounded.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, ServerConfig};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{client, TlsAcceptor, TlsConnector};
use ward_spiffe::{BundleSet, SpiffeId, TrustDomain, X509Bundle, X509Svid};
use ward_tls::{crypto_provider, SpiffeVerifier};
use ward_workload::{X509Context, X509Source};

/// Upper bound on any single network step of a test.
pub const STEP: Duration = Duration::from_secs(5);

/// A SPIFFE signing CA for one trust domain.
pub struct Ca {
    pub td: TrustDomain,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    /// A self-signed root: cA=true, keyCertSign + cRLSign, URI SAN of the trust domain.
    pub fn new(td: &str) -> Self {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{td} test CA"));
        params.subject_alt_names = vec![SanType::URI(format!("spiffe://{td}").try_into().unwrap())];
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        Self {
            td: TrustDomain::new(td).unwrap(),
            issuer: CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    /// The CA certificate.
    pub fn cert(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// The CA certificate as PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The bundle holding this CA.
    pub fn bundle(&self) -> X509Bundle {
        X509Bundle::new(self.td.clone(), vec![self.cert()])
    }

    /// Issues a leaf as described by `spec`; the chain is the leaf alone.
    pub fn issue(&self, spec: &Leaf) -> Issued {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = spec.params().signed_by(&key, &self.issuer).unwrap();
        Issued {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A valid X509-SVID for `id` (a path in this CA's trust domain).
    pub fn svid(&self, path: &str) -> X509Svid {
        self.issue(&Leaf::svid(&format!("spiffe://{}{path}", self.td)))
            .svid()
    }
}

/// What a leaf certificate looks like.
#[derive(Clone)]
pub struct Leaf {
    pub uris: Vec<String>,
    pub dns: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub is_ca: bool,
    pub serial: u64,
}

impl Leaf {
    /// A well-formed SVID leaf valid from an hour ago to an hour from now.
    pub fn svid(id: &str) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            uris: vec![id.to_owned()],
            dns: Vec::new(),
            not_before: now - time::Duration::hours(1),
            not_after: now + time::Duration::hours(1),
            is_ca: false,
            serial: unique_serial(),
        }
    }

    fn params(&self) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.not_before = self.not_before;
        params.not_after = self.not_after;
        params.serial_number = Some(SerialNumber::from(self.serial));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "test workload");
        params.subject_alt_names = self
            .uris
            .iter()
            .map(|u| SanType::URI(u.clone().try_into().unwrap()))
            .chain(
                self.dns
                    .iter()
                    .map(|d| SanType::DnsName(d.clone().try_into().unwrap())),
            )
            .collect();
        if self.is_ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
            ];
        } else {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params
    }
}

/// A serial that differs between leaves (the current time in nanoseconds).
fn unique_serial() -> u64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    (nanos as u64) | 1
}

/// A leaf certificate chain and its key.
pub struct Issued {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivatePkcs8KeyDer<'static>,
    pub chain_pem: String,
    pub key_pem: String,
}

impl Issued {
    /// As an X509-SVID (panics when it is not one).
    pub fn svid(&self) -> X509Svid {
        X509Svid::from_parts(self.chain.clone(), self.key.clone_key()).unwrap()
    }
    /// The key for rustls.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// A source holding `svid` and the bundles of `cas`.
pub fn source(svid: X509Svid, cas: &[&Ca]) -> X509Source {
    X509Source::from_context(context(svid, cas))
}

/// A context holding `svid` and the bundles of `cas`.
pub fn context(svid: X509Svid, cas: &[&Ca]) -> X509Context {
    let mut bundles = BundleSet::new();
    for ca in cas {
        bundles.insert(ca.bundle());
    }
    X509Context {
        svids: vec![svid],
        bundles,
    }
}

/// What the server saw of one accepted connection.
#[derive(Debug)]
pub struct Accepted {
    pub peer: Option<SpiffeId>,
    pub alpn: Option<Vec<u8>>,
    pub kind: Option<HandshakeKind>,
}

/// A TLS echo server on 127.0.0.1 that reports each handshake's outcome.
pub struct Server {
    pub addr: SocketAddr,
    results: mpsc::UnboundedReceiver<Result<Accepted, io::Error>>,
}

impl Server {
    /// Binds and serves up to 32 connections with `config`.
    pub async fn start(config: Arc<ServerConfig>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, results) = mpsc::unbounded_channel();
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            for _ in 0..32 {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(STEP, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(err)) => {
                            let _ = tx.send(Err(err));
                            return;
                        }
                        Err(_) => {
                            let _ = tx.send(Err(io::Error::other("accept timed out")));
                            return;
                        }
                    };
                    let (_, conn) = tls.get_ref();
                    let _ = tx.send(Ok(Accepted {
                        peer: ward_tls::peer_id(conn),
                        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                        kind: conn.handshake_kind(),
                    }));
                    echo(tls).await;
                });
            }
        });
        Self { addr, results }
    }

    /// The outcome of the next handshake.
    pub async fn next(&mut self) -> Result<Accepted, io::Error> {
        tokio::time::timeout(STEP, self.results.recv())
            .await
            .expect("the server reported no handshake in time")
            .expect("the server stopped")
    }
}

async fn echo(mut tls: tokio_rustls::server::TlsStream<TcpStream>) {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(n)) => {
                if tls.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Connects and completes the client side of the handshake.
pub async fn connect(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    server_name: &str,
) -> io::Result<client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    tokio::time::timeout(STEP, TlsConnector::from(config).connect(name, tcp))
        .await
        .map_err(|_| io::Error::other("connect timed out"))?
}

/// Writes a message and reads it back: proves both sides accepted the handshake.
pub async fn round_trip(tls: &mut client::TlsStream<TcpStream>) -> io::Result<()> {
    let msg = b"ping";
    tls.write_all(msg).await?;
    let mut back = [0u8; 4];
    tokio::time::timeout(STEP, tls.read_exact(&mut back))
        .await
        .map_err(|_| io::Error::other("echo timed out"))??;
    assert_eq!(&back, msg);
    Ok(())
}

/// The rustls error inside an I/O error from tokio-rustls.
pub fn tls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

/// A client presenting a fixed chain (or none), verifying the server with our verifier.
pub fn fixed_client(trust: &X509Source, identity: Option<&Issued>) -> Arc<ClientConfig> {
    fixed_client_with(trust, identity, rustls::ALL_VERSIONS)
}

/// [`fixed_client`] restricted to `versions`.
pub fn fixed_client_with(
    trust: &X509Source,
    identity: Option<&Issued>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(SpiffeVerifier::new(trust.clone()));
    Arc::new(match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key_der())
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

/// A server presenting a fixed chain, verifying clients with our verifier.
pub fn fixed_server(trust: &X509Source, identity: &Issued) -> Arc<ServerConfig> {
    Arc::new(
        ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .unwrap()
            .with_client_cert_verifier(SpiffeVerifier::new(trust.clone()))
            .with_single_cert(identity.chain.clone(), identity.key_der())
            .unwrap(),
    )
}
