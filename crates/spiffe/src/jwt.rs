//! JWT-SVIDs (JWT-SVID.md; CHECKLIST section C) and JWT authorities (public keys).
//!
//! Validation order, first failure wins (go-spiffe's order, with the spec's extra
//! musts): compact serialization with three parts (C.24) -> `alg` on the allow-list,
//! before anything else is looked at (C.26) -> `typ` JWT or JOSE when present (C.27) ->
//! `sub` present -> `exp` present (C.30) -> `sub` a SPIFFE ID (C.28) -> [validate only:
//! `kid` present, bundle of the *subject's* trust domain (C.32), authority by `kid`,
//! signature] -> `exp` not past -> `aud` present and holding an expected audience (C.29).

use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaParameters, RsaPublicKeyComponents};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::{IdError, JwtBundleSet, SpiffeId};

/// Leeway granted on `exp`: none. The caller passes `now`; a token at or past its
/// expiry is expired (RFC 7519 §4.1.4 "MUST NOT be accepted on or after"), like
/// rust-spiffe and unlike go-jose's one minute. JWT-SVIDs are short-lived and fetched
/// just in time, so a skew allowance would mostly lengthen a stolen token's life.
pub const EXP_LEEWAY: Duration = Duration::ZERO;

/// Leeway granted on `nbf` (when present): 30 s, for clock skew between the issuer
/// that stamped "now" and this validator.
pub const NBF_LEEWAY: Duration = Duration::from_secs(30);

/// The algorithms a JWT-SVID may be signed with (C.26). `none`, HS* and EdDSA are
/// rejected before the token's other parts are read.
pub const ALLOWED_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512",
];

/// Why a token is not a valid JWT-SVID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Not a JWS compact serialization of three base64url parts with JSON objects.
    #[error("unable to parse the JWT: {0}")]
    Malformed(String),
    /// `alg` is missing or not on the allow-list.
    #[error("the JWT algorithm {0:?} is not allowed; a JWT-SVID uses RS256/384/512, ES256/384/512 or PS256/384/512")]
    AlgorithmNotAllowed(String),
    /// `typ` is present and neither `JWT` nor `JOSE`.
    #[error("the JWT header type {0:?} is neither JWT nor JOSE")]
    BadType(String),
    /// No `sub` claim.
    #[error("the token is missing the subject (`sub`) claim")]
    MissingSubject,
    /// No `exp` claim.
    #[error("the token is missing the expiry (`exp`) claim")]
    MissingExpiry,
    /// `sub` is not a SPIFFE ID.
    #[error("the token has an invalid subject claim: {0}")]
    InvalidSubject(IdError),
    /// A claim has the wrong JSON type.
    #[error("the `{claim}` claim is invalid: {reason}")]
    InvalidClaim {
        /// The claim.
        claim: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No `kid` header: the key cannot be looked up.
    #[error("the token header is missing the key ID (`kid`)")]
    MissingKeyId,
    /// No JWT bundle for the subject's trust domain.
    #[error("no JWT bundle found for trust domain {0:?}: the token is untrusted")]
    NoBundle(String),
    /// The bundle has no authority with this key ID.
    #[error("no JWT authority {kid:?} found for trust domain {trust_domain:?}")]
    NoAuthority {
        /// The key ID of the token.
        kid: String,
        /// The subject's trust domain.
        trust_domain: String,
    },
    /// The authority's key type does not fit the token's algorithm.
    #[error("the key {kid:?} ({key}) cannot verify a token signed with {alg}")]
    KeyAlgorithmMismatch {
        /// The key ID.
        kid: String,
        /// The key's type and curve.
        key: String,
        /// The token's algorithm.
        alg: String,
    },
    /// The signature does not verify.
    #[error("the token signature does not verify with key {0:?}")]
    BadSignature(String),
    /// `exp` is at or before `now`.
    #[error("the token has expired (exp {exp}, now {now})")]
    Expired {
        /// The `exp` claim, seconds since the epoch.
        exp: i64,
        /// The validation time, seconds since the epoch.
        now: i64,
    },
    /// `nbf` is in the future.
    #[error("the token is not valid yet (nbf {nbf}, now {now})")]
    NotYetValid {
        /// The `nbf` claim.
        nbf: i64,
        /// The validation time.
        now: i64,
    },
    /// No `aud` claim, or an empty one.
    #[error("the token has no audience (`aud`) claim")]
    MissingAudience,
    /// The validator passed no audience to check against.
    #[error("no expected audience given: a JWT-SVID validator must check `aud` against its own audience")]
    NoExpectedAudience,
    /// `aud` holds none of the expected audiences.
    #[error("expected an audience in {expected:?}, the token has {actual:?}")]
    AudienceMismatch {
        /// What the validator accepts.
        expected: Vec<String>,
        /// What the token holds.
        actual: Vec<String>,
    },
    /// A JWK is missing `kid`.
    #[error("the JWK has no key ID (`kid`)")]
    MissingKid,
    /// A JWK of a type or curve ward does not support (callers reading bundles ignore it).
    #[error("unsupported JWK: {0}")]
    UnsupportedKey(String),
    /// A JWK of a supported type whose parameters are wrong.
    #[error("invalid JWK: {0}")]
    InvalidKey(String),
    /// Signing failed.
    #[error("cannot sign the token: {0}")]
    Signing(String),
}

// === impl JwtAuthority ===

/// A JWT signing authority's public key with its key ID. Supported: EC P-256/P-384/P-521
/// and RSA (for ES*, RS* and PS* algorithms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtAuthority {
    kid: String,
    /// The public key as a JWK object (`kty`, `crv`, `x`, `y` or `n`, `e`), without `kid`
    /// and `use`, kept as parsed so serialisation round-trips.
    jwk: serde_json::Map<String, serde_json::Value>,
}

/// The decoded public key of an authority.
enum PublicKey {
    /// Curve name and uncompressed SEC1 point.
    Ec(&'static str, Vec<u8>),
    /// Modulus and exponent, big-endian.
    Rsa(Vec<u8>, Vec<u8>),
}

fn curve_len(crv: &str) -> Option<usize> {
    match crv {
        "P-256" => Some(32),
        "P-384" => Some(48),
        "P-521" => Some(66),
        _ => None,
    }
}

fn b64_field(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, JwtError> {
    let text = jwk.get(name).and_then(Value::as_str).ok_or_else(|| {
        JwtError::InvalidKey(format!("member `{name}` is missing or not a string"))
    })?;
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|e| JwtError::InvalidKey(format!("member `{name}` is not base64url: {e}")))?;
    if bytes.is_empty() {
        return Err(JwtError::InvalidKey(format!("member `{name}` is empty")));
    }
    Ok(bytes)
}

/// Decodes and checks the key members of a JWK (without kid/use).
fn decode_key(jwk: &Map<String, Value>) -> Result<PublicKey, JwtError> {
    let kty = jwk
        .get("kty")
        .and_then(Value::as_str)
        .ok_or_else(|| JwtError::InvalidKey("member `kty` is missing (F.59)".into()))?;
    match kty {
        "EC" => {
            let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or("");
            let (name, len) = match crv {
                "P-256" => ("P-256", 32),
                "P-384" => ("P-384", 48),
                "P-521" => ("P-521", 66),
                other => return Err(JwtError::UnsupportedKey(format!("EC curve {other:?}"))),
            };
            let x = b64_field(jwk, "x")?;
            let y = b64_field(jwk, "y")?;
            if x.len() != len || y.len() != len {
                return Err(JwtError::InvalidKey(format!(
                    "{name} coordinates must be {len} bytes, got x={} y={}",
                    x.len(),
                    y.len()
                )));
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend(x);
            point.extend(y);
            Ok(PublicKey::Ec(name, point))
        }
        "RSA" => Ok(PublicKey::Rsa(b64_field(jwk, "n")?, b64_field(jwk, "e")?)),
        other => Err(JwtError::UnsupportedKey(format!("key type {other:?}"))),
    }
}

impl JwtAuthority {
    /// From a JWK JSON object; `kid` is required.
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<Self, JwtError> {
        let obj = jwk
            .as_object()
            .ok_or_else(|| JwtError::InvalidKey("a JWK must be a JSON object".into()))?;
        let mut key = obj.clone();
        let kid = key.remove("kid");
        key.remove("use");
        // The key type first: a JWK of an unknown type is ignored by bundle readers
        // (F.59) even when it also lacks a kid.
        decode_key(&key)?;
        let kid = match kid {
            Some(Value::String(k)) if !k.is_empty() => k,
            Some(Value::String(_)) | None => return Err(JwtError::MissingKid),
            Some(_) => return Err(JwtError::InvalidKey("member `kid` is not a string".into())),
        };
        Ok(Self { kid, jwk: key })
    }
    /// An EC P-256 key from its uncompressed SEC1 point (`0x04 || x || y`).
    pub fn ec_p256(kid: impl Into<String>, uncompressed_point: &[u8]) -> Result<Self, JwtError> {
        Self::ec(kid, "P-256", uncompressed_point)
    }
    /// An EC key (`crv` P-256, P-384 or P-521) from its uncompressed SEC1 point.
    pub fn ec(
        kid: impl Into<String>,
        crv: &str,
        uncompressed_point: &[u8],
    ) -> Result<Self, JwtError> {
        let kid = kid.into();
        if kid.is_empty() {
            return Err(JwtError::MissingKid);
        }
        let len =
            curve_len(crv).ok_or_else(|| JwtError::UnsupportedKey(format!("EC curve {crv:?}")))?;
        match uncompressed_point {
            [0x04, xy @ ..] if xy.len() == 2 * len => {
                let mut jwk = Map::new();
                jwk.insert("kty".into(), "EC".into());
                jwk.insert("crv".into(), crv.into());
                jwk.insert("x".into(), URL_SAFE_NO_PAD.encode(&xy[..len]).into());
                jwk.insert("y".into(), URL_SAFE_NO_PAD.encode(&xy[len..]).into());
                Ok(Self { kid, jwk })
            }
            _ => Err(JwtError::InvalidKey(format!(
                "a {crv} public key is 0x04 followed by {} bytes",
                2 * len
            ))),
        }
    }
    /// An RSA key from its big-endian modulus and public exponent.
    pub fn rsa(kid: impl Into<String>, n: &[u8], e: &[u8]) -> Result<Self, JwtError> {
        let kid = kid.into();
        if kid.is_empty() {
            return Err(JwtError::MissingKid);
        }
        if n.is_empty() || e.is_empty() {
            return Err(JwtError::InvalidKey(
                "RSA modulus and exponent must not be empty".into(),
            ));
        }
        let mut jwk = Map::new();
        jwk.insert("kty".into(), "RSA".into());
        jwk.insert("n".into(), URL_SAFE_NO_PAD.encode(n).into());
        jwk.insert("e".into(), URL_SAFE_NO_PAD.encode(e).into());
        Ok(Self { kid, jwk })
    }
    /// The key ID.
    pub fn key_id(&self) -> &str {
        &self.kid
    }
    /// The JWK object including `kid` (and `use: jwt-svid` when `with_use`).
    pub fn to_jwk(&self, with_use: bool) -> serde_json::Value {
        let mut jwk = self.jwk.clone();
        jwk.insert("kid".into(), self.kid.clone().into());
        if with_use {
            jwk.insert("use".into(), "jwt-svid".into());
        }
        Value::Object(jwk)
    }

    /// Verifies a JWS signature with this key for `alg` (already on the allow-list).
    fn verify(&self, alg: &str, message: &[u8], sig: &[u8]) -> Result<(), JwtError> {
        let key = decode_key(&self.jwk)?;
        let mismatch = |key: String| JwtError::KeyAlgorithmMismatch {
            kid: self.kid.clone(),
            key,
            alg: alg.to_owned(),
        };
        let bad = || JwtError::BadSignature(self.kid.clone());
        match key {
            PublicKey::Ec(crv, point) => {
                let valg: &'static signature::EcdsaVerificationAlgorithm = match (alg, crv) {
                    ("ES256", "P-256") => &signature::ECDSA_P256_SHA256_FIXED,
                    ("ES384", "P-384") => &signature::ECDSA_P384_SHA384_FIXED,
                    ("ES512", "P-521") => &signature::ECDSA_P521_SHA512_FIXED,
                    _ => return Err(mismatch(format!("EC {crv}"))),
                };
                signature::UnparsedPublicKey::new(valg, point)
                    .verify(message, sig)
                    .map_err(|_| bad())
            }
            PublicKey::Rsa(n, e) => {
                let params: &'static RsaParameters = match alg {
                    "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                    "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return Err(mismatch("RSA".into())),
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .map_err(|_| bad())
            }
        }
    }
}

// === impl JwtSvid ===

/// A JWT-SVID: the token and its validated claims.
#[derive(Debug, Clone)]
pub struct JwtSvid {
    token: String,
    id: SpiffeId,
    audience: Vec<String>,
    expiry: SystemTime,
    claims: serde_json::Map<String, serde_json::Value>,
    hint: String,
}

/// The parts of a token after the structural checks.
struct Parsed<'t> {
    signing_input: &'t str,
    signature: Vec<u8>,
    alg: String,
    kid: Option<String>,
    claims: Map<String, Value>,
    id: SpiffeId,
    exp: i64,
}

fn decode_json_part(part: &str, what: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| JwtError::Malformed(format!("the {what} is not base64url: {e}")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(JwtError::Malformed(format!(
            "the {what} is not a JSON object"
        ))),
        Err(e) => Err(JwtError::Malformed(format!("the {what} is not JSON: {e}"))),
    }
}

fn numeric_date(claims: &Map<String, Value>, claim: &'static str) -> Result<Option<i64>, JwtError> {
    match claims.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.floor() as i64)
            })
            .map(Some)
            .ok_or_else(|| JwtError::InvalidClaim {
                claim,
                reason: format!("{n} is not a NumericDate"),
            }),
        Some(other) => Err(JwtError::InvalidClaim {
            claim,
            reason: format!("{other} is not a number"),
        }),
    }
}

/// Structural checks common to both entry points, in the module's order.
fn parse(token: &str) -> Result<Parsed<'_>, JwtError> {
    // C.24: compact serialization only; a JSON serialization has no dots to split on.
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, sig] = parts.as_slice() else {
        return Err(JwtError::Malformed(format!(
            "a JWS compact serialization has 3 dot-separated parts, this token has {}",
            parts.len()
        )));
    };
    let header_map = decode_json_part(header, "header")?;
    // C.26: the algorithm is checked before anything else is processed.
    let alg = match header_map.get("alg") {
        Some(Value::String(a)) if ALLOWED_ALGORITHMS.contains(&a.as_str()) => a.clone(),
        Some(Value::String(a)) => return Err(JwtError::AlgorithmNotAllowed(a.clone())),
        Some(other) => return Err(JwtError::AlgorithmNotAllowed(other.to_string())),
        None => return Err(JwtError::AlgorithmNotAllowed(String::new())),
    };
    // JWS critical extensions are never understood here (RFC 7515 §4.1.11).
    if header_map.contains_key("crit") {
        return Err(JwtError::Malformed(
            "the header has a `crit` member, which ward does not support".into(),
        ));
    }
    match header_map.get("typ") {
        None => {}
        Some(Value::String(t)) if t == "JWT" || t == "JOSE" => {}
        Some(Value::String(t)) => return Err(JwtError::BadType(t.clone())),
        Some(other) => return Err(JwtError::BadType(other.to_string())),
    }
    let kid = match header_map.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()).filter(|k| !k.is_empty()),
        Some(_) => {
            return Err(JwtError::Malformed(
                "the `kid` header is not a string".into(),
            ))
        }
    };
    let signature = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|e| JwtError::Malformed(format!("the signature is not base64url: {e}")))?;
    let claims = decode_json_part(payload, "payload")?;
    let sub = match claims.get("sub") {
        None | Some(Value::Null) => return Err(JwtError::MissingSubject),
        Some(Value::String(s)) if s.is_empty() => return Err(JwtError::MissingSubject),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(JwtError::InvalidClaim {
                claim: "sub",
                reason: format!("{other} is not a string"),
            })
        }
    };
    let exp = numeric_date(&claims, "exp")?.ok_or(JwtError::MissingExpiry)?;
    let id = SpiffeId::new(&sub).map_err(JwtError::InvalidSubject)?;
    let signing_input = &token[..header.len() + 1 + payload.len()];
    Ok(Parsed {
        signing_input,
        signature,
        alg,
        kid,
        claims,
        id,
        exp,
    })
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn audience_claim(claims: &Map<String, Value>) -> Result<Vec<String>, JwtError> {
    let bad = |v: &Value| JwtError::InvalidClaim {
        claim: "aud",
        reason: format!("{v} is neither a string nor an array of strings"),
    };
    let aud = match claims.get("aud") {
        None | Some(Value::Null) => return Err(JwtError::MissingAudience),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| bad(v)))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(bad(other)),
    };
    if aud.is_empty() {
        return Err(JwtError::MissingAudience);
    }
    Ok(aud)
}

/// Time and audience checks, after the signature (or in place of it, when insecure).
fn finish(
    token: &str,
    p: Parsed<'_>,
    audience: &[&str],
    now: SystemTime,
) -> Result<JwtSvid, JwtError> {
    let now_secs = unix_secs(now);
    let leeway = i64::try_from(EXP_LEEWAY.as_secs()).unwrap_or(0);
    if p.exp.saturating_add(leeway) <= now_secs {
        return Err(JwtError::Expired {
            exp: p.exp,
            now: now_secs,
        });
    }
    if let Some(nbf) = numeric_date(&p.claims, "nbf")? {
        let leeway = i64::try_from(NBF_LEEWAY.as_secs()).unwrap_or(0);
        if nbf > now_secs.saturating_add(leeway) {
            return Err(JwtError::NotYetValid { nbf, now: now_secs });
        }
    }
    let actual = audience_claim(&p.claims)?;
    if !audience.is_empty() && !actual.iter().any(|a| audience.contains(&a.as_str())) {
        return Err(JwtError::AudienceMismatch {
            expected: audience.iter().map(|s| (*s).to_owned()).collect(),
            actual,
        });
    }
    let expiry = crate::x509::unix_to_system_time(p.exp);
    Ok(JwtSvid {
        token: token.to_owned(),
        id: p.id,
        audience: actual,
        expiry,
        claims: p.claims,
        hint: String::new(),
    })
}

impl JwtSvid {
    /// Parses and fully validates a token: algorithm on the allow-list (checked first),
    /// `typ` JWT or JOSE when present, `sub` a SPIFFE ID, `aud` containing one of
    /// `audience`, `exp` present and not past at `now`, signature by the key named by
    /// `kid` in the bundle of the subject's trust domain.
    ///
    /// `audience` must not be empty (C.29: a validator checks `aud` against its own
    /// audience; go-spiffe skips the check on an empty list, ward refuses instead).
    pub fn parse_and_validate(
        token: &str,
        bundles: &JwtBundleSet,
        audience: &[&str],
        now: SystemTime,
    ) -> Result<Self, JwtError> {
        // A caller error, not a property of the token: refused before the token is read.
        if audience.is_empty() {
            return Err(JwtError::NoExpectedAudience);
        }
        let p = parse(token)?;
        let kid = p.kid.clone().ok_or(JwtError::MissingKeyId)?;
        let td = p.id.trust_domain();
        let bundle = bundles
            .get(&td)
            .ok_or_else(|| JwtError::NoBundle(td.to_string()))?;
        let authority = bundle.get(&kid).ok_or_else(|| JwtError::NoAuthority {
            kid: kid.clone(),
            trust_domain: td.to_string(),
        })?;
        authority.verify(&p.alg, p.signing_input.as_bytes(), &p.signature)?;
        finish(token, p, audience, now)
    }
    /// Parses the claims without checking the signature (for a token this process just
    /// received from its own Workload API); the same structural checks otherwise, at
    /// the current time. An empty `audience` skips the audience match (the token must
    /// still carry an `aud`).
    pub fn parse_insecure(token: &str, audience: &[&str]) -> Result<Self, JwtError> {
        let p = parse(token)?;
        finish(token, p, audience, SystemTime::now())
    }
    /// Sets the Workload API hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }
    /// The compact token.
    pub fn token(&self) -> &str {
        &self.token
    }
    /// The subject.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.id
    }
    /// The `aud` claim.
    pub fn audience(&self) -> &[String] {
        &self.audience
    }
    /// The `exp` claim.
    pub fn expiry(&self) -> SystemTime {
        self.expiry
    }
    /// All claims.
    pub fn claims(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.claims
    }
    /// The Workload API hint ("" when none).
    pub fn hint(&self) -> &str {
        &self.hint
    }
}

/// Signs `claims` as a compact JWS with ES256 and the header `{alg: ES256, kid, typ:
/// JWT}` (C.25: no other header). `key` must be a P-256 key created for
/// `ECDSA_P256_SHA256_FIXED_SIGNING` (JWS wants the fixed `r || s` form, not ASN.1).
pub fn sign_es256(
    key: &EcdsaKeyPair,
    kid: &str,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, JwtError> {
    if key.algorithm() != &signature::ECDSA_P256_SHA256_FIXED_SIGNING {
        return Err(JwtError::Signing(
            "the key must be loaded for ECDSA_P256_SHA256_FIXED_SIGNING".into(),
        ));
    }
    if kid.is_empty() {
        return Err(JwtError::MissingKid);
    }
    let header = serde_json::json!({"alg": "ES256", "kid": kid, "typ": "JWT"});
    let encode = |v: &Value| {
        serde_json::to_vec(v)
            .map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
            .map_err(|e| JwtError::Signing(e.to_string()))
    };
    let signing_input = format!(
        "{}.{}",
        encode(&header)?,
        encode(&Value::Object(claims.clone()))?
    );
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let sig = key
        .sign(&rng, signing_input.as_bytes())
        .map_err(|_| JwtError::Signing("ECDSA signing failed".into()))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(sig.as_ref())
    ))
}
