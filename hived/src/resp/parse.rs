//! Reading commands off a connection's buffer (spec: hived.md "Protocol"):
//! RESP multibulk arrays as every client library sends them, and inline
//! commands as typed into a terminal.
//!
//! Parsing is bounded: a length is checked against [`Limits`] as soon as its
//! header is read, and nothing is ever reserved from a claimed length, so a
//! client announcing a 4 GiB bulk or a billion elements costs the server
//! nothing but the error. A complete command is split off the buffer and its
//! arguments are slices of that one allocation (no copy per argument).
//!
//! Parsing is incremental: a connection's [`Parser`] remembers how far the
//! command at the front of its buffer has been checked (its header, the
//! arguments already whole, how far a line was searched), so a command that
//! arrives a few bytes per read costs time linear in its size.

use bytes::{Bytes, BytesMut};

/// Bounds on what one command may claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string (one argument), in bytes.
    pub max_bulk: usize,
    /// Most arguments in one multibulk command.
    pub max_elements: usize,
    /// Longest inline command or header line, in bytes.
    pub max_inline: usize,
}

impl Default for Limits {
    /// Redis's defaults: 512 MiB bulks are allowed there; Hive's spec caps them
    /// at 64 MiB, 1 Mi elements and 64 KiB inline lines.
    fn default() -> Self {
        Self {
            max_bulk: 64 << 20,
            max_elements: 1 << 20,
            max_inline: 64 << 10,
        }
    }
}

/// Why the bytes on a connection are not a command; the connection is closed
/// after this is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

/// Encodes a command the way clients send it: a multibulk array of bulk
/// strings (for load generators and tests).
pub fn encode_request<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Takes one complete command off the front of `buf`: `Ok(None)` if more bytes
/// are needed, an empty `Vec` for a blank inline line.
///
/// Keeps no progress between calls, so a command that arrives in pieces is
/// scanned again from its start on each call: a connection uses a [`Parser`].
pub fn parse(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    Parser::default().next(buf, limits)
}

/// A connection's parsing progress: what is known about the command at the
/// front of its buffer, kept between reads so that each byte is scanned once
/// however slowly the command arrives (linear time, not quadratic).
///
/// The buffer it is given must only grow at its end between calls, and lose
/// bytes at its front only through [`Parser::next`].
#[derive(Debug, Default)]
pub struct Parser {
    /// The multibulk command being received, once its header is read.
    pending: Option<Pending>,
    /// Where the search for the end of the current line resumes: no line end
    /// starts between the line's start and here.
    searched: usize,
    /// Bytes looked at so far, to check that the work is linear.
    #[cfg(test)]
    scanned: usize,
}

/// A multibulk command whose header has been read.
#[derive(Debug)]
struct Pending {
    /// Arguments the header claims (already checked against the limits).
    count: usize,
    /// Offset and length of each argument received whole and checked.
    spans: Vec<(usize, usize)>,
    /// Where the next argument's `$` header starts.
    at: usize,
    /// The next argument's body offset and length, once its header is read.
    bulk: Option<(usize, usize)>,
}

impl Parser {
    /// Takes one complete command off the front of `buf`: `Ok(None)` if more
    /// bytes are needed (the progress is kept), an empty `Vec` for a blank
    /// inline line. After an error the connection must be dropped.
    pub fn next(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let outcome = match (&self.pending, buf.first()) {
            (None, None) => Ok(None),
            (None, Some(b'*')) | (Some(_), _) => self.multibulk(buf, limits),
            (None, Some(_)) => self.inline(buf, limits),
        };
        if !matches!(outcome, Ok(None)) {
            // A command was taken off (or the input is broken): start afresh.
            self.pending = None;
            self.searched = 0;
        }
        outcome
    }

    /// Counts `bytes` looked at (tests only).
    fn scan(&mut self, bytes: usize) {
        #[cfg(test)]
        {
            self.scanned += bytes;
        }
        let _ = bytes;
    }

    /// Returns the line starting at `from` (without its `\r\n`) and where the
    /// next one starts, `None` if it is not complete yet; the search resumes
    /// where the previous call for this line stopped.
    fn line(
        &mut self,
        buf: &[u8],
        from: usize,
        limits: &Limits,
    ) -> Result<Option<(usize, usize)>, ProtocolError> {
        let limit = buf.len().min(from + limits.max_inline + 2);
        let start = self.searched.max(from);
        let window = &buf[start..limit];
        let found = window.windows(2).position(|pair| pair == b"\r\n");
        self.scan(found.map_or(window.len(), |at| at + 2));
        match found {
            Some(len) => {
                self.searched = 0;
                Ok(Some((start + len, start + len + 2)))
            }
            None if limit - from >= limits.max_inline + 2 => {
                Err(ProtocolError("too big inline request".into()))
            }
            None => {
                // The last byte may be a `\r` whose `\n` has not arrived.
                self.searched = limit.saturating_sub(1).max(from);
                Ok(None)
            }
        }
    }

    fn multibulk(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let mut pending = match self.pending.take() {
            Some(pending) => pending,
            None => {
                let Some((end, at)) = self.line(buf, 0, limits)? else {
                    return Ok(None);
                };
                let count = number(&buf[1..end], "multibulk")?;
                if count > limits.max_elements as i64 {
                    return Err(ProtocolError("invalid multibulk length".into()));
                }
                // Redis treats `*0` and `*-1` as nothing at all.
                let count = usize::try_from(count).unwrap_or(0);
                Pending {
                    count,
                    // Grows with the arguments that arrive, never from the claim.
                    spans: Vec::with_capacity(count.min(64)),
                    at,
                    bulk: None,
                }
            }
        };
        let complete = self.arguments(buf, limits, &mut pending)?;
        if !complete {
            self.pending = Some(pending);
            return Ok(None);
        }
        let frame = buf.split_to(pending.at).freeze();
        Ok(Some(
            pending
                .spans
                .into_iter()
                .map(|(from, len)| frame.slice(from..from + len))
                .collect(),
        ))
    }

    /// Checks the arguments of `pending` that have arrived, from where the
    /// last call stopped; returns true once every one is there.
    fn arguments(
        &mut self,
        buf: &[u8],
        limits: &Limits,
        pending: &mut Pending,
    ) -> Result<bool, ProtocolError> {
        while pending.spans.len() < pending.count {
            let (body, len) = match pending.bulk {
                Some(bulk) => bulk,
                None => {
                    let at = pending.at;
                    let Some(&first) = buf.get(at) else {
                        return Ok(false);
                    };
                    if first != b'$' {
                        return Err(ProtocolError(format!(
                            "expected '$', got '{}'",
                            char::from(first).escape_default()
                        )));
                    }
                    let Some((end, body)) = self.line(buf, at, limits)? else {
                        return Ok(false);
                    };
                    let len = number(&buf[at + 1..end], "bulk")?;
                    let len = usize::try_from(len)
                        .ok()
                        .filter(|len| *len <= limits.max_bulk)
                        .ok_or_else(|| ProtocolError("invalid bulk length".into()))?;
                    pending.bulk = Some((body, len));
                    (body, len)
                }
            };
            // The body itself is not scanned: only its terminator is checked.
            if buf.len() < body + len + 2 {
                return Ok(false);
            }
            self.scan(2);
            if &buf[body + len..body + len + 2] != b"\r\n" {
                return Err(ProtocolError("bulk not terminated by CRLF".into()));
            }
            pending.spans.push((body, len));
            pending.at = body + len + 2;
            pending.bulk = None;
        }
        Ok(true)
    }

    fn inline(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let limit = buf.len().min(limits.max_inline + 1);
        let start = self.searched.min(limit);
        let found = buf[start..limit].iter().position(|byte| *byte == b'\n');
        self.scan(found.map_or(limit - start, |at| at + 1));
        let Some(newline) = found.map(|at| start + at) else {
            self.searched = limit;
            return if limit > limits.max_inline {
                Err(ProtocolError("too big inline request".into()))
            } else {
                Ok(None)
            };
        };
        let line = buf.split_to(newline + 1).freeze();
        let text = line.slice(..newline);
        let text = text.strip_suffix(b"\r").unwrap_or(&text);
        split_inline(text).map(Some)
    }
}

/// Parses the decimal number in `digits`.
fn number(digits: &[u8], what: &str) -> Result<i64, ProtocolError> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| ProtocolError(format!("invalid {what} length")))
}

/// Splits an inline command into arguments as Redis does: on spaces, with
/// `"double"` (escapes `\n`, `\"`, `\xHH`...) and `'single'` quotes.
fn split_inline(text: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let unbalanced = || ProtocolError("unbalanced quotes in request".into());
    let mut args = Vec::new();
    let mut at = 0;
    loop {
        while at < text.len() && text[at].is_ascii_whitespace() {
            at += 1;
        }
        if at == text.len() {
            return Ok(args);
        }
        let mut arg = Vec::new();
        match text[at] {
            b'"' => {
                at += 1;
                loop {
                    match text.get(at) {
                        None => return Err(unbalanced()),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            let (byte, used) = unescape(&text[at + 1..]).ok_or_else(unbalanced)?;
                            arg.push(byte);
                            at += 1 + used;
                        }
                        Some(byte) => {
                            arg.push(*byte);
                            at += 1;
                        }
                    }
                }
                at += 1;
            }
            b'\'' => {
                at += 1;
                loop {
                    match text.get(at) {
                        None => return Err(unbalanced()),
                        Some(b'\'') => break,
                        Some(b'\\') if text.get(at + 1) == Some(&b'\'') => {
                            arg.push(b'\'');
                            at += 2;
                        }
                        Some(byte) => {
                            arg.push(*byte);
                            at += 1;
                        }
                    }
                }
                at += 1;
            }
            _ => {
                while at < text.len() && !text[at].is_ascii_whitespace() {
                    arg.push(text[at]);
                    at += 1;
                }
                args.push(Bytes::from(arg));
                continue;
            }
        }
        // A closing quote must be followed by a space or the end.
        if at < text.len() && !text[at].is_ascii_whitespace() {
            return Err(unbalanced());
        }
        args.push(Bytes::from(arg));
    }
}

/// Decodes the escape after a backslash; returns the byte and how many bytes
/// of `rest` it used.
fn unescape(rest: &[u8]) -> Option<(u8, usize)> {
    let hex = |byte: u8| char::from(byte).to_digit(16);
    Some(match *rest.first()? {
        b'x' if rest.len() >= 3 => match (hex(rest[1]), hex(rest[2])) {
            (Some(high), Some(low)) => (u8::try_from(high * 16 + low).ok()?, 3),
            _ => (b'x', 1),
        },
        b'n' => (b'\n', 1),
        b'r' => (b'\r', 1),
        b't' => (b'\t', 1),
        b'b' => (0x08, 1),
        b'a' => (0x07, 1),
        other => (other, 1),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse_all(input: &[u8], limits: &Limits) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut commands = Vec::new();
        while let Some(command) = parse(&mut buf, limits)? {
            commands.push(command);
        }
        Ok(commands)
    }

    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        encode_request(args)
    }

    #[test]
    fn pipelined_multibulk_commands_come_out_in_order() {
        let input = b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let commands = parse_all(input, &Limits::default()).unwrap();
        assert_eq!(
            commands,
            vec![
                vec![Bytes::from("PING")],
                vec![Bytes::from("GET"), Bytes::from("k")]
            ]
        );
    }

    #[test]
    fn a_partial_command_waits_for_more_bytes() {
        let whole = encode(&[b"SET".to_vec(), b"key".to_vec(), b"value".to_vec()]);
        for cut in 0..whole.len() {
            let mut buf = BytesMut::from(&whole[..cut]);
            assert_eq!(
                parse(&mut buf, &Limits::default()),
                Ok(None),
                "cut at {cut}"
            );
            assert_eq!(buf.len(), cut, "nothing consumed");
        }
    }

    /// Feeds `input` to one parser in pieces of the given sizes (cycling),
    /// taking every complete command off after each piece; returns the
    /// commands. Fails as soon as the parser has looked at more than three
    /// times the bytes sent (and a line's worth more): the work must be linear.
    fn feed(input: &[u8], pieces: &[usize], limits: &Limits) -> Vec<Vec<Bytes>> {
        let (mut parser, mut buf, mut commands) = (Parser::default(), BytesMut::new(), Vec::new());
        let mut sizes = pieces.iter().cycle();
        let mut sent = 0;
        while sent < input.len() {
            let size = (*sizes.next().expect("a piece size")).min(input.len() - sent);
            buf.extend_from_slice(&input[sent..sent + size]);
            sent += size;
            while let Some(command) = parser.next(&mut buf, limits).expect("a valid input") {
                commands.push(command);
            }
            assert!(
                parser.scanned <= 3 * sent + 64,
                "{} bytes looked at for {sent} bytes sent",
                parser.scanned
            );
        }
        assert!(buf.is_empty(), "every command was taken off");
        commands
    }

    // The issue: a partial multibulk was parsed again from its first byte on
    // every read, so a large command sent slowly cost quadratic time.
    #[test]
    fn a_command_sent_slowly_is_scanned_once() {
        let args: Vec<Vec<u8>> = (0..100_000)
            .map(|i| format!("argument-{i}").into_bytes())
            .collect();
        let input = encode(&args);
        let commands = feed(&input, &[7], &Limits::default());
        assert_eq!(commands.len(), 1);
        assert_eq!(commands[0].len(), args.len());
        assert_eq!(commands[0][99_999], Bytes::from("argument-99999"));

        // One large argument, its header padded with zeros, a byte at a time.
        let mut input = b"*2\r\n$3\r\nGET\r\n$".to_vec();
        input.extend(vec![b'0'; 4000]);
        input.extend_from_slice(b"100000\r\n");
        input.extend(vec![b'x'; 100_000]);
        input.extend_from_slice(b"\r\n");
        let commands = feed(&input, &[1, 3, 1000], &Limits::default());
        assert_eq!(commands[0][1].len(), 100_000);

        // A long inline command, three bytes at a time.
        let mut input = b"SET k ".to_vec();
        input.extend(vec![b'v'; 60_000]);
        input.extend_from_slice(b"\r\n");
        let commands = feed(&input, &[3], &Limits::default());
        assert_eq!(commands[0][2].len(), 60_000);
    }

    #[test]
    fn inline_commands_split_on_spaces_and_honour_quotes() {
        let commands = parse_all(
            b"SET k \"a b\\x41\\n\"\r\nGET 'it\\'s'\n\r\n",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(
            commands,
            vec![
                vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from("a bA\n")],
                vec![Bytes::from("GET"), Bytes::from("it's")],
                vec![],
            ]
        );
        assert!(parse_all(b"GET \"open\r\n", &Limits::default()).is_err());
    }

    #[test]
    fn claimed_sizes_beyond_the_limits_are_refused_from_the_header() {
        let limits = Limits {
            max_bulk: 16,
            max_elements: 4,
            max_inline: 32,
        };
        for input in [
            &b"*5\r\n"[..],
            b"*1\r\n$17\r\n",
            b"*1\r\n$-5\r\n",
            b"*1\r\n$4294967296000\r\n",
            b"*x\r\n",
            b"*1\r\n+OK\r\n",
            b"*1\r\n$1\r\nab\r\n",
        ] {
            let mut buf = BytesMut::from(input);
            assert!(parse(&mut buf, &limits).is_err(), "{input:?}");
        }
        let long_line = vec![b'a'; 40];
        assert!(parse_all(&long_line, &limits).is_err());
        let mut header = b"*1\r\n$".to_vec();
        header.extend(vec![b'9'; 40]);
        assert!(parse_all(&header, &limits).is_err());
    }

    proptest! {
        #[test]
        fn encoded_commands_parse_back(args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..8)) {
            let commands = parse_all(&encode(&args), &Limits::default()).unwrap();
            let expected: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
            prop_assert_eq!(commands, vec![expected]);
        }

        #[test]
        fn garbage_never_panics(input in prop::collection::vec(any::<u8>(), 0..200)) {
            let limits = Limits { max_bulk: 64, max_elements: 8, max_inline: 64 };
            let mut buf = BytesMut::from(&input[..]);
            // Whatever happens, it ends: each step consumes bytes, waits or fails.
            for _ in 0..=input.len() {
                match parse(&mut buf, &limits) {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }

        #[test]
        fn commands_sent_in_pieces_parse_as_sent_whole(
            commands in prop::collection::vec(
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 0..6),
                1..5,
            ),
            inline in any::<bool>(),
            pieces in prop::collection::vec(1usize..9, 1..40),
        ) {
            let limits = Limits { max_bulk: 64, max_elements: 8, max_inline: 256 };
            let mut input = Vec::new();
            for args in &commands {
                input.extend(encode(args));
            }
            if inline {
                input.extend_from_slice(b"SET 'k' \"v\"\r\n");
            }
            let whole = parse_all(&input, &limits).unwrap();
            prop_assert_eq!(feed(&input, &pieces, &limits), whole);
        }
    }
}
