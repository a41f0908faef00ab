//! # ward-authority
//!
//! A local SPIFFE authority for development and tests, standing in for SPIRE: a P-256
//! CA (generated, loaded from `--state-dir`, or given as files), X509-SVIDs that satisfy
//! every rule of X509-SVID.md, rotation at half-life pushed to every stream, ES256
//! JWT-SVIDs with their JWT bundle, federated bundles from SPIFFE bundle files, and
//! identities assigned per socket or by registration entries matched on the caller's
//! uid, gid and executable path. [`DevProvider`] serves it all through
//! `ward_workload::WorkloadServer`.
#![forbid(unsafe_code)]

pub mod authority;
pub mod entries;
pub mod provider;

pub use authority::{Authority, AuthorityConfig, AuthorityError, CaSource};
pub use entries::{Assignment, EntriesError, Entry};
pub use provider::DevProvider;
