//! Entries files: which callers get which identity, and errors that name the line.

use std::path::{Path, PathBuf};

use ward_authority::{Assignment, EntriesError, Entry};
use ward_spiffe::{SpiffeId, TrustDomain};
use ward_workload::Caller;

fn caller(uid: u32, gid: u32, exe: Option<&str>) -> Caller {
    Caller {
        pid: Some(4242),
        uid,
        gid,
        exe: exe.map(PathBuf::from),
        socket: None,
    }
}

fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

fn parse(yaml: &str) -> Result<Assignment, EntriesError> {
    Assignment::parse_entries(yaml, Path::new("entries.yaml"), Some(&td()))
}

fn ids(a: &Assignment, c: &Caller) -> Vec<String> {
    a.identities_for(c).iter().map(|i| i.to_string()).collect()
}

fn error_line(yaml: &str) -> (u64, String) {
    match parse(yaml).unwrap_err() {
        err @ EntriesError::Invalid { line, .. } => (line, err.to_string()),
        other => panic!("expected a located error, got {other}"),
    }
}

const ENTRIES: &str = "\
entries:
  - spiffe_id: spiffe://example.org/by-uid
    uid: 1000
  - spiffe_id: spiffe://example.org/by-gid
    gid: 50
  - spiffe_id: spiffe://example.org/by-path
    path: /usr/bin/curl
  - spiffe_id: spiffe://example.org/by-all
    uid: 1000
    gid: 50
    path: /usr/bin/curl
";

#[test]
fn entry_matches_by_uid() {
    let a = parse(ENTRIES).unwrap();
    assert_eq!(
        ids(&a, &caller(1000, 1, None)),
        vec!["spiffe://example.org/by-uid"]
    );
}

#[test]
fn entry_matches_by_gid() {
    let a = parse(ENTRIES).unwrap();
    assert_eq!(
        ids(&a, &caller(7, 50, None)),
        vec!["spiffe://example.org/by-gid"]
    );
}

#[test]
fn entry_matches_by_executable_path() {
    let a = parse(ENTRIES).unwrap();
    assert_eq!(
        ids(&a, &caller(7, 1, Some("/usr/bin/curl"))),
        vec!["spiffe://example.org/by-path"]
    );
    // An unknown executable never matches a path selector.
    assert!(ids(&a, &caller(7, 1, None)).is_empty());
    assert!(ids(&a, &caller(7, 1, Some("/usr/bin/wget"))).is_empty());
}

#[test]
fn caller_matching_several_entries_gets_every_id_in_file_order() {
    let a = parse(ENTRIES).unwrap();
    assert_eq!(
        ids(&a, &caller(1000, 50, Some("/usr/bin/curl"))),
        vec![
            "spiffe://example.org/by-uid",
            "spiffe://example.org/by-gid",
            "spiffe://example.org/by-path",
            "spiffe://example.org/by-all",
        ]
    );
}

#[test]
fn entry_needs_every_selector_it_sets_to_match() {
    let a = parse(ENTRIES).unwrap();
    // uid and gid match by-all, the path does not.
    assert!(!ids(&a, &caller(1000, 50, Some("/bin/sh")))
        .contains(&"spiffe://example.org/by-all".to_string()));
}

#[test]
fn caller_matching_nothing_gets_no_identity() {
    let a = parse(ENTRIES).unwrap();
    assert!(a.identities_for(&caller(7, 1, Some("/bin/sh"))).is_empty());
}

#[test]
fn same_id_from_two_entries_is_held_once() {
    let a = parse(
        "entries:\n  - spiffe_id: spiffe://example.org/a\n    uid: 1\n  - spiffe_id: spiffe://example.org/a\n    gid: 2\n",
    )
    .unwrap();
    assert_eq!(ids(&a, &caller(1, 2, None)), vec!["spiffe://example.org/a"]);
}

#[test]
fn fixed_assignment_gives_everyone_the_id() {
    let id = SpiffeId::new("spiffe://example.org/everyone").unwrap();
    let a = Assignment::Fixed(id.clone());
    assert_eq!(a.identities_for(&caller(0, 0, None)), vec![id.clone()]);
    assert_eq!(a.identities_for(&caller(1234, 99, Some("/x"))), vec![id]);
}

#[test]
fn entries_are_loaded_as_written() {
    let a = parse(ENTRIES).unwrap();
    let Assignment::Entries(entries) = a else {
        panic!("not entries")
    };
    assert_eq!(
        entries[3],
        Entry {
            spiffe_id: SpiffeId::new("spiffe://example.org/by-all").unwrap(),
            uid: Some(1000),
            gid: Some(50),
            path: Some(PathBuf::from("/usr/bin/curl")),
        }
    );
}

#[test]
fn unknown_key_is_an_error_naming_its_line() {
    let (line, msg) =
        error_line("entries:\n  - spiffe_id: spiffe://example.org/a\n    uid: 1\n    user: bob\n");
    assert_eq!(line, 4, "{msg}");
    assert!(
        msg.contains("user") && msg.contains("entries.yaml"),
        "{msg}"
    );
}

#[test]
fn unknown_top_level_key_is_an_error() {
    let (line, msg) = error_line("entries: []\nselectors: {}\n");
    assert_eq!(line, 2, "{msg}");
}

#[test]
fn invalid_spiffe_id_is_an_error_naming_its_line() {
    let (line, msg) = error_line(
        "entries:\n  - spiffe_id: spiffe://example.org/ok\n    uid: 1\n  - spiffe_id: http://example.org/a\n    uid: 2\n",
    );
    assert_eq!(line, 4, "{msg}");
    assert!(msg.contains("http://example.org/a"), "{msg}");
}

#[test]
fn id_in_another_trust_domain_is_an_error_naming_its_line() {
    let (line, msg) = error_line("entries:\n\n  - spiffe_id: spiffe://other.org/a\n    uid: 1\n");
    assert_eq!(line, 3, "{msg}");
    assert!(
        msg.contains("other.org") && msg.contains("example.org"),
        "{msg}"
    );
}

#[test]
fn root_id_is_an_error_naming_its_line() {
    let (line, msg) = error_line("entries:\n  - spiffe_id: spiffe://example.org\n    uid: 1\n");
    assert_eq!(line, 2, "{msg}");
}

#[test]
fn entry_without_selector_is_an_error_naming_its_line() {
    let (line, msg) = error_line(
        "entries:\n  - spiffe_id: spiffe://example.org/a\n    uid: 1\n  - spiffe_id: spiffe://example.org/b\n",
    );
    assert_eq!(line, 4, "{msg}");
    assert!(msg.contains("no selector"), "{msg}");
}

#[test]
fn relative_executable_path_is_an_error() {
    let (line, msg) =
        error_line("entries:\n  - spiffe_id: spiffe://example.org/a\n    path: bin/curl\n");
    assert_eq!(line, 3, "{msg}");
    assert!(msg.contains("absolute"), "{msg}");
}

#[test]
fn negative_uid_is_an_error_naming_its_line() {
    let (line, msg) = error_line("entries:\n  - spiffe_id: spiffe://example.org/a\n    uid: -1\n");
    assert_eq!(line, 3, "{msg}");
}

#[test]
fn file_without_entries_is_refused() {
    assert!(matches!(
        parse("entries: []\n"),
        Err(EntriesError::Empty { .. })
    ));
}

#[test]
fn missing_file_is_reported_with_its_path() {
    let err = Assignment::load_entries(Path::new("/nonexistent/entries.yaml")).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/entries.yaml"),
        "{err}"
    );
}

#[test]
fn load_entries_without_trust_domain_accepts_any_and_validate_checks_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("entries.yaml");
    std::fs::write(
        &file,
        "entries:\n  - spiffe_id: spiffe://other.org/a\n    uid: 1\n",
    )
    .unwrap();
    let a = Assignment::load_entries(&file).unwrap();
    let err = a.validate(&td()).unwrap_err().to_string();
    assert!(err.contains("spiffe://other.org/a"), "{err}");
    assert!(a.validate(&TrustDomain::new("other.org").unwrap()).is_ok());
    let located = Assignment::load_entries_for(&file, &td())
        .unwrap_err()
        .to_string();
    assert!(located.contains("line 2"), "{located}");
}

#[test]
fn example_entries_file_in_config_loads() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/entries.yaml");
    let a = Assignment::load_entries_for(&file, &td()).unwrap();
    assert_eq!(
        ids(&a, &caller(1000, 1000, Some("/usr/local/bin/api-server"))),
        vec![
            "spiffe://example.org/ns/dev/sa/frontend",
            "spiffe://example.org/ns/dev/sa/api"
        ]
    );
}
