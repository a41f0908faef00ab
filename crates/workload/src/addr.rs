//! Workload API endpoint addresses (SPIFFE_Workload_Endpoint.md §4; CHECKLIST D.37-39).
//!
//! The value is an RFC 3986 URI with scheme `unix` or `tcp` and nothing else:
//! - `unix:///absolute/path.sock` (or `unix:/absolute/path.sock`): no authority, an
//!   absolute path, no query, no fragment;
//! - `tcp://IP:PORT`: an IP address (not a name) and a port, no user info, no path (not
//!   even `/`), no query, no fragment.
//!
//! The libraries disagree on a few forms (go-spiffe accepts `unix://foo`, rust-spiffe
//! accepts `tcp:1.2.3.4:80` and `tcp://1.2.3.4:80/`); the spec decides, so all three are
//! rejected here.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// The environment variable that names the endpoint when nothing is configured.
pub const ENDPOINT_SOCKET_ENV: &str = "SPIFFE_ENDPOINT_SOCKET";

/// Why an endpoint address is not usable. Every message names the address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// No address was configured and `SPIFFE_ENDPOINT_SOCKET` is not set.
    #[error(
        "no Workload API address: none was configured and {ENDPOINT_SOCKET_ENV} is not set \
         (expected unix:///path/to/agent.sock or tcp://IP:PORT)"
    )]
    NotConfigured,
    /// The address came from `SPIFFE_ENDPOINT_SOCKET` and is invalid.
    #[error("{ENDPOINT_SOCKET_ENV}: {0}")]
    FromEnv(Box<AddrError>),
    /// The address is empty.
    #[error("the Workload API address is empty (expected unix:///path or tcp://IP:PORT)")]
    Empty,
    /// A character that may not appear in a URI (space, control character, non-ASCII).
    #[error(
        "Workload API address {addr:?}: character {ch:?} at byte {at} is not allowed in a URI"
    )]
    BadCharacter {
        /// The address as given.
        addr: String,
        /// The offending character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// No `scheme:` prefix, or a scheme other than `unix` / `tcp`.
    #[error("Workload API address {addr:?}: the scheme must be \"unix\" or \"tcp\"")]
    UnsupportedScheme {
        /// The address as given.
        addr: String,
    },
    /// A `?query` component.
    #[error("Workload API address {addr:?} must not include query values")]
    Query {
        /// The address as given.
        addr: String,
    },
    /// A `#fragment` component.
    #[error("Workload API address {addr:?} must not include a fragment")]
    Fragment {
        /// The address as given.
        addr: String,
    },
    /// A `user:password@` component.
    #[error("Workload API address {addr:?} must not include user info")]
    UserInfo {
        /// The address as given.
        addr: String,
    },
    /// `unix://host/...`: the spec forbids an authority for `unix`.
    #[error(
        "Workload API address {addr:?}: a unix address must not include an authority \
         ({authority:?}); write unix:///absolute/path"
    )]
    UnixAuthority {
        /// The address as given.
        addr: String,
        /// The authority found.
        authority: String,
    },
    /// `unix:relative` or `unix:` with no path.
    #[error(
        "Workload API address {addr:?}: a unix address must hold the absolute path of the \
         socket (unix:///path/to/socket)"
    )]
    UnixPath {
        /// The address as given.
        addr: String,
    },
    /// A malformed `%XX` escape.
    #[error("Workload API address {addr:?}: malformed percent-encoding at byte {at}")]
    PercentEncoding {
        /// The address as given.
        addr: String,
        /// Byte offset of the `%`.
        at: usize,
    },
    /// `tcp:1.2.3.4:80`: the spec needs a host component, so `//` is required.
    #[error("Workload API address {addr:?}: a tcp address must be written tcp://IP:PORT")]
    TcpOpaque {
        /// The address as given.
        addr: String,
    },
    /// `tcp://` or `tcp://:80`.
    #[error("Workload API address {addr:?}: a tcp address must include a host IP")]
    TcpHostMissing {
        /// The address as given.
        addr: String,
    },
    /// `tcp://name:80`: the host must be an IP address.
    #[error(
        "Workload API address {addr:?}: the tcp host {host:?} must be an IP address, not a name"
    )]
    TcpHostNotIp {
        /// The address as given.
        addr: String,
        /// The host found.
        host: String,
    },
    /// `tcp://1.2.3.4`, `tcp://1.2.3.4:`, `tcp://1.2.3.4:0`, `tcp://1.2.3.4:x`.
    #[error("Workload API address {addr:?}: a tcp address must include a port 1-65535")]
    TcpPort {
        /// The address as given.
        addr: String,
    },
    /// `tcp://1.2.3.4:80/anything`, including a bare `/`.
    #[error("Workload API address {addr:?}: a tcp address must not include a path ({path:?})")]
    TcpPath {
        /// The address as given.
        addr: String,
        /// The path found.
        path: String,
    },
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
    ///
    /// ```
    /// use ward_workload::EndpointAddress;
    /// let a = EndpointAddress::parse("unix:///run/spire/sockets/agent.sock").unwrap();
    /// assert_eq!(a.to_string(), "unix:///run/spire/sockets/agent.sock");
    /// assert!(EndpointAddress::parse("unix://run/agent.sock").is_err());
    /// assert!(EndpointAddress::parse("tcp://localhost:8081").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self, AddrError> {
        if s.is_empty() {
            return Err(AddrError::Empty);
        }
        let addr = || s.to_string();
        if let Some((at, ch)) = s.char_indices().find(|(_, c)| !is_uri_char(*c)) {
            return Err(AddrError::BadCharacter {
                addr: addr(),
                ch,
                at,
            });
        }
        let Some((scheme, rest)) = s.split_once(':') else {
            return Err(AddrError::UnsupportedScheme { addr: addr() });
        };
        // RFC 3986 §3.5/§3.4: '#' starts a fragment, '?' a query; neither is allowed.
        if rest.contains('#') {
            return Err(AddrError::Fragment { addr: addr() });
        }
        if rest.contains('?') {
            return Err(AddrError::Query { addr: addr() });
        }
        // RFC 3986 §3.1: schemes are case-insensitive.
        match scheme.to_ascii_lowercase().as_str() {
            "unix" => parse_unix(s, rest),
            "tcp" => parse_tcp(s, rest),
            _ => Err(AddrError::UnsupportedScheme { addr: addr() }),
        }
    }

    /// `explicit` when given, else `SPIFFE_ENDPOINT_SOCKET`; an error naming both when
    /// neither is set.
    pub fn from_config_or_env(explicit: Option<&str>) -> Result<Self, AddrError> {
        if let Some(explicit) = explicit {
            return Self::parse(explicit);
        }
        match std::env::var(ENDPOINT_SOCKET_ENV) {
            Ok(v) if !v.is_empty() => Self::parse(&v).map_err(|e| AddrError::FromEnv(Box::new(e))),
            _ => Err(AddrError::NotConfigured),
        }
    }
}

/// RFC 3986 unreserved, reserved and `%`: anything else (space, controls, non-ASCII,
/// `"<>\^`{|}`) cannot appear in a URI.
fn is_uri_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c)
}

/// Splits `//authority/path` into (Some(authority), path), or (None, rest) without `//`.
fn split_authority(rest: &str) -> (Option<&str>, &str) {
    match rest.strip_prefix("//") {
        Some(after) => match after.find('/') {
            Some(i) => (Some(&after[..i]), &after[i..]),
            None => (Some(after), ""),
        },
        None => (None, rest),
    }
}

fn parse_unix(addr: &str, rest: &str) -> Result<EndpointAddress, AddrError> {
    let (authority, path) = split_authority(rest);
    if let Some(authority) = authority {
        if authority.contains('@') {
            return Err(AddrError::UserInfo { addr: addr.into() });
        }
        // D.38: "authority MUST NOT be set" (go-spiffe accepts unix://foo; the spec wins).
        if !authority.is_empty() {
            return Err(AddrError::UnixAuthority {
                addr: addr.into(),
                authority: authority.into(),
            });
        }
    }
    // The path must name a socket file: absolute, and neither `/` nor a directory.
    if !path.starts_with('/') || path.ends_with('/') {
        return Err(AddrError::UnixPath { addr: addr.into() });
    }
    let bytes = percent_decode(addr, path)?;
    Ok(EndpointAddress::Unix(PathBuf::from(OsString::from_vec(
        bytes,
    ))))
}

fn percent_decode(addr: &str, path: &str) -> Result<Vec<u8>, AddrError> {
    let offset = addr.len() - path.len();
    let raw = path.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            match byte {
                // A decoded NUL would truncate the path at the system call.
                Some(b) if b != 0 => out.push(b),
                _ => {
                    return Err(AddrError::PercentEncoding {
                        addr: addr.into(),
                        at: offset + i,
                    })
                }
            }
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn parse_tcp(addr: &str, rest: &str) -> Result<EndpointAddress, AddrError> {
    // D.39 needs a host component; `tcp:1.2.3.4:80` has none (rust-spiffe accepts it as
    // shorthand, go-spiffe rejects it as opaque; the spec wins).
    let (Some(authority), path) = split_authority(rest) else {
        return Err(AddrError::TcpOpaque { addr: addr.into() });
    };
    if authority.contains('@') {
        return Err(AddrError::UserInfo { addr: addr.into() });
    }
    if !path.is_empty() {
        return Err(AddrError::TcpPath {
            addr: addr.into(),
            path: path.into(),
        });
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return Err(AddrError::TcpHostNotIp {
                addr: addr.into(),
                host: authority.into(),
            });
        };
        let ip: Ipv6Addr = host.parse().map_err(|_| AddrError::TcpHostNotIp {
            addr: addr.into(),
            host: host.into(),
        })?;
        (IpAddr::V6(ip), after.strip_prefix(':'))
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(AddrError::TcpHostMissing { addr: addr.into() });
        }
        // Only dotted-quad IPv4 here: IPv6 must be bracketed (RFC 3986 §3.2.2).
        let ip: std::net::Ipv4Addr = host.parse().map_err(|_| AddrError::TcpHostNotIp {
            addr: addr.into(),
            host: host.into(),
        })?;
        (IpAddr::V4(ip), port)
    };
    let port = port
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| AddrError::TcpPort { addr: addr.into() })?;
    Ok(EndpointAddress::Tcp(SocketAddr::new(host, port)))
}

impl std::fmt::Display for EndpointAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix://{}", p.display()),
            Self::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}
