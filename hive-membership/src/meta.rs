//! Node metadata advertised through gossip, and its compact text encoding.
//!
//! The encoding is one short ASCII line, for example
//! `hive1;rpc=127.0.0.1:7001;vn=100;rf=2;pv=1;lv=0`: a format tag, then
//! `key=value` pairs. Unknown keys are ignored so later versions can add fields;
//! a missing or unparsable known key is a typed [`MetaError`]. memberlist panics on
//! metadata longer than [`MAX_META_SIZE`], so the length is checked here, before
//! anything reaches memberlist.

use std::net::SocketAddr;
use std::str::FromStr;

use thiserror::Error;

/// Longest metadata memberlist carries, in bytes (its `Meta::MAX_SIZE`).
pub const MAX_META_SIZE: usize = 512;

/// First token of every encoded metadata line; changes if the encoding does.
const FORMAT_TAG: &str = "hive1";

/// Longest piece of a peer's metadata quoted back in an error message.
const QUOTE_LIMIT: usize = 64;

/// What a member advertises about itself to the rest of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeMeta {
    /// Address of the node's peer gRPC server, as other nodes should dial it.
    /// Advertised here so the RPC port never has to be configured by hand.
    pub rpc_addr: SocketAddr,
    /// Ring weight: the number of virtual nodes this member places on the ring.
    pub vnodes: u32,
    /// Copies of each key the cluster keeps. Every member must agree on it, so a
    /// node advertising another value is refused at join.
    pub replication_factor: u32,
    /// Version of the peer protocol. Every member must agree on it, so a node
    /// advertising another value is refused at join.
    pub protocol_version: u32,
    /// A number new at every start of the node (a boot nonce). A member that
    /// comes back with the same id but another incarnation restarted — perhaps
    /// before anyone noticed it had gone — and holds nothing its earlier
    /// incarnation held: peers report it [`MembershipEvent::Restarted`].
    /// 0 for a node of a release that did not advertise one.
    ///
    /// [`MembershipEvent::Restarted`]: crate::MembershipEvent::Restarted
    pub incarnation: u64,
    /// The largest key, value and entry (bytes) the node stores. A key moves
    /// between nodes whole, so every member must take what any other holds:
    /// a node advertising other limits is refused at join. All 0 for a node
    /// of a release that did not advertise them (not checked).
    pub size_limits: SizeLimits,
}

/// The size limits a node stores under ([`NodeMeta::size_limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SizeLimits {
    /// Longest key, in bytes.
    pub key: u64,
    /// Longest value or element, in bytes.
    pub value: u64,
    /// Most bytes one key may hold.
    pub entry: u64,
}

impl std::fmt::Display for SizeLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.key, self.value, self.entry)
    }
}

impl FromStr for SizeLimits {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let mut parts = text
            .split('/')
            .map(|part| part.parse::<u64>().map_err(drop));
        let limits = SizeLimits {
            key: parts.next().ok_or(())??,
            value: parts.next().ok_or(())??,
            entry: parts.next().ok_or(())??,
        };
        match parts.next() {
            None => Ok(limits),
            Some(_) => Err(()),
        }
    }
}

/// Why metadata could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MetaError {
    /// The encoded metadata is longer than memberlist accepts. Nothing was sent.
    #[error("metadata is {len} bytes, memberlist accepts at most {max}")]
    TooLarge {
        /// Encoded length, in bytes.
        len: usize,
        /// The limit, [`MAX_META_SIZE`].
        max: usize,
    },
    /// The bytes are not Hive metadata (empty, not UTF-8, or another format tag):
    /// typically a node that is not Hive, or a Hive release with another encoding.
    #[error("not Hive metadata (expected format `{FORMAT_TAG}`, got `{0}`)")]
    UnknownFormat(String),
    /// A required field is absent.
    #[error("metadata lacks the `{0}` field")]
    MissingField(&'static str),
    /// A field is present but does not parse.
    #[error("metadata field `{field}` has an invalid value `{value}`")]
    InvalidField {
        /// The field, by its [`NodeMeta`] name.
        field: &'static str,
        /// The offending text (shortened).
        value: String,
    },
}

/// The metadata as it travels: the public [`NodeMeta`] plus the internal
/// `leaving` flag a node sets just before a graceful leave, so peers can tell a
/// leave from a failure (memberlist reports both the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WireMeta {
    /// What the member advertises.
    pub(crate) meta: NodeMeta,
    /// Set once the member has started a graceful leave.
    pub(crate) leaving: bool,
}

impl WireMeta {
    /// Encodes the metadata, failing with [`MetaError::TooLarge`] above
    /// [`MAX_META_SIZE`].
    pub(crate) fn encode(&self) -> Result<Vec<u8>, MetaError> {
        let m = &self.meta;
        let text = format!(
            "{FORMAT_TAG};rpc={};vn={};rf={};pv={};in={};sz={};lv={}",
            m.rpc_addr,
            m.vnodes,
            m.replication_factor,
            m.protocol_version,
            m.incarnation,
            m.size_limits,
            u8::from(self.leaving)
        );
        bounded(text.into_bytes())
    }

    /// Decodes metadata received from a peer.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, MetaError> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| MetaError::UnknownFormat(quote(bytes)))?;
        let mut parts = text.split(';');
        let tag = parts.next().unwrap_or_default();
        if tag != FORMAT_TAG {
            return Err(MetaError::UnknownFormat(quote(tag.as_bytes())));
        }
        let (mut rpc, mut vnodes, mut rf, mut pv, mut leaving) = (None, None, None, None, None);
        let mut incarnation = None;
        let mut size_limits = None;
        for part in parts {
            let Some((key, value)) = part.split_once('=') else {
                return Err(MetaError::InvalidField {
                    field: "entry",
                    value: quote(part.as_bytes()),
                });
            };
            match key {
                "rpc" => rpc = Some(parse::<SocketAddr>("rpc_addr", value)?),
                "vn" => vnodes = Some(parse::<u32>("vnodes", value)?),
                "rf" => rf = Some(parse::<u32>("replication_factor", value)?),
                "pv" => pv = Some(parse::<u32>("protocol_version", value)?),
                "in" => incarnation = Some(parse::<u64>("incarnation", value)?),
                "sz" => size_limits = Some(parse::<SizeLimits>("size_limits", value)?),
                "lv" => leaving = Some(parse::<u8>("leaving", value)? != 0),
                _ => {} // a field from a later version: ignored on purpose
            }
        }
        Ok(Self {
            meta: NodeMeta {
                rpc_addr: rpc.ok_or(MetaError::MissingField("rpc_addr"))?,
                vnodes: vnodes.ok_or(MetaError::MissingField("vnodes"))?,
                replication_factor: rf.ok_or(MetaError::MissingField("replication_factor"))?,
                protocol_version: pv.ok_or(MetaError::MissingField("protocol_version"))?,
                incarnation: incarnation.unwrap_or(0),
                size_limits: size_limits.unwrap_or_default(),
            },
            leaving: leaving.unwrap_or(false),
        })
    }
}

/// Returns `bytes` if memberlist can carry them, [`MetaError::TooLarge`] otherwise.
pub(crate) fn bounded(bytes: Vec<u8>) -> Result<Vec<u8>, MetaError> {
    if bytes.len() > MAX_META_SIZE {
        return Err(MetaError::TooLarge {
            len: bytes.len(),
            max: MAX_META_SIZE,
        });
    }
    Ok(bytes)
}

fn parse<T: FromStr>(field: &'static str, value: &str) -> Result<T, MetaError> {
    value.parse().map_err(|_| MetaError::InvalidField {
        field,
        value: quote(value.as_bytes()),
    })
}

/// A short, printable rendering of untrusted bytes for error messages.
fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(QUOTE_LIMIT)]);
    let mut quoted: String = text.chars().flat_map(char::escape_default).collect();
    if bytes.len() > QUOTE_LIMIT {
        quoted.push('…');
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(leaving: bool) -> WireMeta {
        WireMeta {
            meta: NodeMeta {
                rpc_addr: "127.0.0.1:7001".parse().unwrap(),
                vnodes: 100,
                replication_factor: 2,
                protocol_version: 1,
                incarnation: 0x1234_5678_9abc_def0,
                size_limits: SizeLimits {
                    key: 1024,
                    value: 64 << 20,
                    entry: 64 << 20,
                },
            },
            leaving,
        }
    }

    #[test]
    fn round_trips_and_stays_compact() {
        for leaving in [false, true] {
            let wire = sample(leaving);
            let bytes = wire.encode().unwrap();
            assert!(bytes.len() < 96, "{} bytes", bytes.len());
            assert_eq!(WireMeta::decode(&bytes).unwrap(), wire);
        }
    }

    #[test]
    fn round_trips_the_longest_fields() {
        let wire = WireMeta {
            meta: NodeMeta {
                rpc_addr: "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535"
                    .parse()
                    .unwrap(),
                vnodes: u32::MAX,
                replication_factor: u32::MAX,
                protocol_version: u32::MAX,
                incarnation: u64::MAX,
                size_limits: SizeLimits {
                    key: u64::MAX,
                    value: u64::MAX,
                    entry: u64::MAX,
                },
            },
            leaving: true,
        };
        let bytes = wire.encode().unwrap();
        assert!(bytes.len() <= MAX_META_SIZE);
        assert_eq!(WireMeta::decode(&bytes).unwrap(), wire);
    }

    #[test]
    fn the_limit_is_memberlists() {
        assert_eq!(MAX_META_SIZE, memberlist::META_MAX_SIZE);
        assert_eq!(MAX_META_SIZE, memberlist::proto::Meta::MAX_SIZE);
    }

    #[test]
    fn metadata_over_the_limit_is_a_typed_error() {
        assert_eq!(
            bounded(vec![b'x'; MAX_META_SIZE]).unwrap().len(),
            MAX_META_SIZE
        );
        assert_eq!(
            bounded(vec![b'x'; MAX_META_SIZE + 1]),
            Err(MetaError::TooLarge {
                len: MAX_META_SIZE + 1,
                max: MAX_META_SIZE
            })
        );
    }

    #[test]
    fn unknown_fields_are_ignored_and_leaving_defaults_to_false() {
        let wire = WireMeta::decode(b"hive1;rpc=10.0.0.1:80;vn=5;future=yes;rf=3;pv=7").unwrap();
        assert_eq!(wire.meta.rpc_addr, "10.0.0.1:80".parse().unwrap());
        assert_eq!((wire.meta.vnodes, wire.meta.replication_factor), (5, 3));
        assert_eq!(wire.meta.protocol_version, 7);
        assert_eq!(
            wire.meta.incarnation, 0,
            "a node that did not advertise one"
        );
        assert_eq!(wire.meta.size_limits, SizeLimits::default());
        assert!(matches!(
            WireMeta::decode(b"hive1;rpc=10.0.0.1:80;vn=5;rf=3;pv=7;sz=1/2"),
            Err(MetaError::InvalidField {
                field: "size_limits",
                ..
            })
        ));
        assert!(!wire.leaving);
    }

    #[test]
    fn decode_errors_are_typed() {
        assert!(matches!(
            WireMeta::decode(b""),
            Err(MetaError::UnknownFormat(_))
        ));
        assert!(matches!(
            WireMeta::decode(b"consul;rpc=1"),
            Err(MetaError::UnknownFormat(_))
        ));
        assert!(matches!(
            WireMeta::decode(&[0xff, 0xfe]),
            Err(MetaError::UnknownFormat(_))
        ));
        assert_eq!(
            WireMeta::decode(b"hive1;rpc=10.0.0.1:80;vn=5;rf=3"),
            Err(MetaError::MissingField("protocol_version"))
        );
        assert_eq!(
            WireMeta::decode(b"hive1;rpc=nowhere;vn=5;rf=3;pv=1"),
            Err(MetaError::InvalidField {
                field: "rpc_addr",
                value: "nowhere".into()
            })
        );
        assert!(matches!(
            WireMeta::decode(b"hive1;garbage"),
            Err(MetaError::InvalidField { field: "entry", .. })
        ));
    }

    #[test]
    fn quotes_are_short_and_printable() {
        let long = vec![b'\n'; 1000];
        let quoted = quote(&long);
        assert!(quoted.starts_with("\\n\\n"));
        assert!(quoted.ends_with('…'));
        assert!(quoted.len() < 200);
    }
}
