//! Typed identifiers: a digest, a tenant id, a component name and a key id are different things,
//! so they are different types. Each is parsed (validated) once, at the edge; everything after
//! holds the type, and `set_name(tenant, name, digest)` cannot be called with its arguments
//! swapped. They are `Arc<str>` inside, so cloning one on the hot path costs a reference count.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;
use std::fmt;
use std::sync::Arc;

/// Longest tenant id, component name or key name, in characters.
pub const MAX_NAME_LEN: usize = 64;

/// A text that is not a valid identifier of its kind; the message states the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(pub String);

/// 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
fn is_valid_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_NAME_LEN
        && text.as_bytes()[0].is_ascii_alphanumeric()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn name_rule(what: &str) -> InvalidId {
    InvalidId(format!(
        "{what} is 1 to {MAX_NAME_LEN} characters of a-z, 0-9, '.', '_' and '-', starting with a \
         letter or digit"
    ))
}

/// A name's rule as a regular expression (what `valid_name` checks), for the API's schema.
const NAME_PATTERN: &str = r"^[a-z0-9][a-z0-9._-]{0,63}$";

/// A typed id: its text behind an `Arc`, parsed by `$name::parse`, serialized as its text and
/// described in the API's schema with `$pattern` (the rule `parse` enforces).
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $pattern:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::parse(&text).map_err(serde::de::Error::custom)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(stringify!($name)))
                    .pattern(Some($pattern))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(text: &str) -> Result<Self, InvalidId> {
                $name::parse(text)
            }
        }
    };
}

string_id!(
    /// A component's content address: `sha256:` and 64 lowercase hex characters.
    Digest,
    r"^sha256:[0-9a-fA-F]{64}$"
);
string_id!(
    /// A tenant: a customer of the product (1–64 of `a-z 0-9 . _ -`).
    TenantId,
    NAME_PATTERN
);
string_id!(
    /// A tenant's name for one of its components (1–64 of `a-z 0-9 . _ -`).
    ComponentName,
    NAME_PATTERN
);
string_id!(
    /// One call's record: a UUIDv7 (time-ordered, so ids sort by start time), lowercase and
    /// hyphenated.
    RunId,
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
);
string_id!(
    /// A tenant's name for one of its pipelines (1–64 of `a-z 0-9 . _ -`).
    PipelineName,
    NAME_PATTERN
);
string_id!(
    /// The id of a node within one pipeline (1–64 of `a-z 0-9 . _ -`).
    NodeId,
    NAME_PATTERN
);
string_id!(
    /// The public part of an API key (`wdn_<id>_<secret>`): 16 lowercase hex characters.
    KeyId,
    r"^[0-9a-f]{16}$"
);

impl Digest {
    /// Parses `sha256:<64 hex>` (either case; kept lowercase).
    ///
    /// # Errors
    /// [`InvalidId`] for anything else.
    pub fn parse(text: &str) -> Result<Digest, InvalidId> {
        match text.strip_prefix("sha256:") {
            Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(
                Digest(Arc::from(format!("sha256:{}", hex.to_ascii_lowercase()))),
            ),
            _ => Err(InvalidId(
                "a digest is `sha256:` followed by 64 hex characters".into(),
            )),
        }
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest(Arc::from(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(bytes))
        )))
    }

    /// The 64 hex characters, without the `sha256:` prefix (file names).
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl TenantId {
    /// The tenant of open mode (no admin token: one tenant, no keys).
    pub fn default_tenant() -> TenantId {
        TenantId(Arc::from(DEFAULT_TENANT))
    }

    /// Parses a tenant id.
    ///
    /// # Errors
    /// [`InvalidId`] stating the rule.
    pub fn parse(text: &str) -> Result<TenantId, InvalidId> {
        match is_valid_name(text) {
            true => Ok(TenantId(Arc::from(text))),
            false => Err(name_rule("a tenant id")),
        }
    }
}

/// The id of open mode's only tenant, which also owns data stored before tenants existed.
pub const DEFAULT_TENANT: &str = "default";

impl ComponentName {
    /// Parses a component name.
    ///
    /// # Errors
    /// [`InvalidId`] stating the rule.
    pub fn parse(text: &str) -> Result<ComponentName, InvalidId> {
        match is_valid_name(text) {
            true => Ok(ComponentName(Arc::from(text))),
            false => Err(name_rule("a name")),
        }
    }
}

impl PipelineName {
    /// Parses a pipeline name.
    ///
    /// # Errors
    /// [`InvalidId`] stating the rule.
    pub fn parse(text: &str) -> Result<PipelineName, InvalidId> {
        match is_valid_name(text) {
            true => Ok(PipelineName(Arc::from(text))),
            false => Err(name_rule("a pipeline name")),
        }
    }
}

impl NodeId {
    /// Parses a node id.
    ///
    /// # Errors
    /// [`InvalidId`] stating the rule.
    pub fn parse(text: &str) -> Result<NodeId, InvalidId> {
        match is_valid_name(text) {
            true => Ok(NodeId(Arc::from(text))),
            false => Err(name_rule("a node id")),
        }
    }
}

/// Hex characters in a key id.
pub const KEY_ID_LEN: usize = 16;

impl KeyId {
    /// Parses a key id (16 lowercase hex characters).
    ///
    /// # Errors
    /// [`InvalidId`] for anything else.
    pub fn parse(text: &str) -> Result<KeyId, InvalidId> {
        let valid = text.len() == KEY_ID_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        match valid {
            true => Ok(KeyId(Arc::from(text))),
            false => Err(InvalidId(format!(
                "a key id is {KEY_ID_LEN} lowercase hex characters"
            ))),
        }
    }
}

impl RunId {
    /// A new id, ordered after every id this process made before it.
    pub fn new() -> RunId {
        RunId(Arc::from(uuid::Uuid::now_v7().hyphenated().to_string()))
    }

    /// A new id for a call started at `unix_ms` (tests and imports; calls use [`RunId::new`]).
    pub fn at(unix_ms: u64) -> RunId {
        let timestamp = uuid::Timestamp::from_unix(
            uuid::NoContext,
            unix_ms / 1000,
            u32::try_from(unix_ms % 1000).unwrap_or(0) * 1_000_000,
        );
        RunId(Arc::from(
            uuid::Uuid::new_v7(timestamp).hyphenated().to_string(),
        ))
    }

    /// The smallest id of a call started at `unix_ms` or later: ids are UUIDv7, whose first 48
    /// bits are the start in Unix milliseconds, so a time bound is an id bound.
    pub fn lower_bound(unix_ms: i64) -> String {
        let ms = u64::try_from(unix_ms).unwrap_or(0) & 0xffff_ffff_ffff;
        format!(
            "{:08x}-{:04x}-0000-0000-000000000000",
            ms >> 16,
            ms & 0xffff
        )
    }

    /// Parses a hyphenated UUID (either case; kept lowercase).
    ///
    /// # Errors
    /// [`InvalidId`] for anything else.
    pub fn parse(text: &str) -> Result<RunId, InvalidId> {
        let shape_ok = text.len() == 36
            && text.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_hexdigit(),
            });
        match shape_ok {
            true => Ok(RunId(Arc::from(text.to_ascii_lowercase()))),
            false => Err(InvalidId(
                "a run id is a hyphenated UUID (8-4-4-4-12 hex characters)".into(),
            )),
        }
    }
}

impl Default for RunId {
    fn default() -> Self {
        RunId::new()
    }
}

/// A reference to a stored component: by content or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ComponentRef {
    /// By content.
    Digest(Digest),
    /// By the tenant's name for it.
    Name(ComponentName),
}

impl ComponentRef {
    /// Parses `sha256:<64 hex>` or a name.
    ///
    /// # Errors
    /// [`InvalidId`] when it is neither.
    pub fn parse(text: &str) -> Result<ComponentRef, InvalidId> {
        if text.starts_with("sha256:") {
            Digest::parse(text).map(ComponentRef::Digest)
        } else {
            ComponentName::parse(text).map(ComponentRef::Name)
        }
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ComponentRef {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("ComponentRef"))
            .pattern(Some(
                r"^(sha256:[0-9a-fA-F]{64}|[a-z0-9][a-z0-9._-]{0,63})$",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ComponentRef {}

impl<'de> Deserialize<'de> for ComponentRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ComponentRef::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ComponentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComponentRef::Digest(digest) => digest.fmt(f),
            ComponentRef::Name(name) => name.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        let hex = "a".repeat(64);
        assert_eq!(
            ComponentRef::parse(&format!("sha256:{}", hex.to_uppercase())).ok(),
            Digest::parse(&format!("sha256:{hex}"))
                .ok()
                .map(ComponentRef::Digest)
        );
        assert!(ComponentRef::parse("sha256:abc").is_err());
        assert!(ComponentRef::parse("checkout-rule.v2").is_ok());
        for bad in ["", "-x", "Upper", "a/b", "a b", &"x".repeat(65)] {
            assert!(ComponentRef::parse(bad).is_err(), "{bad:?}");
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn digest_of_bytes_is_parseable() {
        let digest = Digest::of(b"hello");
        assert_eq!(Digest::parse(digest.as_str()).ok(), Some(digest.clone()));
        assert_eq!(digest.hex().len(), 64);
    }

    #[test]
    fn run_ids_are_time_ordered_uuids() {
        let (first, second) = (RunId::new(), RunId::new());
        assert!(first < second, "{first} then {second}");
        assert_eq!(RunId::parse(first.as_str()).ok(), Some(first.clone()));
        assert_eq!(
            RunId::parse(&first.as_str().to_uppercase()).ok(),
            Some(first)
        );
        for bad in [
            "",
            "0123",
            &"a".repeat(36),
            "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5\n",
        ] {
            assert!(RunId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_ids_are_hex() {
        assert!(KeyId::parse("0123456789abcdef").is_ok());
        for bad in ["0123456789ABCDEF", "0123", "0123456789abcdeg"] {
            assert!(KeyId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
