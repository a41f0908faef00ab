//! Addresses in the config: listen addresses, forwarding targets, upstreams.
//!
//! Plaintext only ever travels on this host: a plaintext listener (outbound, admin) or
//! a plaintext target (inbound) off loopback is refused unless the config says
//! `unsafe_listen: true` / `unsafe_target: true` in so many words. Otherwise a typo
//! (`0.0.0.0:9001`) would publish an unauthenticated door to the mesh.

use std::net::SocketAddr;
use std::path::Path;

use super::{ConfigError, Target};

/// Parses `IP:PORT`.
pub(crate) fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse::<SocketAddr>().map_err(|_| {
        format!("{s:?} is not an address; expected IP:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
    })
}

/// True for 127.0.0.0/8, ::1 and their IPv4-mapped forms.
pub(crate) fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// A plaintext listen address: loopback unless `unsafe_listen`.
pub(crate) fn plaintext_listen(s: &str, unsafe_listen: bool) -> Result<SocketAddr, String> {
    let addr = socket_addr(s)?;
    if !unsafe_listen && !is_loopback(&addr) {
        return Err(format!(
            "{s:?} is not a loopback address; set unsafe_listen: true to accept plaintext \
             from other hosts"
        ));
    }
    Ok(addr)
}

/// A forwarding target: `IP:PORT` (loopback unless `unsafe_target`) or `unix:PATH`.
pub(crate) fn parse_target(s: &str, unsafe_target: bool, base: &Path) -> Result<Target, String> {
    if let Some(rest) = s.strip_prefix("unix:") {
        // `unix:///run/app.sock` and `unix:/run/app.sock` are the same socket; an
        // authority (`unix://host/x`) has no meaning for a local socket.
        let path = match rest.strip_prefix("//") {
            Some(after) if after.starts_with('/') => after,
            Some(_) => {
                return Err(format!(
                    "{s:?}: a unix target has no host; write unix:/absolute/path.sock"
                ))
            }
            None => rest,
        };
        if path.is_empty() {
            return Err(format!("{s:?}: the unix socket path is empty"));
        }
        return Ok(Target::Unix(base.join(path)));
    }
    let addr = socket_addr(s)
        .map_err(|_| format!("{s:?} is not a target; expected IP:PORT or unix:/path/to.sock"))?;
    if !unsafe_target && !is_loopback(&addr) {
        return Err(format!(
            "{s:?} is not a loopback address; set unsafe_target: true to forward plaintext \
             off this host"
        ));
    }
    Ok(Target::Tcp(addr))
}

/// Checks `host:port` (a DNS name, an IPv4 address or `[IPv6]`, and a port 1-65535).
pub(crate) fn upstream(s: &str) -> Result<String, String> {
    if s.contains("://") {
        return Err(format!("{s:?}: write host:port, without a scheme"));
    }
    let bad = || format!("{s:?} is not host:port (e.g. payments.prod.svc:8443)");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(format!("{s:?}: {port:?} is not a port (1-65535)")),
    }
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        is_host_name(host)
    };
    if !host_ok {
        return Err(bad());
    }
    Ok(s.to_owned())
}

/// A DNS name or IPv4 address as written in a config: letters, digits, `.`, `-`, `_`.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

/// Checks the `host` of an HTTP proxy route: `host:port`, or a bare DNS name or IPv4
/// address, which matches every port of that host (`http://api.internal/x` and
/// `CONNECT api.internal:443` alike). Returned lowercased, as requests are matched.
pub(crate) fn route_host(s: &str) -> Result<String, String> {
    if s.contains(':') {
        return upstream(s).map(|h| h.to_ascii_lowercase());
    }
    if !is_host_name(s) {
        return Err(format!(
            "{s:?} is not a host name or host:port (e.g. payments.internal or payments.internal:80)"
        ));
    }
    Ok(s.to_ascii_lowercase())
}

/// True when two listen addresses cannot both be bound: the same port and the same
/// address, or one of them the wildcard address of the same family (or `[::]`,
/// which is dual-stack by default on Linux). Port 0 (any free port) never clashes.
pub(crate) fn clash(a: &SocketAddr, b: &SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let (x, y) = (a.ip(), b.ip());
    x == y
        || (x.is_unspecified() && (x.is_ipv6() || y.is_ipv4()))
        || (y.is_unspecified() && (y.is_ipv6() || x.is_ipv4()))
}

/// Parses a plaintext listen address given on the command line (`--listen`):
/// loopback unless `unsafe_listen`.
pub fn parse_plaintext_listen(s: &str, unsafe_listen: bool) -> Result<SocketAddr, ConfigError> {
    plaintext_listen(s, unsafe_listen).map_err(|m| ConfigError::value("listen", m))
}

/// Checks an upstream `host:port` given on the command line (`--upstream`).
pub fn parse_upstream(s: &str) -> Result<String, ConfigError> {
    upstream(s).map_err(|m| ConfigError::value("upstream", m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_includes_the_whole_127_block_and_mapped_forms() {
        for s in [
            "127.0.0.1:1",
            "127.9.9.9:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(is_loopback(&s.parse().unwrap()), "{s}");
        }
        for s in ["0.0.0.0:1", "10.0.0.5:1", "[::]:1", "[::ffff:10.0.0.5]:1"] {
            assert!(!is_loopback(&s.parse().unwrap()), "{s}");
        }
    }

    #[test]
    fn unix_target_forms_are_equivalent_and_relative_paths_use_the_base() {
        let base = Path::new("/etc/ward");
        assert_eq!(
            parse_target("unix:/run/app.sock", false, base).unwrap(),
            Target::Unix("/run/app.sock".into())
        );
        assert_eq!(
            parse_target("unix:///run/app.sock", false, base).unwrap(),
            Target::Unix("/run/app.sock".into())
        );
        assert_eq!(
            parse_target("unix:app.sock", false, base).unwrap(),
            Target::Unix("/etc/ward/app.sock".into())
        );
        assert!(parse_target("unix://host/app.sock", false, base).is_err());
        assert!(parse_target("unix:", false, base).is_err());
    }

    #[test]
    fn upstream_needs_host_and_port_without_scheme() {
        assert!(upstream("payments.prod.svc:8443").is_ok());
        assert!(upstream("10.0.0.1:443").is_ok());
        assert!(upstream("[::1]:443").is_ok());
        for bad in [
            "payments",
            "https://p:443",
            "p:0",
            "p:99999",
            ":443",
            "a b:1",
            "[zz]:1",
        ] {
            assert!(upstream(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn route_host_may_leave_out_the_port() {
        assert_eq!(
            route_host("Payments.Internal").unwrap(),
            "payments.internal"
        );
        assert_eq!(
            route_host("payments.internal:80").unwrap(),
            "payments.internal:80"
        );
        assert_eq!(route_host("10.0.0.1").unwrap(), "10.0.0.1");
        for bad in ["", "a b", "http://p", "p:0", "p/x", "[::1]"] {
            assert!(route_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcard_listen_clashes_with_any_address_on_the_same_port() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(clash(&a("0.0.0.0:8443"), &a("127.0.0.1:8443")));
        assert!(clash(&a("[::]:8443"), &a("127.0.0.1:8443")));
        assert!(clash(&a("127.0.0.1:8443"), &a("127.0.0.1:8443")));
        assert!(!clash(&a("127.0.0.1:8443"), &a("127.0.0.2:8443")));
        assert!(!clash(&a("127.0.0.1:8443"), &a("127.0.0.1:8444")));
        assert!(!clash(&a("127.0.0.1:0"), &a("127.0.0.1:0")));
    }
}
