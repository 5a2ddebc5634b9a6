//! The compatibility rule: what two nodes must agree on to share a cluster.
//!
//! Every member computes key owners from the same ring, so all must use the same
//! replication factor, and they must speak the same peer protocol. The rule is
//! symmetric, so both sides of a join refuse each other.

use std::fmt::Display;

use crate::error::MembershipError;
use crate::meta::{NodeMeta, SizeLimits, WireMeta};

/// How a peer's metadata differs from ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mismatch {
    /// `replication_factor`, `protocol_version` or `metadata`.
    pub(crate) field: &'static str,
    /// Our value.
    pub(crate) ours: String,
    /// The peer's value.
    pub(crate) theirs: String,
}

impl Mismatch {
    /// Returns the error naming `peer`.
    pub(crate) fn into_error(self, peer: String) -> MembershipError {
        MembershipError::Incompatible {
            field: self.field,
            ours: self.ours,
            theirs: self.theirs,
            peer,
        }
    }
}

/// Checks a peer's raw metadata against ours. Metadata that is not Hive's counts
/// as incompatible too: such a peer cannot be placed on the ring.
pub(crate) fn check(ours: &NodeMeta, theirs: &[u8]) -> Result<(), Mismatch> {
    let theirs = WireMeta::decode(theirs)
        .map_err(|e| mismatch("metadata", "Hive metadata", e))?
        .meta;
    if theirs.protocol_version != ours.protocol_version {
        return Err(mismatch(
            "protocol_version",
            ours.protocol_version,
            theirs.protocol_version,
        ));
    }
    if theirs.replication_factor != ours.replication_factor {
        return Err(mismatch(
            "replication_factor",
            ours.replication_factor,
            theirs.replication_factor,
        ));
    }
    // A key moves between nodes whole: each must take what another holds. A
    // node that did not advertise its limits (all 0) is not checked.
    let unknown = SizeLimits::default();
    if ours.size_limits != unknown
        && theirs.size_limits != unknown
        && theirs.size_limits != ours.size_limits
    {
        return Err(mismatch(
            "size_limits",
            ours.size_limits,
            theirs.size_limits,
        ));
    }
    Ok(())
}

fn mismatch(field: &'static str, ours: impl Display, theirs: impl Display) -> Mismatch {
    Mismatch {
        field,
        ours: ours.to_string(),
        theirs: theirs.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(replication_factor: u32, protocol_version: u32) -> NodeMeta {
        NodeMeta {
            rpc_addr: "127.0.0.1:7001".parse().unwrap(),
            vnodes: 100,
            replication_factor,
            protocol_version,
            incarnation: 0,
            size_limits: SizeLimits::default(),
        }
    }

    fn wire(meta: NodeMeta, leaving: bool) -> Vec<u8> {
        WireMeta { meta, leaving }.encode().unwrap()
    }

    #[test]
    fn same_rf_and_protocol_are_compatible_whatever_else_differs() {
        let mut other = meta(2, 1);
        other.vnodes = 7;
        other.rpc_addr = "10.1.1.1:9".parse().unwrap();
        assert_eq!(check(&meta(2, 1), &wire(other, true)), Ok(()));
    }

    #[test]
    fn replication_factor_must_match_both_ways() {
        let err = check(&meta(2, 1), &wire(meta(3, 1), false)).unwrap_err();
        assert_eq!(
            (err.field, err.ours.as_str(), err.theirs.as_str()),
            ("replication_factor", "2", "3")
        );
        let err = check(&meta(3, 1), &wire(meta(2, 1), false)).unwrap_err();
        assert_eq!((err.ours.as_str(), err.theirs.as_str()), ("3", "2"));
    }

    #[test]
    fn size_limits_must_match_unless_one_side_does_not_advertise_them() {
        let limits = |entry| SizeLimits {
            key: 1024,
            value: 1 << 20,
            entry,
        };
        let with = |entry| NodeMeta {
            size_limits: limits(entry),
            ..meta(2, 1)
        };
        assert_eq!(check(&with(64), &wire(with(64), false)), Ok(()));
        let err = check(&with(64), &wire(with(32), false)).unwrap_err();
        assert_eq!(
            (err.field, err.ours.as_str(), err.theirs.as_str()),
            ("size_limits", "1024/1048576/64", "1024/1048576/32")
        );
        assert_eq!(check(&with(64), &wire(meta(2, 1), false)), Ok(()));
        assert_eq!(check(&meta(2, 1), &wire(with(64), false)), Ok(()));
    }

    #[test]
    fn protocol_version_must_match() {
        let err = check(&meta(2, 1), &wire(meta(2, 2), false)).unwrap_err();
        assert_eq!(err.field, "protocol_version");
    }

    #[test]
    fn foreign_metadata_is_incompatible() {
        assert_eq!(check(&meta(2, 1), b"").unwrap_err().field, "metadata");
    }

    #[test]
    fn the_error_names_the_peer_and_both_values() {
        let err = check(&meta(2, 1), &wire(meta(3, 1), false))
            .unwrap_err()
            .into_error("c@127.0.0.1:9".into());
        let text = err.to_string();
        for part in ["c@127.0.0.1:9", "replication_factor", "2", "3"] {
            assert!(text.contains(part), "{text}");
        }
    }
}
