//! Which identity a caller gets.
//!
//! An entries file lists registration entries, SPIRE-style: a SPIFFE ID and the
//! selectors (uid, gid, executable path) a caller must match to get it. A caller may
//! match several entries; it then holds several identities, in file order, and the
//! first is its default (Workload API §8).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;
use ward_spiffe::{SpiffeId, TrustDomain};
use ward_workload::Caller;

/// Why an entries file is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntriesError {
    /// The file could not be read.
    #[error("cannot read entries file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML of the expected shape, or an entry is wrong.
    #[error("entries file {}, line {line}, column {column}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when the parser could not tell).
        line: u64,
        /// 1-based column (0 when the parser could not tell).
        column: u64,
        /// What is wrong, as a sentence.
        message: String,
    },
    /// The file lists no entries, so nobody would get an identity.
    #[error("entries file {} lists no entries; add at least one under `entries:`", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// An assigned identity is outside the authority's trust domain.
    #[error(
        "{id} is not in the trust domain {trust_domain} this authority issues for; \
         it could never be issued"
    )]
    ForeignTrustDomain {
        /// The offending SPIFFE ID.
        id: String,
        /// The authority's trust domain.
        trust_domain: TrustDomain,
    },
    /// An assigned identity is the ID of a trust domain, not of a workload.
    #[error("{id} has no path; a workload's SPIFFE ID needs one (X509-SVID.md §3.1)")]
    RootId {
        /// The offending SPIFFE ID.
        id: String,
    },
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

impl Entry {
    /// True when the caller matches every selector this entry sets. An entry with no
    /// selector matches nobody: granting an identity to every local process must be
    /// said explicitly, with [`Assignment::Fixed`].
    pub fn matches(&self, caller: &Caller) -> bool {
        let has_selector = self.uid.is_some() || self.gid.is_some() || self.path.is_some();
        has_selector
            && self.uid.is_none_or(|uid| uid == caller.uid)
            && self.gid.is_none_or(|gid| gid == caller.gid)
            && self
                .path
                .as_ref()
                .is_none_or(|path| caller.exe.as_deref() == Some(path.as_path()))
    }
}

/// How identities are assigned on one socket.
#[derive(Debug, Clone)]
pub enum Assignment {
    /// Every caller of the socket gets this identity.
    Fixed(SpiffeId),
    /// Callers are matched against entries; every matching entry grants its identity.
    Entries(Vec<Entry>),
}

/// The file as written: `entries:` and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    entries: Vec<Spanned<RawEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    spiffe_id: Spanned<String>,
    uid: Option<u32>,
    gid: Option<u32>,
    path: Option<Spanned<PathBuf>>,
}

impl Assignment {
    /// Loads an entries file (YAML), with errors naming the line.
    pub fn load_entries(path: &Path) -> Result<Self, EntriesError> {
        Self::load(path, None)
    }

    /// Loads an entries file and checks that every SPIFFE ID is in `trust_domain`, the
    /// one the authority issues for; errors name the line of the offending entry.
    pub fn load_entries_for(path: &Path, trust_domain: &TrustDomain) -> Result<Self, EntriesError> {
        Self::load(path, Some(trust_domain))
    }

    /// Parses entries from YAML text; `path` only names the source in errors.
    pub fn parse_entries(
        yaml: &str,
        path: &Path,
        trust_domain: Option<&TrustDomain>,
    ) -> Result<Self, EntriesError> {
        let invalid = |loc: serde_saphyr::Location, message: String| EntriesError::Invalid {
            path: path.to_owned(),
            line: loc.line(),
            column: loc.column(),
            message,
        };
        let raw: RawFile = serde_saphyr::from_str(yaml).map_err(|e| {
            let loc = e.location().unwrap_or(serde_saphyr::Location::UNKNOWN);
            invalid(loc, plain_message(&e, loc))
        })?;
        if raw.entries.is_empty() {
            return Err(EntriesError::Empty {
                path: path.to_owned(),
            });
        }
        let mut entries = Vec::with_capacity(raw.entries.len());
        for spanned in raw.entries {
            let at = spanned.referenced;
            let raw = spanned.value;
            let id_at = raw.spiffe_id.referenced;
            let spiffe_id = SpiffeId::new(&raw.spiffe_id.value).map_err(|e| {
                invalid(
                    id_at,
                    format!("`{}` is not a valid SPIFFE ID: {e}", raw.spiffe_id.value),
                )
            })?;
            if spiffe_id.is_root() {
                return Err(invalid(
                    id_at,
                    format!("{spiffe_id} has no path; a workload's SPIFFE ID needs one"),
                ));
            }
            if let Some(td) = trust_domain {
                if spiffe_id.trust_domain_str() != td.as_str() {
                    return Err(invalid(
                        id_at,
                        format!(
                            "{spiffe_id} is not in the trust domain {td} this authority issues for"
                        ),
                    ));
                }
            }
            if raw.uid.is_none() && raw.gid.is_none() && raw.path.is_none() {
                return Err(invalid(
                    at,
                    format!(
                        "the entry for {spiffe_id} has no selector; set at least one of \
                         uid, gid or path"
                    ),
                ));
            }
            let exe = match raw.path {
                Some(p) if !p.value.is_absolute() => {
                    return Err(invalid(
                        p.referenced,
                        format!(
                            "path `{}` is not absolute; the caller's executable is matched by \
                             its absolute path",
                            p.value.display()
                        ),
                    ))
                }
                Some(p) => Some(p.value),
                None => None,
            };
            entries.push(Entry {
                spiffe_id,
                uid: raw.uid,
                gid: raw.gid,
                path: exe,
            });
        }
        Ok(Self::Entries(entries))
    }

    fn load(path: &Path, trust_domain: Option<&TrustDomain>) -> Result<Self, EntriesError> {
        let yaml = std::fs::read_to_string(path).map_err(|source| EntriesError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse_entries(&yaml, path, trust_domain)
    }

    /// Checks that every identity this assignment can grant is a workload ID in
    /// `trust_domain` (for assignments not loaded with [`Assignment::load_entries_for`]).
    pub fn validate(&self, trust_domain: &TrustDomain) -> Result<(), EntriesError> {
        let ids: Vec<&SpiffeId> = match self {
            Self::Fixed(id) => vec![id],
            Self::Entries(entries) => entries.iter().map(|e| &e.spiffe_id).collect(),
        };
        for id in ids {
            if id.trust_domain_str() != trust_domain.as_str() {
                return Err(EntriesError::ForeignTrustDomain {
                    id: id.to_string(),
                    trust_domain: trust_domain.clone(),
                });
            }
            if id.is_root() {
                return Err(EntriesError::RootId { id: id.to_string() });
            }
        }
        Ok(())
    }

    /// The identities this caller gets (empty: no identity).
    pub fn identities_for(&self, caller: &Caller) -> Vec<SpiffeId> {
        match self {
            Self::Fixed(id) => vec![id.clone()],
            Self::Entries(entries) => {
                let mut ids: Vec<SpiffeId> = Vec::new();
                for entry in entries.iter().filter(|e| e.matches(caller)) {
                    // Two entries may grant the same ID through different selectors;
                    // the caller holds it once, at its first position.
                    if !ids.contains(&entry.spiffe_id) {
                        ids.push(entry.spiffe_id.clone());
                    }
                }
                ids
            }
        }
    }
}

/// The parser's message without its source snippet or location suffix: the location
/// is reported by our own error, once, in the same format for every entries error.
fn plain_message(e: &serde_saphyr::Error, loc: serde_saphyr::Location) -> String {
    let mut options = serde_saphyr::RenderOptions::default();
    options.snippets = serde_saphyr::SnippetMode::Off;
    let message = e.render_with_options(options);
    let suffix = format!(" at line {}, column {}", loc.line(), loc.column());
    match message.strip_suffix(&suffix) {
        Some(stripped) => stripped.to_owned(),
        None => message,
    }
}
