//! Every case of `tests/data/endpoint_addr_cases.json` (go-spiffe, rust-spiffe and the
//! spec's own examples), plus the rules of SPIFFE_Workload_Endpoint.md §4 (CHECKLIST
//! D.37-39). Where a library disagrees with the spec, the spec decides.

use std::net::SocketAddr;
use std::path::PathBuf;

use ward_workload::{AddrError, EndpointAddress};

const CASES: &str = include_str!("data/endpoint_addr_cases.json");

/// Inputs where a library's verdict contradicts the spec, with the spec's verdict.
const SPEC_OVERRIDES: &[(&str, bool, &str)] = &[
    (
        "unix://foo",
        false,
        "D.38: the unix authority MUST NOT be set",
    ),
    (
        "tcp:127.0.0.1:8081",
        false,
        "D.39: tcp needs a host component",
    ),
    ("tcp:[::1]:8080", false, "D.39: tcp needs a host component"),
    (
        "tcp://127.0.0.1:8080/",
        false,
        "D.39: tcp must not include a path",
    ),
];

fn spec_verdict(input: &str, library_verdict: bool) -> bool {
    SPEC_OVERRIDES
        .iter()
        .find(|(i, _, _)| *i == input)
        .map_or(library_verdict, |(_, v, _)| *v)
}

fn cases(section: &str) -> Vec<(String, bool, serde_json::Value)> {
    let doc: serde_json::Value = serde_json::from_str(CASES).unwrap();
    let list = match section {
        "spec" => doc["spec"]["spec_examples"].as_array().unwrap().clone(),
        s => doc[s].as_array().unwrap().clone(),
    };
    assert!(!list.is_empty(), "section {section} has no cases");
    list.into_iter()
        .map(|c| {
            (
                c["input"].as_str().unwrap().to_string(),
                c["valid"].as_bool().unwrap(),
                c,
            )
        })
        .collect()
}

fn check_section(section: &str) -> usize {
    let mut failures = Vec::new();
    let all = cases(section);
    for (input, valid, _) in &all {
        let want = spec_verdict(input, *valid);
        let got = EndpointAddress::parse(input);
        if got.is_ok() != want {
            failures.push(format!("{input:?}: want valid={want}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{section}: {failures:#?}");
    all.len()
}

#[test]
fn every_spec_example_follows_the_spec() {
    assert_eq!(check_section("spec"), 3);
}

#[test]
fn every_go_spiffe_case_matches_except_where_the_spec_disagrees() {
    assert_eq!(check_section("go_spiffe_cases"), 17);
}

#[test]
fn every_rust_spiffe_case_matches_except_where_the_spec_disagrees() {
    assert_eq!(check_section("rust_spiffe_cases"), 25);
}

#[test]
fn valid_cases_parse_to_the_expected_address() {
    for (input, valid, case) in cases("go_spiffe_cases")
        .into_iter()
        .chain(cases("rust_spiffe_cases"))
    {
        if !spec_verdict(&input, valid) {
            continue;
        }
        let got = EndpointAddress::parse(&input).unwrap();
        if let Some(target) = case["expected_grpc_target"].as_str() {
            assert_eq!(
                got,
                EndpointAddress::Tcp(target.parse().unwrap()),
                "{input}"
            );
        }
        if let Some(expected) = case["expected"].as_str() {
            let expected = expected.split(" --").next().unwrap();
            let want = if let Some(p) = expected.strip_prefix("Unix(") {
                EndpointAddress::Unix(PathBuf::from(p.trim_end_matches(')')))
            } else {
                let a = expected.strip_prefix("Tcp(").unwrap().trim_end_matches(')');
                EndpointAddress::Tcp(a.parse::<SocketAddr>().unwrap())
            };
            assert_eq!(got, want, "{input}");
        }
    }
}

#[test]
fn unix_with_authority_is_rejected_per_spec_though_go_spiffe_accepts() {
    let err = EndpointAddress::parse("unix://foo").unwrap_err();
    assert!(matches!(err, AddrError::UnixAuthority { .. }), "{err}");
    assert!(err.to_string().contains("authority"), "{err}");
}

#[test]
fn tcp_shorthand_without_slashes_is_rejected_per_spec_though_rust_spiffe_accepts() {
    for input in ["tcp:127.0.0.1:8081", "tcp:[::1]:8080"] {
        let err = EndpointAddress::parse(input).unwrap_err();
        assert!(matches!(err, AddrError::TcpOpaque { .. }), "{input}: {err}");
    }
}

#[test]
fn tcp_with_root_path_is_rejected_per_spec_though_rust_spiffe_accepts() {
    let err = EndpointAddress::parse("tcp://127.0.0.1:8080/").unwrap_err();
    assert!(matches!(err, AddrError::TcpPath { .. }), "{err}");
}

#[test]
fn tcp_host_must_be_an_ip_not_a_name() {
    let err = EndpointAddress::parse("tcp://localhost:8081").unwrap_err();
    assert!(err.to_string().contains("\"localhost\""), "{err}");
}

#[test]
fn tcp_port_zero_or_out_of_range_is_rejected() {
    for input in [
        "tcp://1.2.3.4:0",
        "tcp://1.2.3.4:65536",
        "tcp://1.2.3.4:",
        "tcp://1.2.3.4:+80",
    ] {
        let err = EndpointAddress::parse(input).unwrap_err();
        assert!(matches!(err, AddrError::TcpPort { .. }), "{input}: {err}");
    }
}

#[test]
fn unix_path_that_names_a_directory_is_rejected() {
    assert!(EndpointAddress::parse("unix:///run/spire/").is_err());
    assert!(EndpointAddress::parse("unix:///").is_err());
}

#[test]
fn unix_path_percent_encoding_is_decoded_and_nul_is_rejected() {
    assert_eq!(
        EndpointAddress::parse("unix:///tmp/a%20b.sock").unwrap(),
        EndpointAddress::Unix(PathBuf::from("/tmp/a b.sock"))
    );
    assert!(EndpointAddress::parse("unix:///tmp/a%00b.sock").is_err());
    assert!(EndpointAddress::parse("unix:///tmp/a%2").is_err());
}

#[test]
fn display_round_trips_through_parse() {
    for input in [
        "unix:///run/spire/sockets/agent.sock",
        "tcp://127.0.0.1:8081",
        "tcp://[::1]:8081",
    ] {
        let a = EndpointAddress::parse(input).unwrap();
        assert_eq!(a.to_string(), input);
        assert_eq!(EndpointAddress::parse(&a.to_string()).unwrap(), a);
    }
}

/// One test for everything that touches the process environment, so that parallel tests
/// never observe each other's `SPIFFE_ENDPOINT_SOCKET`.
#[test]
fn explicit_address_wins_and_spiffe_endpoint_socket_is_the_fallback() {
    std::env::remove_var("SPIFFE_ENDPOINT_SOCKET");
    let err = EndpointAddress::from_config_or_env(None).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("configured") && msg.contains("SPIFFE_ENDPOINT_SOCKET"),
        "{msg}"
    );

    std::env::set_var("SPIFFE_ENDPOINT_SOCKET", "unix:///env/agent.sock");
    assert_eq!(
        EndpointAddress::from_config_or_env(None).unwrap(),
        EndpointAddress::Unix("/env/agent.sock".into())
    );
    assert_eq!(
        EndpointAddress::from_config_or_env(Some("tcp://127.0.0.1:1")).unwrap(),
        EndpointAddress::Tcp("127.0.0.1:1".parse().unwrap())
    );

    std::env::set_var("SPIFFE_ENDPOINT_SOCKET", "unix://relative/agent.sock");
    let err = EndpointAddress::from_config_or_env(None).unwrap_err();
    assert!(
        err.to_string().starts_with("SPIFFE_ENDPOINT_SOCKET: "),
        "{err}"
    );
    std::env::remove_var("SPIFFE_ENDPOINT_SOCKET");
}
