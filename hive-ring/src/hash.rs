//! Ring positions of keys and virtual nodes, derived with BLAKE3.

/// Returns the ring position of `key`: the first 8 bytes of `blake3(key)`,
/// read as a little-endian `u64`.
///
/// A key is owned by the first virtual node at or after this position
/// (wrapping around past `u64::MAX`).
#[must_use]
pub fn position(key: &[u8]) -> u64 {
    first_u64(blake3::hash(key))
}

/// Returns the ring position of virtual node `index` of the node whose id is `id`.
///
/// The hashed input is `len(id) as u64 (LE) ++ id ++ index as u32 (LE)`. The
/// length prefix makes the encoding unambiguous: without it, id `"a"` with an
/// index whose first byte is `b'1'` and id `"a1"` would hash identical bytes
/// and always collide. With it, different `(id, index)` pairs always hash
/// different inputs.
pub(crate) fn vnode_position(id: &[u8], index: u32) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(id.len() as u64).to_le_bytes());
    hasher.update(id);
    hasher.update(&index.to_le_bytes());
    first_u64(hasher.finalize())
}

/// Returns the first 8 bytes of `hash` as a little-endian `u64`.
fn first_u64(hash: blake3::Hash) -> u64 {
    let [b0, b1, b2, b3, b4, b5, b6, b7, ..] = *hash.as_bytes();
    u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_position_is_first_eight_bytes_le_of_blake3() {
        let hash = blake3::hash(b"user:42");
        let expected = u64::from_le_bytes(hash.as_bytes()[..8].try_into().unwrap());
        assert_eq!(position(b"user:42"), expected);
    }

    #[test]
    fn vnode_encoding_is_length_prefixed() {
        let mut input = Vec::new();
        input.extend_from_slice(&6u64.to_le_bytes());
        input.extend_from_slice(b"node-a");
        input.extend_from_slice(&7u32.to_le_bytes());
        assert_eq!(vnode_position(b"node-a", 7), position(&input));
    }

    #[test]
    fn ids_sharing_a_prefix_do_not_collide() {
        // "a" + index 0x31 ('1' as first LE byte) vs "a1" + index 0: the raw
        // concatenations would start the same; the length prefix separates them.
        assert_ne!(vnode_position(b"a", 0x31), vnode_position(b"a1", 0));
        assert_ne!(vnode_position(b"a", 0), vnode_position(b"", 0));
    }
}
