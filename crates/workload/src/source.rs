//! Long-lived identity sources: one stream, an atomically swapped snapshot for
//! synchronous reads on the handshake path, and a watch channel that ticks per update.
//!
//! [`X509Source`] keeps one `FetchX509SVID` stream open in a background task. Each
//! message is a full state and replaces the previous one whole (CHECKLIST E.45); a
//! message that fails validation, or whose default SVID has already expired, is logged
//! and counted and the last good context stays in force. The stream is re-opened with
//! exponential backoff and jitter after `Unavailable`, `PermissionDenied`, a lost or
//! ended stream, or any other failure, but not after `InvalidArgument` or
//! `Unimplemented`, which no retry can fix (D.40).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use ward_spiffe::{BundleSet, JwtSvid, X509Svid};

use crate::{ClientError, EndpointAddress, WorkloadClient, X509Context};

/// Why a source could not start or is not serving.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// No valid X.509-SVID arrived within the start-up timeout.
    #[error(
        "no valid X.509-SVID from the Workload API at {addr} within {waited:?}; last error: {last_error}"
    )]
    StartupTimeout {
        /// The endpoint.
        addr: String,
        /// How long the source waited.
        waited: Duration,
        /// The last failure seen ("none" when the endpoint simply did not answer).
        last_error: String,
    },
    /// The endpoint refused the request in a way no retry can fix.
    #[error("the Workload API at {addr} cannot serve this source (not retrying): {error}")]
    Fatal {
        /// The endpoint.
        addr: String,
        /// The error that stopped the source.
        error: String,
    },
    /// A context without any SVID.
    #[error("an X.509 context must hold at least one SVID")]
    NoSvid,
    /// The default SVID has already expired (or is not yet valid).
    #[error(
        "the X.509-SVID {id} is not valid now (valid {not_before:?} to {not_after:?}); refusing it"
    )]
    Expired {
        /// The SVID's SPIFFE ID.
        id: String,
        /// Its notBefore.
        not_before: SystemTime,
        /// Its notAfter.
        not_after: SystemTime,
    },
    /// The SVID's own trust domain has no bundle in the context.
    #[error("the X.509 context has no bundle for the trust domain of its SVID {id}")]
    MissingBundle {
        /// The SVID's SPIFFE ID.
        id: String,
    },
    /// A Workload API call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The source was closed.
    #[error("the identity source is closed")]
    Closed,
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

// === X509Source ===

/// State shared between the source's handles and its background task.
struct Shared {
    current: ArcSwapOption<X509Context>,
    bundles: ArcSwap<BundleSet>,
    updates: watch::Sender<u64>,
    last_error: Mutex<Option<String>>,
    rejected: AtomicU64,
    /// Set when the task has stopped for good (fatal error or close).
    stopped: watch::Sender<bool>,
}

impl Shared {
    fn new() -> Self {
        Self {
            current: ArcSwapOption::empty(),
            bundles: ArcSwap::from_pointee(BundleSet::new()),
            updates: watch::channel(0).0,
            last_error: Mutex::new(None),
            rejected: AtomicU64::new(0),
            stopped: watch::channel(false).0,
        }
    }

    /// Validates and installs a full state; the previous one stays on error.
    fn accept(&self, mut ctx: X509Context) -> Result<(), SourceError> {
        let now = SystemTime::now();
        let default = ctx.svids.first().ok_or(SourceError::NoSvid)?;
        if default.is_expired_at(now) {
            return Err(SourceError::Expired {
                id: default.spiffe_id().to_string(),
                not_before: default.not_before(),
                not_after: default.not_after(),
            });
        }
        // An expired non-default SVID cannot be used either; the rest of the update can.
        ctx.svids.retain(|s| {
            let ok = !s.is_expired_at(now);
            if !ok {
                tracing::warn!(id = %s.spiffe_id(), "dropping an expired X.509-SVID from an update");
            }
            ok
        });
        for svid in &ctx.svids {
            if ctx.bundles.get(&svid.spiffe_id().trust_domain()).is_none() {
                return Err(SourceError::MissingBundle {
                    id: svid.spiffe_id().to_string(),
                });
            }
        }
        // Bundles first: a reader that sees the new SVID must not verify with old roots.
        self.bundles.store(Arc::new(ctx.bundles.clone()));
        self.current.store(Some(Arc::new(ctx)));
        self.updates.send_modify(|n| *n += 1);
        Ok(())
    }

    fn reject(&self, error: &dyn std::fmt::Display) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%error, "rejected a Workload API update; keeping the last good X.509 context");
        self.set_error(Some(error.to_string()));
    }

    fn set_error(&self, error: Option<String>) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = error;
        }
    }

    fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

/// Owns the background task: dropping the last handle stops it.
struct Inner {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
    address: Option<EndpointAddress>,
}

impl Inner {
    fn stop(&self) {
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
        self.shared.stopped.send_replace(true);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A live X.509 identity: the current [`X509Context`], replaced whole on every accepted
/// Workload API update; the last good one is kept when an update is invalid.
#[derive(Clone)]
pub struct X509Source {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for X509Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X509Source")
            .field("address", &self.inner.address)
            .field("updates", &*self.inner.shared.updates.borrow())
            .finish_non_exhaustive()
    }
}

impl X509Source {
    /// Connects, subscribes, and waits (up to `startup_timeout`) for the first valid
    /// context; then keeps it current in the background.
    pub async fn new(options: SourceOptions) -> Result<Self, SourceError> {
        let shared = Arc::new(Shared::new());
        // Subscribe before the task starts, so the first update cannot be missed.
        let mut updates = shared.updates.subscribe();
        let mut stopped = shared.stopped.subscribe();
        let task = tokio::spawn(run_x509(options.clone(), shared.clone()));
        let source = Self {
            inner: Arc::new(Inner {
                shared,
                task: Mutex::new(Some(task)),
                address: Some(options.address.clone()),
            }),
        };
        let addr = options.address.to_string();
        let waited = tokio::time::timeout(options.startup_timeout, async {
            tokio::select! {
                r = updates.wait_for(|n| *n > 0) => r.is_ok(),
                _ = stopped.wait_for(|s| *s) => false,
            }
        })
        .await;
        match waited {
            Ok(true) => Ok(source),
            Ok(false) => {
                let error = source.last_error().unwrap_or_else(|| "stopped".into());
                source.close();
                Err(SourceError::Fatal { addr, error })
            }
            Err(_) => {
                let last_error = source.last_error().unwrap_or_else(|| "none".into());
                source.close();
                Err(SourceError::StartupTimeout {
                    addr,
                    waited: options.startup_timeout,
                    last_error,
                })
            }
        }
    }

    /// A source fed by someone else (files, an in-process authority): publish with
    /// [`X509Source::publish`]. An invalid or expired `context` is refused and logged,
    /// leaving the source without an SVID until a valid one is published.
    pub fn from_context(context: X509Context) -> Self {
        let shared = Arc::new(Shared::new());
        if let Err(e) = shared.accept(context) {
            shared.reject(&e);
        }
        Self {
            inner: Arc::new(Inner {
                shared,
                task: Mutex::new(None),
                address: None,
            }),
        }
    }

    /// Replaces the current context (refused when its default SVID is expired).
    pub fn publish(&self, context: X509Context) -> Result<(), SourceError> {
        let shared = &self.inner.shared;
        shared.accept(context).inspect_err(|e| shared.reject(e))?;
        shared.set_error(None);
        Ok(())
    }

    /// The current context, or None while no valid SVID is held (never an expired one).
    pub fn context(&self) -> Option<Arc<X509Context>> {
        let ctx = self.inner.shared.current.load_full()?;
        // Checked at read time too: an SVID accepted an hour ago may have expired since.
        let default = ctx.default_svid()?;
        (!default.is_expired_at(SystemTime::now())).then_some(ctx)
    }

    /// The current default SVID, unless it has expired.
    pub fn svid(&self) -> Option<X509Svid> {
        self.context()?.default_svid().cloned()
    }

    /// The current bundles.
    pub fn bundles(&self) -> Arc<BundleSet> {
        self.inner.shared.bundles.load_full()
    }

    /// Ticks (the update count) every time a new context is accepted.
    pub fn updates(&self) -> watch::Receiver<u64> {
        self.inner.shared.updates.subscribe()
    }

    /// The last error seen on the stream, if the latest attempt failed.
    pub fn last_error(&self) -> Option<String> {
        self.inner.shared.last_error()
    }

    /// How many updates were refused (invalid, expired) since the source started.
    pub fn rejected_updates(&self) -> u64 {
        self.inner.shared.rejected.load(Ordering::Relaxed)
    }

    /// The Workload API endpoint, for a source that has one.
    pub fn address(&self) -> Option<&EndpointAddress> {
        self.inner.address.as_ref()
    }

    /// True while the background task is running (or the source is fed externally and
    /// not closed); false after [`close`](Self::close) or a non-retryable error.
    pub fn is_running(&self) -> bool {
        !*self.inner.shared.stopped.borrow()
    }

    /// Stops the background stream.
    pub fn close(&self) {
        self.inner.stop();
    }
}

/// The background task: keep one `FetchX509SVID` stream open, forever.
async fn run_x509(options: SourceOptions, shared: Arc<Shared>) {
    let mut backoff = Backoff::new(options.initial_backoff, options.max_backoff);
    loop {
        let error = match stream_x509(&options.address, &shared, &mut backoff).await {
            Some(e) => e,
            None => ClientError::StreamEnded {
                addr: options.address.to_string(),
            },
        };
        if !error.is_retryable() {
            tracing::error!(%error, "Workload API error that retrying cannot fix; the X.509 source stops");
            shared.set_error(Some(format!("{error} (not retrying)")));
            shared.stopped.send_replace(true);
            return;
        }
        let delay = backoff.next_delay();
        tracing::warn!(%error, retry_in = ?delay, "Workload API X.509 stream failed; reconnecting");
        shared.set_error(Some(error.to_string()));
        tokio::time::sleep(delay).await;
    }
}

/// One stream's life; returns the error that ended it (None: a clean end).
async fn stream_x509(
    addr: &EndpointAddress,
    shared: &Shared,
    backoff: &mut Backoff,
) -> Option<ClientError> {
    let client = match WorkloadClient::connect(addr).await {
        Ok(c) => c,
        Err(e) => return Some(e),
    };
    let mut stream = match client.watch_x509_contexts().await {
        Ok(s) => s,
        Err(e) => return Some(e),
    };
    while let Some(item) = stream.next().await {
        match item {
            Ok(ctx) => match shared.accept(ctx) {
                Ok(()) => {
                    shared.set_error(None);
                    backoff.reset();
                    tracing::debug!("accepted a Workload API X.509 update");
                }
                Err(e) => shared.reject(&e),
            },
            // E.46: an invalid message is discarded; the stream itself is fine.
            Err(e @ ClientError::InvalidResponse { .. }) => shared.reject(&e),
            Err(e) => return Some(e),
        }
    }
    None
}

/// Exponential backoff with "equal jitter": half the delay fixed, half random, so that
/// many sidecars restarted together do not reconnect in lock-step.
struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Self {
            initial,
            max: max.max(initial),
            current: initial,
        }
    }

    fn reset(&mut self) {
        self.current = self.initial;
    }

    fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        base / 2 + base.mul_f64(fastrand::f64() / 2.0)
    }
}

// === JwtSource ===

struct CachedJwt {
    svid: JwtSvid,
    refresh_at: SystemTime,
}

struct JwtInner {
    client: WorkloadClient,
    cache: Mutex<HashMap<Vec<String>, CachedJwt>>,
}

/// JWT-SVIDs cached per audience set and refreshed at half their lifetime.
#[derive(Clone)]
pub struct JwtSource {
    inner: Arc<JwtInner>,
}

impl std::fmt::Debug for JwtSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSource")
            .field("address", self.inner.client.address())
            .finish_non_exhaustive()
    }
}

impl JwtSource {
    /// A source over the Workload API.
    pub async fn new(options: SourceOptions) -> Result<Self, SourceError> {
        let client = WorkloadClient::connect(&options.address).await?;
        Ok(Self {
            inner: Arc::new(JwtInner {
                client,
                cache: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A JWT-SVID for this audience set (cached until half its lifetime has passed).
    ///
    /// The cache key is the sorted, de-duplicated audience list. When a refresh fails
    /// and the cached token has not expired, the cached token is returned.
    pub async fn fetch(&self, audience: &[String]) -> Result<JwtSvid, SourceError> {
        let mut key = audience.to_vec();
        key.sort();
        key.dedup();
        let now = SystemTime::now();
        let cached = self.cached(&key);
        if let Some(c) = &cached {
            if now < c.refresh_at {
                return Ok(c.svid.clone());
            }
        }
        match self.inner.client.fetch_jwt_svids(&key, None).await {
            Ok(svids) => {
                let svid = svids.into_iter().next().ok_or_else(|| {
                    SourceError::Client(ClientError::InvalidResponse {
                        addr: self.inner.client.address().to_string(),
                        what: "JWTSVIDResponse.svids is empty".into(),
                    })
                })?;
                let fetched = SystemTime::now();
                let lifetime = svid.expiry().duration_since(fetched).unwrap_or_default();
                let refresh_at = fetched + lifetime / 2;
                if let Ok(mut cache) = self.inner.cache.lock() {
                    cache.insert(
                        key,
                        CachedJwt {
                            svid: svid.clone(),
                            refresh_at,
                        },
                    );
                }
                Ok(svid)
            }
            Err(e) => match cached {
                Some(c) if c.svid.expiry() > SystemTime::now() => {
                    tracing::warn!(error = %e, "JWT-SVID refresh failed; using the cached token");
                    Ok(c.svid)
                }
                _ => Err(e.into()),
            },
        }
    }

    fn cached(&self, key: &[String]) -> Option<CachedJwt> {
        let cache = self.inner.cache.lock().ok()?;
        cache.get(key).map(|c| CachedJwt {
            svid: c.svid.clone(),
            refresh_at: c.refresh_at,
        })
    }
}
