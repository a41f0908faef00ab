//! Shared test helpers: real certificates built with rcgen (aws-lc-rs backend), and the
//! conformance files of tests/data.
#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use time::{Duration, OffsetDateTime};

/// Reads a file of tests/data.
pub fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Reads and parses a JSON file of tests/data.
pub fn json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// "Now" as the certificates below see it.
pub fn now() -> UnixTime {
    UnixTime::now()
}

/// `now` shifted by whole seconds.
pub fn at(offset_secs: i64) -> UnixTime {
    let now = UnixTime::now().as_secs() as i64;
    UnixTime::since_unix_epoch(std::time::Duration::from_secs((now + offset_secs) as u64))
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().expect("IA5 URI"))
}

/// A CA (root or intermediate) that can issue certificates.
pub struct Ca {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub der: CertificateDer<'static>,
}

/// Parameters of a conforming signing certificate for `td` (B.14-B.17).
pub fn ca_params(td: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, format!("ward test CA {td}"));
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.subject_alt_names = vec![uri(&format!("spiffe://{td}"))];
    p.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    p.not_after = OffsetDateTime::now_utc() + Duration::days(1);
    p
}

/// Parameters of a conforming X509-SVID leaf (B.12-B.18).
pub fn leaf_params(id: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "ward test workload");
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyAgreement,
    ];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.subject_alt_names = vec![uri(id)];
    p.not_before = OffsetDateTime::now_utc() - Duration::minutes(5);
    p.not_after = OffsetDateTime::now_utc() + Duration::hours(1);
    p
}

/// A P-256 key pair.
pub fn key() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key")
}

impl Ca {
    /// A self-signed root for `td`.
    pub fn root(td: &str) -> Self {
        Self::self_signed(ca_params(td))
    }
    /// A self-signed CA from any parameters.
    pub fn self_signed(params: CertificateParams) -> Self {
        let key = key();
        let der = params.self_signed(&key).expect("self-signed").der().clone();
        Self { params, key, der }
    }
    /// An intermediate CA for `td` signed by this one.
    pub fn intermediate(&self, td: &str) -> Self {
        let params = ca_params(td);
        let key = key();
        let der = self.sign(&params, &key);
        Self { params, key, der }
    }
    /// Signs `params` for `key`.
    pub fn sign(&self, params: &CertificateParams, key: &KeyPair) -> CertificateDer<'static> {
        let issuer = Issuer::from_params(&self.params, &self.key);
        params
            .signed_by(key, &issuer)
            .expect("signed")
            .der()
            .clone()
    }
    /// A leaf (DER, PKCS#8 key DER) from these parameters.
    pub fn leaf(&self, params: &CertificateParams) -> (CertificateDer<'static>, Vec<u8>) {
        let key = key();
        (self.sign(params, &key), key.serialize_der())
    }
}

/// A custom extension (non-critical unless `critical`) for breaking one rule.
pub fn extension(oid: &[u64], content: Vec<u8>, critical: bool) -> CustomExtension {
    let mut e = CustomExtension::from_oid_content(oid, content);
    e.set_criticality(critical);
    e
}

/// The DER of a subjectAltName holding one URI.
pub fn san_uri_der(uri: &str) -> Vec<u8> {
    let mut inner = vec![0x86, uri.len() as u8];
    inner.extend_from_slice(uri.as_bytes());
    let mut out = vec![0x30, inner.len() as u8];
    out.extend(inner);
    out
}

pub const OID_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
pub const OID_SAN: &[u64] = &[2, 5, 29, 17];
