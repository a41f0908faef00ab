//! Long-lived identity sources: one stream, an atomically swapped snapshot for
//! synchronous reads on the handshake path, and a watch channel that ticks per update.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use ward_spiffe::{BundleSet, JwtSvid, X509Svid};

use crate::{EndpointAddress, X509Context};

/// Why a source could not start or is not serving.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Placeholder variant; the workload crate's owner defines the real variants.
    #[error("identity source: {0}")]
    Other(String),
}

/// How a source connects and retries.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// The Workload API endpoint.
    pub address: EndpointAddress,
    /// How long [`X509Source::new`] waits for the first valid SVID.
    pub startup_timeout: Duration,
    /// First reconnect delay (doubles, with jitter, up to `max_backoff`).
    pub initial_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
}

impl SourceOptions {
    /// Defaults: 30 s start-up timeout, 100 ms .. 10 s backoff.
    pub fn new(address: EndpointAddress) -> Self {
        Self {
            address,
            startup_timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// A live X.509 identity: the current [`X509Context`], replaced whole on every accepted
/// Workload API update; the last good one is kept when an update is invalid.
#[derive(Debug, Clone)]
pub struct X509Source {
    inner: Arc<()>,
}

impl X509Source {
    /// Connects, subscribes, and waits (up to `startup_timeout`) for the first valid
    /// context; then keeps it current in the background.
    pub async fn new(options: SourceOptions) -> Result<Self, SourceError> {
        let _ = options;
        todo!()
    }
    /// A source fed by someone else (files, an in-process authority): publish with
    /// [`X509Source::publish`].
    pub fn from_context(context: X509Context) -> Self {
        let _ = context;
        todo!()
    }
    /// Replaces the current context (refused when its default SVID is expired).
    pub fn publish(&self, context: X509Context) -> Result<(), SourceError> {
        let _ = context;
        todo!()
    }
    /// The current context, or None while no valid SVID is held (never an expired one).
    pub fn context(&self) -> Option<Arc<X509Context>> {
        todo!()
    }
    /// The current default SVID, unless it has expired.
    pub fn svid(&self) -> Option<X509Svid> {
        todo!()
    }
    /// The current bundles.
    pub fn bundles(&self) -> Arc<BundleSet> {
        todo!()
    }
    /// Ticks (the update count) every time a new context is accepted.
    pub fn updates(&self) -> watch::Receiver<u64> {
        todo!()
    }
    /// The last error seen on the stream, if the latest attempt failed.
    pub fn last_error(&self) -> Option<String> {
        todo!()
    }
    /// Stops the background stream.
    pub fn close(&self) {
        todo!()
    }
}

/// JWT-SVIDs cached per audience set and refreshed at half their lifetime.
#[derive(Debug, Clone)]
pub struct JwtSource {
    inner: Arc<()>,
}

impl JwtSource {
    /// A source over the Workload API.
    pub async fn new(options: SourceOptions) -> Result<Self, SourceError> {
        let _ = options;
        todo!()
    }
    /// A JWT-SVID for this audience set (cached until half its lifetime has passed).
    pub async fn fetch(&self, audience: &[String]) -> Result<JwtSvid, SourceError> {
        let _ = audience;
        todo!()
    }
}
