//! # ward-workload
//!
//! The SPIFFE Workload API (`../shared/spec/WORKLOAD_API.md`), both ends:
//! - [`addr`]: endpoint addresses (`unix:///path`, `tcp://IP:PORT`, `SPIFFE_ENDPOINT_SOCKET`);
//! - [`client`]: a gRPC client for the X.509 and JWT RPCs that always sends the
//!   `workload.spiffe.io: true` header;
//! - [`source`]: long-lived [`X509Source`] and [`JwtSource`] (one stream, atomically
//!   swapped snapshot, watch channel, keep-last-good, reconnect with backoff);
//! - [`server`]: a Workload API server over a pluggable [`IdentityProvider`], bound
//!   first ([`WorkloadServer::bind_unix`], so a bind error stops start-up) and then run;
//! - [`claims`]: JWT claims to and from `google.protobuf.Struct`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ward_workload::{EndpointAddress, SourceOptions, X509Source};
//! // `None`: no configured address, so SPIFFE_ENDPOINT_SOCKET decides.
//! let addr = EndpointAddress::from_config_or_env(None)?;
//! let source = X509Source::new(SourceOptions::new(addr)).await?;
//! let svid = source.svid().ok_or("no valid SVID")?;
//! println!("I am {}", svid.spiffe_id());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod addr;
pub mod claims;
pub mod client;
pub mod context;
pub mod server;
pub mod source;

/// The generated protobuf messages and gRPC stubs (service `SpiffeWorkloadAPI`, no package).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("_");
}

pub use addr::{AddrError, EndpointAddress};
pub use client::{ClientError, WorkloadClient};
pub use context::X509Context;
pub use server::{
    BoundServer, Caller, IdentityProvider, NoIdentity, ProviderError, WorkloadServer,
};
pub use source::{JwtSource, SourceError, SourceOptions, X509Source};

/// The gRPC metadata key every Workload API request carries (value `true`).
pub const SECURITY_HEADER: &str = "workload.spiffe.io";
