//! `Policy::decide` on the per-request path: ns per decision for 10 and 1000 rules.
//!
//! ward is a binary crate, so the policy and config modules are compiled in here by
//! path, exactly as the binary compiles them.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ward_spiffe::SpiffeId;

#[allow(dead_code, unused_imports)]
#[path = "../src/config/mod.rs"]
mod config;
#[allow(dead_code, unused_imports)]
#[path = "../src/policy/mod.rs"]
mod policy;

use policy::{Policy, Request};

/// `n` rules on listener `api`: one deny rule that never matches, allow rules with one
/// exact ID each (or, `wildcard`, one `svcN/**` pattern each: the scanned worst case),
/// and last a `**` pattern with methods and paths.
fn policy_of(n: usize, wildcard: bool) -> Policy {
    let tail = if wildcard { "/**" } else { "" };
    let mut text = String::from(
        "rules:\n  - {name: deny-legacy, listener: \"*\", deny: [\"spiffe://example.org/ns/legacy/**\"]}\n",
    );
    for i in 0..n - 2 {
        text.push_str(&format!(
            "  - {{name: r{i}, listener: api, allow: [\"spiffe://example.org/ns/prod/sa/svc{i}{tail}\"]}}\n"
        ));
    }
    text.push_str(
        "  - {name: last, listener: api, allow: [\"spiffe://example.org/ns/ops/**\"], methods: [GET], paths: [\"/v1/**\"]}\n",
    );
    match Policy::from_yaml(&text, "bench.yaml") {
        Ok(policy) => policy,
        Err(e) => panic!("bench policy: {e}"),
    }
}

fn id(s: &str) -> SpiffeId {
    match SpiffeId::new(s) {
        Ok(id) => id,
        Err(e) => panic!("{s}: {e}"),
    }
}

fn bench(c: &mut Criterion) {
    let first_exact = id("spiffe://example.org/ns/prod/sa/svc0");
    let first_wild = id("spiffe://example.org/ns/prod/sa/svc0/x");
    let last = id("spiffe://example.org/ns/ops/team/oncall");
    let stranger = id("spiffe://example.org/ns/prod/sa/stranger");
    for (n, wildcard) in [(10, false), (1000, false), (10, true), (1000, true)] {
        let policy = policy_of(n, wildcard);
        let (kind, first) = if wildcard {
            ("wildcard", &first_wild)
        } else {
            ("exact", &first_exact)
        };
        let cases = [
            ("first rule allows", first, None, None),
            (
                "last rule allows (http)",
                &last,
                Some("GET"),
                Some("/v1/users/7?x=1"),
            ),
            ("default deny", &stranger, None, None),
        ];
        for (case, peer, method, path) in cases {
            let request = Request {
                listener: "api",
                peer,
                method,
                path,
            };
            let decision = policy.decide(&request);
            assert_eq!(decision.allow, case != "default deny", "{case}");
            c.bench_function(&format!("decide/{n} {kind} rules/{case}"), |b| {
                b.iter(|| black_box(&policy).decide(black_box(&request)))
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
