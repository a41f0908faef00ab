//! Workload API endpoint addresses (SPIFFE_Workload_Endpoint.md §4; CHECKLIST D.37-39).

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why an endpoint address is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// Placeholder variant; the workload crate's owner defines the real variants.
    #[error("invalid Workload API address: {0}")]
    Invalid(String),
}

/// Where the Workload API is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointAddress {
    /// `unix:///absolute/path.sock`
    Unix(PathBuf),
    /// `tcp://IP:PORT`
    Tcp(SocketAddr),
}

impl EndpointAddress {
    /// Parses `unix:///path` or `tcp://IP:PORT` strictly per the spec.
    pub fn parse(s: &str) -> Result<Self, AddrError> {
        let _ = s;
        todo!()
    }
    /// `explicit` when given, else `SPIFFE_ENDPOINT_SOCKET`; an error naming both when
    /// neither is set.
    pub fn from_config_or_env(explicit: Option<&str>) -> Result<Self, AddrError> {
        let _ = explicit;
        todo!()
    }
}

impl std::fmt::Display for EndpointAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix://{}", p.display()),
            Self::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}
