//! Policy hot reload: the policy file is watched and re-read on change and on SIGHUP;
//! a new policy is validated in full and swapped in atomically, and a broken file is
//! reported and counted while the previous policy stays in force.
//!
//! The watch is on the file's *directory*, not the file: Kubernetes updates a mounted
//! ConfigMap by pointing the `..data` symlink at a new directory (the file itself,
//! a symlink through `..data`, never changes), and editors save by renaming a new
//! file over the old one; a watch on the old inode would miss both. Events are
//! debounced (100 ms) and a reload only happens when the file's bytes differ from the
//! last ones read, so unrelated files in the same directory cost one read, no reload.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::policy::{Policy, PolicyError, PolicyHandle};

/// How long a burst of file events is left to settle before the file is read: a
/// ConfigMap swap or an editor's save is several events within a few milliseconds.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Reload counters, exported as metrics.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Reloads that installed a new policy.
    pub ok: AtomicU64,
    /// Reloads refused (unreadable or invalid file); the old policy stayed.
    pub errors: AtomicU64,
}

impl ReloadStats {
    /// Successful reloads so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }
    /// Refused reloads so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

/// Why the reloader could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The policy file's directory cannot be watched.
    #[error("cannot watch policy directory {}: {source}", dir.display())]
    Watch {
        /// The directory.
        dir: PathBuf,
        /// The watcher's error.
        #[source]
        source: notify::Error,
    },
    /// The SIGHUP handler could not be installed.
    #[error("cannot listen for SIGHUP: {0}")]
    Signal(#[source] std::io::Error),
}

/// Reloads the policy behind a [`PolicyHandle`] when its file changes or on SIGHUP.
#[derive(Debug, Clone)]
pub struct PolicyReloader {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    handle: Arc<PolicyHandle>,
    path: PathBuf,
    stats: Arc<ReloadStats>,
    /// The bytes of the file when last read (applied or refused): a watch event that
    /// leaves them unchanged is not a reload.
    last: Mutex<Option<Vec<u8>>>,
}

impl PolicyReloader {
    /// A reloader for `handle`, fed from `path`. The file's current contents are taken
    /// as the ones already in force (the caller loaded the initial policy from it).
    pub fn new(handle: Arc<PolicyHandle>, path: PathBuf) -> Self {
        let current = std::fs::read(&path).ok();
        Self {
            inner: Arc::new(Inner {
                handle,
                path,
                stats: Arc::new(ReloadStats::default()),
                last: Mutex::new(current),
            }),
        }
    }

    /// The counters (shared; they keep counting while the reloader runs).
    pub fn stats(&self) -> Arc<ReloadStats> {
        self.inner.stats.clone()
    }

    /// Reads, validates and installs the policy file now (the SIGHUP path). On
    /// failure the policy in force is kept; either way the outcome is logged and
    /// counted. Returns the number of rules installed.
    pub fn reload(&self) -> Result<usize, PolicyError> {
        let bytes = std::fs::read(&self.inner.path).map_err(|source| PolicyError::Read {
            path: self.inner.path.clone(),
            source,
        });
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(err) => {
                self.remember(None);
                return Err(self.refused(err));
            }
        };
        self.remember(Some(bytes.clone()));
        self.apply(&bytes)
    }

    /// Reloads when the file's bytes differ from the last ones read (the watch path).
    fn reload_if_changed(&self) {
        let bytes = std::fs::read(&self.inner.path).ok();
        let unchanged = self
            .inner
            .last
            .lock()
            .map(|last| *last == bytes)
            .unwrap_or(false);
        if !unchanged {
            // Errors are logged and counted inside `reload`.
            let _ = self.reload();
        }
    }

    fn remember(&self, bytes: Option<Vec<u8>>) {
        if let Ok(mut last) = self.inner.last.lock() {
            *last = bytes;
        }
    }

    fn apply(&self, bytes: &[u8]) -> Result<usize, PolicyError> {
        let name = self.inner.path.display().to_string();
        let parsed = match std::str::from_utf8(bytes) {
            Ok(text) => Policy::from_yaml(text, &name),
            Err(e) => Err(PolicyError::Invalid {
                problems: vec![crate::config::Problem {
                    file: name.clone(),
                    line: None,
                    field: String::new(),
                    message: format!("the file is not UTF-8 ({e})"),
                }],
            }),
        };
        match parsed {
            Ok(policy) => {
                let rules = policy.len();
                self.inner.handle.store(policy);
                self.inner.stats.ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!(file = %name, "policy reloaded: {rules} rules");
                Ok(rules)
            }
            Err(err) => Err(self.refused(err)),
        }
    }

    fn refused(&self, err: PolicyError) -> PolicyError {
        self.inner.stats.errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            file = %self.inner.path.display(),
            "policy reload refused, the previous policy stays in force: {err}"
        );
        err
    }

    /// Starts watching the file's directory and listening for SIGHUP, on the current
    /// tokio runtime. The watch and the signal handler are set up before this returns,
    /// so a failure is a start-up error; the task runs until aborted.
    pub fn spawn(&self) -> Result<tokio::task::JoinHandle<()>, ReloadError> {
        let dir = match self.inner.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let (tx, mut events) = mpsc::unbounded_channel::<()>();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Opening or reading the file (ours included) is not a change.
            let change = match res {
                Ok(event) => match event.kind {
                    EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
                    EventKind::Access(_) => false,
                    _ => true,
                },
                // The watcher itself failed (queue overflow): re-read to be safe.
                Err(_) => true,
            };
            if change {
                let _ = tx.send(());
            }
        })
        .map_err(|source| ReloadError::Watch {
            dir: dir.clone(),
            source,
        })?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| ReloadError::Watch {
                dir: dir.clone(),
                source,
            })?;
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(ReloadError::Signal)?;
        let this = self.clone();
        Ok(tokio::spawn(async move {
            // Owned by the task: dropping the watcher would end the watch.
            let _watcher = watcher;
            loop {
                tokio::select! {
                    event = events.recv() => {
                        if event.is_none() {
                            break;
                        }
                        tokio::time::sleep(DEBOUNCE).await;
                        while events.try_recv().is_ok() {}
                        let reloader = this.clone();
                        let _ = tokio::task::spawn_blocking(move || reloader.reload_if_changed()).await;
                    }
                    signal = hangup.recv() => {
                        if signal.is_none() {
                            break;
                        }
                        tracing::info!("SIGHUP: reloading the policy");
                        let reloader = this.clone();
                        let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
                    }
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Request;
    use std::path::Path;
    use ward_spiffe::SpiffeId;

    const V1: &str =
        "rules:\n  - name: v1\n    listener: api\n    allow: [spiffe://example.org/a]\n";
    const V2: &str = "rules:\n  - name: v2\n    listener: api\n    allow: [spiffe://example.org/a]\n  - name: other\n    listener: api\n    allow: [spiffe://example.org/b]\n";
    const BROKEN: &str =
        "rules:\n  - name: v3\n    listener: api\n    allow: [\"spiffe://example.org/**/a\"]\n";

    /// The rule that allows `spiffe://example.org/a` on `api` now.
    fn deciding_rule(handle: &PolicyHandle) -> Option<String> {
        let peer = SpiffeId::new("spiffe://example.org/a").unwrap();
        let request = Request {
            listener: "api",
            peer: &peer,
            method: None,
            path: None,
        };
        handle
            .current()
            .decide(&request)
            .rule
            .map(|r| r.to_string())
    }

    /// Writes `text` to `path` the way editors do: a new file renamed over the old.
    fn replace(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    /// Polls `done` every 20 ms for at most 5 s.
    async fn wait_until(mut done: impl FnMut() -> bool) -> bool {
        for _ in 0..250 {
            if done() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        done()
    }

    fn start(path: &Path) -> (Arc<PolicyHandle>, PolicyReloader) {
        let handle = PolicyHandle::new(Policy::load(path).unwrap());
        let reloader = PolicyReloader::new(handle.clone(), path.to_owned());
        (handle, reloader)
    }

    #[tokio::test]
    async fn changed_file_is_reloaded_and_broken_file_keeps_the_old_policy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, V1).unwrap();
        let (handle, reloader) = start(&path);
        let task = reloader.spawn().unwrap();
        let stats = reloader.stats();

        replace(&path, V2);
        assert!(wait_until(|| deciding_rule(&handle).as_deref() == Some("v2")).await);
        assert_eq!(handle.current().len(), 2);
        assert_eq!(stats.ok(), 1);

        replace(&path, BROKEN);
        assert!(wait_until(|| stats.errors() == 1).await);
        assert_eq!(deciding_rule(&handle).as_deref(), Some("v2"));
        assert_eq!(stats.ok(), 1);
        task.abort();
    }

    #[tokio::test]
    async fn unrelated_file_in_the_directory_is_not_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, V1).unwrap();
        let (_handle, reloader) = start(&path);
        let task = reloader.spawn().unwrap();
        std::fs::write(dir.path().join("other.txt"), "x").unwrap();
        replace(&path, V2);
        let stats = reloader.stats();
        assert!(wait_until(|| stats.ok() == 1).await);
        std::fs::write(dir.path().join("other.txt"), "y").unwrap();
        tokio::time::sleep(DEBOUNCE * 4).await;
        assert_eq!((stats.ok(), stats.errors()), (1, 0));
        task.abort();
    }

    #[test]
    fn sighup_reload_installs_a_valid_file_and_refuses_a_broken_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, V1).unwrap();
        let (handle, reloader) = start(&path);

        std::fs::write(&path, BROKEN).unwrap();
        let err = reloader.reload().unwrap_err().to_string();
        assert!(
            err.contains("rules[0] (v3).allow[0]") && err.contains("last segment"),
            "{err}"
        );
        assert_eq!(deciding_rule(&handle).as_deref(), Some("v1"));
        assert_eq!(reloader.stats().errors(), 1);

        std::fs::remove_file(&path).unwrap();
        assert!(reloader.reload().is_err());
        assert_eq!(deciding_rule(&handle).as_deref(), Some("v1"));
        assert_eq!(reloader.stats().errors(), 2);

        std::fs::write(&path, V2).unwrap();
        assert_eq!(reloader.reload().unwrap(), 2);
        assert_eq!(deciding_rule(&handle).as_deref(), Some("v2"));
        assert_eq!(reloader.stats().ok(), 1);
    }

    #[tokio::test]
    async fn configmap_symlink_swap_triggers_a_reload() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // The layout the kubelet writes for a mounted ConfigMap.
        std::fs::create_dir(d.join("..2026_1")).unwrap();
        std::fs::write(d.join("..2026_1/policy.yaml"), V1).unwrap();
        symlink("..2026_1", d.join("..data")).unwrap();
        symlink("..data/policy.yaml", d.join("policy.yaml")).unwrap();
        let path = d.join("policy.yaml");
        let (handle, reloader) = start(&path);
        let task = reloader.spawn().unwrap();

        // The update: a new timestamped directory, then `..data` swapped atomically.
        std::fs::create_dir(d.join("..2026_2")).unwrap();
        std::fs::write(d.join("..2026_2/policy.yaml"), V2).unwrap();
        symlink("..2026_2", d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        std::fs::remove_dir_all(d.join("..2026_1")).unwrap();

        assert!(wait_until(|| deciding_rule(&handle).as_deref() == Some("v2")).await);
        assert_eq!(reloader.stats().errors(), 0);
        task.abort();
    }
}
