//! The CA and what it issues.
//!
//! One P-256 CA per trust domain issues X509-SVIDs that obey every leaf rule of
//! X509-SVID.md (CHECKLIST section B), and one ES256 key signs JWT-SVIDs. Every SVID
//! is run through ward-spiffe's own validator before it leaves this module, so the
//! authority cannot hand out anything the verifiers on the other side would refuse.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
    SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use ward_spiffe::{
    BundleSet, JwtAuthority, JwtBundle, JwtBundleSet, JwtSvid, SpiffeBundle, SpiffeId, TrustDomain,
    X509Bundle, X509Svid,
};
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

/// File names inside a state directory.
const CA_CERT_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca_key.pem";
const JWT_KEY_FILE: &str = "jwt_key.pem";

/// notBefore is backdated so that a peer whose clock is a little behind ours does not
/// reject a certificate issued a moment ago.
const CLOCK_SKEW: Duration = Duration::from_secs(30);

/// Lifetime of a CA this authority generates. Long, because a state directory keeps it
/// across restarts and every peer's trust hangs on it; SVIDs stay short-lived.
const CA_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The shortest SVID lifetime accepted: rotation happens at half of it.
const MIN_SVID_TTL: Duration = Duration::from_secs(1);

/// Why the authority could not start or issue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// The configuration itself is unusable.
    #[error("invalid authority configuration: {0}")]
    Config(String),
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CA certificate is not usable as a SPIFFE signing certificate.
    #[error("{} is not a usable CA certificate: {reason}", path.display())]
    BadCaCert {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The CA key is unreadable or does not belong to the CA certificate.
    #[error("{} is not a usable CA private key: {reason}", path.display())]
    BadCaKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The JWT signing key in the state directory is unusable.
    #[error("{} is not a usable JWT signing key: {reason}", path.display())]
    BadJwtKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The state directory holds a CA key without its certificate (or the reverse).
    #[error(
        "the state directory {} is incomplete: {} exists but {} does not; restore the \
         missing file or remove the directory to start a new CA",
        dir.display(), found, missing
    )]
    IncompleteState {
        /// The state directory.
        dir: PathBuf,
        /// The file that exists.
        found: &'static str,
        /// The file that is missing.
        missing: &'static str,
    },
    /// A federated bundle file is unusable.
    #[error("federated bundle {} for trust domain {trust_domain} is not usable: {reason}", path.display())]
    Federated {
        /// The federated trust domain.
        trust_domain: TrustDomain,
        /// The bundle file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key or the CA certificate could not be generated.
    #[error("cannot generate the {what}: {reason}")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// An SVID could not be issued for this ID.
    #[error("cannot issue an SVID for {id}: {reason}")]
    Issue {
        /// The SPIFFE ID asked for.
        id: String,
        /// Why not.
        reason: String,
    },
}

/// Where the CA comes from.
#[derive(Debug, Clone)]
pub enum CaSource {
    /// A new key and self-signed certificate, in memory only.
    Generate,
    /// Kept in this directory (`ca.pem`, `ca_key.pem`, mode 0600): created on first
    /// start, loaded afterwards, so restarts keep the same trust.
    StateDir(PathBuf),
    /// An existing CA certificate and PKCS#8 key (PEM files).
    Files {
        /// CA certificate (PEM).
        cert: PathBuf,
        /// CA private key (PEM, PKCS#8).
        key: PathBuf,
    },
}

/// How the authority is set up.
#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    /// The trust domain it issues for.
    pub trust_domain: TrustDomain,
    /// Lifetime of each X509-SVID; rotation happens at half of it.
    pub svid_ttl: Duration,
    /// Lifetime of each JWT-SVID.
    pub jwt_ttl: Duration,
    /// The CA.
    pub ca: CaSource,
    /// Federated trust domains' SPIFFE bundle files.
    pub federated: Vec<(TrustDomain, PathBuf)>,
}

/// A running local authority (cheap to clone).
#[derive(Clone)]
pub struct Authority {
    config: AuthorityConfig,
    inner: Arc<Inner>,
}

struct Inner {
    ca: Ca,
    jwt: JwtSigner,
    own_x509: X509Bundle,
    own_jwt: JwtBundle,
    federated_x509: BundleSet,
    federated_jwt: JwtBundleSet,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys stay out of logs: only what identifies the authority is shown.
        f.debug_struct("Authority")
            .field("trust_domain", &self.config.trust_domain)
            .field("svid_ttl", &self.config.svid_ttl)
            .field("jwt_ttl", &self.config.jwt_ttl)
            .field("jwt_kid", &self.inner.jwt.kid)
            .field("federated", &self.config.federated)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Creates or loads the CA and the JWT signing key, and loads federated bundles.
    pub fn new(config: AuthorityConfig) -> Result<Self, AuthorityError> {
        if config.svid_ttl < MIN_SVID_TTL {
            return Err(AuthorityError::Config(format!(
                "the X509-SVID lifetime must be at least {}s, not {:?}",
                MIN_SVID_TTL.as_secs(),
                config.svid_ttl
            )));
        }
        if config.jwt_ttl < Duration::from_secs(1) {
            return Err(AuthorityError::Config(format!(
                "the JWT-SVID lifetime must be at least 1s, not {:?}",
                config.jwt_ttl
            )));
        }
        let td = &config.trust_domain;
        let (ca, jwt) = match &config.ca {
            CaSource::Generate => (
                Ca::generate(td)?,
                JwtSigner::from_pkcs8(&generate_p256_pkcs8()?, Path::new("(generated)"))?,
            ),
            CaSource::StateDir(dir) => load_or_create_state(dir, td)?,
            CaSource::Files { cert, key } => (
                Ca::load(td, cert, key)?,
                JwtSigner::from_pkcs8(&generate_p256_pkcs8()?, Path::new("(generated)"))?,
            ),
        };
        let own_x509 = X509Bundle::new(td.clone(), vec![ca.cert.clone()]);
        let mut own_jwt = JwtBundle::new(td.clone());
        own_jwt.insert(jwt.authority.clone());
        let (federated_x509, federated_jwt) = load_federated(td, &config.federated)?;
        tracing::info!(
            trust_domain = %td,
            ca_expires = %humanize(ca.not_after),
            jwt_kid = %jwt.kid,
            federated = federated_x509.len(),
            "local SPIFFE authority ready"
        );
        Ok(Self {
            config,
            inner: Arc::new(Inner {
                ca,
                jwt,
                own_x509,
                own_jwt,
                federated_x509,
                federated_jwt,
            }),
        })
    }
    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.config.trust_domain
    }
    /// The configuration the authority was started with.
    pub fn config(&self) -> &AuthorityConfig {
        &self.config
    }
    /// The CA certificate (DER).
    pub fn ca_certificate(&self) -> &CertificateDer<'static> {
        &self.inner.ca.cert
    }
    /// When the CA certificate expires; no SVID outlives it.
    pub fn ca_not_after(&self) -> SystemTime {
        self.inner.ca.not_after
    }
    /// The CA bundle of the authority's own trust domain.
    pub fn x509_bundle(&self) -> X509Bundle {
        self.inner.own_x509.clone()
    }
    /// The X.509 bundles of the federated trust domains only.
    pub fn federated_x509(&self) -> BundleSet {
        self.inner.federated_x509.clone()
    }
    /// The JWT bundles of the federated trust domains only (those whose bundle file
    /// carries JWT authorities).
    pub fn federated_jwt(&self) -> JwtBundleSet {
        self.inner.federated_jwt.clone()
    }
    /// Every X.509 bundle a workload of this trust domain is given: its own and the
    /// federated ones, each kept under its own trust domain.
    pub fn x509_bundles(&self) -> BundleSet {
        let mut set = self.inner.federated_x509.clone();
        set.insert(self.inner.own_x509.clone());
        set
    }
    /// Every JWT bundle: the authority's own and the federated ones.
    pub fn jwt_bundles(&self) -> JwtBundleSet {
        let mut set = self.inner.federated_jwt.clone();
        set.insert(self.inner.own_jwt.clone());
        set
    }
    /// Issues a fresh X509-SVID for `id` (a new key each time).
    pub fn issue_x509_svid(&self, id: &SpiffeId) -> Result<X509Svid, AuthorityError> {
        self.check_issuable(id)?;
        let issue_err = |reason: String| AuthorityError::Issue {
            id: id.to_string(),
            reason,
        };
        let now = SystemTime::now();
        // An SVID never outlives the CA that signs it: a chain with a leaf valid past
        // its issuer is rejected by strict verifiers and misleads rotation.
        let not_after = (now + self.config.svid_ttl).min(self.inner.ca.not_after);
        if not_after <= now {
            return Err(issue_err(format!(
                "the CA certificate expired at {}",
                humanize(self.inner.ca.not_after)
            )));
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| issue_err(format!("key generation failed: {e}")))?;
        let serial = random_serial().map_err(issue_err)?;
        let params = leaf_params(id, &serial, now - CLOCK_SKEW, not_after)
            .map_err(|e| issue_err(format!("bad certificate parameters: {e}")))?;
        let cert = params
            .signed_by(&key, &self.inner.ca.issuer)
            .map_err(|e| issue_err(format!("signing failed: {e}")))?;
        let key_der = PrivatePkcs8KeyDer::from(key.serialize_der());
        // Our own validator checks our own output: an SVID that breaks a SPIFFE rule is
        // an error here, not a handshake failure on some peer later.
        let svid = X509Svid::from_parts(vec![cert.der().clone()], key_der)
            .map_err(|e| issue_err(format!("the issued certificate fails validation: {e}")))?;
        tracing::info!(
            spiffe_id = %id,
            serial = %hex(&serial),
            expires = %humanize(svid.not_after()),
            "issued X509-SVID"
        );
        Ok(svid)
    }
    /// Mints an ES256 JWT-SVID.
    pub fn mint_jwt_svid(
        &self,
        id: &SpiffeId,
        audience: &[String],
    ) -> Result<JwtSvid, AuthorityError> {
        self.check_issuable(id)?;
        let issue_err = |reason: String| AuthorityError::Issue {
            id: id.to_string(),
            reason,
        };
        // JWT-SVID.md §3.2: `aud` MUST hold at least one value.
        let Some(first_audience) = audience.first() else {
            return Err(issue_err("a JWT-SVID needs at least one audience".into()));
        };
        let now = SystemTime::now();
        let iat = unix_seconds(now);
        let exp = unix_seconds(now + self.config.jwt_ttl);
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), id.as_str().into());
        claims.insert("aud".into(), audience.into());
        claims.insert("exp".into(), exp.into());
        claims.insert("iat".into(), iat.into());
        let token = self.inner.jwt.sign(&claims).map_err(issue_err)?;
        let mut own = JwtBundleSet::new();
        own.insert(self.inner.own_jwt.clone());
        // Validated with the same code a relying party runs, against our own bundle.
        let svid = JwtSvid::parse_and_validate(&token, &own, &[first_audience.as_str()], now)
            .map_err(|e| issue_err(format!("the minted token fails validation: {e}")))?;
        tracing::debug!(spiffe_id = %id, audience = ?audience, exp, "minted JWT-SVID");
        Ok(svid)
    }
    /// The JWT bundle of the authority's own trust domain.
    pub fn jwt_bundle(&self) -> JwtBundle {
        self.inner.own_jwt.clone()
    }

    /// Only workload IDs of our own trust domain are issued: a CA must not vouch for
    /// another trust domain (its bundle would not be the one verifiers pick), and a
    /// root ID names a trust domain, never a workload (X509-SVID.md §3.1).
    fn check_issuable(&self, id: &SpiffeId) -> Result<(), AuthorityError> {
        if id.trust_domain_str() != self.config.trust_domain.as_str() {
            return Err(AuthorityError::Issue {
                id: id.to_string(),
                reason: format!(
                    "it is not in this authority's trust domain {}",
                    self.config.trust_domain
                ),
            });
        }
        if id.is_root() {
            return Err(AuthorityError::Issue {
                id: id.to_string(),
                reason: "a workload's SPIFFE ID needs a path".into(),
            });
        }
        Ok(())
    }
}

// === CA ===

/// The signing certificate, its key (inside the rcgen issuer) and its expiry.
struct Ca {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    not_after: SystemTime,
}

impl Ca {
    /// A new self-signed P-256 CA for `td`, valid for [`CA_LIFETIME`].
    fn generate(td: &TrustDomain) -> Result<Self, AuthorityError> {
        let (cert_pem, key_pem) = generate_ca_pem(td)?;
        let generated = Path::new("(generated CA)");
        Self::from_pem(
            td,
            cert_pem.as_bytes(),
            generated,
            key_pem.as_bytes(),
            generated,
        )
    }

    /// Loads and validates a CA certificate and key from PEM files.
    fn load(td: &TrustDomain, cert_path: &Path, key_path: &Path) -> Result<Self, AuthorityError> {
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        Self::from_pem(td, &cert_pem, cert_path, &key_pem, key_path)
    }

    /// Validates that `cert_pem` is a CA certificate that may sign SVIDs and that
    /// `key_pem` is its private key. Generated and loaded CAs go through the same
    /// checks, so a file that works once works after every restart.
    fn from_pem(
        td: &TrustDomain,
        cert_pem: &[u8],
        cert_path: &Path,
        key_pem: &[u8],
        key_path: &Path,
    ) -> Result<Self, AuthorityError> {
        let bad_cert = |reason: String| AuthorityError::BadCaCert {
            path: cert_path.to_owned(),
            reason,
        };
        let bad_key = |reason: String| AuthorityError::BadCaKey {
            path: key_path.to_owned(),
            reason,
        };
        let mut certs = CertificateDer::pem_slice_iter(cert_pem);
        let cert = match certs.next() {
            Some(Ok(cert)) => cert,
            Some(Err(e)) => return Err(bad_cert(format!("the PEM is malformed ({e})"))),
            None => return Err(bad_cert("it holds no CERTIFICATE block".into())),
        };
        if certs.next().is_some() {
            return Err(bad_cert(
                "it holds more than one certificate; give the CA certificate alone".into(),
            ));
        }
        let (_, parsed) = X509Certificate::from_der(&cert)
            .map_err(|e| bad_cert(format!("the certificate does not parse ({e})")))?;
        check_ca_cert(&parsed, td).map_err(bad_cert)?;
        let not_after = system_time(parsed.validity().not_after.timestamp());
        if not_after <= SystemTime::now() {
            return Err(bad_cert(format!("it expired at {}", humanize(not_after))));
        }

        let key_text =
            std::str::from_utf8(key_pem).map_err(|_| bad_key("it is not PEM text".into()))?;
        let key = KeyPair::from_pem(key_text).map_err(|e| {
            bad_key(format!(
                "it is not an unencrypted PKCS#8 PRIVATE KEY that can sign ({e})"
            ))
        })?;
        if rcgen::PublicKeyData::der_bytes(&key)
            != parsed.public_key().subject_public_key.data.as_ref()
        {
            return Err(bad_key(format!(
                "it does not match the public key of the CA certificate {}",
                cert_path.display()
            )));
        }

        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(&parsed).map_err(bad_cert)?;
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // The leaf's authorityKeyIdentifier must equal the CA's subjectKeyIdentifier,
        // whatever method the CA's creator used to compute it; path builders that
        // match on key identifiers (OpenSSL) otherwise fail to find the issuer.
        if let Some(ski) = subject_key_identifier(&parsed) {
            params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
        }
        let cert = cert.into_owned();
        Ok(Self {
            cert,
            issuer: Issuer::new(params, key),
            not_after,
        })
    }
}

/// X509-SVID.md §3.2, §4.1, §4.3: a signing certificate has cA=true and keyCertSign;
/// if it carries a SPIFFE ID, that ID has no path.
fn check_ca_cert(cert: &X509Certificate<'_>, td: &TrustDomain) -> Result<(), String> {
    let is_ca = cert
        .basic_constraints()
        .map_err(|e| format!("its basicConstraints extension is malformed ({e})"))?
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(
            "it is not a CA certificate (basicConstraints cA is not true); an X509-SVID \
             must be signed by a certificate with cA=true"
                .into(),
        );
    }
    let key_usage = cert
        .key_usage()
        .map_err(|e| format!("its keyUsage extension is malformed ({e})"))?;
    match key_usage {
        Some(ku) if ku.value.key_cert_sign() => {}
        Some(_) => {
            return Err("its keyUsage lacks keyCertSign, so it may not sign certificates".into())
        }
        None => {
            return Err(
                "it has no keyUsage extension; a SPIFFE signing certificate needs a critical \
                 keyUsage with keyCertSign"
                    .into(),
            )
        }
    }
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| format!("its subjectAltName extension is malformed ({e})"))?;
    if let Some(sans) = sans {
        for name in &sans.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = name {
                if uri.starts_with("spiffe://") {
                    let id = SpiffeId::new(uri)
                        .map_err(|e| format!("its URI SAN {uri} is not a valid SPIFFE ID ({e})"))?;
                    if !id.is_root() {
                        return Err(format!(
                            "its SPIFFE ID {uri} has a path; a signing certificate's SPIFFE ID \
                             must not (X509-SVID.md §3.2)"
                        ));
                    }
                    // A CA naming another trust domain would sign SVIDs that verifiers
                    // of this trust domain's bundle were never meant to accept.
                    if id.trust_domain_str() != td.as_str() {
                        return Err(format!(
                            "its SPIFFE ID {uri} names another trust domain than {td}, the \
                             one this authority issues for"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The CA's subject, re-encoded attribute by attribute with the same string types, so
/// the issuer name in every leaf is byte-identical to the CA's subject (path building
/// compares names byte for byte).
fn distinguished_name(cert: &X509Certificate<'_>) -> Result<DistinguishedName, String> {
    use x509_parser::der_parser::asn1_rs::Tag;
    let mut dn = DistinguishedName::new();
    for rdn in cert.subject().iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err("its subject has a multi-valued RDN, which is not supported".into());
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or("its subject has an attribute type that does not parse")?
            .collect();
        let data = attr.attr_value().data;
        let text = || {
            std::str::from_utf8(data)
                .map(str::to_owned)
                .map_err(|_| "its subject has a string that is not valid text".to_string())
        };
        let bad = |e: rcgen::Error| format!("its subject has an unusable string ({e})");
        let value = match attr.attr_value().header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?),
            Tag::PrintableString => DnValue::PrintableString(text()?.try_into().map_err(bad)?),
            Tag::Ia5String => DnValue::Ia5String(text()?.try_into().map_err(bad)?),
            Tag::T61String => DnValue::TeletexString(text()?.try_into().map_err(bad)?),
            Tag::BmpString => DnValue::BmpString(
                rcgen::string::BmpString::from_utf16be(data.to_vec()).map_err(bad)?,
            ),
            Tag::UniversalString => DnValue::UniversalString(
                rcgen::string::UniversalString::from_utf32be(data.to_vec()).map_err(bad)?,
            ),
            other => {
                return Err(format!(
                    "its subject has an attribute of unsupported string type {other}"
                ))
            }
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

fn subject_key_identifier(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(ki) => Some(ki.0.to_vec()),
            _ => None,
        })
}

/// A self-signed P-256 CA certificate and key, as PEM.
fn generate_ca_pem(td: &TrustDomain) -> Result<(String, String), AuthorityError> {
    let fail = |reason: String| AuthorityError::Generate {
        what: "CA certificate",
        reason,
    };
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| fail(format!("CA key generation failed: {e}")))?;
    let mut params = CertificateParams::default();
    let now = SystemTime::now();
    params.not_before = (now - CLOCK_SKEW).into();
    params.not_after = (now + CA_LIFETIME).into();
    params.serial_number = Some(SerialNumber::from_slice(&random_serial().map_err(fail)?));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "ward dev authority");
    params.distinguished_name = dn;
    // Path length 0: this CA signs workload leaves directly, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // X509-SVID.md §3.2: a signing certificate may carry the trust domain's own ID,
    // without a path.
    let uri = rcgen::string::Ia5String::try_from(td.id_string())
        .map_err(|e| fail(format!("bad URI SAN: {e}")))?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    let cert = params
        .self_signed(&key)
        .map_err(|e| fail(format!("CA self-signing failed: {e}")))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The parameters of a workload leaf (X509-SVID.md §2-§4, CHECKLIST B.12-B.18).
fn leaf_params(
    id: &SpiffeId,
    serial: &[u8],
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::default();
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    params.serial_number = Some(SerialNumber::from_slice(serial));
    // A non-empty subject, so the URI SAN may stay non-critical (§3.1 only demands a
    // critical SAN when the subject is empty).
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "SPIFFE");
    params.distinguished_name = dn;
    // §2: exactly one URI SAN, the SPIFFE ID.
    params.subject_alt_names = vec![SanType::URI(rcgen::string::Ia5String::try_from(
        id.as_str(),
    )?)];
    // §4.1: cA=false, stated explicitly (basicConstraints is written, critical).
    params.is_ca = IsCa::ExplicitNoCa;
    // §4.3: critical keyUsage, digitalSignature only; never keyCertSign or cRLSign.
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // §4.4: EKU with both serverAuth and clientAuth, so one SVID serves both ends.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// 16 random bytes with the top bit clear: a positive serial that fits RFC 5280's 20
/// octets and cannot be predicted (serials are the old collision-attack lever).
fn random_serial() -> Result<Vec<u8>, String> {
    let mut serial = vec![0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| "the random generator failed".to_string())?;
    serial[0] &= 0x7f;
    // A leading zero byte would be dropped from the DER INTEGER; keep 16 bytes.
    serial[0] |= 0x01;
    Ok(serial)
}

// === JWT ===

/// The ES256 signing key and its key ID.
struct JwtSigner {
    key: EcdsaKeyPair,
    kid: String,
    authority: JwtAuthority,
}

impl JwtSigner {
    fn from_pkcs8(pkcs8: &[u8], path: &Path) -> Result<Self, AuthorityError> {
        let bad = |reason: String| AuthorityError::BadJwtKey {
            path: path.to_owned(),
            reason,
        };
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map_err(|e| bad(format!("it is not a P-256 PKCS#8 private key ({e})")))?;
        let spki = key
            .public_key()
            .as_der()
            .map_err(|_| bad("its public key cannot be encoded".into()))?;
        // The key ID is derived from the key itself, so a restart with the same key
        // publishes the same `kid` and tokens minted before it still validate.
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki.as_ref());
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
        let authority =
            JwtAuthority::ec_p256(kid.clone(), key.public_key().as_ref()).map_err(|e| {
                bad(format!(
                    "its public key is not a usable JWT authority ({e})"
                ))
            })?;
        Ok(Self {
            key,
            kid,
            authority,
        })
    }

    /// A compact JWS with only the headers JWT-SVID.md §2 allows: alg, kid, typ.
    fn sign(&self, claims: &serde_json::Map<String, serde_json::Value>) -> Result<String, String> {
        ward_spiffe::jwt::sign_es256(&self.key, &self.kid, claims)
            .map_err(|e| format!("ES256 signing failed: {e}"))
    }
}

fn generate_p256_pkcs8() -> Result<Vec<u8>, AuthorityError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map(|k| k.serialize_der())
        .map_err(|e| AuthorityError::Generate {
            what: "JWT signing key",
            reason: e.to_string(),
        })
}

// === State directory ===

/// Loads the CA and JWT key from `dir`, creating whichever is missing.
fn load_or_create_state(dir: &Path, td: &TrustDomain) -> Result<(Ca, JwtSigner), AuthorityError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| AuthorityError::Write {
            path: dir.to_owned(),
            source,
        })?;
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let ca = match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            warn_if_readable_by_others(&key_path);
            Ca::load(td, &cert_path, &key_path)?
        }
        (true, false) => {
            return Err(AuthorityError::IncompleteState {
                dir: dir.to_owned(),
                found: CA_CERT_FILE,
                missing: CA_KEY_FILE,
            })
        }
        (false, true) => {
            return Err(AuthorityError::IncompleteState {
                dir: dir.to_owned(),
                found: CA_KEY_FILE,
                missing: CA_CERT_FILE,
            })
        }
        (false, false) => {
            let (cert_pem, key_pem) = generate_ca_pem(td)?;
            // Key first: a crash between the two writes leaves a key without a
            // certificate, which is reported, never a certificate without its key.
            write_private(&key_path, key_pem.as_bytes())?;
            write_private(&cert_path, cert_pem.as_bytes())?;
            tracing::info!(dir = %dir.display(), "created a new CA in the state directory");
            Ca::from_pem(
                td,
                cert_pem.as_bytes(),
                &cert_path,
                key_pem.as_bytes(),
                &key_path,
            )?
        }
    };
    let jwt_path = dir.join(JWT_KEY_FILE);
    let jwt = if jwt_path.exists() {
        warn_if_readable_by_others(&jwt_path);
        let pem = read(&jwt_path)?;
        let der =
            PrivatePkcs8KeyDer::from_pem_slice(&pem).map_err(|e| AuthorityError::BadJwtKey {
                path: jwt_path.clone(),
                reason: format!("it holds no PKCS#8 PRIVATE KEY block ({e})"),
            })?;
        JwtSigner::from_pkcs8(der.secret_pkcs8_der(), &jwt_path)?
    } else {
        let der = generate_p256_pkcs8()?;
        let pem = pem_encode("PRIVATE KEY", &der);
        write_private(&jwt_path, pem.as_bytes())?;
        JwtSigner::from_pkcs8(&der, &jwt_path)?
    };
    Ok((ca, jwt))
}

/// Writes a file readable by its owner only, atomically: a temporary file in the same
/// directory, synced, then renamed over the target, so a crash never leaves half a key.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), AuthorityError> {
    let werr = |source| AuthorityError::Write {
        path: path.to_owned(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(werr)?;
    // A leftover temporary file keeps its old mode on open; force 0600 before writing.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(werr)?;
    file.write_all(contents).map_err(werr)?;
    file.sync_all().map_err(werr)?;
    drop(file);
    fs::rename(&tmp, path).map_err(werr)
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "a private key is readable by other users; chmod 600 it"
            );
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, AuthorityError> {
    fs::read(path).map_err(|source| AuthorityError::Read {
        path: path.to_owned(),
        source,
    })
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

// === Federated bundles ===

/// Loads each federated trust domain's bundle: a SPIFFE bundle document (JSON), or a
/// PEM file of CA certificates for convenience. Each stays under its own trust domain
/// (SPIFFE_Federation.md: bundles of different trust domains are never merged).
fn load_federated(
    own: &TrustDomain,
    federated: &[(TrustDomain, PathBuf)],
) -> Result<(BundleSet, JwtBundleSet), AuthorityError> {
    let mut x509 = BundleSet::new();
    let mut jwt = JwtBundleSet::new();
    for (td, path) in federated {
        let fail = |reason: String| AuthorityError::Federated {
            trust_domain: td.clone(),
            path: path.clone(),
            reason,
        };
        if td == own {
            return Err(fail(
                "it is the authority's own trust domain, whose bundle is its CA".into(),
            ));
        }
        if x509.get(td).is_some() {
            return Err(fail(
                "this trust domain is given more than one bundle".into(),
            ));
        }
        let bytes = read(path)?;
        let is_json = bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{');
        if is_json {
            let bundle = SpiffeBundle::parse(td.clone(), &bytes)
                .map_err(|e| fail(format!("it is not a valid SPIFFE bundle document ({e})")))?;
            if bundle.x509.authorities().is_empty() {
                return Err(fail(
                    "it holds no x509-svid authority, so no peer of that trust domain could \
                     be verified"
                        .into(),
                ));
            }
            x509.insert(bundle.x509);
            if bundle.jwt.authorities().next().is_some() {
                jwt.insert(bundle.jwt);
            }
        } else {
            let bundle = X509Bundle::parse_pem(td.clone(), &bytes).map_err(|e| {
                fail(format!(
                    "it is neither a SPIFFE bundle document (JSON) nor PEM CA certificates ({e})"
                ))
            })?;
            x509.insert(bundle);
        }
        tracing::info!(trust_domain = %td, file = %path.display(), "loaded federated bundle");
    }
    Ok((x509, jwt))
}

// === small helpers ===

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn system_time(unix: i64) -> SystemTime {
    match u64::try_from(unix) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH,
    }
}

fn humanize(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Lowercase hex, colon-free (as `openssl x509 -serial` prints it).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
