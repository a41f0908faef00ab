//! Where the identity comes from: the Workload API (an `X509Source` streaming from a
//! SPIRE agent or `ward dev`), or PEM files watched and reloaded on change. Both end in
//! the same `X509Source`, so the resolver and verifier do not care which.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ward_spiffe::{BundleSet, X509Bundle, X509Svid};
use ward_workload::{EndpointAddress, SourceOptions, X509Context, X509Source};

use crate::config::IdentitySource;

/// Why the identity could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// No usable Workload API address.
    #[error("workload API address: {0}")]
    Address(#[from] ward_workload::AddrError),
    /// The source did not deliver a valid SVID in time.
    #[error("no X509-SVID from the Workload API at {address}: {source}")]
    Source {
        /// The endpoint.
        address: String,
        /// The cause.
        source: ward_workload::SourceError,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The certificate and key are not a valid X509-SVID.
    #[error("{cert} / {key}: {source}")]
    Svid {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// Why.
        source: ward_spiffe::SvidError,
    },
    /// The bundle file is unusable.
    #[error("bundle {path}: {source}")]
    Bundle {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ward_spiffe::BundleError,
    },
    /// The file watcher could not start.
    #[error("cannot watch the identity files: {0}")]
    Watch(String),
    /// The new files were refused by the source (e.g. an expired SVID).
    #[error("identity files refused: {0}")]
    Refused(ward_workload::SourceError),
}

/// Starts the configured source; with files, also the watcher that republishes them.
pub async fn start(config: &IdentitySource) -> Result<X509Source, IdentityError> {
    match config {
        IdentitySource::WorkloadApi {
            socket,
            startup_timeout,
        } => {
            let address = EndpointAddress::from_config_or_env(socket.as_deref())?;
            let mut options = SourceOptions::new(address.clone());
            options.startup_timeout = *startup_timeout;
            tracing::info!(%address, "waiting for an X509-SVID from the Workload API");
            X509Source::new(options)
                .await
                .map_err(|source| IdentityError::Source {
                    address: address.to_string(),
                    source,
                })
        }
        IdentitySource::Files { cert, key, bundle } => {
            let context = load_files(cert, key, bundle)?;
            let source = X509Source::from_context(context);
            watch_files(source.clone(), cert.clone(), key.clone(), bundle.clone())?;
            Ok(source)
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, IdentityError> {
    std::fs::read(path).map_err(|source| IdentityError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads an SVID (chain + PKCS#8 key) and the CA bundle of its trust domain.
pub fn load_files(cert: &Path, key: &Path, bundle: &Path) -> Result<X509Context, IdentityError> {
    let svid =
        X509Svid::parse_pem(&read(cert)?, &read(key)?).map_err(|source| IdentityError::Svid {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        })?;
    let td = svid.spiffe_id().trust_domain();
    let b = X509Bundle::parse_pem(td, &read(bundle)?).map_err(|source| IdentityError::Bundle {
        path: bundle.to_owned(),
        source,
    })?;
    let mut bundles = BundleSet::new();
    bundles.insert(b);
    Ok(X509Context {
        svids: vec![svid],
        bundles,
    })
}

/// Watches the files' directories (so replace-by-rename is seen) and republishes after
/// a short quiet period; a broken or half-written set keeps the previous identity.
fn watch_files(
    source: X509Source,
    cert: PathBuf,
    key: PathBuf,
    bundle: PathBuf,
) -> Result<(), IdentityError> {
    use notify::Watcher;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the files (our own reload included) is not a change; anything else
        // (write, create, rename, remove, a watcher error) is re-checked.
        let change = match event {
            Ok(e) => !matches!(
                e.kind,
                notify::EventKind::Access(a) if a != notify::event::AccessKind::Close(notify::event::AccessMode::Write)
            ),
            Err(_) => true,
        };
        if change {
            let _ = tx.try_send(());
        }
    })
    .map_err(|e| IdentityError::Watch(e.to_string()))?;
    let mut dirs: Vec<PathBuf> = [&cert, &key, &bundle]
        .iter()
        .map(|p| match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        watcher
            .watch(d, notify::RecursiveMode::NonRecursive)
            .map_err(|e| IdentityError::Watch(format!("{}: {e}", d.display())))?;
    }
    tokio::spawn(async move {
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            // Writers replace three files one after another: wait for them to settle.
            tokio::time::sleep(Duration::from_millis(200)).await;
            while rx.try_recv().is_ok() {}
            let loaded = load_files(&cert, &key, &bundle);
            if let (Ok(ctx), Some(current)) = (&loaded, source.svid()) {
                let same = ctx
                    .default_svid()
                    .is_some_and(|s| s.chain() == current.chain());
                if same && ctx.bundles == *source.bundles() {
                    continue;
                }
            }
            let result = loaded.and_then(|ctx| source.publish(ctx).map_err(IdentityError::Refused));
            match result {
                Ok(()) => tracing::info!(cert = %cert.display(), "identity files reloaded"),
                Err(e) => {
                    tracing::warn!(error = %e, "identity files not reloaded; keeping the previous identity")
                }
            }
        }
    });
    Ok(())
}
