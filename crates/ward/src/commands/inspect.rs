//! `ward inspect FILE.pem [--key FILE] [--bundle FILE] [--at TIME] [--json]`: a
//! SPIFFE-aware certificate check.
//!
//! Every certificate of the chain is described (SPIFFE ID, subject, serial, validity,
//! key type) and checked against the X509-SVID rules of the SPIFFE standard: the first
//! as a leaf, the rest as signing certificates. Each broken rule is printed with its
//! CHECKLIST id. With `--key` the private key must match the leaf; with `--bundle` the
//! chain must verify against the bundle of the leaf's own trust domain.
//!
//! Exit status: 0 for a valid X509-SVID, 1 for anything else, 2 when an input file
//! cannot be read (the error names it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, UnixTime};
use serde_json::json;
use ward_spiffe::x509::{check_leaf, check_signing_cert, spiffe_id_of_cert};
use ward_spiffe::{verify_chain, BundleSet, SpiffeBundle, TrustDomain, Violation, X509Bundle};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::CmdResult;

/// Arguments of `ward inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The certificate chain to check (PEM, leaf first; may also hold the PKCS#8 key).
    #[arg(value_name = "FILE.pem")]
    file: PathBuf,
    /// The private key (PEM, PKCS#8): checked to match the leaf.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// A trust bundle (PEM CA certificates, or a SPIFFE bundle JSON document) for the
    /// leaf's trust domain: the chain must verify against it.
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    /// Judge validity at this time (RFC 3339, e.g. 2024-01-01T00:00:00Z) instead of now.
    #[arg(long, value_name = "TIME", value_parser = humantime::parse_rfc3339_weak)]
    at: Option<SystemTime>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Why an input could not be read at all (exit status 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not PEM or holds no block of the kind needed.
    #[error("{path} holds no PEM {what} block")]
    NoPem {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        what: &'static str,
    },
    /// The PEM text is malformed.
    #[error("{path} is not valid PEM: {detail}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        detail: String,
    },
}

/// What was found about one certificate of the chain.
#[derive(Debug)]
struct CertReport {
    role: &'static str,
    spiffe_id: Option<String>,
    uri_sans: Vec<String>,
    subject: String,
    issuer: String,
    serial: String,
    not_before: Option<SystemTime>,
    not_after: Option<SystemTime>,
    validity: &'static str,
    key_type: String,
    violations: Vec<Violation>,
}

/// Outcome of an optional check (`--key`, `--bundle`): passed, with a description.
#[derive(Debug)]
struct Check {
    ok: bool,
    message: String,
}

/// Runs `ward inspect`.
pub fn main(args: Args) -> CmdResult {
    let now = args.at.unwrap_or_else(SystemTime::now);
    let pem = read(&args.file)?;
    let (chain, embedded_key) = split_pem(&args.file, &pem)?;
    let certs: Vec<CertReport> = chain
        .iter()
        .enumerate()
        .map(|(i, der)| describe(i, der, now))
        .collect();

    let key_der = match &args.key {
        Some(path) => Some(read_key(path)?),
        None => embedded_key,
    };
    let key_check = key_der.map(|key| check_key(&chain[0], &key));
    let chain_check = match &args.bundle {
        Some(path) => Some(check_bundle(&chain, path, now)?),
        None => None,
    };

    let problems = certs
        .iter()
        .map(|c| c.violations.len() + usize::from(c.validity != "valid"))
        .sum::<usize>()
        + usize::from(key_check.as_ref().is_some_and(|c| !c.ok))
        + usize::from(chain_check.as_ref().is_some_and(|c| !c.ok));

    if args.json {
        print_json(
            &args.file,
            &certs,
            key_check.as_ref(),
            chain_check.as_ref(),
            problems,
        );
    } else {
        print_text(&certs, key_check.as_ref(), chain_check.as_ref(), problems);
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

// === reading ===

fn read(path: &Path) -> Result<Vec<u8>, InspectError> {
    std::fs::read(path).map_err(|source| InspectError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The certificates of a PEM file (leaf first) and its PKCS#8 key, if it carries one.
fn split_pem(
    path: &Path,
    pem: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, Option<Vec<u8>>), InspectError> {
    let mut certs = Vec::new();
    let mut key = None;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        let (kind, der) = section.map_err(|e| InspectError::BadPem {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        match kind {
            SectionKind::Certificate => certs.push(CertificateDer::from(der)),
            SectionKind::PrivateKey if key.is_none() => key = Some(der),
            _ => {}
        }
    }
    if certs.is_empty() {
        return Err(InspectError::NoPem {
            path: path.to_owned(),
            what: "CERTIFICATE",
        });
    }
    Ok((certs, key))
}

fn read_key(path: &Path) -> Result<Vec<u8>, InspectError> {
    let pem = read(path)?;
    let mut other = None;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(&pem) {
        let (kind, der) = section.map_err(|e| InspectError::BadPem {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        match kind {
            SectionKind::PrivateKey => return Ok(der),
            SectionKind::EcPrivateKey | SectionKind::RsaPrivateKey => other = Some(kind),
            _ => {}
        }
    }
    Err(InspectError::NoPem {
        path: path.to_owned(),
        what: match other {
            // The Workload API carries PKCS#8 only (CHECKLIST E.48); say so plainly.
            Some(_) => "PRIVATE KEY (PKCS#8; the file has a SEC1/PKCS#1 key: convert it with `openssl pkcs8 -topk8 -nocrypt`)",
            None => "PRIVATE KEY",
        },
    })
}

// === describing one certificate ===

fn describe(index: usize, der: &CertificateDer<'_>, now: SystemTime) -> CertReport {
    let role = if index == 0 {
        "leaf"
    } else {
        "signing certificate"
    };
    // The SPIFFE rules first: they report even on certificates x509-parser rejects.
    let violations = if index == 0 {
        check_leaf(der)
    } else {
        check_signing_cert(der)
    };
    let spiffe_id = if index == 0 {
        spiffe_id_of_cert(der).ok().map(|id| id.to_string())
    } else {
        None
    };
    let mut report = CertReport {
        role,
        spiffe_id,
        uri_sans: Vec::new(),
        subject: String::new(),
        issuer: String::new(),
        serial: String::new(),
        not_before: None,
        not_after: None,
        validity: "unparsable",
        key_type: String::new(),
        violations,
    };
    let cert = match X509Certificate::from_der(der) {
        Ok((_, cert)) => cert,
        Err(e) => {
            if report.violations.is_empty() {
                report.violations.push(Violation {
                    rule: "X.509",
                    message: format!("the certificate is not valid DER X.509: {e}"),
                });
            }
            return report;
        }
    };
    report.subject = cert.subject().to_string();
    report.issuer = cert.issuer().to_string();
    report.serial = cert.raw_serial_as_string();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name {
                report.uri_sans.push((*uri).to_owned());
            }
        }
    }
    let not_before = to_system_time(cert.validity().not_before.timestamp());
    let not_after = to_system_time(cert.validity().not_after.timestamp());
    report.validity = if now < not_before {
        "not yet valid"
    } else if now >= not_after {
        "expired"
    } else {
        "valid"
    };
    report.not_before = Some(not_before);
    report.not_after = Some(not_after);
    report.key_type = key_type(&cert);
    report
}

fn to_system_time(unix: i64) -> SystemTime {
    match u64::try_from(unix) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs()),
    }
}

fn key_type(cert: &X509Certificate<'_>) -> String {
    use x509_parser::oid_registry::{
        OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
        OID_SIG_ED25519,
    };
    let spki = cert.public_key();
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == OID_EC_P256 => "ECDSA P-256".to_owned(),
            Some(c) if c == OID_NIST_EC_P384 => "ECDSA P-384".to_owned(),
            Some(c) => format!("ECDSA (curve {c})"),
            None => "ECDSA (no curve)".to_owned(),
        }
    } else if *alg == OID_PKCS1_RSAENCRYPTION {
        match spki.parsed() {
            Ok(key) => format!("RSA {}", key.key_size()),
            Err(_) => "RSA (unparsable)".to_owned(),
        }
    } else if *alg == OID_SIG_ED25519 {
        "Ed25519".to_owned()
    } else {
        format!("unknown ({alg})")
    }
}

// === --key and --bundle ===

/// The key matches when its public half equals the leaf's subjectPublicKey bits.
fn check_key(leaf: &CertificateDer<'_>, pkcs8: &[u8]) -> Check {
    use aws_lc_rs::signature::{
        EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING,
        ECDSA_P384_SHA384_ASN1_SIGNING,
    };
    let public: Option<Vec<u8>> = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8)
        .map(|k| k.public_key().as_ref().to_vec())
        .or_else(|_| {
            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8)
                .map(|k| k.public_key().as_ref().to_vec())
        })
        .or_else(|_| RsaKeyPair::from_pkcs8(pkcs8).map(|k| k.public_key().as_ref().to_vec()))
        .or_else(|_| {
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
                .map(|k| k.public_key().as_ref().to_vec())
        })
        .ok();
    let Some(public) = public else {
        return Check {
            ok: false,
            message: "the key is not a PKCS#8 ECDSA (P-256/P-384), RSA or Ed25519 private key"
                .to_owned(),
        };
    };
    let leaf_key = X509Certificate::from_der(leaf)
        .ok()
        .map(|(_, c)| c.public_key().subject_public_key.data.to_vec());
    if leaf_key.as_deref() == Some(public.as_slice()) {
        Check {
            ok: true,
            message: "the private key matches the leaf".to_owned(),
        }
    } else {
        Check {
            ok: false,
            message: "the private key does not match the leaf's public key".to_owned(),
        }
    }
}

/// Verifies the chain against the bundle file, read as the bundle of the leaf's own
/// trust domain (X509-SVID.md §5.1: never a bundle of another domain).
fn check_bundle(
    chain: &[CertificateDer<'static>],
    path: &Path,
    now: SystemTime,
) -> Result<Check, InspectError> {
    let text = read(path)?;
    let td: Option<TrustDomain> = spiffe_id_of_cert(&chain[0])
        .ok()
        .map(|id| id.trust_domain());
    let Some(td) = td else {
        return Ok(Check {
            ok: false,
            message: "chain not verified: the leaf has no SPIFFE ID, so no trust domain to pick a bundle for".to_owned(),
        });
    };
    let is_json = text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let bundle = if is_json {
        SpiffeBundle::parse(td.clone(), &text).map(|b| b.x509)
    } else {
        X509Bundle::parse_pem(td.clone(), &text)
    };
    let bundle = match bundle {
        Ok(b) => b,
        Err(e) => {
            return Err(InspectError::BadPem {
                path: path.to_owned(),
                detail: e.to_string(),
            })
        }
    };
    let count = bundle.authorities().len();
    let mut set = BundleSet::new();
    set.insert(bundle);
    let at = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default());
    Ok(match verify_chain(chain, &set, at) {
        Ok(id) => Check {
            ok: true,
            message: format!(
                "the chain of {id} verifies against the bundle of trust domain {td} ({count} authorit{})",
                if count == 1 { "y" } else { "ies" }
            ),
        },
        Err(e) => Check {
            ok: false,
            message: format!(
                "the chain does not verify against the bundle of trust domain {td} from {}: {e}",
                path.display()
            ),
        },
    })
}

// === output ===

fn fmt_time(t: Option<SystemTime>) -> String {
    t.map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_else(|| "-".to_owned())
}

fn print_text(certs: &[CertReport], key: Option<&Check>, chain: Option<&Check>, problems: usize) {
    let total = certs.len();
    for (i, c) in certs.iter().enumerate() {
        println!("certificate {} of {total} ({})", i + 1, c.role);
        if let Some(id) = &c.spiffe_id {
            println!("  SPIFFE ID:  {id}");
        } else if !c.uri_sans.is_empty() {
            println!("  URI SANs:   {}", c.uri_sans.join(", "));
        } else if i == 0 {
            println!("  SPIFFE ID:  none");
        }
        println!("  subject:    {}", c.subject);
        println!("  issuer:     {}", c.issuer);
        println!("  serial:     {}", c.serial);
        println!("  not before: {}", fmt_time(c.not_before));
        println!("  not after:  {}", fmt_time(c.not_after));
        println!("  validity:   {}", c.validity);
        println!("  key type:   {}", c.key_type);
        if c.violations.is_empty() {
            println!("  violations: none");
        } else {
            println!("  violations:");
            for v in &c.violations {
                println!("    [{}] {}", v.rule, v.message);
            }
        }
    }
    for check in [key, chain].into_iter().flatten() {
        println!(
            "{} {}",
            if check.ok { "ok:  " } else { "FAIL:" },
            check.message
        );
    }
    match (problems, certs.first().and_then(|c| c.spiffe_id.as_ref())) {
        (0, Some(id)) => println!("result: valid X509-SVID for {id}"),
        (n, _) => println!(
            "result: NOT a valid X509-SVID ({} problem{})",
            n.max(1),
            if n == 1 { "" } else { "s" }
        ),
    }
}

fn print_json(
    file: &Path,
    certs: &[CertReport],
    key: Option<&Check>,
    chain: Option<&Check>,
    problems: usize,
) {
    let certificates: Vec<_> = certs
        .iter()
        .map(|c| {
            json!({
                "role": c.role,
                "spiffe_id": c.spiffe_id,
                "uri_sans": c.uri_sans,
                "subject": c.subject,
                "issuer": c.issuer,
                "serial": c.serial,
                "not_before": c.not_before.map(|t| fmt_time(Some(t))),
                "not_after": c.not_after.map(|t| fmt_time(Some(t))),
                "validity": c.validity,
                "key_type": c.key_type,
                "violations": c.violations.iter().map(|v| json!({"rule": v.rule, "message": v.message})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let check = |c: Option<&Check>| c.map(|c| json!({"ok": c.ok, "message": c.message}));
    let out = json!({
        "file": file.display().to_string(),
        "valid": problems == 0,
        "problems": problems,
        "certificates": certificates,
        "key": check(key),
        "chain": check(chain),
    });
    println!("{out:#}");
}
