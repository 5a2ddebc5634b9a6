//! Vnode counts (weights) derived from node memory limits.

/// Bytes in one GiB.
const GIB: u128 = 1 << 30;

/// Virtual nodes per GiB of memory, and the count used when memory is unlimited.
const VNODES_PER_GIB: u32 = 100;

/// Returns the number of virtual nodes for a node with `mem_limit_bytes` of memory.
///
/// The weight is proportional to memory, so a node with twice the memory owns
/// about twice the keys:
///
/// - `0` means unlimited (or unknown) memory and returns the default, `100`;
/// - otherwise returns `round(mem_limit_bytes * 100 / 2^30)` — 100 virtual
///   nodes per GiB, rounding halves up — clamped to `[1, 10_000]`
///   ([`MAX_VNODES`](crate::MAX_VNODES)), so tiny nodes still own something
///   and huge ones stay cheap to place.
///
/// ```
/// use hive_ring::vnodes_for_mem_limit;
///
/// assert_eq!(vnodes_for_mem_limit(0), 100);
/// assert_eq!(vnodes_for_mem_limit(512 << 20), 50); // 512 MiB
/// assert_eq!(vnodes_for_mem_limit(2 << 30), 200); // 2 GiB
/// ```
#[must_use]
pub fn vnodes_for_mem_limit(mem_limit_bytes: u64) -> u32 {
    if mem_limit_bytes == 0 {
        return VNODES_PER_GIB;
    }
    // u128 cannot overflow: u64::MAX * 100 + 2^29 < 2^128.
    let scaled = u128::from(mem_limit_bytes) * u128::from(VNODES_PER_GIB);
    let rounded = (scaled + GIB / 2) / GIB;
    let clamped = rounded.clamp(1, u128::from(crate::MAX_VNODES));
    u32::try_from(clamped).unwrap_or(crate::MAX_VNODES)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB_BYTES: u64 = 1 << 30;

    #[test]
    fn zero_means_default_weight() {
        assert_eq!(vnodes_for_mem_limit(0), 100);
    }

    #[test]
    fn hundred_vnodes_per_gib() {
        assert_eq!(vnodes_for_mem_limit(GIB_BYTES), 100);
        assert_eq!(vnodes_for_mem_limit(2 * GIB_BYTES), 200);
        assert_eq!(vnodes_for_mem_limit(GIB_BYTES / 2), 50);
        assert_eq!(vnodes_for_mem_limit(64 * GIB_BYTES), 6_400);
    }

    #[test]
    fn rounds_to_nearest() {
        // 1.5 vnodes' worth is 1.5 * 2^30 / 100 = 16_106_127.36 bytes.
        assert_eq!(vnodes_for_mem_limit(16_106_128), 2);
        assert_eq!(vnodes_for_mem_limit(16_106_127), 1);
    }

    #[test]
    fn clamped_to_at_least_one() {
        assert_eq!(vnodes_for_mem_limit(1), 1);
        assert_eq!(vnodes_for_mem_limit(1 << 20), 1); // 1 MiB rounds to 0
    }

    #[test]
    fn clamped_to_at_most_ten_thousand() {
        assert_eq!(vnodes_for_mem_limit(100 * GIB_BYTES), 10_000);
        assert_eq!(vnodes_for_mem_limit(101 * GIB_BYTES), 10_000);
        assert_eq!(vnodes_for_mem_limit(u64::MAX), 10_000);
    }
}
