//! Which identity a caller gets.

use std::path::{Path, PathBuf};

use ward_spiffe::SpiffeId;
use ward_workload::Caller;

/// Why an entries file is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntriesError {
    /// Placeholder variant; the authority crate's owner defines the real variants.
    #[error("entries file: {0}")]
    Other(String),
}

/// A registration entry: callers matching every selector that is set get `spiffe_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The identity granted.
    pub spiffe_id: SpiffeId,
    /// Caller's uid must equal this, when set.
    pub uid: Option<u32>,
    /// Caller's gid must equal this, when set.
    pub gid: Option<u32>,
    /// Caller's executable path must equal this, when set.
    pub path: Option<PathBuf>,
}

/// How identities are assigned on one socket.
#[derive(Debug, Clone)]
pub enum Assignment {
    /// Every caller of the socket gets this identity.
    Fixed(SpiffeId),
    /// Callers are matched against entries; every matching entry grants its identity.
    Entries(Vec<Entry>),
}

impl Assignment {
    /// Loads an entries file (YAML), with errors naming the line.
    pub fn load_entries(path: &Path) -> Result<Self, EntriesError> {
        let _ = path;
        todo!()
    }
    /// The identities this caller gets (empty: no identity).
    pub fn identities_for(&self, caller: &Caller) -> Vec<SpiffeId> {
        let _ = caller;
        todo!()
    }
}
