//! Every example config in `config/` validates, with its policy, through the real binary.

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../config")
        .join(name)
}

fn validate(name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ward"))
        .env_remove("WARD_CONFIG")
        .env_remove("SPIFFE_ENDPOINT_SOCKET")
        .arg("validate")
        .arg("--config")
        .arg(example(name))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{name}:\n{text}");
    text
}

#[test]
fn sidecar_example_is_valid() {
    let text = validate("sidecar.yaml");
    assert!(
        text.contains("inbound api: 0.0.0.0:8443 -> 127.0.0.1:8080 (http"),
        "{text}"
    );
    assert!(!text.contains("warning"), "{text}");
}

#[test]
fn egress_example_is_valid() {
    let text = validate("egress.yaml");
    assert!(
        text.contains("outbound payments: 127.0.0.1:9001 -> payments.prod.svc:8443"),
        "{text}"
    );
    assert!(
        text.contains("outbound egress: 127.0.0.1:3128 http proxy, 3 routes"),
        "{text}"
    );
}

#[test]
fn dev_example_is_valid() {
    let text = validate("dev.yaml");
    assert!(text.contains("unix:///tmp/ward-dev/agent.sock"), "{text}");
    assert!(!text.contains("warning"), "{text}");
}

#[test]
fn example_policy_decides_as_its_comments_say() {
    let check = |id: &str, method: &str, path: &str| {
        Command::new(env!("CARGO_BIN_EXE_ward"))
            .env_remove("WARD_CONFIG")
            .args(["policy", "check", "--policy"])
            .arg(example("policy.yaml"))
            .args([
                "--listener",
                "api",
                "--id",
                id,
                "--method",
                method,
                "--path",
                path,
            ])
            .output()
            .unwrap()
    };
    let out = check(
        "spiffe://example.org/ns/prod/sa/frontend",
        "GET",
        "/v1/users",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "allow (rule frontend-reads-api)"
    );
    let out = check("spiffe://example.org/ns/legacy/sa/x", "GET", "/v1/users");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "deny (rule block-legacy)"
    );
    assert_eq!(out.status.code(), Some(1));
}
