//! # ward-spiffe
//!
//! The SPIFFE data model, strict to the letter of the SPIFFE standards
//! (`../shared/spec/CHECKLIST.md`): [`SpiffeId`] and [`TrustDomain`], the X509-SVID
//! ([`X509Svid`]) with every leaf and signing-certificate rule, X.509 bundles kept per
//! trust domain in a [`BundleSet`] (never merged), SPIFFE bundle documents
//! ([`SpiffeBundle`]), JWT bundles and JWT-SVID validation ([`JwtSvid`]).
//!
//! This crate does no I/O and has no async: it parses, validates and serialises.
//!
//! Peer chains are verified with [`verify_chain`] / [`verify_chain_for`] against the
//! bundle of the leaf's own trust domain only; [`x509::check_leaf`] and
//! [`x509::check_signing_cert`] list every broken rule with its CHECKLIST id (for
//! `ward inspect`). JWT-SVIDs are validated with zero leeway on `exp` and always
//! against a non-empty expected audience ([`jwt::EXP_LEEWAY`]).
//!
//! ```
//! use ward_spiffe::SpiffeId;
//! let id: SpiffeId = "spiffe://example.org/ns/prod/sa/api".parse().unwrap();
//! assert_eq!(id.trust_domain().as_str(), "example.org");
//! assert_eq!(id.path(), "/ns/prod/sa/api");
//! ```
#![forbid(unsafe_code)]

pub mod bundle;
pub mod id;
pub mod jwt;
pub mod x509;

pub use bundle::{
    BundleError, BundleSet, JwtBundle, JwtBundleSet, SpiffeBundle, SpiffeBundleMap, X509Bundle,
};
pub use id::{IdError, SpiffeId, TrustDomain};
pub use jwt::{JwtAuthority, JwtError, JwtSvid};
pub use x509::{verify_chain, verify_chain_for, ChainUsage, SvidError, Violation, X509Svid};
