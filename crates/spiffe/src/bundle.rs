//! Trust bundles: X.509 bundles, JWT bundles, SPIFFE bundle documents, and sets of them
//! keyed by trust domain (CHECKLIST B.21-23, F.55-60). Bundles of different trust
//! domains are never merged: a verifier asks the set for the bundle of the peer's domain.

use std::collections::BTreeMap;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use crate::x509::{certs_to_pem, pem_certificates, split_der_certs};
use crate::{JwtAuthority, JwtError, TrustDomain};

use base64::Engine as _;
use serde_json::{Map, Value};

/// Why a bundle document or certificate set is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The X.509 authorities cannot be read.
    #[error("cannot read the X.509 authorities of trust domain {trust_domain}: {reason}")]
    Certificates {
        /// The bundle's trust domain.
        trust_domain: String,
        /// What is wrong.
        reason: String,
    },
    /// The document is not JSON of the expected shape.
    #[error("cannot parse the bundle document of trust domain {trust_domain}: {reason}")]
    Json {
        /// The bundle's trust domain.
        trust_domain: String,
        /// What is wrong.
        reason: String,
    },
    /// The document has no `keys` member (F.58).
    #[error("the bundle document of trust domain {trust_domain} has no `keys` member")]
    MissingKeys {
        /// The bundle's trust domain.
        trust_domain: String,
    },
    /// A bundle map is malformed (F.60).
    #[error("invalid SPIFFE bundle map: {reason}")]
    Map {
        /// What is wrong.
        reason: String,
    },
    /// One entry of `keys` is unusable.
    #[error(
        "key {index} of the bundle document of trust domain {trust_domain} is invalid: {reason}"
    )]
    Key {
        /// The bundle's trust domain.
        trust_domain: String,
        /// Position in `keys`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The X.509 authorities (CA certificates) of one trust domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Bundle {
    trust_domain: TrustDomain,
    authorities: Vec<CertificateDer<'static>>,
}

impl X509Bundle {
    /// A bundle from already parsed certificates (duplicates removed).
    pub fn new(trust_domain: TrustDomain, authorities: Vec<CertificateDer<'static>>) -> Self {
        let mut unique: Vec<CertificateDer<'static>> = Vec::with_capacity(authorities.len());
        for ca in authorities {
            if !unique.contains(&ca) {
                unique.push(ca);
            }
        }
        Self {
            trust_domain,
            authorities: unique,
        }
    }
    /// Parses concatenated DER certificates (Workload API encoding).
    pub fn parse_der(trust_domain: TrustDomain, der: &[u8]) -> Result<Self, BundleError> {
        let certs = split_der_certs(der).map_err(|e| BundleError::Certificates {
            trust_domain: trust_domain.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self::new(trust_domain, certs))
    }
    /// Parses PEM CERTIFICATE blocks; an empty or certificate-less file is an error.
    ///
    /// Unlike go-spiffe (which returns an empty bundle), an empty file is an error: a
    /// trust domain with no authority cannot authenticate anyone (F.58), and an empty
    /// file is far more often a mistake (wrong path, truncated write) than intended.
    pub fn parse_pem(trust_domain: TrustDomain, pem: &[u8]) -> Result<Self, BundleError> {
        let bad = |reason: String| BundleError::Certificates {
            trust_domain: trust_domain.to_string(),
            reason,
        };
        let certs = pem_certificates(pem).map_err(bad)?;
        if certs.is_empty() {
            return Err(bad("no CERTIFICATE block found".into()));
        }
        for (index, cert) in certs.iter().enumerate() {
            split_der_certs(cert.as_ref())
                .map_err(|e| bad(format!("CERTIFICATE block {index}: {e}")))?;
        }
        Ok(Self::new(trust_domain, certs))
    }
    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }
    /// The CA certificates.
    pub fn authorities(&self) -> &[CertificateDer<'static>] {
        &self.authorities
    }
    /// Concatenated DER (Workload API encoding).
    pub fn to_der(&self) -> Vec<u8> {
        self.authorities
            .iter()
            .flat_map(|c| c.as_ref().iter().copied())
            .collect()
    }
    /// PEM text, one CERTIFICATE block per authority.
    pub fn to_pem(&self) -> String {
        certs_to_pem(&self.authorities)
    }
}

/// X.509 bundles keyed by trust domain, never merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleSet {
    bundles: BTreeMap<TrustDomain, X509Bundle>,
}

impl BundleSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds or replaces the bundle of its trust domain.
    pub fn insert(&mut self, bundle: X509Bundle) {
        self.bundles.insert(bundle.trust_domain().clone(), bundle);
    }
    /// The bundle of a trust domain, if any.
    pub fn get(&self, td: &TrustDomain) -> Option<&X509Bundle> {
        self.bundles.get(td)
    }
    /// Removes a trust domain's bundle.
    pub fn remove(&mut self, td: &TrustDomain) -> Option<X509Bundle> {
        self.bundles.remove(td)
    }
    /// All bundles, ordered by trust domain.
    pub fn iter(&self) -> impl Iterator<Item = &X509Bundle> {
        self.bundles.values()
    }
    /// Number of trust domains.
    pub fn len(&self) -> usize {
        self.bundles.len()
    }
    /// True when there are no bundles.
    pub fn is_empty(&self) -> bool {
        self.bundles.is_empty()
    }
}

/// The JWT authorities (public keys by key ID) of one trust domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtBundle {
    trust_domain: TrustDomain,
    authorities: BTreeMap<String, JwtAuthority>,
}

impl JwtBundle {
    /// An empty bundle.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            authorities: BTreeMap::new(),
        }
    }
    /// Parses a JWKS document (RFC 7517), as `FetchJWTBundles` returns: every key needs a
    /// `kid`; keys of unknown `kty` are ignored, and so are keys whose `use` is present
    /// and not `jwt-svid` (C.31: only JWT-SVID keys are extracted).
    pub fn parse_jwks(trust_domain: TrustDomain, json: &[u8]) -> Result<Self, BundleError> {
        let doc = JsonDoc::parse(&trust_domain, json)?;
        let mut bundle = Self::new(trust_domain.clone());
        for (index, key) in doc.keys()?.iter().enumerate() {
            let obj = doc.key_object(index, key)?;
            match obj.get("use").and_then(Value::as_str) {
                None | Some(USE_JWT_SVID) => {}
                Some(_) => continue,
            }
            if let Some(authority) = doc.jwt_authority(index, key)? {
                bundle.insert(authority);
            }
        }
        Ok(bundle)
    }
    /// Serialises as a JWKS document with `use: jwt-svid` on each key.
    pub fn to_jwks(&self) -> Vec<u8> {
        let keys: Vec<Value> = self.authorities().map(|a| a.to_jwk(true)).collect();
        serde_json::json!({ "keys": keys }).to_string().into_bytes()
    }
    /// Adds or replaces an authority under its key ID.
    pub fn insert(&mut self, authority: JwtAuthority) {
        self.authorities
            .insert(authority.key_id().to_owned(), authority);
    }
    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }
    /// The authority with this key ID.
    pub fn get(&self, kid: &str) -> Option<&JwtAuthority> {
        self.authorities.get(kid)
    }
    /// All authorities.
    pub fn authorities(&self) -> impl Iterator<Item = &JwtAuthority> {
        self.authorities.values()
    }
}

/// JWT bundles keyed by trust domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwtBundleSet {
    bundles: BTreeMap<TrustDomain, JwtBundle>,
}

impl JwtBundleSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds or replaces the bundle of its trust domain.
    pub fn insert(&mut self, bundle: JwtBundle) {
        self.bundles.insert(bundle.trust_domain().clone(), bundle);
    }
    /// The bundle of a trust domain, if any.
    pub fn get(&self, td: &TrustDomain) -> Option<&JwtBundle> {
        self.bundles.get(td)
    }
    /// All bundles, ordered by trust domain.
    pub fn iter(&self) -> impl Iterator<Item = &JwtBundle> {
        self.bundles.values()
    }
}

/// A SPIFFE bundle document (SPIFFE_Trust_Domain_and_Bundle.md §4): a JWKS whose keys
/// carry `use: x509-svid` (one CA in `x5c`) or `use: jwt-svid` (with `kid`), plus
/// `spiffe_sequence` and `spiffe_refresh_hint`. Unknown `kty` or `use` are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiffeBundle {
    /// The X.509 authorities.
    pub x509: X509Bundle,
    /// The JWT authorities.
    pub jwt: JwtBundle,
    /// `spiffe_sequence`, when present.
    pub sequence: Option<u64>,
    /// `spiffe_refresh_hint`, when present.
    pub refresh_hint: Option<Duration>,
}

impl SpiffeBundle {
    /// Parses a SPIFFE bundle document for a trust domain.
    ///
    /// Per entry: `use: x509-svid` takes the first `x5c` certificate and ignores any
    /// other (B.23; go-spiffe errors instead), and an entry without `x5c` is ignored;
    /// `use: jwt-svid` needs a `kid`; entries with another or no `use`, or an unknown
    /// `kty`, are ignored (F.58, F.59). A document without `keys` is an error (F.58).
    pub fn parse(trust_domain: TrustDomain, json: &[u8]) -> Result<Self, BundleError> {
        let doc = JsonDoc::parse(&trust_domain, json)?;
        let sequence = match doc.root.get("spiffe_sequence") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                doc.json_error(format!(
                    "`spiffe_sequence` must be a non-negative integer, got {v}"
                ))
            })?),
        };
        let refresh_hint = match doc.root.get("spiffe_refresh_hint") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Duration::from_secs(v.as_u64().ok_or_else(|| {
                doc.json_error(format!(
                    "`spiffe_refresh_hint` must be a non-negative integer number of seconds, got {v}"
                ))
            })?)),
        };
        let mut x509 = Vec::new();
        let mut jwt = JwtBundle::new(trust_domain.clone());
        for (index, key) in doc.keys()?.iter().enumerate() {
            let obj = doc.key_object(index, key)?;
            match obj.get("use").and_then(Value::as_str) {
                Some(USE_X509_SVID) => {
                    if let Some(cert) = doc.x509_authority(index, obj)? {
                        x509.push(cert);
                    }
                }
                Some(USE_JWT_SVID) => {
                    if let Some(authority) = doc.jwt_authority(index, key)? {
                        jwt.insert(authority);
                    }
                }
                _ => {}
            }
        }
        Ok(Self {
            x509: X509Bundle::new(trust_domain, x509),
            jwt,
            sequence,
            refresh_hint,
        })
    }
    /// Serialises as a SPIFFE bundle document.
    pub fn to_json(&self) -> Vec<u8> {
        let mut keys: Vec<Value> = self.x509.authorities().iter().map(x509_entry).collect();
        keys.extend(self.jwt.authorities().map(|a| a.to_jwk(true)));
        let mut doc = Map::new();
        doc.insert("keys".into(), Value::Array(keys));
        if let Some(seq) = self.sequence {
            doc.insert("spiffe_sequence".into(), seq.into());
        }
        if let Some(hint) = self.refresh_hint {
            doc.insert("spiffe_refresh_hint".into(), hint.as_secs().into());
        }
        Value::Object(doc).to_string().into_bytes()
    }
}

/// A SPIFFE bundle map (F.60): `{"trust_domains": {"<trust domain>": <SPIFFE bundle
/// document>, ...}}`, as used to hand several trust domains' bundles over at once.
/// Keys may be a trust domain name or its SPIFFE ID (`spiffe://example.org`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpiffeBundleMap {
    /// The bundles, by trust domain; each keeps its own `spiffe_refresh_hint`.
    pub bundles: BTreeMap<TrustDomain, SpiffeBundle>,
}

impl SpiffeBundleMap {
    /// Parses a bundle map. `trust_domains` must be present, and a trust domain named
    /// twice (even spelled once as a name and once as an ID) is an error (F.60): the
    /// JSON "last key wins" rule would otherwise let a second entry silently replace
    /// a domain's authorities.
    pub fn parse(json: &[u8]) -> Result<Self, BundleError> {
        let map_error = |reason: String| BundleError::Map { reason };
        let doc: MapDocument =
            serde_json::from_slice(json).map_err(|e| map_error(e.to_string()))?;
        let entries = doc
            .trust_domains
            .ok_or_else(|| map_error("the `trust_domains` member is missing".into()))?;
        let mut bundles = BTreeMap::new();
        for (key, value) in entries.0 {
            let td = TrustDomain::new(&key)
                .map_err(|e| map_error(format!("the key {key:?} is not a trust domain: {e}")))?;
            let bundle = SpiffeBundle::parse(td.clone(), value.to_string().as_bytes())?;
            if bundles.insert(td.clone(), bundle).is_some() {
                return Err(map_error(format!(
                    "trust domain {td} appears more than once"
                )));
            }
        }
        Ok(Self { bundles })
    }
    /// Serialises as a bundle map keyed by trust domain name.
    pub fn to_json(&self) -> Vec<u8> {
        let mut domains = Map::new();
        for (td, bundle) in &self.bundles {
            let doc = serde_json::from_slice(&bundle.to_json()).unwrap_or(Value::Null);
            domains.insert(td.to_string(), doc);
        }
        serde_json::json!({ "trust_domains": domains })
            .to_string()
            .into_bytes()
    }
}

/// The top level of a bundle map; `trust_domains` is read as a list of entries so that
/// duplicate keys are seen instead of collapsed.
#[derive(serde::Deserialize)]
struct MapDocument {
    trust_domains: Option<Entries>,
}

struct Entries(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object mapping trust domains to SPIFFE bundles")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = a.next_entry::<String, Value>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

// === impl JSON reading ===

const USE_X509_SVID: &str = "x509-svid";
const USE_JWT_SVID: &str = "jwt-svid";

/// A parsed JWKS / SPIFFE bundle document and its trust domain, for error messages.
struct JsonDoc<'a> {
    trust_domain: &'a TrustDomain,
    root: Map<String, Value>,
}

impl<'a> JsonDoc<'a> {
    fn parse(trust_domain: &'a TrustDomain, json: &[u8]) -> Result<Self, BundleError> {
        let json_error = |reason: String| BundleError::Json {
            trust_domain: trust_domain.to_string(),
            reason,
        };
        match serde_json::from_slice::<Value>(json) {
            Ok(Value::Object(root)) => Ok(Self { trust_domain, root }),
            Ok(_) => Err(json_error("the document is not a JSON object".into())),
            Err(e) => Err(json_error(e.to_string())),
        }
    }

    fn json_error(&self, reason: String) -> BundleError {
        BundleError::Json {
            trust_domain: self.trust_domain.to_string(),
            reason,
        }
    }

    fn key_error(&self, index: usize, reason: impl Into<String>) -> BundleError {
        BundleError::Key {
            trust_domain: self.trust_domain.to_string(),
            index,
            reason: reason.into(),
        }
    }

    fn keys(&self) -> Result<&Vec<Value>, BundleError> {
        match self.root.get("keys") {
            None => Err(BundleError::MissingKeys {
                trust_domain: self.trust_domain.to_string(),
            }),
            Some(Value::Array(keys)) => Ok(keys),
            Some(other) => Err(self.json_error(format!("`keys` must be an array, got {other}"))),
        }
    }

    fn key_object<'v>(
        &self,
        index: usize,
        key: &'v Value,
    ) -> Result<&'v Map<String, Value>, BundleError> {
        key.as_object()
            .ok_or_else(|| self.key_error(index, "a JWK must be a JSON object"))
    }

    /// The JWT authority of a key; `None` for a key type or curve ward does not know.
    fn jwt_authority(
        &self,
        index: usize,
        key: &Value,
    ) -> Result<Option<JwtAuthority>, BundleError> {
        match JwtAuthority::from_jwk(key) {
            Ok(a) => Ok(Some(a)),
            Err(JwtError::UnsupportedKey(_)) => Ok(None),
            Err(e) => Err(self.key_error(index, e.to_string())),
        }
    }

    /// The CA certificate of an `x509-svid` entry; `None` when the entry is to be
    /// ignored (unknown `kty`, `x5c` absent or empty: B.23, F.59).
    fn x509_authority(
        &self,
        index: usize,
        obj: &Map<String, Value>,
    ) -> Result<Option<CertificateDer<'static>>, BundleError> {
        if !matches!(
            obj.get("kty").and_then(Value::as_str),
            Some("EC" | "RSA" | "OKP")
        ) {
            return Ok(None);
        }
        let first = match obj.get("x5c") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(certs)) => match certs.first() {
                None => return Ok(None),
                Some(first) => first,
            },
            Some(other) => {
                return Err(self.key_error(index, format!("`x5c` must be an array, got {other}")))
            }
        };
        let text = first
            .as_str()
            .ok_or_else(|| self.key_error(index, "`x5c` values must be base64 strings"))?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| self.key_error(index, format!("`x5c` is not base64: {e}")))?;
        let certs = split_der_certs(&der).map_err(|e| self.key_error(index, e.to_string()))?;
        match <[CertificateDer<'static>; 1]>::try_from(certs) {
            Ok([cert]) => Ok(Some(cert)),
            Err(certs) => Err(self.key_error(
                index,
                format!(
                    "an `x5c` value holds {} certificates; it must hold one",
                    certs.len()
                ),
            )),
        }
    }
}

/// The `x509-svid` JWK of a CA certificate: `use`, `kty` (and the key parameters when
/// the key is EC or RSA) and `x5c` with the one certificate (B.22; no `kid`).
fn x509_entry(cert: &CertificateDer<'_>) -> Value {
    use x509_parser::prelude::{FromDer, X509Certificate};
    use x509_parser::public_key::PublicKey;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let strip = |b: &[u8]| {
        let start = b
            .iter()
            .position(|x| *x != 0)
            .unwrap_or(b.len().saturating_sub(1));
        b[start..].to_vec()
    };
    let mut jwk = Map::new();
    jwk.insert("use".into(), USE_X509_SVID.into());
    let cert_parsed = X509Certificate::from_der(cert.as_ref()).ok();
    let parsed = cert_parsed
        .as_ref()
        .and_then(|(_, c)| c.public_key().parsed().ok());
    match parsed {
        Some(PublicKey::EC(point)) => {
            let data = point.data();
            let crv = match data.len() {
                65 => Some(("P-256", 32)),
                97 => Some(("P-384", 48)),
                133 => Some(("P-521", 66)),
                _ => None,
            };
            jwk.insert("kty".into(), "EC".into());
            if let (Some((crv, len)), Some(0x04)) = (crv, data.first()) {
                jwk.insert("crv".into(), crv.into());
                jwk.insert("x".into(), b64(&data[1..1 + len]).into());
                jwk.insert("y".into(), b64(&data[1 + len..]).into());
            }
        }
        Some(PublicKey::RSA(rsa)) => {
            jwk.insert("kty".into(), "RSA".into());
            jwk.insert("n".into(), b64(&strip(rsa.modulus)).into());
            jwk.insert("e".into(), b64(&strip(rsa.exponent)).into());
        }
        _ => {
            jwk.insert("kty".into(), "OKP".into());
        }
    }
    let x5c = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
    jwk.insert("x5c".into(), Value::Array(vec![x5c.into()]));
    Value::Object(jwk)
}
