//! `ward dev` and `ward fetch`, run as real processes over real Unix sockets.

mod identity_support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, SystemTime};

use identity_support::{run_ward, tempdir, text, unix, wait_until, Dev};
use ward_spiffe::{JwtBundle, JwtBundleSet, JwtSvid, TrustDomain};
use ward_workload::{EndpointAddress, WorkloadClient};

const APP: &str = "spiffe://example.org/app";

fn start_app_authority(dir: &std::path::Path, extra: &[&str]) -> (Dev, std::path::PathBuf) {
    let sock = dir.join("app.sock");
    let socket_arg = format!("{}={APP}", sock.display());
    let mut args = vec!["--trust-domain", "example.org", "--socket", &socket_arg];
    args.extend_from_slice(extra);
    (Dev::start(&args, 1), sock)
}

#[test]
fn dev_prints_a_ready_line_and_first_fetch_gets_the_socket_identity() {
    let dir = tempdir();
    let (dev, sock) = start_app_authority(dir.path(), &[]);
    assert_eq!(
        dev.ready,
        vec![format!("ward dev: serving {APP} on {}", unix(&sock))]
    );

    let out = run_ward(&["fetch", "x509", "--socket", &unix(&sock)]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "fetch failed: {}", text(&out.stderr));
    assert!(stdout.contains(&format!("SPIFFE ID:  {APP}")), "{stdout}");
    assert!(stdout.contains("serial:"), "{stdout}");
    assert!(stdout.contains("left)"), "time left is shown: {stdout}");
    assert!(stdout.contains("bundles:    example.org"), "{stdout}");
}

#[test]
fn dev_without_socket_serves_spiffe_endpoint_socket_with_the_default_identity() {
    let dir = tempdir();
    let sock = dir.path().join("env.sock");
    let dev = Dev::start_with_env(
        &["--trust-domain", "example.org"],
        &[("SPIFFE_ENDPOINT_SOCKET", &unix(&sock))],
        1,
    );
    assert_eq!(
        dev.ready,
        vec![format!(
            "ward dev: serving spiffe://example.org/workload on {}",
            unix(&sock)
        )]
    );
    let out = run_ward(&["fetch", "x509", "--socket", &unix(&sock)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("SPIFFE ID:  spiffe://example.org/workload"));
}

#[test]
fn fetch_falls_back_to_spiffe_endpoint_socket() {
    let dir = tempdir();
    let (_dev, sock) = start_app_authority(dir.path(), &[]);
    let mut cmd = identity_support::ward();
    cmd.args(["fetch", "x509"])
        .env("SPIFFE_ENDPOINT_SOCKET", unix(&sock));
    let out = identity_support::run_with_timeout(cmd, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(APP));
}

#[test]
fn fetch_write_produces_files_openssl_verifies_with_a_private_key() {
    let dir = tempdir();
    let (_dev, sock) = start_app_authority(dir.path(), &[]);
    let out_dir = dir.path().join("out");
    let out = run_ward(&[
        "fetch",
        "x509",
        "--socket",
        &unix(&sock),
        "--write",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let verify = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(out_dir.join("bundle.pem"))
        .arg(out_dir.join("svid.pem"))
        .output()
        .expect("openssl is installed");
    assert!(
        verify.status.success(),
        "openssl verify: {}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );

    let mode = std::fs::metadata(out_dir.join("svid_key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "svid_key.pem mode is {mode:o}");
    assert!(
        !out_dir.join("federated_bundle.pem").exists(),
        "no federated bundle file without federation"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // The key on disk matches the leaf: `ward inspect` checks it.
    let inspect = run_ward(&[
        "inspect",
        out_dir.join("svid.pem").to_str().unwrap(),
        "--key",
        out_dir.join("svid_key.pem").to_str().unwrap(),
        "--bundle",
        out_dir.join("bundle.pem").to_str().unwrap(),
    ]);
    assert!(inspect.status.success(), "{}", text(&inspect.stdout));
}

#[test]
fn fetch_from_an_unreachable_api_names_the_socket_and_exits_2() {
    let dir = tempdir();
    let missing = unix(&dir.path().join("nobody.sock"));
    let out = run_ward(&["fetch", "x509", "--socket", &missing, "--timeout", "5s"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&missing), "names the socket: {stderr}");
}

#[test]
fn fetch_without_socket_or_env_is_a_clear_error() {
    let out = run_ward(&["fetch", "x509"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("SPIFFE_ENDPOINT_SOCKET"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn caller_matching_no_entry_gets_permission_denied_from_fetch() {
    let dir = tempdir();
    let entries = dir.path().join("entries.yaml");
    std::fs::write(
        &entries,
        "entries:\n  - spiffe_id: spiffe://example.org/only-uid-4242\n    uid: 4242\n",
    )
    .unwrap();
    let sock = dir.path().join("shared.sock");
    let _dev = Dev::start(
        &[
            "--trust-domain",
            "example.org",
            "--socket",
            sock.to_str().unwrap(),
            "--entries",
            entries.to_str().unwrap(),
        ],
        1,
    );
    let out = run_ward(&["fetch", "x509", "--socket", &unix(&sock)]);
    assert_ne!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("denied"),
        "says permission denied: {stderr}"
    );
    assert!(stderr.contains(&unix(&sock)), "names the socket: {stderr}");
}

#[test]
fn entries_matching_the_callers_uid_grant_that_identity() {
    let dir = tempdir();
    let uid = std::fs::metadata("/proc/self").unwrap();
    let uid = std::os::unix::fs::MetadataExt::uid(&uid);
    let entries = dir.path().join("entries.yaml");
    std::fs::write(
        &entries,
        format!("entries:\n  - spiffe_id: spiffe://example.org/me\n    uid: {uid}\n"),
    )
    .unwrap();
    let sock = dir.path().join("shared.sock");
    let _dev = Dev::start(
        &[
            "--trust-domain",
            "example.org",
            "--socket",
            sock.to_str().unwrap(),
            "--entries",
            entries.to_str().unwrap(),
        ],
        1,
    );
    let out = run_ward(&["fetch", "x509", "--socket", &unix(&sock)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("SPIFFE ID:  spiffe://example.org/me"));
}

#[test]
fn fetch_jwt_writes_a_token_that_validates_against_the_written_bundle_and_the_api() {
    let dir = tempdir();
    let (_dev, sock) = start_app_authority(dir.path(), &[]);
    let out_dir = dir.path().join("jwt");
    let out = run_ward(&[
        "fetch",
        "jwt",
        "--socket",
        &unix(&sock),
        "--audience",
        "payments",
        "--write",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("SPIFFE ID:  {APP}")), "{stdout}");
    assert!(stdout.contains("audience:   payments"), "{stdout}");

    let token = std::fs::read_to_string(out_dir.join("jwt_svid.token")).unwrap();
    assert!(stdout.contains(&token), "the token is printed");
    let td = TrustDomain::new("example.org").unwrap();
    let jwks = std::fs::read(out_dir.join("jwt_bundle.json")).unwrap();
    let mut bundles = JwtBundleSet::new();
    bundles.insert(JwtBundle::parse_jwks(td, &jwks).unwrap());
    let svid =
        JwtSvid::parse_and_validate(&token, &bundles, &["payments"], SystemTime::now()).unwrap();
    assert_eq!(svid.spiffe_id().as_str(), APP);
    assert!(
        JwtSvid::parse_and_validate(&token, &bundles, &["other"], SystemTime::now()).is_err(),
        "a token for another audience is refused"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = WorkloadClient::connect(&EndpointAddress::Unix(sock.clone()))
            .await
            .unwrap();
        let (sub, claims) = client.validate_jwt_svid("payments", &token).await.unwrap();
        assert_eq!(sub.as_str(), APP);
        assert_eq!(claims.get("sub").and_then(|v| v.as_str()), Some(APP));
        assert!(client.validate_jwt_svid("other", &token).await.is_err());
    });
}

#[test]
fn fetch_jwt_without_audience_is_refused() {
    let out = run_ward(&["fetch", "jwt", "--socket", "unix:///tmp/none.sock"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--audience"));
}

#[test]
fn fetch_bundles_lists_each_trust_domain_with_its_authorities() {
    let dir = tempdir();
    let (_dev, sock) = start_app_authority(dir.path(), &[]);
    let out = run_ward(&["fetch", "bundles", "--socket", &unix(&sock)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("trust domain example.org"), "{stdout}");
    assert!(stdout.contains("X.509 authorities: 1"), "{stdout}");
    assert!(stdout.contains("JWT keys:          1 ("), "{stdout}");
}

#[test]
fn dev_refuses_an_identity_outside_its_trust_domain_and_starts_nothing() {
    let dir = tempdir();
    let sock = dir.path().join("a.sock");
    let out = run_ward(&[
        "dev",
        "--trust-domain",
        "example.org",
        "--socket",
        &format!("{}=spiffe://other.org/app", sock.display()),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("outside the trust domain"), "{stderr}");
    assert!(!sock.exists(), "no socket was bound");
}

#[test]
fn dev_refuses_a_bad_ttl_and_a_missing_entries_file() {
    let dir = tempdir();
    let sock = dir.path().join("a.sock");
    let bad_ttl = run_ward(&[
        "dev",
        "--trust-domain",
        "example.org",
        "--socket",
        &format!("{}={APP}", sock.display()),
        "--svid-ttl",
        "soon",
    ]);
    assert_eq!(bad_ttl.status.code(), Some(2));
    assert!(text(&bad_ttl.stderr).contains("soon"));

    let zero_ttl = run_ward(&[
        "dev",
        "--trust-domain",
        "example.org",
        "--socket",
        &format!("{}={APP}", sock.display()),
        "--svid-ttl",
        "0s",
    ]);
    assert_eq!(zero_ttl.status.code(), Some(2));
    assert!(
        text(&zero_ttl.stderr).contains("lifetime"),
        "{}",
        text(&zero_ttl.stderr)
    );

    let missing = dir.path().join("missing.yaml");
    let no_entries = run_ward(&[
        "dev",
        "--trust-domain",
        "example.org",
        "--socket",
        sock.to_str().unwrap(),
        "--entries",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(no_entries.status.code(), Some(2));
    assert!(text(&no_entries.stderr).contains("missing.yaml"));
    assert!(!sock.exists(), "no socket was bound");
}

#[test]
fn dev_removes_its_sockets_on_sigterm() {
    let dir = tempdir();
    let a = dir.path().join("a.sock");
    let b = dir.path().join("b.sock");
    let dev = Dev::start(
        &[
            "--trust-domain",
            "example.org",
            "--socket",
            &format!("{}={APP}", a.display()),
            "--socket",
            &format!("{}=spiffe://example.org/db", b.display()),
        ],
        2,
    );
    assert!(a.exists() && b.exists());
    let status = dev.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    assert!(
        wait_until(Duration::from_secs(2), || !a.exists() && !b.exists()),
        "socket files removed"
    );
}

#[test]
fn dev_logs_each_issuance() {
    let dir = tempdir();
    let (dev, sock) = start_app_authority(dir.path(), &[]);
    let out = run_ward(&["fetch", "x509", "--socket", &unix(&sock)]);
    assert!(out.status.success());
    let mut logged = Vec::new();
    let found = wait_until(Duration::from_secs(5), || {
        logged.extend(dev.drain_lines(Duration::from_millis(50)));
        logged.iter().any(|l| l.contains(APP))
    });
    assert!(found, "an issuance log line names the identity: {logged:?}");
}
