//! Replies and their encoding in RESP2 or RESP3 (`HELLO 3`). Commands build a
//! [`Frame`] in RESP3 terms; RESP2 clients get the closest RESP2 shape, as
//! Redis does (maps flatten to arrays, doubles become bulk strings, null is
//! `$-1`, booleans are integers).

use bytes::{BufMut, Bytes, BytesMut};

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RESP2, every connection's start.
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

/// One reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+OK`-style status.
    Simple(&'static str),
    /// An error line: the first word is its code (`ERR`, `WRONGTYPE`, ...).
    Error(String),
    /// An integer.
    Integer(i64),
    /// A binary-safe string.
    Bulk(Bytes),
    /// A double (a bulk string in RESP2).
    Double(f64),
    /// Nothing (`$-1` in RESP2).
    Null,
    /// Nothing where an array was expected (`*-1` in RESP2).
    NullArray,
    /// An array.
    Array(Vec<Frame>),
    /// Key-value pairs (a flat array in RESP2).
    Map(Vec<(Frame, Frame)>),
    /// A set (an array in RESP2).
    Set(Vec<Frame>),
    /// A boolean (0 or 1 in RESP2).
    Bool(bool),
    /// No reply at all: the connection closes instead (a successful
    /// `SHUTDOWN`, which clients expect to see as a closed connection).
    Silence,
}

impl Frame {
    /// `+OK`.
    pub const OK: Frame = Frame::Simple("OK");

    /// An `ERR` error with `message`.
    pub fn err(message: impl std::fmt::Display) -> Frame {
        Frame::Error(format!("ERR {message}"))
    }

    /// A bulk string from anything byte-like.
    pub fn bulk(bytes: impl Into<Bytes>) -> Frame {
        Frame::Bulk(bytes.into())
    }

    /// An array of bulk strings.
    pub fn bulks(items: impl IntoIterator<Item = Bytes>) -> Frame {
        Frame::Array(items.into_iter().map(Frame::Bulk).collect())
    }

    /// An integer from a count.
    pub fn count(n: impl TryInto<i64>) -> Frame {
        Frame::Integer(n.try_into().unwrap_or(i64::MAX))
    }

    /// Returns true for error replies.
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }

    /// Returns how many bytes [`Frame::write`] appends for this frame in
    /// `protocol`, without encoding it (a reply's size is checked against the
    /// connection's output limit before it is copied into the output buffer).
    pub fn encoded_len(&self, protocol: Protocol) -> usize {
        let resp3 = protocol == Protocol::Resp3;
        let items = |items: &[Frame]| {
            items.iter().fold(0usize, |sum, item| {
                sum.saturating_add(item.encoded_len(protocol))
            })
        };
        match self {
            // An error's line breaks become spaces: the same length.
            Frame::Simple(text) => text.len() + 3,
            Frame::Error(text) => text.len() + 3,
            Frame::Integer(n) => decimal_len(n.unsigned_abs()) + usize::from(*n < 0) + 3,
            Frame::Bulk(bytes) => bulk_len(bytes.len()),
            Frame::Double(value) if resp3 => format_double(*value).len() + 3,
            Frame::Double(value) => bulk_len(format_double(*value).len()),
            Frame::Null | Frame::NullArray if resp3 => 3,
            Frame::Null | Frame::NullArray => 5,
            Frame::Array(list) | Frame::Set(list) => {
                header_len(list.len()).saturating_add(items(list))
            }
            Frame::Map(pairs) => {
                let count = if resp3 { pairs.len() } else { pairs.len() * 2 };
                pairs.iter().fold(header_len(count), |sum, (key, value)| {
                    sum.saturating_add(key.encoded_len(protocol))
                        .saturating_add(value.encoded_len(protocol))
                })
            }
            Frame::Bool(_) => 4,
            Frame::Silence => 0,
        }
    }

    /// Appends the encoding of this frame in `protocol` to `out`.
    pub fn write(&self, out: &mut BytesMut, protocol: Protocol) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Frame::Simple(text) => line(out, b'+', text.as_bytes()),
            Frame::Error(text) => {
                // An error is one line: never let a message break the framing.
                let text: String = text
                    .chars()
                    .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                    .collect();
                line(out, b'-', text.as_bytes());
            }
            Frame::Integer(n) => line(out, b':', n.to_string().as_bytes()),
            Frame::Bulk(bytes) => bulk(out, bytes),
            Frame::Double(value) if resp3 => line(out, b',', format_double(*value).as_bytes()),
            Frame::Double(value) => bulk(out, format_double(*value).as_bytes()),
            Frame::Null | Frame::NullArray if resp3 => out.put_slice(b"_\r\n"),
            Frame::Null => out.put_slice(b"$-1\r\n"),
            Frame::NullArray => out.put_slice(b"*-1\r\n"),
            Frame::Array(items) => {
                header(out, b'*', items.len());
                for item in items {
                    item.write(out, protocol);
                }
            }
            Frame::Set(items) => {
                header(out, if resp3 { b'~' } else { b'*' }, items.len());
                for item in items {
                    item.write(out, protocol);
                }
            }
            Frame::Map(pairs) => {
                if resp3 {
                    header(out, b'%', pairs.len());
                } else {
                    header(out, b'*', pairs.len() * 2);
                }
                for (key, value) in pairs {
                    key.write(out, protocol);
                    value.write(out, protocol);
                }
            }
            Frame::Bool(value) if resp3 => {
                out.put_slice(if *value { b"#t\r\n" } else { b"#f\r\n" })
            }
            Frame::Bool(value) => line(out, b':', if *value { b"1" } else { b"0" }),
            Frame::Silence => {}
        }
    }
}

/// Formats a double as Redis 7.0 does (C's `%.17g`): 17 significant digits,
/// trailing zeros dropped, exponent form below 1e-4 or from 1e17 on, and
/// `inf`/`-inf` for infinities.
pub fn format_double(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if value.is_nan() {
        return "nan".to_owned();
    }
    let scientific = format!("{value:.16e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("Rust's exponent format always has an exponent");
    let exponent: i32 = exponent
        .parse()
        .expect("Rust's exponent format writes a decimal exponent");
    if (-4..17).contains(&exponent) {
        let decimals = usize::try_from(16 - exponent).unwrap_or(0);
        return trim_zeros(&format!("{value:.decimals$}")).to_owned();
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{}e{sign}{:02}", trim_zeros(mantissa), exponent.abs())
}

/// Drops trailing fractional zeros, and the point if nothing follows it.
fn trim_zeros(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

/// Digits of `n` in decimal.
fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Bytes of an aggregate's header line (`*3\r\n`).
fn header_len(len: usize) -> usize {
    decimal_len(len as u64) + 3
}

/// Bytes of a bulk string of `len` bytes, header included.
pub(crate) fn bulk_len(len: usize) -> usize {
    header_len(len).saturating_add(len).saturating_add(2)
}

fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(kind);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

fn header(out: &mut BytesMut, kind: u8, len: usize) {
    line(out, kind, len.to_string().as_bytes());
}

fn bulk(out: &mut BytesMut, bytes: &[u8]) {
    header(out, b'$', bytes.len());
    out.reserve(bytes.len() + 2);
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(frame: &Frame, protocol: Protocol) -> Vec<u8> {
        let mut out = BytesMut::new();
        frame.write(&mut out, protocol);
        out.to_vec()
    }

    #[test]
    fn resp2_and_resp3_shapes() {
        let map = Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))]);
        assert_eq!(encoded(&map, Protocol::Resp2), b"*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(encoded(&map, Protocol::Resp3), b"%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(encoded(&Frame::Null, Protocol::Resp2), b"$-1\r\n");
        assert_eq!(encoded(&Frame::NullArray, Protocol::Resp2), b"*-1\r\n");
        assert_eq!(encoded(&Frame::Null, Protocol::Resp3), b"_\r\n");
        assert_eq!(
            encoded(&Frame::Double(1.5), Protocol::Resp2),
            b"$3\r\n1.5\r\n"
        );
        assert_eq!(encoded(&Frame::Double(1.5), Protocol::Resp3), b",1.5\r\n");
        assert_eq!(encoded(&Frame::Bool(true), Protocol::Resp2), b":1\r\n");
        assert_eq!(encoded(&Frame::Bool(false), Protocol::Resp3), b"#f\r\n");
        assert_eq!(
            encoded(&Frame::Error("ERR a\r\nb".into()), Protocol::Resp2),
            b"-ERR a  b\r\n"
        );
    }

    #[test]
    fn encoded_len_is_what_write_appends() {
        let frames = [
            Frame::OK,
            Frame::Error("ERR a\r\nb".into()),
            Frame::Integer(0),
            Frame::Integer(9),
            Frame::Integer(10),
            Frame::Integer(-1234),
            Frame::Integer(i64::MIN),
            Frame::Integer(i64::MAX),
            Frame::bulk(""),
            Frame::bulk(vec![b'x'; 1000]),
            Frame::Double(0.1),
            Frame::Double(f64::NEG_INFINITY),
            Frame::Null,
            Frame::NullArray,
            Frame::Bool(true),
            Frame::Array(vec![Frame::Integer(1); 12]),
            Frame::Set(vec![Frame::bulk("a"), Frame::Null]),
            Frame::Map(vec![
                (Frame::bulk("a"), Frame::Array(vec![Frame::Double(1.5)])),
                (Frame::bulk("b"), Frame::Bool(false)),
            ]),
            Frame::Array(Vec::new()),
        ];
        for frame in &frames {
            for protocol in [Protocol::Resp2, Protocol::Resp3] {
                assert_eq!(
                    frame.encoded_len(protocol),
                    encoded(frame, protocol).len(),
                    "{frame:?} in {protocol:?}"
                );
            }
        }
    }

    #[test]
    fn doubles_read_like_redis() {
        assert_eq!(format_double(1.0), "1");
        assert_eq!(format_double(-0.25), "-0.25");
        assert_eq!(format_double(0.1), "0.10000000000000001");
        assert_eq!(format_double(0.0), "0");
        assert_eq!(
            format_double(123_456_789_012_345_678.0),
            "1.2345678901234568e+17"
        );
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(1.5e-7), "1.4999999999999999e-07");
    }
}
