//! Authorization policy: deny by default, explicit deny rules win over allow rules.
//! Patterns are validated at load: a typo is a load error, never "matches nothing".
//!
//! ```yaml
//! rules:
//!   - name: frontend-reads-api
//!     listener: api                 # or "*" for every listener
//!     allow: [spiffe://example.org/ns/prod/sa/frontend, "spiffe://example.org/ns/ops/**"]
//!     methods: [GET]                # optional (http listeners)
//!     paths: ["/v1/**"]             # optional (http listeners)
//!   - name: block-legacy
//!     listener: api
//!     deny: ["spiffe://example.org/ns/legacy/**"]
//! ```
//!
//! A request is denied when any deny rule applies to it, else allowed when an allow
//! rule applies, else denied by default. When a rule's `methods`/`paths` cannot be
//! checked (a tcp listener has no method; a path like `/v1/../admin` has two
//! meanings), a deny rule applies and an allow rule does not: unknown fails closed.
//!
//! `decide` is on the per-request path: rules are compiled at load (patterns split
//! into segments, rules indexed per listener, deny rules first) and deciding
//! allocates nothing.

mod pattern;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_saphyr::Spanned;
use ward_spiffe::SpiffeId;

use crate::config::yaml::{self, line, Problem, Problems};

pub use pattern::{is_canonical, path_only, IdPattern, PathPattern};

/// Why a policy file or pattern is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is wrong; one line per problem, each `file:line: field: what is wrong`.
    #[error("{}", yaml::join(problems))]
    Invalid {
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
    /// A SPIFFE ID pattern is malformed.
    #[error("pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// What is being authorized.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The listener's name.
    pub listener: &'a str,
    /// The verified peer.
    pub peer: &'a SpiffeId,
    /// HTTP method (http mode).
    pub method: Option<&'a str>,
    /// HTTP path (http mode).
    pub path: Option<&'a str>,
}

/// The outcome, with the rule that decided (None: the default deny).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allowed?
    pub allow: bool,
    /// Name of the deciding rule.
    pub rule: Option<Arc<str>>,
}

impl fmt::Display for Decision {
    /// `allow (rule a)`, `deny (rule b)` or `deny (no rule matched: default deny)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allow { "allow" } else { "deny" };
        match &self.rule {
            Some(rule) => write!(f, "{verdict} (rule {rule})"),
            None => write!(f, "{verdict} (no rule matched: default deny)"),
        }
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// One compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    name: Arc<str>,
    /// None: every listener (`*`).
    listener: Option<Box<str>>,
    effect: Effect,
    ids: Box<[IdPattern]>,
    methods: Option<Box<[Box<str>]>>,
    paths: Option<Box<[PathPattern]>>,
}

impl Rule {
    /// True when the rule applies to the request (the listener is already known to
    /// match). A condition that cannot be checked counts for deny rules only.
    fn applies(&self, request: &Request<'_>, canonical_path: bool) -> bool {
        let unknown = self.effect == Effect::Deny;
        if !self.ids.iter().any(|p| p.matches(request.peer)) {
            return false;
        }
        if let Some(methods) = &self.methods {
            match request.method {
                Some(m) if methods.iter().any(|x| **x == *m) => {}
                Some(_) => return false,
                None if unknown => {}
                None => return false,
            }
        }
        if let Some(paths) = &self.paths {
            match request.path.map(path_only) {
                Some(p) if canonical_path => {
                    if !paths.iter().any(|x| x.matches(p)) {
                        return false;
                    }
                }
                _ if unknown => {}
                _ => return false,
            }
        }
        true
    }
}

/// Rule indices for one listener, deny rules and allow rules each in file order.
///
/// Large policies are mostly unconditional allow rules listing exact IDs; those IDs go
/// into a hash map (ID -> first such rule) so a decision does not scan every rule:
/// measured in benches/policy.rs, 1000 rules cost about what 10 do.
#[derive(Debug, Clone, Default)]
struct Indexed {
    deny: Vec<usize>,
    /// Allow rules that must be checked one by one (wildcards, methods, paths).
    allow: Vec<usize>,
    /// Exact ID -> the first unconditional allow rule that lists it.
    exact_allow: HashMap<Box<str>, usize>,
}

impl Indexed {
    fn add(&mut self, i: usize, rule: &Rule) {
        match rule.effect {
            Effect::Deny => self.deny.push(i),
            Effect::Allow if rule.methods.is_none() && rule.paths.is_none() => {
                for id in rule.ids.iter().filter(|p| p.is_exact()) {
                    self.exact_allow.entry(id.as_str().into()).or_insert(i);
                }
                if !rule.ids.iter().all(IdPattern::is_exact) {
                    self.allow.push(i);
                }
            }
            Effect::Allow => self.allow.push(i),
        }
    }
}

/// A loaded, validated policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<Rule>,
    /// Rules of each listener named in the policy (its own and the `*` ones).
    by_listener: HashMap<Box<str>, Indexed>,
    /// The `*` rules: for listeners no rule names.
    wildcard: Indexed,
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, &yaml::display_name(path))
    }

    /// Parses and validates policy text; `file` names it in errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, PolicyError> {
        let blank = text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
        if blank {
            // A half-written save or a bad mount, not a decision to deny everything.
            return Err(PolicyError::Invalid {
                problems: vec![Problem {
                    file: file.to_owned(),
                    line: None,
                    field: String::new(),
                    message: "the policy file is empty; write `rules: []` to deny everything \
                              on purpose"
                        .into(),
                }],
            });
        }
        let raw: RawPolicy = yaml::parse(text, file).map_err(|problem| PolicyError::Invalid {
            problems: vec![problem],
        })?;
        let mut p = Problems::new(file);
        let mut rules = Vec::with_capacity(raw.rules.len());
        for (i, rule) in raw.rules.iter().enumerate() {
            if let Some(rule) = compile(i, rule, &mut p) {
                if rules.iter().any(|r: &Rule| r.name == rule.name) {
                    p.at(
                        line(&raw.rules[i].value.name),
                        format!("rules[{i}].name"),
                        format!("rule name {:?} is used twice", rule.name),
                    );
                }
                rules.push(rule);
            }
        }
        if !p.is_empty() {
            return Err(PolicyError::Invalid {
                problems: p.into_vec(),
            });
        }
        Ok(Self::index(rules))
    }

    /// One allow rule for `listener` (used by `ward inbound --allow`).
    pub fn allow_all_of(listener: &str, ids: Vec<IdPattern>) -> Self {
        Self::index(vec![Rule {
            name: Arc::from("--allow"),
            listener: Some(listener.into()),
            effect: Effect::Allow,
            ids: ids.into(),
            methods: None,
            paths: None,
        }])
    }

    fn index(rules: Vec<Rule>) -> Self {
        let mut wildcard = Indexed::default();
        let mut by_listener: HashMap<Box<str>, Indexed> = HashMap::new();
        for rule in &rules {
            if let Some(name) = &rule.listener {
                by_listener.entry(name.clone()).or_default();
            }
        }
        for (i, rule) in rules.iter().enumerate() {
            let lists = by_listener
                .iter_mut()
                .filter(|(name, _)| rule.listener.as_deref().is_none_or(|l| l == &***name))
                .map(|(_, ix)| ix)
                .chain(rule.listener.is_none().then_some(&mut wildcard));
            for ix in lists {
                ix.add(i, rule);
            }
        }
        Self {
            rules,
            by_listener,
            wildcard,
        }
    }

    /// Decides a request: a matching deny rule, else a matching allow rule, else the
    /// default deny.
    pub fn decide(&self, request: &Request<'_>) -> Decision {
        let ix = self
            .by_listener
            .get(request.listener)
            .unwrap_or(&self.wildcard);
        let canonical = request.path.is_some_and(|p| is_canonical(path_only(p)));
        let first = |list: &[usize]| {
            list.iter()
                .map(|&i| &self.rules[i])
                .find(|r| r.applies(request, canonical))
        };
        if let Some(rule) = first(&ix.deny) {
            return Decision {
                allow: false,
                rule: Some(rule.name.clone()),
            };
        }
        // The first allow rule in file order: the exact-ID hit, unless a rule scanned
        // before it applies.
        let exact = ix.exact_allow.get(request.peer.as_str()).copied();
        let scanned = ix
            .allow
            .iter()
            .copied()
            .take_while(|&i| exact.is_none_or(|e| i < e))
            .find(|&i| self.rules[i].applies(request, canonical));
        if let Some(i) = scanned.or(exact) {
            return Decision {
                allow: true,
                rule: Some(self.rules[i].name.clone()),
            };
        }
        Decision {
            allow: false,
            rule: None,
        }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// The rules as loaded, in file order, for the admin `/config` view: name,
    /// listener (`*` for all), effect, IDs, and methods and paths when the rule has them.
    pub fn rules_json(&self) -> serde_json::Value {
        let rules: Vec<serde_json::Value> = self
            .rules
            .iter()
            .map(|r| {
                let mut rule = serde_json::json!({
                    "name": &*r.name,
                    "listener": r.listener.as_deref().unwrap_or("*"),
                    "effect": match r.effect { Effect::Allow => "allow", Effect::Deny => "deny" },
                    "ids": r.ids.iter().map(IdPattern::as_str).collect::<Vec<_>>(),
                });
                if let Some(methods) = &r.methods {
                    rule["methods"] = methods.iter().map(|m| &**m).collect::<Vec<_>>().into();
                }
                if let Some(paths) = &r.paths {
                    rule["paths"] = paths
                        .iter()
                        .map(PathPattern::as_str)
                        .collect::<Vec<_>>()
                        .into();
                }
                rule
            })
            .collect();
        serde_json::Value::Array(rules)
    }

    /// True when there are no rules (everything is denied).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rules that name a listener not in `known`, as `(rule, listener)`. Not an error
    /// at load: one policy file may serve several sidecars with different listeners,
    /// and it reloads independently of the config; `ward validate` and start-up warn.
    pub fn unknown_listeners<'a>(&'a self, known: &[&str]) -> Vec<(&'a str, &'a str)> {
        self.rules
            .iter()
            .filter_map(|r| {
                let l = r.listener.as_deref()?;
                (!known.contains(&l)).then_some((&*r.name, l))
            })
            .collect()
    }
}

// === the file as written ===

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    /// Required, so that an empty file (a half-written save) is an error rather than
    /// a policy that denies everything; `rules: []` says "deny everything" on purpose.
    rules: Vec<Spanned<RawRule>>,
}

type Text = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Text,
    listener: Text,
    allow: Option<Spanned<Vec<Text>>>,
    deny: Option<Spanned<Vec<Text>>>,
    methods: Option<Spanned<Vec<Text>>>,
    paths: Option<Spanned<Vec<Text>>>,
}

fn token_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Validates one rule; records every problem and returns the rule when it has none.
fn compile(i: usize, raw: &Spanned<RawRule>, p: &mut Problems) -> Option<Rule> {
    let r = &raw.value;
    let name = &r.name.value;
    let before = p.len();
    let field = if token_ok(name) {
        format!("rules[{i}] ({name})")
    } else {
        p.at(
            line(&r.name),
            format!("rules[{i}].name"),
            format!("{name:?} is not a rule name; use 1-64 of A-Z a-z 0-9 - _ ."),
        );
        format!("rules[{i}]")
    };
    let listener = match r.listener.value.as_str() {
        "*" => None,
        l if token_ok(l) => Some(l),
        l => {
            p.at(
                line(&r.listener),
                format!("{field}.listener"),
                format!("{l:?} is not a listener name (or \"*\" for every listener)"),
            );
            None
        }
    };
    let (effect, list, key) = match (&r.allow, &r.deny) {
        (Some(a), None) => (Effect::Allow, a, "allow"),
        (None, Some(d)) => (Effect::Deny, d, "deny"),
        (Some(_), Some(d)) => {
            p.at(line(d), &field, "a rule has either allow or deny, not both");
            return None;
        }
        (None, None) => {
            p.at(
                line(raw),
                &field,
                "a rule needs allow or deny (a list of SPIFFE ID patterns)",
            );
            return None;
        }
    };
    if list.value.is_empty() {
        p.at(
            line(list),
            format!("{field}.{key}"),
            "is empty; list at least one SPIFFE ID pattern",
        );
    }
    let mut ids = Vec::with_capacity(list.value.len());
    for (j, text) in list.value.iter().enumerate() {
        match IdPattern::parse(&text.value) {
            Ok(pattern) => ids.push(pattern),
            Err(e) => p.at(line(text), format!("{field}.{key}[{j}]"), e.to_string()),
        }
    }
    let methods = r.methods.as_ref().map(|list| {
        nonempty(list, &format!("{field}.methods"), p);
        let mut out: Vec<Box<str>> = Vec::new();
        for (j, m) in list.value.iter().enumerate() {
            // HTTP methods are case-sensitive tokens (RFC 9110 §9.1); `get` would never
            // match a real request, so it is refused rather than silently dead.
            let ok = !m.value.is_empty()
                && m.value.bytes().all(|b| {
                    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if ok {
                out.push(m.value.as_str().into());
            } else {
                p.at(
                    line(m),
                    format!("{field}.methods[{j}]"),
                    format!(
                        "{:?} is not an HTTP method; methods are uppercase ({:?})",
                        m.value,
                        m.value.to_ascii_uppercase()
                    ),
                );
            }
        }
        out.into_boxed_slice()
    });
    let paths = r.paths.as_ref().map(|list| {
        nonempty(list, &format!("{field}.paths"), p);
        let mut out = Vec::new();
        for (j, text) in list.value.iter().enumerate() {
            match PathPattern::parse(&text.value) {
                Ok(pattern) => out.push(pattern),
                Err(e) => p.at(line(text), format!("{field}.paths[{j}]"), e),
            }
        }
        out.into_boxed_slice()
    });
    if p.len() > before {
        return None;
    }
    Some(Rule {
        name: Arc::from(name.as_str()),
        listener: listener.map(Into::into),
        effect,
        ids: ids.into(),
        methods,
        paths,
    })
}

fn nonempty<T>(list: &Spanned<Vec<T>>, field: &str, p: &mut Problems) {
    if list.value.is_empty() {
        p.at(
            line(list),
            field,
            "is empty; leave the key out to match any",
        );
    }
}

// === impl PolicyHandle ===

/// The policy in force, swapped atomically on reload (lock-free reads on the data path).
#[derive(Debug)]
pub struct PolicyHandle {
    current: arc_swap::ArcSwap<Policy>,
}

impl PolicyHandle {
    /// A handle holding `policy`.
    pub fn new(policy: Policy) -> Arc<Self> {
        Arc::new(Self {
            current: arc_swap::ArcSwap::from_pointee(policy),
        })
    }
    /// The policy in force now.
    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }
    /// Replaces the policy.
    pub fn store(&self, policy: Policy) {
        self.current.store(Arc::new(policy));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(policy: &Policy, listener: &str, id: &str) -> Decision {
        let peer = SpiffeId::new(id).unwrap();
        policy.decide(&Request {
            listener,
            peer: &peer,
            method: None,
            path: None,
        })
    }

    #[test]
    fn command_line_allow_applies_to_its_listener_only() {
        let ids = vec![IdPattern::parse("spiffe://example.org/ns/**").unwrap()];
        let policy = Policy::allow_all_of("in", ids);
        let d = decide(&policy, "in", "spiffe://example.org/ns/a");
        assert_eq!(d.to_string(), "allow (rule --allow)");
        assert!(!decide(&policy, "other", "spiffe://example.org/ns/a").allow);
        assert!(!decide(&policy, "in", "spiffe://example.org/x").allow);
    }

    #[test]
    fn first_allow_rule_in_file_order_is_named_whether_exact_or_not() {
        let text = "rules:\n  - {name: wide, listener: api, allow: [\"spiffe://td/ns/**\"]}\n  - {name: exact, listener: api, allow: [spiffe://td/ns/a]}\n  - {name: exact-first, listener: b, allow: [spiffe://td/ns/a]}\n  - {name: wide-later, listener: b, allow: [\"spiffe://td/**\"]}\n";
        let policy = Policy::from_yaml(text, "p.yaml").unwrap();
        assert_eq!(
            decide(&policy, "api", "spiffe://td/ns/a").to_string(),
            "allow (rule wide)"
        );
        assert_eq!(
            decide(&policy, "b", "spiffe://td/ns/a").to_string(),
            "allow (rule exact-first)"
        );
        assert_eq!(
            decide(&policy, "b", "spiffe://td/x").to_string(),
            "allow (rule wide-later)"
        );
    }

    #[test]
    fn exact_allow_does_not_override_a_deny_rule() {
        let text = "rules:\n  - {name: a, listener: api, allow: [spiffe://td/ns/a]}\n  - {name: d, listener: \"*\", deny: [\"spiffe://td/ns/*\"]}\n";
        let policy = Policy::from_yaml(text, "p.yaml").unwrap();
        assert_eq!(
            decide(&policy, "api", "spiffe://td/ns/a").to_string(),
            "deny (rule d)"
        );
    }

    #[test]
    fn empty_policy_denies_everything_by_default() {
        let d = decide(&Policy::default(), "api", "spiffe://example.org/a");
        assert_eq!(
            d,
            Decision {
                allow: false,
                rule: None
            }
        );
    }

    #[test]
    fn duplicate_rule_names_are_a_load_error() {
        let text = "rules:\n  - {name: r, listener: a, allow: [spiffe://td/a]}\n  - {name: r, listener: b, allow: [spiffe://td/b]}\n";
        let err = Policy::from_yaml(text, "p.yaml").unwrap_err().to_string();
        assert!(
            err.contains("p.yaml:3: rules[1].name: rule name \"r\" is used twice"),
            "{err}"
        );
    }

    #[test]
    fn rules_json_lists_every_rule_as_written() {
        let text = "rules:\n  - {name: reads, listener: api, allow: [\"spiffe://td/ns/**\"], methods: [GET], paths: [\"/v1/*/x\"]}\n  - {name: block, listener: \"*\", deny: [spiffe://td]}\n";
        let policy = Policy::from_yaml(text, "p.yaml").unwrap();
        assert_eq!(
            policy.rules_json(),
            serde_json::json!([
                {"name": "reads", "listener": "api", "effect": "allow",
                 "ids": ["spiffe://td/ns/**"], "methods": ["GET"], "paths": ["/v1/*/x"]},
                {"name": "block", "listener": "*", "effect": "deny", "ids": ["spiffe://td"]},
            ])
        );
    }

    #[test]
    fn rules_for_unknown_listeners_are_reported_not_refused() {
        let text = "rules:\n  - {name: r, listener: apii, allow: [spiffe://td/a]}\n  - {name: s, listener: \"*\", allow: [spiffe://td/a]}\n";
        let policy = Policy::from_yaml(text, "p.yaml").unwrap();
        assert_eq!(policy.unknown_listeners(&["api"]), vec![("r", "apii")]);
    }
}
