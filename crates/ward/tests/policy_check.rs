//! `ward policy check` through the real binary: one test per policy rule.
//! Exit status 0 = allow, 1 = deny, 2 = error.

use std::path::Path;
use std::process::Command;

const POLICY: &str = r#"
rules:
  - name: frontend-reads-api
    listener: api
    allow: [spiffe://example.org/ns/prod/sa/frontend, "spiffe://example.org/ns/ops/**"]
    methods: [GET]
    paths: ["/v1/**"]
  - name: block-legacy
    listener: api
    deny: ["spiffe://example.org/ns/legacy/**"]
  - name: legacy-allowed-too
    listener: api
    allow: ["spiffe://example.org/ns/legacy/**"]
  - name: one-segment
    listener: batch
    allow: ["spiffe://example.org/ns/*/sa/worker"]
  - name: partner-domain
    listener: batch
    allow: [spiffe://partner.example]
  - name: auditors-everywhere
    listener: "*"
    allow: [spiffe://example.org/ns/audit/sa/reader]
  - name: no-debug-anywhere
    listener: "*"
    deny: [spiffe://example.org/ns/prod/sa/debug]
  - name: debug-on-batch
    listener: batch
    allow: [spiffe://example.org/ns/prod/sa/debug]
"#;

/// Runs `ward policy check` with `args` against `policy`; returns (exit code, stdout+stderr).
fn check(policy: &str, args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy).unwrap();
    run(&path, args)
}

fn run(path: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ward"))
        .env_remove("WARD_CONFIG")
        .arg("policy")
        .arg("check")
        .arg("--policy")
        .arg(path)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn decide(listener: &str, id: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["--listener", listener, "--id", id];
    args.extend_from_slice(extra);
    let (code, text) = check(POLICY, &args);
    (code, text.trim().to_owned())
}

#[test]
fn allow_rule_allows_and_names_itself() {
    let (code, text) = decide(
        "api",
        "spiffe://example.org/ns/prod/sa/frontend",
        &["--method", "GET", "--path", "/v1/users"],
    );
    assert_eq!(
        (code, text.as_str()),
        (0, "allow (rule frontend-reads-api)")
    );
}

#[test]
fn no_matching_rule_is_the_default_deny() {
    let (code, text) = decide("api", "spiffe://example.org/ns/prod/sa/stranger", &[]);
    assert_eq!(
        (code, text.as_str()),
        (1, "deny (no rule matched: default deny)")
    );
    let (code, _) = decide(
        "unknown-listener",
        "spiffe://example.org/ns/prod/sa/frontend",
        &[],
    );
    assert_eq!(code, 1);
}

#[test]
fn deny_rule_wins_over_a_later_allow_rule() {
    let (code, text) = decide("api", "spiffe://example.org/ns/legacy/sa/old", &[]);
    assert_eq!((code, text.as_str()), (1, "deny (rule block-legacy)"));
}

#[test]
fn wildcard_deny_wins_over_a_listener_allow() {
    let (code, text) = decide("batch", "spiffe://example.org/ns/prod/sa/debug", &[]);
    assert_eq!((code, text.as_str()), (1, "deny (rule no-debug-anywhere)"));
}

#[test]
fn star_matches_one_segment_only() {
    let (code, text) = decide("batch", "spiffe://example.org/ns/prod/sa/worker", &[]);
    assert_eq!((code, text.as_str()), (0, "allow (rule one-segment)"));
    let (code, _) = decide("batch", "spiffe://example.org/ns/a/b/sa/worker", &[]);
    assert_eq!(code, 1);
}

#[test]
fn trailing_double_star_matches_deeper_ids_but_not_the_prefix_itself() {
    let get = ["--method", "GET", "--path", "/v1/x"];
    assert_eq!(
        decide("api", "spiffe://example.org/ns/ops/sa/oncall", &get).0,
        0
    );
    assert_eq!(
        decide("api", "spiffe://example.org/ns/ops/a/b/c", &get).0,
        0
    );
    assert_eq!(decide("api", "spiffe://example.org/ns/ops", &get).0, 1);
    assert_eq!(
        decide("api", "spiffe://example.org/ns/opsx/sa/a", &get).0,
        1
    );
}

#[test]
fn bare_trust_domain_matches_every_id_in_it() {
    let (code, text) = decide("batch", "spiffe://partner.example/any/path/at/all", &[]);
    assert_eq!((code, text.as_str()), (0, "allow (rule partner-domain)"));
    assert_eq!(decide("batch", "spiffe://evil.partner.example/x", &[]).0, 1);
}

#[test]
fn methods_and_paths_restrict_an_allow_rule() {
    let id = "spiffe://example.org/ns/prod/sa/frontend";
    assert_eq!(
        decide("api", id, &["--method", "GET", "--path", "/v1/a?q=1"]).0,
        0
    );
    assert_eq!(
        decide("api", id, &["--method", "POST", "--path", "/v1/a"]).0,
        1
    );
    assert_eq!(
        decide("api", id, &["--method", "GET", "--path", "/v2/a"]).0,
        1
    );
    assert_eq!(
        decide("api", id, &["--method", "GET", "--path", "/v1"]).0,
        1
    );
    // A tcp listener has no method or path: a restricted allow rule cannot allow it.
    assert_eq!(decide("api", id, &[]).0, 1);
}

#[test]
fn dot_segments_never_satisfy_an_allow_rule_path() {
    let id = "spiffe://example.org/ns/prod/sa/frontend";
    for path in ["/v1/../admin", "/v1/%2e%2e/admin", "//v1/x", "/v1/./x"] {
        assert_eq!(
            decide("api", id, &["--method", "GET", "--path", path]).0,
            1,
            "{path}"
        );
    }
}

#[test]
fn deny_rule_with_paths_applies_when_the_path_is_ambiguous() {
    let policy = r#"
rules:
  - {name: all, listener: api, allow: ["spiffe://example.org/**"]}
  - {name: no-admin, listener: api, deny: ["spiffe://example.org/**"], paths: ["/admin/**"]}
"#;
    let id = "spiffe://example.org/a";
    let at = |path: &str| check(policy, &["--listener", "api", "--id", id, "--path", path]);
    assert_eq!(at("/admin/x").0, 1);
    assert_eq!(at("/public/x").0, 0);
    let (code, text) = at("/public/../admin/x");
    assert_eq!((code, text.trim()), (1, "deny (rule no-admin)"));
}

#[test]
fn wildcard_listener_rule_applies_to_every_listener() {
    for listener in ["api", "batch", "never-named"] {
        let (code, text) = decide(listener, "spiffe://example.org/ns/audit/sa/reader", &[]);
        assert_eq!(
            (code, text.as_str()),
            (0, "allow (rule auditors-everywhere)"),
            "{listener}"
        );
    }
}

#[test]
fn double_star_in_the_middle_is_a_load_error_naming_rule_and_line() {
    let policy = "rules:\n  - name: typo\n    listener: api\n    allow:\n      - \"spiffe://example.org/**/sa/web\"\n";
    let (code, text) = check(
        policy,
        &["--listener", "api", "--id", "spiffe://example.org/a"],
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("policy.yaml:5: rules[0] (typo).allow[0]"),
        "{text}"
    );
    assert!(
        text.contains("\"spiffe://example.org/**/sa/web\""),
        "{text}"
    );
    assert!(text.contains("last segment"), "{text}");
}

#[test]
fn bad_patterns_methods_and_paths_are_load_errors() {
    for (rule, expected) in [
        ("allow: [\"spiffe://Example.org/a\"]", "lowercase"),
        ("allow: [\"spiffe://example.org/a/***\"]", "whole segment"),
        ("allow: [\"spiffe://example.org//a\"]", "empty path segment"),
        ("allow: [\"spiffe://example.org/a b\"]", "not allowed"),
        ("allow: []", "is empty"),
        (
            "allow: [spiffe://example.org/a]\n    deny: [spiffe://example.org/b]",
            "not both",
        ),
        (
            "allow: [spiffe://example.org/a]\n    methods: [get]",
            "uppercase",
        ),
        (
            "allow: [spiffe://example.org/a]\n    paths: [v1]",
            "must start with `/`",
        ),
        (
            "allow: [spiffe://example.org/a]\n    hosts: [x]",
            "unknown field `hosts`",
        ),
    ] {
        let policy = format!("rules:\n  - name: r\n    listener: api\n    {rule}\n");
        let (code, text) = check(
            &policy,
            &["--listener", "api", "--id", "spiffe://example.org/a"],
        );
        assert_eq!(code, 2, "{rule}: {text}");
        assert!(
            text.contains(expected),
            "{rule}: expected {expected:?} in {text}"
        );
        assert!(text.contains("policy.yaml:"), "{text}");
    }
}

#[test]
fn empty_policy_file_is_an_error_not_deny_everything() {
    let (code, text) = check("", &["--listener", "api", "--id", "spiffe://example.org/a"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("the policy file is empty"), "{text}");
    let (code, text) = check(
        "rules: []\n",
        &["--listener", "api", "--id", "spiffe://example.org/a"],
    );
    assert_eq!(
        (code, text.trim()),
        (1, "deny (no rule matched: default deny)")
    );
}

#[test]
fn invalid_peer_id_is_an_error() {
    let (code, text) = decide("api", "spiffe://example.org/ns/../x", &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--id"), "{text}");
}
