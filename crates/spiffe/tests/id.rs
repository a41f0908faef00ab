//! SPIFFE ID and trust domain rules (CHECKLIST section A), plus every go-spiffe ID,
//! trust-domain and path vector in tests/data (see PROVENANCE.md there).

use serde_json::Value;
use ward_spiffe::id::{validate_path, validate_segment};
use ward_spiffe::{IdError, SpiffeId, TrustDomain};

fn load(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Maps go-spiffe's error text (tests/data) to the kind of failure ward reports, so the
/// vectors check the *outcome*, not the wording.
fn matches_go_error(err: &IdError, expected: &str) -> bool {
    match expected {
        "cannot be empty" => matches!(err, IdError::Empty | IdError::MissingTrustDomain),
        "scheme is missing or invalid" => matches!(err, IdError::BadScheme),
        "trust domain is missing" => matches!(err, IdError::MissingTrustDomain),
        "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores" => {
            matches!(err, IdError::BadTrustDomainChar { .. })
        }
        "path segment characters are limited to letters, numbers, dots, dashes, and underscores" => {
            matches!(err, IdError::BadPathChar { .. })
        }
        "path cannot contain empty segments" => matches!(err, IdError::EmptySegment),
        "path cannot contain dot segments" => matches!(err, IdError::DotSegment),
        "path cannot have a trailing slash" => matches!(err, IdError::TrailingSlash),
        "path must have a leading slash" => matches!(err, IdError::MissingLeadingSlash),
        other => panic!("unmapped go-spiffe error {other:?}"),
    }
}

#[test]
fn every_go_spiffe_id_and_trust_domain_vector_has_the_expected_outcome() {
    let data = load("spiffeid_cases.json");
    let cases = data["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 854, "the vector file changed");
    let mut failures = Vec::new();
    for case in cases {
        let input = case["input"].as_str().expect("input");
        let valid = case["valid"].as_bool().expect("valid");
        let kind = case["kind"].as_str().expect("kind");
        let (td, path, err) = match kind {
            "id" => match SpiffeId::new(input) {
                Ok(id) => (
                    Some(id.trust_domain_str().to_owned()),
                    Some(id.path().to_owned()),
                    None,
                ),
                Err(e) => (None, None, Some(e)),
            },
            "trust_domain" => match TrustDomain::new(input) {
                Ok(td) => (Some(td.as_str().to_owned()), None, None),
                Err(e) => (None, None, Some(e)),
            },
            other => panic!("unknown kind {other}"),
        };
        let ok = match (valid, &err) {
            (true, None) => {
                td.as_deref() == case["expected_trust_domain"].as_str()
                    && (case.get("expected_path").is_none()
                        || path.as_deref() == case["expected_path"].as_str())
            }
            (false, Some(e)) => {
                matches_go_error(e, case["expected_error"].as_str().expect("error"))
            }
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{kind} {input:?}: valid={valid} got td={td:?} path={path:?} err={err:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_go_spiffe_path_and_segment_vector_has_the_expected_outcome() {
    let data = load("spiffeid_path_cases.json");
    let td = TrustDomain::new("trustdomain").expect("td");
    let cases = data["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 22);
    for case in cases {
        let valid = case["valid"].as_bool().expect("valid");
        let result: Result<Option<String>, IdError> = match case["kind"].as_str().expect("kind") {
            "path" => {
                let p = case["input"].as_str().expect("input");
                validate_path(p)
                    .and_then(|_| SpiffeId::from_path(&td, p).map(|id| Some(id.path().to_owned())))
            }
            "segment" => validate_segment(case["input"].as_str().expect("input")).map(|_| None),
            "segments" => {
                let segs: Vec<&str> = case["input"]
                    .as_array()
                    .expect("input")
                    .iter()
                    .map(|s| s.as_str().expect("segment"))
                    .collect();
                SpiffeId::from_segments(&td, &segs).map(|id| Some(id.path().to_owned()))
            }
            other => panic!("unknown kind {other}"),
        };
        match (valid, result) {
            (true, Ok(path)) => {
                if let Some(expected) = case["expected_path"].as_str() {
                    assert_eq!(path.as_deref(), Some(expected), "{case}");
                }
            }
            (false, Err(e)) => {
                assert!(
                    matches_go_error(&e, case["expected_error"].as_str().expect("e")),
                    "{case}: {e:?}"
                )
            }
            (v, r) => panic!("{case}: expected valid={v}, got {r:?}"),
        }
    }
}

#[test]
fn go_spiffe_append_and_replace_path_vectors_hold() {
    // The "zero ID" cases of the file cannot arise in Rust: a SpiffeId is always valid.
    let id = SpiffeId::new("spiffe://trustdomain/path").expect("id");
    assert_eq!(
        id.append_path("/foo").expect("append").as_str(),
        "spiffe://trustdomain/path/foo"
    );
    assert_eq!(
        id.replace_path("/foo").expect("replace").as_str(),
        "spiffe://trustdomain/foo"
    );
    assert_eq!(id.append_path("/"), Err(IdError::TrailingSlash));
}

// === A.1 / A.2: scheme, trust domain, userinfo, port, query, fragment ===

#[test]
fn a1_scheme_other_than_spiffe_is_rejected() {
    for s in [
        "http://example.org/a",
        "spiffe:/example.org/a",
        "example.org/a",
        "spiffe//x/a",
    ] {
        assert_eq!(SpiffeId::new(s), Err(IdError::BadScheme), "{s}");
    }
}

#[test]
fn a1_uppercase_scheme_is_rejected_per_spec_2_1() {
    assert_eq!(
        SpiffeId::new("SPIFFE://example.org/a"),
        Err(IdError::BadScheme)
    );
}

#[test]
fn a1_empty_trust_domain_is_rejected() {
    assert_eq!(
        SpiffeId::new("spiffe:///a"),
        Err(IdError::MissingTrustDomain)
    );
    assert_eq!(TrustDomain::new(""), Err(IdError::MissingTrustDomain));
}

#[test]
fn a1_query_and_fragment_are_rejected() {
    for s in [
        "spiffe://example.org/a?x=1",
        "spiffe://example.org/a#frag",
        "spiffe://example.org?x",
        "spiffe://example.org#f",
    ] {
        let err = SpiffeId::new(s).expect_err(s);
        assert!(
            matches!(
                err,
                IdError::BadPathChar { .. } | IdError::BadTrustDomainChar { .. }
            ),
            "{s}: {err}"
        );
    }
}

#[test]
fn a2_userinfo_and_port_are_rejected() {
    for s in [
        "spiffe://user@example.org/a",
        "spiffe://user:pw@example.org/a",
        "spiffe://example.org:443/a",
    ] {
        assert!(
            matches!(SpiffeId::new(s), Err(IdError::BadTrustDomainChar { .. })),
            "{s}"
        );
    }
}

// === A.3 / A.10: lowercase trust domain, percent-encoding ===

#[test]
fn uppercase_trust_domain_is_rejected_per_spec_2_1() {
    // SPIFFE-ID §2.1 (host MUST be lowercase) wins over §2.4 (case-insensitive): ward
    // rejects like go-spiffe rather than lowercasing like rust-spiffe, so one domain
    // has exactly one spelling in policy and bundle lookups.
    assert!(matches!(
        SpiffeId::new("spiffe://Example.org/a"),
        Err(IdError::BadTrustDomainChar {
            found: 'E',
            position: 0
        })
    ));
    assert!(matches!(
        TrustDomain::new("EXAMPLE.org"),
        Err(IdError::BadTrustDomainChar { .. })
    ));
}

#[test]
fn a3_percent_encoded_trust_domain_is_rejected() {
    assert!(matches!(
        SpiffeId::new("spiffe://%65xample.org/a"),
        Err(IdError::BadTrustDomainChar { found: '%', .. })
    ));
}

#[test]
fn a4_ipv4_trust_domain_is_processed_like_any_name_and_ipv6_is_rejected() {
    let id =
        SpiffeId::new("spiffe://10.0.0.1/a").expect("dotted quad is a valid trust domain name");
    assert_eq!(id.trust_domain_str(), "10.0.0.1");
    assert!(SpiffeId::new("spiffe://[::1]/a").is_err());
}

// === A.5 - A.8: the path ===

#[test]
fn a5_percent_encoded_path_is_rejected() {
    assert!(matches!(
        SpiffeId::new("spiffe://example.org/a%20b"),
        Err(IdError::BadPathChar {
            found: '%',
            position: 2
        })
    ));
}

#[test]
fn a6_empty_and_dot_segments_are_rejected_but_dot_prefixed_names_are_fine() {
    assert_eq!(
        SpiffeId::new("spiffe://example.org/a//b"),
        Err(IdError::EmptySegment)
    );
    assert_eq!(
        SpiffeId::new("spiffe://example.org/a/./b"),
        Err(IdError::DotSegment)
    );
    assert_eq!(
        SpiffeId::new("spiffe://example.org/a/.."),
        Err(IdError::DotSegment)
    );
    for ok in [
        "spiffe://example.org/.path",
        "spiffe://example.org/..path",
        "spiffe://example.org/...",
    ] {
        assert!(SpiffeId::new(ok).is_ok(), "{ok}");
    }
}

#[test]
fn a7_trailing_slash_is_rejected() {
    assert_eq!(
        SpiffeId::new("spiffe://example.org/"),
        Err(IdError::TrailingSlash)
    );
    assert_eq!(
        SpiffeId::new("spiffe://example.org/a/"),
        Err(IdError::TrailingSlash)
    );
}

#[test]
fn a8_path_segments_allow_mixed_case_letters_digits_dot_dash_underscore_only() {
    let id = SpiffeId::new("spiffe://example.org/Ns/PROD-1/sa_x.y").expect("valid");
    assert_eq!(id.path(), "/Ns/PROD-1/sa_x.y");
    for bad in [
        "spiffe://example.org/a b",
        "spiffe://example.org/a+b",
        "spiffe://example.org/é",
    ] {
        assert!(
            matches!(SpiffeId::new(bad), Err(IdError::BadPathChar { .. })),
            "{bad}"
        );
    }
}

// === A.9: lengths ===

#[test]
fn a9_ids_up_to_2048_bytes_are_supported_and_longer_ones_rejected() {
    let prefix = "spiffe://example.org/";
    let exact = format!("{prefix}{}", "a".repeat(2048 - prefix.len()));
    assert_eq!(
        SpiffeId::new(&exact)
            .expect("2048 bytes is supported")
            .as_str()
            .len(),
        2048
    );
    let over = format!("{exact}a");
    assert_eq!(SpiffeId::new(&over), Err(IdError::TooLong { len: 2049 }));
}

#[test]
fn a9_trust_domain_longer_than_255_bytes_is_rejected() {
    assert!(TrustDomain::new(&"a".repeat(255)).is_ok());
    assert_eq!(
        TrustDomain::new(&"a".repeat(256)),
        Err(IdError::TrustDomainTooLong { len: 256 })
    );
    let id = format!("spiffe://{}/a", "a".repeat(256));
    assert_eq!(
        SpiffeId::new(&id),
        Err(IdError::TrustDomainTooLong { len: 256 })
    );
}

#[test]
fn a10_path_is_case_sensitive() {
    let a = SpiffeId::new("spiffe://example.org/Api").expect("a");
    let b = SpiffeId::new("spiffe://example.org/api").expect("b");
    assert_ne!(a, b);
}

// === constructors and accessors ===

#[test]
fn trust_domain_new_accepts_a_full_spiffe_id_and_returns_its_trust_domain() {
    let td = TrustDomain::new("spiffe://example.org/ns/a").expect("td");
    assert_eq!(td.as_str(), "example.org");
    assert_eq!(td.id_string(), "spiffe://example.org");
    assert!(td.id().is_root());
    assert_eq!(
        TrustDomain::new("spiffe://example.org/a/"),
        Err(IdError::TrailingSlash)
    );
}

#[test]
fn from_segments_and_from_path_build_the_same_id() {
    let td = TrustDomain::new("example.org").expect("td");
    let a = SpiffeId::from_segments(&td, &["ns", "prod"]).expect("a");
    let b = SpiffeId::from_path(&td, "/ns/prod").expect("b");
    assert_eq!(a, b);
    assert_eq!(a.trust_domain(), td);
    assert!(a.is_member_of(&td));
    assert!(!a.is_root());
    assert_eq!(
        SpiffeId::from_path(&td, "ns"),
        Err(IdError::MissingLeadingSlash)
    );
}

#[test]
fn error_messages_name_the_problem_and_where() {
    let msg = SpiffeId::new("spiffe://example.org/a$b")
        .expect_err("bad")
        .to_string();
    assert!(msg.contains("'$'") && msg.contains("byte 2"), "{msg}");
}
