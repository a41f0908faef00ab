//! The config file as written: serde structs that refuse unknown keys and keep the
//! line of every value, validated afterwards into the public types of `config`.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A string value with its place in the file.
pub(crate) type Text = Spanned<String>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub workload_api: Option<Spanned<RawWorkloadApi>>,
    pub identity_files: Option<Spanned<RawIdentityFiles>>,
    #[serde(default)]
    pub admin: RawAdmin,
    pub policy_file: Option<Text>,
    pub limits: Option<RawLimits>,
    #[serde(default)]
    pub inbound: Vec<Spanned<RawInbound>>,
    #[serde(default)]
    pub outbound: Vec<Spanned<RawOutbound>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkloadApi {
    pub socket: Option<Text>,
    pub startup_timeout: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentityFiles {
    pub cert: Text,
    pub key: Text,
    pub bundle: Text,
}

/// `admin:` absent (default listener), `off`/null (disabled) or a mapping.
#[derive(Debug, Default)]
pub(crate) enum RawAdmin {
    #[default]
    Absent,
    Off,
    Listen(RawAdminListen),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdminListen {
    pub listen: Text,
    #[serde(default)]
    pub unsafe_listen: bool,
}

impl<'de> Deserialize<'de> for RawAdmin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AdminVisitor;
        impl<'de> Visitor<'de> for AdminVisitor {
            type Value = RawAdmin;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`off` or a mapping with `listen`")
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawAdmin, E> {
                Ok(RawAdmin::Off)
            }
            fn visit_none<E: de::Error>(self) -> Result<RawAdmin, E> {
                Ok(RawAdmin::Off)
            }
            fn visit_bool<E: de::Error>(self, on: bool) -> Result<RawAdmin, E> {
                if on {
                    Err(E::custom(
                        "`admin: true` is not a listener; write `admin: { listen: 127.0.0.1:15000 }`",
                    ))
                } else {
                    Ok(RawAdmin::Off)
                }
            }
            fn visit_str<E: de::Error>(self, word: &str) -> Result<RawAdmin, E> {
                if word == "off" {
                    Ok(RawAdmin::Off)
                } else {
                    Err(E::custom(format!(
                        "admin: {word:?} is neither `off` nor a mapping with `listen`"
                    )))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawAdmin, A::Error> {
                RawAdminListen::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawAdmin::Listen)
            }
        }
        deserializer.deserialize_any(AdminVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub handshake_timeout: Option<Text>,
    pub connect_timeout: Option<Text>,
    pub idle_timeout: Option<Text>,
    pub drain_timeout: Option<Text>,
    pub max_connections: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInbound {
    pub name: Text,
    pub listen: Text,
    pub target: Text,
    pub protocol: Option<Text>,
    pub identity_headers: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    pub unsafe_target: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutbound {
    pub name: Text,
    pub listen: Text,
    #[serde(default)]
    pub unsafe_listen: bool,
    pub upstream: Option<Text>,
    pub expect: Option<Spanned<Vec<Text>>>,
    pub http_proxy: Option<Spanned<RawHttpProxy>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpProxy {
    pub routes: Vec<Spanned<RawRoute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub host: Text,
    pub upstream: Option<Text>,
    pub expect: Spanned<Vec<Text>>,
}
