//! A file-based identity feed: an SVID (certificate chain PEM + PKCS#8 key PEM) and
//! trust bundles (PEM) read from disk and published into an [`X509Source`], for hosts
//! where something else (spiffe-helper, cert-manager, a mounted secret) writes the files.
//!
//! [`FileIdentity::reload`] re-reads everything and publishes only a complete, valid
//! set: a half-written or broken file leaves the previous identity in force.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ward_spiffe::{BundleError, BundleSet, SvidError, TrustDomain, X509Bundle, X509Svid};
use ward_workload::{SourceError, X509Context, X509Source};

/// Why identity files could not be loaded; the previous identity stays in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificate chain and key are not a usable X509-SVID.
    #[error("{cert} (with key {key}) is not a usable X509-SVID: {source}")]
    Svid {
        /// The certificate chain file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What is wrong.
        source: SvidError,
    },
    /// The SVID's leaf is outside its validity period right now.
    #[error("the SVID in {cert} is expired or not yet valid; refusing to serve it")]
    NotCurrentlyValid {
        /// The certificate chain file.
        cert: PathBuf,
    },
    /// A bundle file holds no usable CA certificate.
    #[error("{path} is not a usable bundle for trust domain {trust_domain}: {source}")]
    Bundle {
        /// The bundle file.
        path: PathBuf,
        /// The trust domain it was read for.
        trust_domain: TrustDomain,
        /// What is wrong.
        source: BundleError,
    },
    /// Two bundle files were given for one trust domain (bundles are never merged).
    #[error(
        "{path} is a second bundle for trust domain {trust_domain}; give one file per trust domain"
    )]
    DuplicateTrustDomain {
        /// The second file.
        path: PathBuf,
        /// The trust domain.
        trust_domain: TrustDomain,
    },
    /// The source refused the new identity.
    #[error("the identity source refused the files: {0}")]
    Publish(#[from] SourceError),
}

/// Where the identity files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFiles {
    /// CERTIFICATE blocks, leaf first (may be the same file as `key`).
    pub cert_chain: PathBuf,
    /// A PRIVATE KEY (unencrypted PKCS#8) block.
    pub key: PathBuf,
    /// The CA certificates of the SVID's own trust domain.
    pub bundle: PathBuf,
    /// Bundles of federated trust domains, one file per trust domain.
    pub federated: Vec<(TrustDomain, PathBuf)>,
}

/// An [`X509Source`] fed from [`IdentityFiles`], reloaded on demand.
#[derive(Debug)]
pub struct FileIdentity {
    files: IdentityFiles,
    source: X509Source,
}

impl FileIdentity {
    /// Reads the files and builds a source holding them; any error stops here.
    pub fn load(files: IdentityFiles) -> Result<Self, FileError> {
        let context = read_context(&files)?;
        Ok(Self {
            source: X509Source::from_context(context),
            files,
        })
    }

    /// Re-reads the files and publishes them (the binary calls this when a file
    /// changes). On error nothing is published: the previous identity stays in force.
    /// Reads are blocking; the files are a few kilobytes.
    pub fn reload(&self) -> Result<(), FileError> {
        let context = read_context(&self.files)?;
        self.source.publish(context)?;
        Ok(())
    }

    /// The source to hand to [`crate::server_config`] / [`crate::client_config`].
    pub fn source(&self) -> &X509Source {
        &self.source
    }

    /// The files this identity is read from.
    pub fn files(&self) -> &IdentityFiles {
        &self.files
    }
}

fn read(path: &Path) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_bundle(td: &TrustDomain, path: &Path) -> Result<X509Bundle, FileError> {
    X509Bundle::parse_pem(td.clone(), &read(path)?).map_err(|source| FileError::Bundle {
        path: path.to_owned(),
        trust_domain: td.clone(),
        source,
    })
}

/// Reads and checks every file; the context is complete or not built at all.
fn read_context(files: &IdentityFiles) -> Result<X509Context, FileError> {
    let svid =
        X509Svid::parse_pem(&read(&files.cert_chain)?, &read(&files.key)?).map_err(|source| {
            FileError::Svid {
                cert: files.cert_chain.clone(),
                key: files.key.clone(),
                source,
            }
        })?;
    if svid.is_expired_at(SystemTime::now()) {
        return Err(FileError::NotCurrentlyValid {
            cert: files.cert_chain.clone(),
        });
    }
    let own = svid.spiffe_id().trust_domain();
    let mut bundles = BundleSet::new();
    bundles.insert(read_bundle(&own, &files.bundle)?);
    for (td, path) in &files.federated {
        if bundles.get(td).is_some() {
            return Err(FileError::DuplicateTrustDomain {
                path: path.clone(),
                trust_domain: td.clone(),
            });
        }
        bundles.insert(read_bundle(td, path)?);
    }
    Ok(X509Context {
        svids: vec![svid],
        bundles,
    })
}
