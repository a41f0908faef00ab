//! The live certificate resolver: rustls asks it for our SVID on every handshake, and it
//! answers with one atomic load of a `CertifiedKey` rebuilt once per identity update.

use std::sync::{Arc, Weak};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use rustls_pki_types::PrivateKeyDer;
use tokio::sync::watch;
use ward_workload::X509Source;

/// The `CertifiedKey` of one SVID, with the validity window checked on every resolve.
#[derive(Debug)]
struct Served {
    key: Arc<CertifiedKey>,
    not_before: SystemTime,
    not_after: SystemTime,
}

/// Resolves the current SVID for rustls servers and clients.
///
/// The signing key and chain are parsed once per `X509Source` update (and once at
/// construction), never per handshake: `resolve` is one atomic load plus a clock
/// comparison, so that an SVID whose `notAfter` has passed is never served even when
/// the Workload API has gone quiet.
#[derive(Debug)]
pub struct SvidResolver {
    source: X509Source,
    provider: Arc<CryptoProvider>,
    current: ArcSwapOption<Served>,
}

impl SvidResolver {
    /// A resolver following `source`; spawns the task that rebuilds the `CertifiedKey`
    /// on each update (must be called inside a tokio runtime).
    ///
    /// # Panics
    /// Outside a tokio runtime (a start-up programming error).
    pub fn new(source: X509Source) -> Arc<Self> {
        Self::with_provider(source, crate::crypto_provider())
    }

    /// As [`SvidResolver::new`], loading keys with `provider`.
    pub(crate) fn with_provider(source: X509Source, provider: Arc<CryptoProvider>) -> Arc<Self> {
        // Subscribe before the first build so that an update landing between the build
        // and the spawn is not lost.
        let mut updates = source.updates();
        updates.borrow_and_update();
        let resolver = Arc::new(Self {
            source,
            provider,
            current: ArcSwapOption::empty(),
        });
        resolver.rebuild();
        tokio::spawn(follow(Arc::downgrade(&resolver), updates));
        resolver
    }

    /// Rebuilds the served key from the source's current default SVID.
    fn rebuild(&self) {
        let Some(svid) = self.source.svid() else {
            if self.current.swap(None).is_some() {
                tracing::warn!("no valid SVID: TLS handshakes fail until a new one arrives");
            }
            return;
        };
        let key = PrivateKeyDer::Pkcs8(svid.private_key().clone_key());
        match CertifiedKey::from_der(svid.chain().to_vec(), key, &self.provider) {
            Ok(key) => {
                tracing::debug!(id = %svid.spiffe_id(), "serving a new SVID");
                self.current.store(Some(Arc::new(Served {
                    key: Arc::new(key),
                    not_before: svid.not_before(),
                    not_after: svid.not_after(),
                })));
            }
            // Keep the previous key: it is still subject to its own expiry check, and
            // a broken update must not take the listener down while that one is good.
            Err(err) => tracing::error!(
                id = %svid.spiffe_id(),
                "the new SVID's key could not be loaded; keeping the previous one: {err}"
            ),
        }
    }

    /// The current `CertifiedKey`, unless there is none or it is outside its validity
    /// window right now.
    fn current(&self) -> Option<Arc<CertifiedKey>> {
        let guard = self.current.load();
        let served = guard.as_ref()?;
        let now = SystemTime::now();
        if now >= served.not_after || now < served.not_before {
            tracing::debug!("the current SVID is outside its validity period; not serving it");
            return None;
        }
        Some(Arc::clone(&served.key))
    }
}

/// Rebuilds on every tick of the source, until the resolver or the source is gone.
async fn follow(resolver: Weak<SvidResolver>, mut updates: watch::Receiver<u64>) {
    while updates.changed().await.is_ok() {
        let Some(resolver) = resolver.upgrade() else {
            return;
        };
        resolver.rebuild();
    }
}

impl ResolvesServerCert for SvidResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

impl ResolvesClientCert for SvidResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.current()
    }

    fn has_certs(&self) -> bool {
        self.current.load().is_some()
    }
}
