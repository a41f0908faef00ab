//! `ward validate` through the real binary: one test per config rule. Every error
//! names the file, the line and the field.

use std::process::Command;

/// Writes `config` (and `policy`, when given) to a tempdir and runs `ward validate`.
fn validate(config: &str, policy: Option<&str>) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ward.yaml"), config).unwrap();
    if let Some(policy) = policy {
        std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ward"))
        .env_remove("WARD_CONFIG")
        .env("SPIFFE_ENDPOINT_SOCKET", "unix:///tmp/agent.sock")
        .arg("validate")
        .arg("--config")
        .arg(dir.path().join("ward.yaml"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

const POLICY: &str = "rules:\n  - {name: r, listener: api, allow: [spiffe://example.org/a]}\n";

fn inbound(extra: &str) -> String {
    format!("policy_file: policy.yaml\ninbound:\n  - name: api\n    listen: 0.0.0.0:8443\n{extra}")
}

fn refused(config: &str, expected: &[&str]) {
    let (code, text) = validate(config, Some(POLICY));
    assert_eq!(code, 1, "{text}");
    for e in expected {
        assert!(text.contains(e), "expected {e:?} in:\n{text}");
    }
}

#[test]
fn valid_config_prints_a_summary() {
    let (code, text) = validate(
        &inbound("    target: 127.0.0.1:8080\n    protocol: http\n"),
        Some(POLICY),
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("inbound api: 0.0.0.0:8443 -> 127.0.0.1:8080 (http"),
        "{text}"
    );
    assert!(
        text.contains("identity: Workload API at unix:///tmp/agent.sock"),
        "{text}"
    );
    assert!(text.contains("admin: 127.0.0.1:15000"), "{text}");
    assert!(text.contains("policy.yaml: 1 rules"), "{text}");
}

#[test]
fn unknown_key_names_its_line() {
    refused(
        &inbound("    target: 127.0.0.1:8080\n    protocl: http\n"),
        &["ward.yaml:6: unknown field `protocl`"],
    );
}

#[test]
fn bad_address_names_line_and_field() {
    refused(
        &inbound("    target: 127.0.0.1:80800\n"),
        &["ward.yaml:5: inbound[0].target: \"127.0.0.1:80800\" is not a target"],
    );
}

#[test]
fn bad_duration_names_line_and_field() {
    let config = format!(
        "limits:\n  idle_timeout: 5 minutes please\n{}",
        inbound("    target: 127.0.0.1:8080\n")
    );
    refused(
        &config,
        &["ward.yaml:2: limits.idle_timeout: \"5 minutes please\" is not a duration"],
    );
}

#[test]
fn non_loopback_target_is_refused_unless_unsafe_target() {
    refused(
        &inbound("    target: 10.0.0.5:80\n"),
        &["ward.yaml:5: inbound[0].target: \"10.0.0.5:80\" is not a loopback address; set unsafe_target: true"],
    );
    let (code, text) = validate(
        &inbound("    target: 10.0.0.5:80\n    unsafe_target: true\n"),
        Some(POLICY),
    );
    assert_eq!(code, 0, "{text}");
}

#[test]
fn unix_target_is_accepted() {
    let (code, text) = validate(&inbound("    target: unix:/run/app.sock\n"), Some(POLICY));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("-> unix:/run/app.sock"), "{text}");
}

#[test]
fn non_loopback_plaintext_listener_is_refused_unless_unsafe_listen() {
    let config = "outbound:\n  - name: out\n    listen: 0.0.0.0:9001\n    upstream: p.svc:8443\n    expect: [spiffe://example.org/p]\n";
    refused(
        config,
        &["ward.yaml:3: outbound[0].listen: \"0.0.0.0:9001\" is not a loopback address"],
    );
    let ok = config.replace("    upstream", "    unsafe_listen: true\n    upstream");
    assert_eq!(validate(&ok, None).0, 0);
    refused(
        &format!("admin: {{listen: 0.0.0.0:15000}}\n{config}")
            .replace("0.0.0.0:9001", "127.0.0.1:9001"),
        &["ward.yaml:1: admin.listen"],
    );
}

#[test]
fn admin_off_disables_the_admin_listener() {
    let config = "admin: off\noutbound:\n  - name: out\n    listen: 127.0.0.1:9001\n    upstream: p.svc:8443\n    expect: [spiffe://example.org/p]\n";
    let (code, text) = validate(config, None);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("admin: off"), "{text}");
}

#[test]
fn duplicate_listener_names_and_addresses_are_refused() {
    let config = "policy_file: policy.yaml\ninbound:\n  - {name: api, listen: 0.0.0.0:8443, target: 127.0.0.1:8080}\n  - {name: api, listen: 127.0.0.1:8443, target: 127.0.0.1:8081}\n";
    refused(
        config,
        &[
            "ward.yaml:4: inbound[1].name: listener name \"api\" is already used by inbound[0]",
            "ward.yaml:4: inbound[1].listen: 127.0.0.1:8443 clashes with 0.0.0.0:8443",
        ],
    );
}

#[test]
fn both_identity_sources_are_refused() {
    let config = format!(
        "workload_api: {{socket: unix:///a.sock}}\nidentity_files: {{cert: c.pem, key: k.pem, bundle: b.pem}}\n{}",
        inbound("    target: 127.0.0.1:8080\n")
    );
    refused(
        &config,
        &["ward.yaml:2: identity_files: set either workload_api or identity_files, not both"],
    );
}

#[test]
fn bad_workload_api_socket_is_refused() {
    let config = format!(
        "workload_api: {{socket: \"unix://host/a.sock\"}}\n{}",
        inbound("    target: 127.0.0.1:8080\n")
    );
    refused(&config, &["ward.yaml:1: workload_api.socket"]);
}

#[test]
fn outbound_with_upstream_and_http_proxy_is_refused() {
    let config = "outbound:\n  - name: out\n    listen: 127.0.0.1:9001\n    upstream: p.svc:8443\n    expect: [spiffe://example.org/p]\n    http_proxy:\n      routes: [{host: p.svc:8443, expect: [spiffe://example.org/p]}]\n";
    refused(
        config,
        &["outbound[0].http_proxy: set either upstream (a tunnel) or http_proxy"],
    );
}

#[test]
fn empty_expect_is_refused() {
    let config = "outbound:\n  - name: out\n    listen: 127.0.0.1:9001\n    upstream: p.svc:8443\n    expect: []\n";
    refused(config, &["ward.yaml:5: outbound[0].expect: is empty"]);
}

#[test]
fn bad_expect_pattern_is_refused() {
    let config = "outbound:\n  - name: out\n    listen: 127.0.0.1:3128\n    http_proxy:\n      routes:\n        - host: p.svc:8443\n          expect: [\"spiffe://example.org/**/p\"]\n";
    refused(
        config,
        &["ward.yaml:7: outbound[0].http_proxy.routes[0].expect[0]: pattern \"spiffe://example.org/**/p\": `**` is only allowed as the last segment"],
    );
}

#[test]
fn route_host_without_port_needs_an_upstream() {
    let config = "outbound:\n  - name: out\n    listen: 127.0.0.1:3128\n    http_proxy:\n      routes:\n        - host: payments.internal\n          expect: [spiffe://example.org/p]\n";
    refused(
        config,
        &["ward.yaml:6: outbound[0].http_proxy.routes[0].upstream: is required when host \"payments.internal\" has no port"],
    );
    let config = "outbound:\n  - name: out\n    listen: 127.0.0.1:3128\n    http_proxy:\n      routes:\n        - host: payments.internal\n          upstream: payments.prod.svc:8443\n          expect: [spiffe://example.org/p]\n";
    let (code, text) = validate(config, None);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let config = "policy_file: policy.yaml\ninbound:\n  - name: api\n    listen: nowhere\n    target: 10.1.1.1:80\n    protocol: udp\n";
    refused(
        config,
        &[
            "ward.yaml:4: inbound[0].listen",
            "ward.yaml:5: inbound[0].target",
            "ward.yaml:6: inbound[0].protocol",
        ],
    );
}

#[test]
fn inbound_without_policy_file_is_refused() {
    let config = "inbound:\n  - {name: api, listen: 0.0.0.0:8443, target: 127.0.0.1:8080}\n";
    refused(
        config,
        &["policy_file: inbound listeners need a policy_file"],
    );
}

#[test]
fn policy_errors_fail_validation() {
    let (code, text) = validate(
        &inbound("    target: 127.0.0.1:8080\n"),
        Some("rules:\n  - {name: r, listener: api, allow: [\"spiffe://example.org/a/**/b\"]}\n"),
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("policy.yaml:2: rules[0] (r).allow[0]"),
        "{text}"
    );
}

#[test]
fn rule_for_an_unknown_listener_is_a_warning() {
    let (code, text) = validate(
        &inbound("    target: 127.0.0.1:8080\n"),
        Some("rules:\n  - {name: r, listener: apii, allow: [spiffe://example.org/a]}\n"),
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(
            "warning: rule r names listener apii, which is not a listener of this config"
        ),
        "{text}"
    );
}

#[test]
fn missing_config_file_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["validate", "--config", "/nonexistent/ward.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot read config file /nonexistent/ward.yaml"));
}
