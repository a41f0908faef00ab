//! # ward-tls
//!
//! rustls glue for SPIFFE (filled in by the proxy work).
#![forbid(unsafe_code)]
