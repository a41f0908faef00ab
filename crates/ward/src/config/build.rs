//! Validation of the raw config into the public types. Every check records a located
//! problem and carries on, so one run of `ward validate` shows every mistake; the
//! config is only built when nothing was found.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::net;
use super::raw::{RawAdmin, RawConfig, RawInbound, RawLimits, RawOutbound, RawRoute, Text};
use super::yaml::{line, Problem, Problems};
use super::{
    Config, IdentityHeader, IdentitySource, Inbound, Limits, Outbound, OutboundMode, Protocol,
    Route, DEFAULT_ADMIN, DEFAULT_STARTUP_TIMEOUT,
};
use crate::policy::IdPattern;

/// A listener's place, for the duplicate checks.
struct Seen {
    name: String,
    field: String,
    line: u64,
    listen: Option<SocketAddr>,
    listen_line: u64,
}

/// Builds the config, or returns every problem found.
pub(super) fn build(raw: RawConfig, file: &str, base: &Path) -> Result<Config, Vec<Problem>> {
    let mut p = Problems::new(file);
    let mut seen: Vec<Seen> = Vec::new();

    let identity = identity(&raw, base, &mut p);
    let admin = admin(&raw.admin, &mut p);
    if let Some(addr) = admin {
        seen.push(Seen {
            name: String::new(),
            field: "admin.listen".into(),
            line: admin_line(&raw.admin),
            listen: Some(addr),
            listen_line: admin_line(&raw.admin),
        });
    }
    let policy_file = raw.policy_file.as_ref().map(|f| base.join(&f.value));
    let limits = limits(raw.limits.as_ref(), &mut p);

    let inbound: Vec<Option<Inbound>> = raw
        .inbound
        .iter()
        .enumerate()
        .map(|(i, l)| inbound(&format!("inbound[{i}]"), l, base, &mut p, &mut seen))
        .collect();
    let outbound: Vec<Option<Outbound>> = raw
        .outbound
        .iter()
        .enumerate()
        .map(|(i, l)| outbound(&format!("outbound[{i}]"), l, &mut p, &mut seen))
        .collect();

    if raw.inbound.is_empty() && raw.outbound.is_empty() {
        p.at(0, "", "the config defines no inbound or outbound listener");
    }
    if !raw.inbound.is_empty() && policy_file.is_none() {
        // Deny by default: inbound listeners without a policy would refuse every peer.
        p.at(
            line(&raw.inbound[0]),
            "policy_file",
            "inbound listeners need a policy_file (without one every peer is denied)",
        );
    }
    duplicates(&seen, &mut p);

    if !p.is_empty() {
        return Err(p.into_vec());
    }
    Ok(Config {
        identity,
        admin,
        policy_file,
        inbound: inbound.into_iter().flatten().collect(),
        outbound: outbound.into_iter().flatten().collect(),
        limits,
    })
}

fn identity(raw: &RawConfig, base: &Path, p: &mut Problems) -> IdentitySource {
    let default = IdentitySource::WorkloadApi {
        socket: None,
        startup_timeout: DEFAULT_STARTUP_TIMEOUT,
    };
    match (&raw.workload_api, &raw.identity_files) {
        (Some(_), Some(files)) => {
            p.at(
                line(files),
                "identity_files",
                "set either workload_api or identity_files, not both",
            );
            default
        }
        (None, None) => default,
        (Some(api), None) => {
            let socket = api.value.socket.as_ref().map(|s| {
                if let Err(e) = ward_workload::EndpointAddress::parse(&s.value) {
                    p.at(line(s), "workload_api.socket", e.to_string());
                }
                s.value.clone()
            });
            let startup_timeout = duration(
                api.value.startup_timeout.as_ref(),
                "workload_api.startup_timeout",
                DEFAULT_STARTUP_TIMEOUT,
                p,
            );
            IdentitySource::WorkloadApi {
                socket,
                startup_timeout,
            }
        }
        (None, Some(files)) => {
            let f = &files.value;
            for (field, value) in [("cert", &f.cert), ("key", &f.key), ("bundle", &f.bundle)] {
                if value.value.trim().is_empty() {
                    p.at(
                        line(value),
                        format!("identity_files.{field}"),
                        "the path is empty",
                    );
                }
            }
            IdentitySource::Files {
                cert: base.join(&f.cert.value),
                key: base.join(&f.key.value),
                bundle: base.join(&f.bundle.value),
            }
        }
    }
}

fn admin(raw: &RawAdmin, p: &mut Problems) -> Option<SocketAddr> {
    match raw {
        RawAdmin::Absent => Some(DEFAULT_ADMIN),
        RawAdmin::Off => None,
        // The admin listener is plaintext (metrics, the config view): loopback only
        // unless the config says otherwise.
        RawAdmin::Listen(a) => match net::plaintext_listen(&a.listen.value, a.unsafe_listen) {
            Ok(addr) => Some(addr),
            Err(m) => {
                p.at(line(&a.listen), "admin.listen", m);
                None
            }
        },
    }
}

fn admin_line(raw: &RawAdmin) -> u64 {
    match raw {
        RawAdmin::Listen(a) => line(&a.listen),
        _ => 0,
    }
}

fn duration(raw: Option<&Text>, field: &str, default: Duration, p: &mut Problems) -> Duration {
    let Some(text) = raw else {
        return default;
    };
    match humantime::parse_duration(text.value.trim()) {
        Ok(d) if d.is_zero() => {
            p.at(line(text), field, "must be longer than zero");
            default
        }
        Ok(d) => d,
        Err(e) => {
            p.at(
                line(text),
                field,
                format!(
                    "{:?} is not a duration ({e}); write e.g. 10s, 500ms, 5m",
                    text.value
                ),
            );
            default
        }
    }
}

fn limits(raw: Option<&RawLimits>, p: &mut Problems) -> Limits {
    let d = Limits::default();
    let Some(raw) = raw else {
        return d;
    };
    let max_connections = match &raw.max_connections {
        None => d.max_connections,
        Some(n) if n.value == 0 => {
            p.at(line(n), "limits.max_connections", "must be at least 1");
            d.max_connections
        }
        Some(n) => usize::try_from(n.value).unwrap_or(usize::MAX),
    };
    Limits {
        handshake_timeout: duration(
            raw.handshake_timeout.as_ref(),
            "limits.handshake_timeout",
            d.handshake_timeout,
            p,
        ),
        connect_timeout: duration(
            raw.connect_timeout.as_ref(),
            "limits.connect_timeout",
            d.connect_timeout,
            p,
        ),
        idle_timeout: duration(
            raw.idle_timeout.as_ref(),
            "limits.idle_timeout",
            d.idle_timeout,
            p,
        ),
        drain_timeout: duration(
            raw.drain_timeout.as_ref(),
            "limits.drain_timeout",
            d.drain_timeout,
            p,
        ),
        max_connections,
    }
}

/// Listener names appear in policy rules and metric labels: a short, plain token.
/// `*` is reserved (a policy rule for every listener).
fn name(text: &Text, field: &str, p: &mut Problems) {
    let n = &text.value;
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !ok {
        p.at(
            line(text),
            format!("{field}.name"),
            format!("{n:?} is not a listener name; use 1-64 of A-Z a-z 0-9 - _ ."),
        );
    }
}

fn inbound(
    field: &str,
    raw: &Spanned<RawInbound>,
    base: &Path,
    p: &mut Problems,
    seen: &mut Vec<Seen>,
) -> Option<Inbound> {
    let l = &raw.value;
    name(&l.name, field, p);
    // The inbound listener speaks mTLS, so any address is fine here.
    let listen = net::socket_addr(&l.listen.value)
        .map_err(|m| p.at(line(&l.listen), format!("{field}.listen"), m))
        .ok();
    seen.push(Seen {
        name: l.name.value.clone(),
        field: field.to_owned(),
        line: line(&l.name),
        listen,
        listen_line: line(&l.listen),
    });
    let target = net::parse_target(&l.target.value, l.unsafe_target, base)
        .map_err(|m| p.at(line(&l.target), format!("{field}.target"), m))
        .ok();
    let protocol = match l.protocol.as_ref().map(|t| (t, t.value.as_str())) {
        None | Some((_, "tcp")) => Protocol::Tcp,
        Some((_, "http")) => Protocol::Http,
        Some((t, other)) => {
            p.at(
                line(t),
                format!("{field}.protocol"),
                format!("{other:?} is not a protocol; use tcp or http"),
            );
            Protocol::Tcp
        }
    };
    let identity_headers = headers(field, l, protocol, p);
    Some(Inbound {
        name: l.name.value.clone(),
        listen: listen?,
        target: target?,
        protocol,
        identity_headers,
    })
}

fn headers(
    field: &str,
    l: &RawInbound,
    protocol: Protocol,
    p: &mut Problems,
) -> Vec<IdentityHeader> {
    let Some(list) = &l.identity_headers else {
        return match protocol {
            Protocol::Http => vec![IdentityHeader::XSpiffeId, IdentityHeader::Xfcc],
            Protocol::Tcp => Vec::new(),
        };
    };
    if protocol == Protocol::Tcp {
        p.at(
            line(list),
            format!("{field}.identity_headers"),
            "identity headers need protocol: http (a tcp listener forwards bytes, not requests)",
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, h) in list.value.iter().enumerate() {
        let header = match h.value.to_ascii_lowercase().as_str() {
            "x-spiffe-id" => IdentityHeader::XSpiffeId,
            "xfcc" | "x-forwarded-client-cert" => IdentityHeader::Xfcc,
            _ => {
                p.at(
                    line(h),
                    format!("{field}.identity_headers[{i}]"),
                    format!(
                        "{:?} is not an identity header; use x-spiffe-id or xfcc",
                        h.value
                    ),
                );
                continue;
            }
        };
        if !out.contains(&header) {
            out.push(header);
        }
    }
    out
}

fn patterns(field: &str, list: &Spanned<Vec<Text>>, p: &mut Problems) -> Vec<IdPattern> {
    if list.value.is_empty() {
        p.at(
            line(list),
            field,
            "is empty; list the SPIFFE IDs the upstream may present (an empty list would trust no one)",
        );
    }
    let mut out = Vec::new();
    for (i, text) in list.value.iter().enumerate() {
        match IdPattern::parse(&text.value) {
            Ok(pattern) => out.push(pattern),
            Err(e) => p.at(line(text), format!("{field}[{i}]"), e.to_string()),
        }
    }
    out
}

fn outbound(
    field: &str,
    raw: &Spanned<RawOutbound>,
    p: &mut Problems,
    seen: &mut Vec<Seen>,
) -> Option<Outbound> {
    let l = &raw.value;
    name(&l.name, field, p);
    let listen = net::plaintext_listen(&l.listen.value, l.unsafe_listen)
        .map_err(|m| p.at(line(&l.listen), format!("{field}.listen"), m))
        .ok();
    seen.push(Seen {
        name: l.name.value.clone(),
        field: field.to_owned(),
        line: line(&l.name),
        listen,
        listen_line: line(&l.listen),
    });
    let mode = match (&l.upstream, &l.http_proxy) {
        (Some(_), Some(proxy)) => {
            p.at(
                line(proxy),
                format!("{field}.http_proxy"),
                "set either upstream (a tunnel) or http_proxy, not both",
            );
            None
        }
        (None, None) => {
            p.at(
                line(raw),
                field,
                "needs upstream (a tunnel to one server) or http_proxy (routes by host)",
            );
            None
        }
        (Some(upstream), None) => {
            let expect = match &l.expect {
                Some(list) => patterns(&format!("{field}.expect"), list, p),
                None => {
                    p.at(
                        line(upstream),
                        format!("{field}.expect"),
                        "is missing; list the SPIFFE IDs the upstream may present",
                    );
                    Vec::new()
                }
            };
            net::upstream(&upstream.value)
                .map_err(|m| p.at(line(upstream), format!("{field}.upstream"), m))
                .ok()
                .map(|upstream| OutboundMode::Tunnel { upstream, expect })
        }
        (None, Some(proxy)) => {
            if let Some(expect) = &l.expect {
                p.at(
                    line(expect),
                    format!("{field}.expect"),
                    "belongs to each http_proxy route, not to the listener",
                );
            }
            Some(OutboundMode::HttpProxy {
                routes: routes(
                    &format!("{field}.http_proxy.routes"),
                    &proxy.value.routes,
                    proxy,
                    p,
                ),
            })
        }
    };
    Some(Outbound {
        name: l.name.value.clone(),
        listen: listen?,
        mode: mode?,
    })
}

fn routes<T>(
    field: &str,
    raw: &[Spanned<RawRoute>],
    at: &Spanned<T>,
    p: &mut Problems,
) -> Vec<Route> {
    if raw.is_empty() {
        p.at(
            line(at),
            field,
            "is empty; an http_proxy needs at least one route",
        );
    }
    let mut out: Vec<Route> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let r = &r.value;
        let host = net::route_host(&r.host.value)
            .map_err(|m| p.at(line(&r.host), format!("{f}.host"), m))
            .ok();
        let upstream = match &r.upstream {
            Some(u) => net::upstream(&u.value)
                .map_err(|m| p.at(line(u), format!("{f}.upstream"), m))
                .ok(),
            // Without an upstream ward connects to the host itself, so it needs a port.
            None => host.as_ref().and_then(|h| {
                if h.contains(':') {
                    Some(h.clone())
                } else {
                    p.at(
                        line(&r.host),
                        format!("{f}.upstream"),
                        format!(
                            "is required when host {h:?} has no port (where should ward connect?)"
                        ),
                    );
                    None
                }
            }),
        };
        let expect = patterns(&format!("{f}.expect"), &r.expect, p);
        if let Some(h) = &host {
            if out.iter().any(|o| o.host.eq_ignore_ascii_case(h)) {
                p.at(
                    line(&r.host),
                    format!("{f}.host"),
                    format!("{h:?} has two routes"),
                );
            }
        }
        if let (Some(host), Some(upstream)) = (host, upstream) {
            out.push(Route {
                host,
                upstream,
                expect,
            });
        }
    }
    out
}

fn duplicates(seen: &[Seen], p: &mut Problems) {
    for (i, a) in seen.iter().enumerate() {
        for b in &seen[..i] {
            if !a.name.is_empty() && a.name == b.name {
                p.at(
                    a.line,
                    format!("{}.name", a.field),
                    format!("listener name {:?} is already used by {}", a.name, b.field),
                );
            }
            if let (Some(x), Some(y)) = (a.listen, b.listen) {
                if net::clash(&x, &y) {
                    let field = if a.name.is_empty() {
                        a.field.clone()
                    } else {
                        format!("{}.listen", a.field)
                    };
                    p.at(
                        a.listen_line,
                        field,
                        format!("{x} clashes with {y} of {}", b.field),
                    );
                }
            }
        }
    }
}
