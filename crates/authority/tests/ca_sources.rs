//! Where the CA comes from: a state directory that survives restarts, or existing
//! files that must really be a CA.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls_pki_types::UnixTime;
use ward_authority::{Authority, AuthorityConfig, CaSource};
use ward_spiffe::{BundleSet, JwtBundleSet, JwtSvid, SpiffeId, TrustDomain};

fn config(ca: CaSource) -> AuthorityConfig {
    AuthorityConfig {
        trust_domain: TrustDomain::new("example.org").unwrap(),
        svid_ttl: Duration::from_secs(3600),
        jwt_ttl: Duration::from_secs(300),
        ca,
        federated: Vec::new(),
    }
}

fn web() -> SpiffeId {
    SpiffeId::new("spiffe://example.org/web").unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Writes a certificate (self-signed with `params`) and its key as PEM files.
fn write_cert(
    dir: &Path,
    name: &str,
    params: &CertificateParams,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}_key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "operator CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

#[test]
fn state_dir_restart_keeps_the_same_ca_and_jwt_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let first = Authority::new(config(CaSource::StateDir(dir.clone()))).unwrap();
    let token = first.mint_jwt_svid(&web(), &["api".into()]).unwrap();
    let svid = first.issue_x509_svid(&web()).unwrap();
    let first_ca = first.ca_certificate().clone();
    let first_kid = first
        .jwt_bundle()
        .authorities()
        .next()
        .unwrap()
        .key_id()
        .to_owned();
    drop(first);

    let second = Authority::new(config(CaSource::StateDir(dir.clone()))).unwrap();
    assert_eq!(second.ca_certificate(), &first_ca);
    assert_eq!(second.x509_bundle().authorities(), &[svid_ca(&dir)]);
    assert!(second.jwt_bundle().get(&first_kid).is_some());
    // An SVID issued before the restart still verifies against the bundle after it.
    let mut bundles = BundleSet::new();
    bundles.insert(second.x509_bundle());
    ward_spiffe::verify_chain(svid.chain(), &bundles, UnixTime::now()).unwrap();
    // And so does a JWT-SVID minted before it (same key, same kid).
    let mut jwt = JwtBundleSet::new();
    jwt.insert(second.jwt_bundle());
    JwtSvid::parse_and_validate(token.token(), &jwt, &["api"], std::time::SystemTime::now())
        .unwrap();
}

fn svid_ca(dir: &Path) -> rustls_pki_types::CertificateDer<'static> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap()
}

#[test]
fn state_dir_and_its_keys_are_private_to_the_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    Authority::new(config(CaSource::StateDir(dir.clone()))).unwrap();
    assert_eq!(mode(&dir), 0o700);
    for file in ["ca.pem", "ca_key.pem", "jwt_key.pem"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    // Write-then-rename leaves no temporary files behind.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["ca.pem", "ca_key.pem", "jwt_key.pem"]);
}

#[test]
fn state_dir_with_a_certificate_but_no_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    Authority::new(config(CaSource::StateDir(dir.clone()))).unwrap();
    std::fs::remove_file(dir.join("ca_key.pem")).unwrap();
    let err = Authority::new(config(CaSource::StateDir(dir.clone())))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ca_key.pem") && err.contains("incomplete"),
        "{err}"
    );
}

#[test]
fn state_dir_with_a_corrupt_jwt_key_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    Authority::new(config(CaSource::StateDir(dir.clone()))).unwrap();
    std::fs::write(dir.join("jwt_key.pem"), "not a key").unwrap();
    let err = Authority::new(config(CaSource::StateDir(dir.clone())))
        .unwrap_err()
        .to_string();
    assert!(err.contains("jwt_key.pem"), "{err}");
}

#[test]
fn ca_from_files_issues_svids_that_chain_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = write_cert(tmp.path(), "ca", &ca_params());
    let a = Authority::new(config(CaSource::Files {
        cert: cert.clone(),
        key,
    }))
    .unwrap();
    assert_eq!(a.ca_certificate(), &svid_ca_file(&cert));
    let svid = a.issue_x509_svid(&web()).unwrap();
    assert_eq!(ward_spiffe::x509::check_leaf(svid.leaf()), vec![]);
    // The leaf's authorityKeyIdentifier is the CA's own subjectKeyIdentifier.
    let ski = key_id(a.ca_certificate(), true);
    assert!(ski.is_some());
    assert_eq!(key_id(svid.leaf(), false), ski);
    let mut bundles = BundleSet::new();
    bundles.insert(a.x509_bundle());
    ward_spiffe::verify_chain(svid.chain(), &bundles, UnixTime::now()).unwrap();
}

fn key_id(der: &[u8], subject: bool) -> Option<Vec<u8>> {
    use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) if subject => Some(k.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(a) if !subject => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

fn svid_ca_file(path: &Path) -> rustls_pki_types::CertificateDer<'static> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(path).unwrap()
}

#[test]
fn non_ca_certificate_as_ca_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let (cert, key) = write_cert(tmp.path(), "leaf", &params);
    let err = Authority::new(config(CaSource::Files {
        cert: cert.clone(),
        key,
    }))
    .unwrap_err()
    .to_string();
    assert!(err.contains(&cert.display().to_string()), "{err}");
    assert!(err.contains("not a CA certificate"), "{err}");
}

#[test]
fn ca_without_key_cert_sign_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut params = ca_params();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let (cert, key) = write_cert(tmp.path(), "ca", &params);
    let err = Authority::new(config(CaSource::Files { cert, key }))
        .unwrap_err()
        .to_string();
    assert!(err.contains("keyCertSign"), "{err}");
}

#[test]
fn ca_key_that_does_not_match_the_certificate_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, _) = write_cert(tmp.path(), "ca", &ca_params());
    let (_, other_key) = write_cert(tmp.path(), "other", &ca_params());
    let err = Authority::new(config(CaSource::Files {
        cert,
        key: other_key.clone(),
    }))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&other_key.display().to_string()) && err.contains("does not match"),
        "{err}"
    );
}

#[test]
fn missing_ca_file_is_reported_with_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let cert = tmp.path().join("nope.pem");
    let err = Authority::new(config(CaSource::Files {
        cert: cert.clone(),
        key: cert.clone(),
    }))
    .unwrap_err()
    .to_string();
    assert!(err.contains("nope.pem"), "{err}");
}

#[test]
fn ca_of_another_trust_domain_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut params = ca_params();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        rcgen::string::Ia5String::try_from("spiffe://other.org").unwrap(),
    )];
    let (cert, key) = write_cert(tmp.path(), "ca", &params);
    let err = Authority::new(config(CaSource::Files { cert, key }))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spiffe://other.org") && err.contains("example.org"),
        "{err}"
    );
}

#[test]
fn state_dir_ca_is_checked_like_any_ca_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    Authority::new(config(CaSource::StateDir(dir.clone()))).unwrap();
    // Started again for another trust domain, the stored CA (spiffe://example.org) is
    // refused instead of silently issuing for a trust domain it does not name.
    let mut other = config(CaSource::StateDir(dir.clone()));
    other.trust_domain = TrustDomain::new("other.org").unwrap();
    let err = Authority::new(other).unwrap_err().to_string();
    assert!(err.contains("ca.pem") && err.contains("other.org"), "{err}");
}

#[test]
fn expired_ca_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut params = ca_params();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let (cert, key) = write_cert(tmp.path(), "old_ca", &params);
    let err = Authority::new(config(CaSource::Files { cert, key }))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("old_ca.pem") && err.contains("expired at 2021-01-01"),
        "{err}"
    );
}
