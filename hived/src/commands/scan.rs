//! The cursor options the `SCAN` family shares: `cursor [MATCH pattern]
//! [COUNT count] [TYPE type] [NOVALUES]`, and the reply shape.

use bytes::Bytes;

use super::{int_arg, is};
use crate::glob;
use crate::resp::Frame;

/// What a `SCAN`-family command asked for.
#[derive(Debug)]
pub(crate) struct Scan {
    pub cursor: u64,
    pub pattern: Option<Bytes>,
    /// How many elements to look at per call (a hint, as in Redis).
    pub count: usize,
    /// `TYPE` (`SCAN` only).
    pub kind: Option<Bytes>,
    /// `NOVALUES` (`HSCAN` only).
    pub novalues: bool,
}

/// Which options a command accepts besides `MATCH` and `COUNT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extra {
    None,
    Type,
    NoValues,
}

impl Scan {
    /// Parses a cursor. Redis checks it before looking the key up, and the
    /// options only after: a missing key answers an empty scan whatever
    /// options follow.
    pub(crate) fn cursor(arg: &[u8]) -> Result<u64, Frame> {
        std::str::from_utf8(arg)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| Frame::err("invalid cursor"))
    }

    /// Parses `cursor` and the options after it.
    pub(crate) fn parse(args: &[Bytes], extra: Extra) -> Result<Scan, Frame> {
        let cursor = Scan::cursor(&args[0])?;
        let mut scan = Scan {
            cursor,
            pattern: None,
            count: 10,
            kind: None,
            novalues: false,
        };
        let mut options = args[1..].iter();
        while let Some(option) = options.next() {
            if is(option, "match") {
                let pattern = options.next().ok_or_else(syntax)?;
                scan.pattern = Some(pattern.clone());
            } else if is(option, "count") {
                let count = int_arg(options.next().ok_or_else(syntax)?)?;
                scan.count = usize::try_from(count)
                    .ok()
                    .filter(|&count| count >= 1)
                    .ok_or_else(syntax)?;
            } else if is(option, "type") && extra == Extra::Type {
                scan.kind = Some(options.next().ok_or_else(syntax)?.clone());
            } else if is(option, "novalues") && extra == Extra::NoValues {
                scan.novalues = true;
            } else {
                return Err(syntax());
            }
        }
        Ok(scan)
    }

    /// Returns true if `name` matches the pattern (or there is none).
    pub(crate) fn wants(&self, name: &[u8]) -> bool {
        self.pattern
            .as_ref()
            .is_none_or(|pattern| glob::matches(pattern, name))
    }
}

fn syntax() -> Frame {
    Frame::err("syntax error")
}

/// The reply: the next cursor (0 when done) and the elements.
pub(crate) fn reply(cursor: u64, elements: Vec<Bytes>) -> Frame {
    Frame::Array(vec![
        Frame::bulk(cursor.to_string()),
        Frame::bulks(elements),
    ])
}
