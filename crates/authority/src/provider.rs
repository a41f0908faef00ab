//! The authority as a Workload API identity provider, with rotation.
//!
//! Each distinct set of identities (what one kind of caller holds) has one watch
//! channel of [`X509Context`]; every stream of every caller holding that set reads
//! it. A background task re-issues the SVIDs of each set at half their lifetime and
//! publishes the new context, so rotation reaches every open stream without a
//! reconnect (Workload API §4.3: every message carries the full state).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Notify};
use ward_spiffe::{BundleSet, JwtBundleSet, JwtSvid, SpiffeId, X509Svid};
use ward_workload::{Caller, NoIdentity, ProviderError, X509Context};

use crate::{Assignment, Authority, AuthorityError};

/// After a failed re-issuance, try again this soon (the old SVID stays in service).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// With nothing to rotate, the task still wakes this often (or when told).
const IDLE_WAKE: Duration = Duration::from_secs(60);

/// Serves an [`Authority`]'s identities to callers of one socket.
pub struct DevProvider {
    authority: Authority,
    assignment: Assignment,
    /// The live context of each identity set, keyed by the set (default first).
    contexts: Mutex<HashMap<Vec<SpiffeId>, IdentitySet>>,
    /// Wakes the rotation task when a new set is added.
    changed: Arc<Notify>,
    x509_bundles: watch::Sender<Arc<BundleSet>>,
    jwt_bundles: watch::Sender<Arc<JwtBundleSet>>,
}

struct IdentitySet {
    sender: watch::Sender<Arc<X509Context>>,
    /// When this set's SVIDs are due for re-issuance.
    refresh_at: SystemTime,
}

impl DevProvider {
    /// A provider; its rotation task runs on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime (the rotation task needs one).
    pub fn new(authority: Authority, assignment: Assignment) -> Arc<Self> {
        let (x509_bundles, _) = watch::channel(Arc::new(authority.x509_bundles()));
        let (jwt_bundles, _) = watch::channel(Arc::new(authority.jwt_bundles()));
        let provider = Arc::new(Self {
            authority,
            assignment,
            contexts: Mutex::new(HashMap::new()),
            changed: Arc::new(Notify::new()),
            x509_bundles,
            jwt_bundles,
        });
        // The task holds a weak reference, so dropping the provider ends it.
        tokio::spawn(rotate(Arc::downgrade(&provider)));
        provider
    }

    /// The authority behind this provider.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The caller's identities, default first, keeping only those the authority can
    /// issue (an entry naming another trust domain is reported, not served).
    fn identities(&self, caller: &Caller) -> Result<Vec<SpiffeId>, NoIdentity> {
        let td = self.authority.trust_domain().as_str();
        let mut ids = self.assignment.identities_for(caller);
        ids.retain(|id| {
            let ours = id.trust_domain_str() == td && !id.is_root();
            if !ours {
                tracing::warn!(spiffe_id = %id, "not issuing an identity outside this trust domain");
            }
            ours
        });
        if ids.is_empty() {
            return Err(NoIdentity(format!(
                "no entry matches the caller (uid {}, gid {}, executable {})",
                caller.uid,
                caller.gid,
                caller
                    .exe
                    .as_ref()
                    .map_or_else(|| "unknown".to_owned(), |p| p.display().to_string())
            )));
        }
        Ok(ids)
    }

    /// Issues one SVID per identity and builds the context, with the refresh time.
    fn issue_context(&self, ids: &[SpiffeId]) -> Result<(X509Context, SystemTime), AuthorityError> {
        let now = SystemTime::now();
        let svids = ids
            .iter()
            .map(|id| self.authority.issue_x509_svid(id))
            .collect::<Result<Vec<X509Svid>, _>>()?;
        let refresh_at = svids
            .iter()
            .map(|svid| half_life(now, svid.not_after()))
            .min()
            .unwrap_or(now + RETRY_AFTER);
        let context = X509Context {
            svids,
            bundles: self.authority.x509_bundles(),
        };
        Ok((context, refresh_at))
    }

    /// Re-issues every set that is due, publishes the new contexts, forgets sets no
    /// stream watches any more, and says when to look again.
    fn rotate_due(&self) -> SystemTime {
        let now = SystemTime::now();
        let due: Vec<Vec<SpiffeId>> = {
            let mut contexts = lock(&self.contexts);
            contexts.retain(|_, set| set.sender.receiver_count() > 0);
            contexts
                .iter()
                .filter(|(_, set)| set.refresh_at <= now)
                .map(|(ids, _)| ids.clone())
                .collect()
        };
        for ids in due {
            // Issued outside the lock: key generation must not stall new callers.
            let issued = self.issue_context(&ids);
            let mut contexts = lock(&self.contexts);
            let Some(set) = contexts.get_mut(&ids) else {
                continue;
            };
            match issued {
                Ok((context, refresh_at)) => {
                    set.sender.send_replace(Arc::new(context));
                    set.refresh_at = refresh_at;
                }
                Err(e) => {
                    tracing::error!(error = %e, "SVID rotation failed; keeping the current SVIDs and retrying");
                    set.refresh_at = SystemTime::now() + RETRY_AFTER;
                }
            }
        }
        lock(&self.contexts)
            .values()
            .map(|set| set.refresh_at)
            .min()
            .unwrap_or(now + IDLE_WAKE)
    }
}

impl ward_workload::IdentityProvider for DevProvider {
    fn x509_context(
        &self,
        caller: &ward_workload::Caller,
    ) -> Result<
        tokio::sync::watch::Receiver<Arc<ward_workload::X509Context>>,
        ward_workload::NoIdentity,
    > {
        let ids = self.identities(caller)?;
        if let Some(set) = lock(&self.contexts).get(&ids) {
            return Ok(set.sender.subscribe());
        }
        let (context, refresh_at) = self.issue_context(&ids).map_err(|e| {
            tracing::error!(error = %e, "cannot issue the caller's SVIDs");
            NoIdentity(format!("the SVIDs could not be issued: {e}"))
        })?;
        let receiver = {
            let mut contexts = lock(&self.contexts);
            // Another caller may have created the set meanwhile; theirs wins, so all
            // streams of one set see the same SVIDs.
            let set = contexts.entry(ids).or_insert_with(|| IdentitySet {
                sender: watch::channel(Arc::new(context)).0,
                refresh_at,
            });
            set.sender.subscribe()
        };
        self.changed.notify_one();
        Ok(receiver)
    }
    fn x509_bundles(
        &self,
        caller: &ward_workload::Caller,
    ) -> Result<tokio::sync::watch::Receiver<Arc<ward_spiffe::BundleSet>>, ward_workload::NoIdentity>
    {
        // Like SPIRE: a caller without an entry learns nothing, not even the bundles.
        self.identities(caller)?;
        Ok(self.x509_bundles.subscribe())
    }
    fn jwt_bundles(
        &self,
        caller: &ward_workload::Caller,
    ) -> Result<
        tokio::sync::watch::Receiver<Arc<ward_spiffe::JwtBundleSet>>,
        ward_workload::NoIdentity,
    > {
        self.identities(caller)?;
        Ok(self.jwt_bundles.subscribe())
    }
    fn mint_jwt_svids(
        &self,
        caller: &ward_workload::Caller,
        audience: &[String],
        id: Option<&ward_spiffe::SpiffeId>,
    ) -> Result<Vec<ward_spiffe::JwtSvid>, ward_workload::ProviderError> {
        // Workload API §6.2.1: the audience is mandatory.
        if audience.iter().all(|a| a.is_empty()) {
            return Err(ProviderError::InvalidArgument(
                "a JWT-SVID request needs at least one audience".into(),
            ));
        }
        let held = self.identities(caller)?;
        let ids: Vec<SpiffeId> = match id {
            Some(wanted) if held.contains(wanted) => vec![wanted.clone()],
            Some(wanted) => {
                return Err(
                    NoIdentity(format!("the caller does not hold the identity {wanted}")).into(),
                )
            }
            None => held,
        };
        let audience: Vec<String> = audience.iter().filter(|a| !a.is_empty()).cloned().collect();
        ids.iter()
            .map(|id| {
                self.authority
                    .mint_jwt_svid(id, &audience)
                    .map_err(|e| ProviderError::Internal(e.to_string()))
            })
            .collect::<Result<Vec<JwtSvid>, _>>()
    }
}

/// The rotation loop: sleep until the earliest refresh time (or until a new set is
/// added), re-issue what is due, repeat; ends when the provider is dropped.
async fn rotate(provider: Weak<DevProvider>) {
    loop {
        let next = {
            let Some(provider) = provider.upgrade() else {
                return;
            };
            provider.rotate_due()
        };
        let wait = next
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(IDLE_WAKE);
        let Some(changed) = provider.upgrade().map(|p| Arc::clone(&p.changed)) else {
            return;
        };
        let notified = changed.notified();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = notified => {}
        }
    }
}

/// Half-way between issuance and expiry: rotation leaves the other half to deliver the
/// new SVID before the old one expires.
fn half_life(issued: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after.duration_since(issued).unwrap_or(Duration::ZERO);
    issued + lifetime / 2
}

/// The map stays usable even if a thread panicked while holding it: its contents are
/// replaced whole, never left half-written.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
