//! `ward fetch x509|jwt|bundles [--socket ADDR] [--audience AUD]... [--write DIR]
//! [--timeout DUR]`: what the Workload API hands this process.
//!
//! `--socket` falls back to `SPIFFE_ENDPOINT_SOCKET` (CHECKLIST D.37). With `--write DIR`
//! the files a non-SPIFFE-aware app reads are written atomically (a temporary file in
//! DIR, then a rename), the private key with mode 0600 from its creation.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use ward_spiffe::{BundleSet, JwtBundleSet, TrustDomain, X509Bundle};
use ward_workload::{EndpointAddress, WorkloadClient};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::CmdResult;

/// What to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// The X509-SVIDs and the X.509 bundles (`FetchX509SVID`).
    X509,
    /// A JWT-SVID for `--audience` (`FetchJWTSVID`) and the JWT bundles.
    Jwt,
    /// The X.509 and JWT bundles (`FetchX509Bundles`, `FetchJWTBundles`).
    Bundles,
}

/// Arguments of `ward fetch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to fetch.
    #[arg(value_enum)]
    kind: Kind,
    /// The Workload API address (`unix:///path` or `tcp://IP:PORT`); defaults to
    /// `SPIFFE_ENDPOINT_SOCKET`.
    #[arg(long, value_name = "ADDR")]
    socket: Option<String>,
    /// The JWT audience (repeatable; required for `jwt`).
    #[arg(long = "audience", value_name = "AUD")]
    audience: Vec<String>,
    /// Also write the results as files into this directory (created if missing).
    #[arg(long, value_name = "DIR")]
    write: Option<PathBuf>,
    /// How long to wait for the Workload API.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// `jwt` without an audience.
    #[error("`ward fetch jwt` needs at least one --audience")]
    NoAudience,
    /// No usable address.
    #[error("{0}")]
    Address(#[from] ward_workload::AddrError),
    /// The API could not be reached or refused the call.
    #[error("Workload API at {addr}: {detail}")]
    Api {
        /// The endpoint.
        addr: EndpointAddress,
        /// What went wrong.
        detail: String,
    },
    /// No answer in time.
    #[error("no answer from the Workload API at {addr} within {}", humantime::format_duration(*timeout))]
    Timeout {
        /// The endpoint.
        addr: EndpointAddress,
        /// The limit.
        timeout: Duration,
    },
    /// The API answered with something unusable.
    #[error("the Workload API at {addr} answered without {what}")]
    Empty {
        /// The endpoint.
        addr: EndpointAddress,
        /// What was missing.
        what: &'static str,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Runs `ward fetch`.
pub fn main(args: Args) -> CmdResult {
    if args.kind == Kind::Jwt && args.audience.is_empty() {
        return Err(FetchError::NoAudience.into());
    }
    let addr =
        EndpointAddress::from_config_or_env(args.socket.as_deref()).map_err(FetchError::Address)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let limit = args.timeout;
        match tokio::time::timeout(limit, run(&args, &addr)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(FetchError::Timeout {
                    addr: addr.clone(),
                    timeout: limit,
                }
                .into())
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn run(args: &Args, addr: &EndpointAddress) -> Result<(), FetchError> {
    let api = |e: ward_workload::ClientError| FetchError::Api {
        addr: addr.clone(),
        detail: e.to_string(),
    };
    let client = WorkloadClient::connect(addr).await.map_err(api)?;
    match args.kind {
        Kind::X509 => {
            let ctx = client.fetch_x509_context().await.map_err(api)?;
            let Some(svid) = ctx.default_svid() else {
                return Err(FetchError::Empty {
                    addr: addr.clone(),
                    what: "an X509-SVID",
                });
            };
            for (i, svid) in ctx.svids.iter().enumerate() {
                print_x509_svid(i, svid);
            }
            print_x509_bundles(&ctx.bundles);
            if let Some(dir) = &args.write {
                write_x509(dir, svid, &ctx.bundles)?;
            }
        }
        Kind::Jwt => {
            let svids = client
                .fetch_jwt_svids(&args.audience, None)
                .await
                .map_err(api)?;
            let Some(first) = svids.first() else {
                return Err(FetchError::Empty {
                    addr: addr.clone(),
                    what: "a JWT-SVID",
                });
            };
            for svid in &svids {
                println!("SPIFFE ID:  {}", svid.spiffe_id());
                println!("audience:   {}", svid.audience().join(", "));
                println!(
                    "expires:    {} ({})",
                    humantime::format_rfc3339_seconds(svid.expiry()),
                    time_left(svid.expiry())
                );
                if !svid.hint().is_empty() {
                    println!("hint:       {}", svid.hint());
                }
                println!("token:      {}", svid.token());
            }
            if let Some(dir) = &args.write {
                let bundles = client.fetch_jwt_bundles().await.map_err(api)?;
                let own = first.spiffe_id().trust_domain();
                write_atomic(dir, "jwt_svid.token", first.token().as_bytes(), false)?;
                if let Some(bundle) = bundles.get(&own) {
                    write_atomic(dir, "jwt_bundle.json", &bundle.to_jwks(), false)?;
                }
            }
        }
        Kind::Bundles => {
            let x509 = client.fetch_x509_bundles().await.map_err(api)?;
            let jwt = client.fetch_jwt_bundles().await.map_err(api)?;
            print_all_bundles(&x509, &jwt);
            if let Some(dir) = &args.write {
                write_bundles(dir, &x509, &jwt)?;
            }
        }
    }
    if let Some(dir) = &args.write {
        eprintln!("ward fetch: wrote files to {}", dir.display());
    }
    Ok(())
}

// === printing ===

fn time_left(t: SystemTime) -> String {
    match t.duration_since(SystemTime::now()) {
        Ok(d) => format!(
            "{} left",
            humantime::format_duration(Duration::from_secs(d.as_secs()))
        ),
        Err(_) => "expired".to_owned(),
    }
}

fn print_x509_svid(index: usize, svid: &ward_spiffe::X509Svid) {
    let serial = X509Certificate::from_der(svid.leaf())
        .map(|(_, c)| c.raw_serial_as_string())
        .unwrap_or_else(|_| "?".to_owned());
    if index > 0 {
        println!();
    }
    println!("SPIFFE ID:  {}", svid.spiffe_id());
    println!("serial:     {serial}");
    println!(
        "not after:  {} ({})",
        humantime::format_rfc3339_seconds(svid.not_after()),
        time_left(svid.not_after())
    );
    println!("chain:      {} certificate(s)", svid.chain().len());
    if !svid.hint().is_empty() {
        println!("hint:       {}", svid.hint());
    }
}

fn print_x509_bundles(bundles: &BundleSet) {
    let tds: Vec<&str> = bundles.iter().map(|b| b.trust_domain().as_str()).collect();
    println!("bundles:    {}", tds.join(", "));
}

fn print_all_bundles(x509: &BundleSet, jwt: &JwtBundleSet) {
    let mut tds: Vec<TrustDomain> = x509.iter().map(|b| b.trust_domain().clone()).collect();
    tds.extend(jwt.iter().map(|b| b.trust_domain().clone()));
    tds.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    tds.dedup();
    for td in tds {
        let cas = x509.get(&td).map_or(0, |b| b.authorities().len());
        let kids: Vec<String> = jwt
            .get(&td)
            .map(|b| b.authorities().map(|a| a.key_id().to_owned()).collect())
            .unwrap_or_default();
        println!("trust domain {td}");
        println!("  X.509 authorities: {cas}");
        if kids.is_empty() {
            println!("  JWT keys:          none");
        } else {
            println!("  JWT keys:          {} ({})", kids.len(), kids.join(", "));
        }
    }
}

// === writing ===

/// `svid.pem` (chain), `svid_key.pem`, `bundle.pem` (own trust domain) and, only when
/// there are federated bundles, `federated_bundle.pem`.
fn write_x509(
    dir: &Path,
    svid: &ward_spiffe::X509Svid,
    bundles: &BundleSet,
) -> Result<(), FetchError> {
    let chain: String = svid.chain().iter().map(|c| pem("CERTIFICATE", c)).collect();
    let key = pem("PRIVATE KEY", svid.private_key().secret_pkcs8_der());
    let own = svid.spiffe_id().trust_domain();
    write_atomic(dir, "svid_key.pem", key.as_bytes(), true)?;
    write_atomic(dir, "svid.pem", chain.as_bytes(), false)?;
    if let Some(bundle) = bundles.get(&own) {
        write_atomic(dir, "bundle.pem", bundle.to_pem().as_bytes(), false)?;
    }
    let federated: String = bundles
        .iter()
        .filter(|b| *b.trust_domain() != own)
        .map(X509Bundle::to_pem)
        .collect();
    if !federated.is_empty() {
        write_atomic(dir, "federated_bundle.pem", federated.as_bytes(), false)?;
    }
    Ok(())
}

/// Without an SVID there is no "own" trust domain: one file per trust domain,
/// `bundle.<td>.pem` and `jwt_bundle.<td>.json`.
fn write_bundles(dir: &Path, x509: &BundleSet, jwt: &JwtBundleSet) -> Result<(), FetchError> {
    for b in x509.iter() {
        let name = format!("bundle.{}.pem", b.trust_domain());
        write_atomic(dir, &name, b.to_pem().as_bytes(), false)?;
    }
    for b in jwt.iter() {
        let name = format!("jwt_bundle.{}.json", b.trust_domain());
        write_atomic(dir, &name, &b.to_jwks(), false)?;
    }
    Ok(())
}

/// PEM (RFC 7468): base64 of the DER in lines of 64 characters between the labels.
fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            b64.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize]
            } else {
                b'='
            });
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes `DIR/name` atomically: a temporary file in DIR (created with its final mode,
/// 0600 for secrets, so a key is never readable by others even for an instant), synced,
/// then renamed over the target. A reader sees the old file or the new one, never half.
fn write_atomic(dir: &Path, name: &str, data: &[u8], secret: bool) -> Result<(), FetchError> {
    let target = dir.join(name);
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| FetchError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let nanos = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".{name}.tmp.{}.{nanos}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if secret { 0o600 } else { 0o644 })
            .open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err(&target))
}
