//! Values to bytes and back (MessagePack with field names, so records can grow
//! fields across versions), and Rust durations to store TTLs.

use std::cell::RefCell;
use std::time::Duration;

use bytes::Bytes;
use hive_store::MAX_TTL_MS;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Scratch buffers larger than this are not kept between encodes.
const SCRATCH_KEEP: usize = 64 * 1024;

thread_local! {
    /// Per-thread encode buffer: MessagePack is written here, then copied into
    /// one exact-size allocation, instead of growing a fresh `Vec` through
    /// several reallocations for every value.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Encodes `value` as MessagePack into an exact-size buffer.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes> {
    let write = |buf: &mut Vec<u8>| {
        buf.clear();
        rmp_serde::encode::write_named(buf, value).map_err(|err| Error::Codec(err.to_string()))?;
        let encoded = Bytes::copy_from_slice(buf);
        if buf.capacity() > SCRATCH_KEEP {
            *buf = Vec::new();
        }
        Ok(encoded)
    };
    // A `Serialize` impl that itself encodes through Hive finds the buffer busy
    // and uses a fresh one.
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buf) => write(&mut buf),
        Err(_) => write(&mut Vec::new()),
    })
}

/// Decodes MessagePack bytes as a `T`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|err| Error::Codec(err.to_string()))
}

/// Returns bytes written as a field or member name as a `String`.
pub(crate) fn text(bytes: Bytes) -> Result<String> {
    String::from_utf8(bytes.into()).map_err(|err| Error::Codec(format!("name is not UTF-8: {err}")))
}

/// Converts a TTL into whole milliseconds, rounding up so a TTL above zero
/// never becomes zero; zero and TTLs over 100 years are refused.
pub(crate) fn ttl_ms(ttl: Duration) -> Result<u64> {
    if ttl.is_zero() {
        return Err(Error::InvalidArgument(
            "TTL must be greater than zero".into(),
        ));
    }
    let ms = u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    if ms > MAX_TTL_MS {
        return Err(Error::InvalidArgument(format!(
            "TTL must be at most 100 years, got {ttl:?}"
        )));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_milliseconds() {
        assert_eq!(ttl_ms(Duration::from_micros(1)), Ok(1));
        assert_eq!(ttl_ms(Duration::from_millis(500)), Ok(500));
        assert_eq!(ttl_ms(Duration::from_micros(1500)), Ok(2));
    }

    #[test]
    fn zero_and_absurd_ttls_are_refused() {
        assert!(matches!(
            ttl_ms(Duration::ZERO),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            ttl_ms(Duration::from_secs(u64::MAX)),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            ttl_ms(Duration::from_millis(MAX_TTL_MS + 1)),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn values_round_trip_and_mismatches_are_codec_errors() {
        let bytes = encode(&(1u32, "two")).unwrap();
        assert_eq!(decode::<(u32, String)>(&bytes), Ok((1, "two".to_owned())));
        assert!(matches!(decode::<Vec<u8>>(b"\xc1"), Err(Error::Codec(_))));
    }
}
