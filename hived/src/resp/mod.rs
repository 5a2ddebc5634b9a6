//! The Redis serialization protocol: [`parse`] takes commands off a
//! connection's buffer, [`Frame`] is a reply and writes itself in the
//! connection's [`Protocol`].

mod parse;
mod reply;

pub use parse::{Limits, Parser, ProtocolError, encode_request, parse};
pub(crate) use reply::bulk_len;
pub use reply::{Frame, Protocol, format_double};
