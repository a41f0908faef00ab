//! SPIFFE ID patterns and HTTP path patterns, parsed and split into segments once at
//! load so that matching on the request path allocates nothing.
//!
//! Segment rules (the same for IDs and HTTP paths):
//! - a literal segment matches itself (IDs: case-sensitive path, lowercase trust domain);
//! - `*` matches exactly one segment;
//! - `**`, only as the last segment, matches one or more remaining segments (never
//!   zero: `spiffe://td/ns/**` matches `spiffe://td/ns/a` but not `spiffe://td/ns`);
//! - for IDs, `spiffe://td` (no path) is the whole trust domain: every ID in it.
//!
//! Anything else with a `*` in it (`***`, `sa-*`, `**` in the middle) is a load error,
//! as are empty segments, `.`/`..` and characters the SPIFFE ID spec forbids: a typo
//! must fail loudly at load, never turn into a pattern that silently matches nothing.

use std::fmt;

use ward_spiffe::SpiffeId;

use super::PolicyError;

/// One path segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches exactly this text.
    Literal(Box<str>),
    /// `*`: any one segment.
    One,
}

impl Segment {
    fn matches(&self, segment: &str) -> bool {
        match self {
            Segment::Literal(text) => **text == *segment,
            Segment::One => true,
        }
    }
}

/// What a pattern accepts after its listed segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rest {
    /// Nothing: the path ends here.
    End,
    /// A trailing `**`: one or more segments.
    OneOrMore,
    /// The whole trust domain (`spiffe://td`): any path, including none.
    Anything,
}

/// Matches `path` (`""` or `/a/b`) against segments and rest, without allocating.
fn match_segments(segments: &[Segment], rest: Rest, path: &str) -> bool {
    if rest == Rest::Anything {
        return true;
    }
    // "".split('/') yields one empty item and "/a/b" yields "", "a", "b": skip the first.
    let mut parts = path.split('/').skip(1);
    for segment in segments {
        match parts.next() {
            Some(part) if segment.matches(part) => {}
            _ => return false,
        }
    }
    match rest {
        Rest::End => parts.next().is_none(),
        Rest::OneOrMore => parts.next().is_some(),
        Rest::Anything => true,
    }
}

/// Splits `/a/*/**` into segments; `literal_ok` checks the characters of literals.
fn split(
    path: &str,
    literal_ok: fn(&str) -> Result<(), String>,
) -> Result<(Vec<Segment>, Rest), String> {
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let mut segments = Vec::with_capacity(parts.len());
    let mut rest = Rest::End;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *part {
            "" if last => return Err("a trailing `/` is not allowed".into()),
            "" => return Err("empty path segment (`//`)".into()),
            "**" if last => rest = Rest::OneOrMore,
            "**" => return Err("`**` is only allowed as the last segment".into()),
            "*" => segments.push(Segment::One),
            p if p.contains('*') => {
                return Err(format!(
                    "segment {p:?}: `*` must be a whole segment (`*` for one segment, a \
                     trailing `**` for the rest)"
                ))
            }
            "." | ".." => return Err(format!("segment {part:?} is not allowed")),
            p => {
                literal_ok(p)?;
                segments.push(Segment::Literal(p.into()));
            }
        }
    }
    Ok((segments, rest))
}

/// SPIFFE-ID.md §2.2: path segments are `[a-zA-Z0-9.-_]`.
fn id_segment_ok(segment: &str) -> Result<(), String> {
    match segment
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        Some(c) => Err(format!(
            "character {c:?} in segment {segment:?} is not allowed in a SPIFFE ID (use a-z A-Z 0-9 . - _)"
        )),
        None => Ok(()),
    }
}

/// SPIFFE-ID.md §2.1: trust domains are lowercase `[a-z0-9.-_]`, at most 255 bytes.
fn trust_domain_ok(td: &str) -> Result<(), String> {
    if td.is_empty() {
        return Err("the trust domain is empty".into());
    }
    if td.contains('*') {
        return Err("wildcards are not allowed in the trust domain".into());
    }
    if td.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "the trust domain {td:?} must be lowercase ({:?})",
            td.to_ascii_lowercase()
        ));
    }
    if let Some(c) = td
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "character {c:?} is not allowed in a trust domain (use a-z 0-9 . - _)"
        ));
    }
    if td.len() > 255 {
        return Err("the trust domain is longer than 255 bytes".into());
    }
    Ok(())
}

// === impl IdPattern ===

/// A SPIFFE ID pattern: an exact ID, `*` for one path segment, a trailing `**` for
/// one or more segments, or a whole trust domain written `spiffe://example.org`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPattern {
    text: String,
    trust_domain: Box<str>,
    /// The literal path before the first wildcard (`/ns/prod/` for `/ns/prod/*/x`):
    /// a memcmp that rejects most non-matching IDs before the segment walk.
    prefix: Box<str>,
    segments: Box<[Segment]>,
    rest: Rest,
}

impl IdPattern {
    /// Parses and validates a pattern.
    pub fn parse(s: &str) -> Result<Self, PolicyError> {
        let fail = |reason: String| PolicyError::Pattern {
            pattern: s.to_owned(),
            reason,
        };
        let Some(body) = s.strip_prefix("spiffe://") else {
            return Err(fail(
                if s.get(..9)
                    .is_some_and(|p| p.eq_ignore_ascii_case("spiffe://"))
                {
                    "the scheme must be written in lowercase: spiffe://".into()
                } else {
                    "a pattern is a SPIFFE ID starting with spiffe://".into()
                },
            ));
        };
        if s.len() > 2048 {
            return Err(fail(
                "longer than the 2048 bytes a SPIFFE ID may have".into(),
            ));
        }
        let (td, path) = body.split_at(body.find('/').unwrap_or(body.len()));
        trust_domain_ok(td).map_err(fail)?;
        let (segments, rest) = if path.is_empty() {
            (Vec::new(), Rest::Anything)
        } else if path == "/" {
            return Err(fail(format!(
                "a trailing `/` is not allowed; write spiffe://{td} for the whole trust \
                 domain or spiffe://{td}/** for every workload in it"
            )));
        } else {
            split(path, id_segment_ok).map_err(fail)?
        };
        let literal_end = path.find('*').unwrap_or(path.len());
        let pattern = Self {
            text: s.to_owned(),
            trust_domain: td.into(),
            prefix: path[..literal_end].into(),
            segments: segments.into(),
            rest,
        };
        if pattern.is_exact() {
            // An exact pattern must be a valid SPIFFE ID by the data model's own rules.
            SpiffeId::new(s).map_err(|e| fail(e.to_string()))?;
        }
        Ok(pattern)
    }

    /// True when `id` matches.
    pub fn matches(&self, id: &SpiffeId) -> bool {
        *self.trust_domain == *id.trust_domain_str()
            && id.path().starts_with(&*self.prefix)
            && match_segments(&self.segments, self.rest, id.path())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern is one exact ID (no `*`, `**` or whole trust domain).
    pub fn is_exact(&self) -> bool {
        self.rest == Rest::End && !self.segments.contains(&Segment::One)
    }
}

impl fmt::Display for IdPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

// === impl PathPattern ===

/// An HTTP path pattern (`/v1/**`, `/users/*/profile`), with the same segment rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Box<[Segment]>,
    rest: Rest,
    /// The pattern as written, for `/config` and messages.
    text: Box<str>,
}

/// Characters of a literal path segment: RFC 3986 `pchar` without `%`. Patterns are
/// written decoded; a request that percent-encodes is checked by [`is_canonical`].
fn path_segment_ok(segment: &str) -> Result<(), String> {
    match segment.chars().find(|c| {
        !(c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '.'
                    | '_'
                    | '~'
                    | '!'
                    | '$'
                    | '&'
                    | '\''
                    | '('
                    | ')'
                    | '+'
                    | ','
                    | ';'
                    | '='
                    | ':'
                    | '@'
            ))
    }) {
        Some(c) => Err(format!(
            "character {c:?} in segment {segment:?} is not allowed in a path pattern"
        )),
        None => Ok(()),
    }
}

impl PathPattern {
    /// Parses and validates a path pattern; it starts with `/`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if !s.starts_with('/') {
            return Err(format!("path pattern {s:?} must start with `/`"));
        }
        let (segments, rest) = if s == "/" {
            (vec![Segment::Literal("".into())], Rest::End)
        } else {
            split(s, path_segment_ok).map_err(|e| format!("path pattern {s:?}: {e}"))?
        };
        Ok(Self {
            segments: segments.into(),
            rest,
            text: s.into(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the (canonical, query-free) request path matches.
    pub fn matches(&self, path: &str) -> bool {
        match_segments(&self.segments, self.rest, path)
    }
}

/// The path part of a request target, without `?query` or `#fragment`.
pub fn path_only(target: &str) -> &str {
    let end = target.find(['?', '#']).unwrap_or(target.len());
    &target[..end]
}

/// True when `path` has one meaning: it starts with `/`, has no empty inner segment,
/// no `.`/`..` segment, no backslash and no percent-encoding of an unreserved
/// character, `/` or `\`. An app that normalizes `/v1/../admin` to `/admin` would
/// otherwise see a different path than the policy did; such paths never match an
/// allow rule's `paths` and always match a deny rule's (fail closed).
pub fn is_canonical(path: &str) -> bool {
    if !path.starts_with('/') || path.contains('\\') {
        return false;
    }
    let mut parts = path.split('/').skip(1).peekable();
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        if (part.is_empty() && !last) || part == "." || part == ".." {
            return false;
        }
        let bytes = part.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = |b: u8| (b as char).to_digit(16);
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return false;
                };
                let decoded = (hi * 16 + lo) as u8;
                if decoded.is_ascii_alphanumeric() || b"-._~/\\".contains(&decoded) {
                    return false;
                }
                i += 3;
            } else {
                i += 1;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IdPattern {
        IdPattern::parse(s).unwrap()
    }
    fn id(s: &str) -> SpiffeId {
        SpiffeId::new(s).unwrap()
    }
    fn reason(s: &str) -> String {
        IdPattern::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn exact_pattern_matches_only_that_id() {
        let pat = p("spiffe://example.org/ns/prod/sa/web");
        assert!(pat.matches(&id("spiffe://example.org/ns/prod/sa/web")));
        assert!(!pat.matches(&id("spiffe://example.org/ns/prod/sa/web2")));
        assert!(!pat.matches(&id("spiffe://example.org/ns/prod/sa/web/x")));
        assert!(!pat.matches(&id("spiffe://example.org/ns/prod/sa")));
        assert!(!pat.matches(&id("spiffe://other.org/ns/prod/sa/web")));
        assert!(pat.is_exact());
    }

    #[test]
    fn id_path_is_case_sensitive() {
        assert!(!p("spiffe://example.org/ns/Prod").matches(&id("spiffe://example.org/ns/prod")));
    }

    #[test]
    fn star_matches_exactly_one_segment() {
        let pat = p("spiffe://example.org/ns/*/sa/web");
        assert!(pat.matches(&id("spiffe://example.org/ns/prod/sa/web")));
        assert!(pat.matches(&id("spiffe://example.org/ns/dev/sa/web")));
        assert!(!pat.matches(&id("spiffe://example.org/ns/a/b/sa/web")));
        assert!(!pat.matches(&id("spiffe://example.org/ns/sa/web")));
        let tail = p("spiffe://example.org/ns/*");
        assert!(tail.matches(&id("spiffe://example.org/ns/a")));
        assert!(!tail.matches(&id("spiffe://example.org/ns/a/b")));
        assert!(!tail.matches(&id("spiffe://example.org/ns")));
    }

    #[test]
    fn trailing_double_star_matches_one_or_more_segments_not_zero() {
        let pat = p("spiffe://example.org/ns/prod/**");
        assert!(pat.matches(&id("spiffe://example.org/ns/prod/a")));
        assert!(pat.matches(&id("spiffe://example.org/ns/prod/a/b/c")));
        assert!(!pat.matches(&id("spiffe://example.org/ns/prod")));
        assert!(!pat.matches(&id("spiffe://example.org/ns/production/a")));
        let all = p("spiffe://example.org/**");
        assert!(all.matches(&id("spiffe://example.org/x")));
        assert!(!all.matches(&id("spiffe://example.org")));
        assert!(!all.matches(&id("spiffe://example.com/x")));
    }

    #[test]
    fn bare_trust_domain_matches_every_id_of_that_trust_domain() {
        let pat = p("spiffe://example.org");
        assert!(pat.matches(&id("spiffe://example.org/a")));
        assert!(pat.matches(&id("spiffe://example.org/a/b/c")));
        assert!(pat.matches(&id("spiffe://example.org")));
        assert!(!pat.matches(&id("spiffe://example.org.evil/a")));
        assert!(!pat.matches(&id("spiffe://evil.example.org/a")));
        assert!(!pat.is_exact());
    }

    #[test]
    fn double_star_in_the_middle_is_a_load_error() {
        assert!(reason("spiffe://example.org/**/sa/web").contains("last segment"));
    }

    #[test]
    fn partial_and_triple_stars_are_load_errors() {
        assert!(reason("spiffe://example.org/ns/***").contains("whole segment"));
        assert!(reason("spiffe://example.org/ns/sa-*").contains("whole segment"));
        assert!(reason("spiffe://*.example.org/ns").contains("trust domain"));
    }

    #[test]
    fn uppercase_trust_domain_is_a_load_error() {
        let r = reason("spiffe://Example.org/ns");
        assert!(r.contains("lowercase") && r.contains("example.org"), "{r}");
        assert!(reason("SPIFFE://example.org/ns").contains("lowercase"));
    }

    #[test]
    fn malformed_ids_are_load_errors() {
        for bad in [
            "example.org/ns",
            "spiffe://",
            "spiffe://example.org/",
            "spiffe://example.org//ns",
            "spiffe://example.org/ns/",
            "spiffe://example.org/ns/./x",
            "spiffe://example.org/ns/../x",
            "spiffe://example.org/ns/a%20b",
            "spiffe://example.org:8080/ns",
            "spiffe://example.org/ns?x=1",
            "spiffe://user@example.org/ns",
        ] {
            assert!(IdPattern::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn error_names_the_pattern() {
        let r = reason("spiffe://example.org/**/x");
        assert!(r.contains("\"spiffe://example.org/**/x\""), "{r}");
    }

    #[test]
    fn path_patterns_use_the_same_segment_rules() {
        let v1 = PathPattern::parse("/v1/**").unwrap();
        assert!(v1.matches("/v1/users"));
        assert!(v1.matches("/v1/users/7"));
        assert!(v1.matches("/v1/"));
        assert!(!v1.matches("/v1"));
        assert!(!v1.matches("/v2/users"));
        let one = PathPattern::parse("/users/*/profile").unwrap();
        assert!(one.matches("/users/7/profile"));
        assert!(!one.matches("/users/7/8/profile"));
        let root = PathPattern::parse("/").unwrap();
        assert!(root.matches("/"));
        assert!(!root.matches("/x"));
        for bad in [
            "v1/**", "/v1/**/x", "/v1//x", "/v1/a*", "/v1/%2e", "/v1/../x",
        ] {
            assert!(PathPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ambiguous_request_paths_are_not_canonical() {
        assert!(is_canonical("/v1/users"));
        assert!(is_canonical("/v1/users/"));
        assert!(is_canonical("/v1/a%20b"));
        assert!(is_canonical("/"));
        for bad in [
            "/v1/../admin",
            "/v1/./x",
            "//admin",
            "/v1//x",
            "/%61dmin",
            "/v1/%2e%2e/admin",
            "/v1%2fadmin",
            "/v1\\admin",
            "/v1/%zz",
            "*",
            "v1",
        ] {
            assert!(!is_canonical(bad), "{bad}");
        }
        assert_eq!(path_only("/a/b?x=/c#f"), "/a/b");
    }
}
