//! Where a chunked body ends (RFC 9112, 7.1), found while the bytes pass through
//! unchanged.

/// Why a chunked body cannot be followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadChunk(&'static str);

impl std::fmt::Display for BadChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid chunked body: {}", self.0)
    }
}

impl std::error::Error for BadChunk {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the hex chunk size; `digits` read so far.
    Size {
        digits: u8,
    },
    /// After the size: whitespace and extensions up to CR.
    Extension,
    /// The LF ending a chunk-size line.
    SizeLf,
    /// Chunk data.
    Data,
    /// The CRLF after chunk data.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// In a trailer field line.
    Trailer,
    TrailerLf,
    /// The LF of the final empty line.
    EndLf,
    /// The body has ended.
    Done,
}

/// Follows a chunked body: feed it the bytes as they arrive, it says how many belong
/// to the body and when the body has ended. Strict: a line ends in CRLF, never a bare
/// LF, and a chunk size has at most 15 hex digits.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
    /// Bytes of the current chunk's data still to come (while in `Size`, the size so far).
    remaining: u64,
}

impl Default for Chunked {
    fn default() -> Self {
        Self::new()
    }
}

/// Most hex digits in a chunk size: 15 keep it below 2^60 and overflow-free.
const MAX_SIZE_DIGITS: u8 = 15;

impl Chunked {
    /// At the start of a chunked body.
    pub fn new() -> Self {
        Self {
            state: State::Size { digits: 0 },
            remaining: 0,
        }
    }

    /// True once the final chunk and the trailer section have been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes the part of `input` that belongs to the body and returns its length:
    /// all of `input`, or less if the body ends inside it (what follows is not body).
    pub fn advance(&mut self, input: &[u8]) -> Result<usize, BadChunk> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                // Data passes in one step, however long.
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - i);
                i += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = match (self.state, b) {
                (State::Done, _) => {
                    return Ok(i - 1);
                }
                (State::Size { digits }, _) if b.is_ascii_hexdigit() => {
                    if digits == MAX_SIZE_DIGITS {
                        return Err(BadChunk("chunk size too large"));
                    }
                    let d = char::from(b).to_digit(16).unwrap_or(0);
                    self.remaining = self.remaining * 16 + u64::from(d);
                    State::Size { digits: digits + 1 }
                }
                (State::Size { digits: 0 }, _) => return Err(BadChunk("chunk size missing")),
                (State::Size { .. }, b'\r') => State::SizeLf,
                (State::Size { .. }, b';' | b' ' | b'\t') => State::Extension,
                (State::Size { .. }, _) => return Err(BadChunk("invalid chunk size")),
                (State::Extension, b'\r') => State::SizeLf,
                (State::Extension | State::TrailerStart | State::Trailer, b'\n') => {
                    return Err(BadChunk("bare LF"));
                }
                (State::Extension, _) => State::Extension,
                (State::SizeLf, b'\n') if self.remaining == 0 => State::TrailerStart,
                (State::SizeLf, b'\n') => State::Data,
                (State::DataCr, b'\r') => State::DataLf,
                (State::DataCr, _) => return Err(BadChunk("chunk data longer than its size")),
                (State::DataLf, b'\n') => State::Size { digits: 0 },
                (State::TrailerStart, b'\r') => State::EndLf,
                (State::Trailer, b'\r') => State::TrailerLf,
                (State::TrailerStart | State::Trailer, _) => State::Trailer,
                (State::TrailerLf, b'\n') => State::TrailerStart,
                (State::EndLf, b'\n') => {
                    self.state = State::Done;
                    return Ok(i);
                }
                (State::SizeLf | State::DataLf | State::TrailerLf | State::EndLf, _) => {
                    return Err(BadChunk("CR not followed by LF"));
                }
                (State::Data, _) => unreachable!("data is consumed above"),
            };
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` in pieces of `step` bytes; returns (bytes of body, done).
    fn follow(body: &[u8], step: usize) -> Result<(usize, bool), BadChunk> {
        let mut c = Chunked::new();
        let mut n = 0;
        for piece in body.chunks(step) {
            let took = c.advance(piece)?;
            n += took;
            if c.is_done() {
                return Ok((n, true));
            }
            assert_eq!(took, piece.len());
        }
        Ok((n, c.is_done()))
    }

    #[test]
    fn a_body_ends_after_the_last_chunk_and_trailers_whatever_the_pieces() {
        let body = b"5\r\nhello\r\nA;ext=1\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n";
        for step in 1..=body.len() {
            assert_eq!(follow(body, step), Ok((body.len(), true)), "step {step}");
        }
    }

    #[test]
    fn bytes_after_the_end_are_not_body() {
        let mut c = Chunked::new();
        assert_eq!(c.advance(b"0\r\n\r\nHTTP/1.1 200 OK\r\n"), Ok(5));
        assert!(c.is_done());
        assert_eq!(c.advance(b"more"), Ok(0));
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        assert_eq!(follow(b"5\r\nhel", 2), Ok((6, false)));
        assert_eq!(follow(b"0\r\n", 1), Ok((3, false)));
        assert_eq!(follow(b"0\r\nTrailer: x\r\n", 4), Ok((15, false)));
    }

    #[test]
    fn large_chunk_sizes_pass_in_one_step() {
        let mut c = Chunked::new();
        assert_eq!(c.advance(b"fffffff\r\n"), Ok(9));
        assert_eq!(c.advance(&[0u8; 4096]), Ok(4096));
        assert!(!c.is_done());
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for bad in [
            &b"\r\n"[..],             // no size
            b"g\r\n",                 // not hex
            b"5\nhello\r\n",          // bare LF after size
            b"5\r\nhelloX\r\n",       // data longer than the size
            b"5\r\nhello\rX",         // CR without LF
            b"1000000000000000\r\n",  // 16 hex digits
            b"0\r\nTrailer: x\n\r\n", // bare LF in a trailer
            b"-5\r\n",                // sign
            b"0x5\r\n",               // prefix
        ] {
            assert!(
                follow(bad, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
            assert!(
                follow(bad, bad.len()).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
