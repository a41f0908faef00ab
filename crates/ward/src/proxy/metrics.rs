//! Prometheus metrics (prometheus-client). Every per-listener series is created once,
//! when the listener is built, and kept as a cheap handle (an `Arc`'d atomic): the hot
//! path only increments atomics, it never formats labels or takes the family's lock.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::reload::ReloadStats;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabel {
    listener: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HandshakeLabels {
    listener: String,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AuthzLabels {
    // Arc'd so that building the labels of a decision allocates nothing.
    listener: Arc<str>,
    rule: Arc<str>,
    decision: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BytesLabels {
    listener: String,
    direction: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Every metric ward exports, registered once at start-up.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    accepted: Family<ListenerLabel, Counter>,
    rejected: Family<ListenerLabel, Counter>,
    active: Family<ListenerLabel, Gauge>,
    handshakes: Family<HandshakeLabels, Counter>,
    authz: Family<AuthzLabels, Counter>,
    bytes: Family<BytesLabels, Counter>,
    upstream_errors: Family<ListenerLabel, Counter>,
    svid_expiry: Gauge<f64, AtomicU64>,
    svid_rotations: Counter,
    policy_reloads: Family<ResultLabel, Counter>,
    reload_stats: OnceLock<Arc<ReloadStats>>,
}

/// The pre-created series of one listener.
#[derive(Debug, Clone)]
pub struct ListenerMetrics {
    name: Arc<str>,
    /// The `rule` label of a request no rule matched.
    default_deny: Arc<str>,
    authz: Family<AuthzLabels, Counter>,
    /// Decision counters already looked up on this listener.
    authz_seen: Arc<Mutex<Vec<SeenDecision>>>,
    /// Connections accepted (before the TLS handshake).
    pub accepted: Counter,
    /// Connections closed at once because the listener was at `max_connections`.
    pub rejected: Counter,
    /// Connections open now.
    pub active: Gauge,
    /// Handshakes that completed.
    pub handshake_ok: Counter,
    /// Handshakes that failed.
    pub handshake_err: Counter,
    /// Handshakes that did not finish within `handshake_timeout`.
    pub handshake_timeout: Counter,
    /// Bytes from the client side into ward.
    pub bytes_in: Counter,
    /// Bytes from ward out to the client side.
    pub bytes_out: Counter,
    /// Failures to reach or talk to the target/upstream.
    pub upstream_errors: Counter,
}

/// A decision counter of one listener, found by the identity of the policy's rule name.
#[derive(Debug)]
struct SeenDecision {
    rule: Arc<str>,
    allow: bool,
    counter: Counter,
}

/// Most decision counters a listener remembers; past it the list starts over (each
/// policy reload brings new rule names, and a list scanned per request must stay short).
const AUTHZ_SEEN_MAX: usize = 32;

impl ListenerMetrics {
    /// Counts one authorization decision. The rule label is dynamic (the policy is
    /// hot-reloaded), so the family is keyed by it; but a lookup there hashes three
    /// strings under a lock, per request. The rule names of the policy in force are
    /// shared strings, so the counters already used are found by pointer in a short
    /// list first.
    pub fn authz(&self, rule: Option<&Arc<str>>, allow: bool) {
        let rule = rule.unwrap_or(&self.default_deny);
        let Ok(mut seen) = self.authz_seen.lock() else {
            self.authz_lookup(rule, allow).inc();
            return;
        };
        if let Some(s) = seen
            .iter()
            .find(|s| s.allow == allow && Arc::ptr_eq(&s.rule, rule))
        {
            s.counter.inc();
            return;
        }
        let counter = self.authz_lookup(rule, allow);
        counter.inc();
        if seen.len() >= AUTHZ_SEEN_MAX {
            seen.clear();
        }
        seen.push(SeenDecision {
            rule: rule.clone(),
            allow,
            counter,
        });
    }

    fn authz_lookup(&self, rule: &Arc<str>, allow: bool) -> Counter {
        let labels = AuthzLabels {
            listener: self.name.clone(),
            rule: rule.clone(),
            decision: if allow { "allow" } else { "deny" },
        };
        self.authz.get_or_create(&labels).clone()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `ward_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ward");
        let mut m = Self {
            registry: Mutex::new(Registry::default()),
            accepted: Family::default(),
            rejected: Family::default(),
            active: Family::default(),
            handshakes: Family::default(),
            authz: Family::default(),
            bytes: Family::default(),
            upstream_errors: Family::default(),
            svid_expiry: Gauge::default(),
            svid_rotations: Counter::default(),
            policy_reloads: Family::default(),
            reload_stats: OnceLock::new(),
        };
        registry.register(
            "connections_accepted",
            "Connections accepted per listener",
            m.accepted.clone(),
        );
        registry.register(
            "connections_rejected",
            "Connections closed at once because the listener was at max_connections",
            m.rejected.clone(),
        );
        registry.register(
            "connections_active",
            "Connections open now per listener",
            m.active.clone(),
        );
        registry.register(
            "handshakes",
            "TLS handshakes per listener and result (ok, error, timeout)",
            m.handshakes.clone(),
        );
        registry.register(
            "authz_decisions",
            "Authorization decisions per listener, deciding rule and decision",
            m.authz.clone(),
        );
        registry.register(
            "bytes",
            "Bytes proxied per listener and direction (in: from the client, out: to it)",
            m.bytes.clone(),
        );
        registry.register(
            "upstream_errors",
            "Failures to connect to or talk to the target or upstream",
            m.upstream_errors.clone(),
        );
        registry.register(
            "svid_expiry_seconds",
            "Seconds until the current X509-SVID expires (0 when there is none)",
            m.svid_expiry.clone(),
        );
        registry.register(
            "svid_rotations",
            "Identity updates accepted from the source",
            m.svid_rotations.clone(),
        );
        registry.register(
            "policy_reloads",
            "Policy reloads per result (ok, error)",
            m.policy_reloads.clone(),
        );
        m.registry = Mutex::new(registry);
        m
    }

    /// Creates (once) the series of a listener.
    pub fn listener(&self, name: &str) -> ListenerMetrics {
        let l = ListenerLabel {
            listener: name.to_owned(),
        };
        let hs = |result| HandshakeLabels {
            listener: name.to_owned(),
            result,
        };
        let by = |direction| BytesLabels {
            listener: name.to_owned(),
            direction,
        };
        // One statement per series: `get_or_create` returns a read guard, and a second
        // call on the same family inside one expression would wait for its own guard.
        let handshake_ok = self.handshakes.get_or_create(&hs("ok")).clone();
        let handshake_err = self.handshakes.get_or_create(&hs("error")).clone();
        let handshake_timeout = self.handshakes.get_or_create(&hs("timeout")).clone();
        let bytes_in = self.bytes.get_or_create(&by("in")).clone();
        let bytes_out = self.bytes.get_or_create(&by("out")).clone();
        let accepted = self.accepted.get_or_create(&l).clone();
        let rejected = self.rejected.get_or_create(&l).clone();
        let active = self.active.get_or_create(&l).clone();
        let upstream_errors = self.upstream_errors.get_or_create(&l).clone();
        ListenerMetrics {
            name: name.into(),
            default_deny: "default-deny".into(),
            authz: self.authz.clone(),
            authz_seen: Arc::default(),
            accepted,
            rejected,
            active,
            handshake_ok,
            handshake_err,
            handshake_timeout,
            bytes_in,
            bytes_out,
            upstream_errors,
        }
    }

    /// Counts one accepted identity update.
    pub fn svid_rotated(&self) {
        self.svid_rotations.inc();
    }

    /// Exports the reloader's counters as `ward_policy_reloads_total`.
    pub fn follow_policy_reloads(&self, stats: Arc<ReloadStats>) {
        let _ = self.reload_stats.set(stats);
    }

    /// Brings a counter up to `target` (the reloader counts; we mirror at scrape time).
    fn mirror(&self, result: &'static str, target: u64) {
        let c = self
            .policy_reloads
            .get_or_create(&ResultLabel { result })
            .clone();
        c.inc_by(target.saturating_sub(c.get()));
    }

    /// The Prometheus text exposition, with the SVID expiry computed now.
    pub fn encode(&self, svid_not_after: Option<SystemTime>) -> String {
        let left = svid_not_after
            .and_then(|t| t.duration_since(SystemTime::now()).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        self.svid_expiry.set(left);
        let (ok, errors) = self
            .reload_stats
            .get()
            .map_or((0, 0), |s| (s.ok(), s.errors()));
        self.mirror("ok", ok);
        self.mirror("error", errors);
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
                out.clear();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_series_are_exported_with_their_labels() {
        let m = Metrics::new();
        let l = m.listener("api");
        l.accepted.inc();
        l.authz(Some(&Arc::from("frontend")), true);
        l.authz(None, false);
        l.bytes_in.inc_by(10);
        let stats = Arc::new(ReloadStats::default());
        stats
            .errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        m.follow_policy_reloads(stats);
        let text = m.encode(None);
        assert!(text.contains("ward_connections_accepted_total{listener=\"api\"} 1"));
        assert!(text.contains(
            "ward_authz_decisions_total{listener=\"api\",rule=\"frontend\",decision=\"allow\"} 1"
        ));
        assert!(text.contains("rule=\"default-deny\",decision=\"deny\"} 1"));
        assert!(text.contains("ward_bytes_total{listener=\"api\",direction=\"in\"} 10"));
        assert!(text.contains("ward_policy_reloads_total{result=\"error\"} 1"));
        assert!(text.contains("ward_svid_expiry_seconds 0"));
        assert!(text.contains("ward_connections_active{listener=\"api\"} 0"));
    }

    #[test]
    fn decisions_add_up_by_rule_name_across_reloads_and_past_the_remembered_few() {
        let m = Metrics::new();
        let (a, b) = (m.listener("api"), m.listener("web"));
        let series = |listener: &str, rule: &str, decision: &str| {
            format!(
                "ward_authz_decisions_total{{listener=\"{listener}\",rule=\"{rule}\",decision=\"{decision}\"}} "
            )
        };
        // The same rule name from two loads of the policy is one series.
        let (first, reloaded) = (Arc::<str>::from("frontend"), Arc::<str>::from("frontend"));
        for _ in 0..3 {
            a.authz(Some(&first), true);
        }
        a.authz(Some(&reloaded), true);
        a.authz(Some(&reloaded), false);
        b.authz(Some(&first), true);
        // More distinct rules than the listener remembers.
        let many: Vec<Arc<str>> = (0..AUTHZ_SEEN_MAX + 5)
            .map(|i| format!("r{i}").into())
            .collect();
        for _ in 0..2 {
            for r in &many {
                a.authz(Some(r), true);
            }
        }
        a.authz(Some(&first), true);
        let text = m.encode(None);
        let value = |s: String| {
            text.lines()
                .find_map(|l| l.strip_prefix(&s).map(str::to_owned))
                .unwrap_or_else(|| panic!("no {s} in\n{text}"))
        };
        assert_eq!(value(series("api", "frontend", "allow")), "5");
        assert_eq!(value(series("api", "frontend", "deny")), "1");
        assert_eq!(value(series("web", "frontend", "allow")), "1");
        for i in 0..AUTHZ_SEEN_MAX + 5 {
            assert_eq!(value(series("api", &format!("r{i}"), "allow")), "2");
        }
    }
}
