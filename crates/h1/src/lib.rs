//! HTTP/1.1 message framing for a forwarding proxy, without any I/O.
//!
//! ward's inbound http listener forwards plain HTTP/1.1 requests as bytes: it parses
//! the request head, rewrites it (identity headers in, hop-by-hop headers out), sends
//! it with its body to the app, and streams the app's response back, parsing only as
//! much as it needs to know where the response ends. This crate is that knowledge:
//!
//! - [`forward_request`]: whether a request may be forwarded this way, and its
//!   rewritten head;
//! - [`forward_response`]: the rewritten response head and how its body is framed;
//! - [`Chunked`]: where a chunked body ends.
//!
//! Anything unusual (another HTTP version, `CONNECT`, an upgrade, `Expect`, a chunked
//! or large request body, an ambiguous or malformed head) is [`Declined`], and the
//! caller hands the connection to a general HTTP implementation, which answers it as
//! it would have anyway. Declining is always safe and forwarding something ambiguous
//! is not (request smuggling), so every doubt here declines.
//!
//! ```
//! let mut out = Vec::new();
//! let buf = b"GET /a?b HTTP/1.1\r\nHost: x\r\nX-Spiffe-Id: forged\r\n\r\n";
//! let head = match ward_h1::forward_request(buf, &["x-spiffe-id"], b"x-spiffe-id: spiffe://td/c\r\n", &mut out) {
//!     Ok(ward_h1::Parsed::Complete(head)) => head,
//!     other => panic!("{other:?}"),
//! };
//! assert_eq!(head.method(buf), "GET");
//! assert_eq!(head.target(buf), "/a?b");
//! assert_eq!(out, b"GET /a?b HTTP/1.1\r\nHost: x\r\nx-spiffe-id: spiffe://td/c\r\n\r\n");
//! ```
#![forbid(unsafe_code)]

mod chunked;

use std::mem::MaybeUninit;
use std::ops::Range;

pub use chunked::{BadChunk, Chunked};

/// Most header lines in one head (hyper's default too). More is declined (requests) or
/// an error (responses).
pub const MAX_HEADERS: usize = 100;

/// Largest request body forwarded by this path. The whole body is read before the
/// request goes out, so that a decision is made on a complete request and the app
/// never waits on a slow client; larger bodies are declined and streamed by the
/// general path.
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

/// A head, or not yet all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The head is complete.
    Complete(T),
    /// More bytes are needed.
    Partial,
}

/// Why a request is left to the general path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Declined {
    /// Not a valid HTTP/1.x request head.
    Malformed,
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
    /// Not HTTP/1.1.
    Version,
    /// `CONNECT`.
    Connect,
    /// Not an origin-form target of visible ASCII.
    Target,
    /// An `Upgrade` header or `Connection: upgrade`.
    Upgrade,
    /// An `Expect` header (`100-continue`).
    Expect,
    /// A `Transfer-Encoding` header.
    TransferEncoding,
    /// A `Content-Length` that is repeated or not a plain decimal number.
    ContentLength,
    /// A body over [`MAX_REQUEST_BODY`].
    BodyTooLarge,
    /// More than one `Host` header.
    Host,
    /// A `Connection` header naming many headers, or naming `Content-Length`,
    /// `Transfer-Encoding`, `Host` or a header to strip.
    ConnectionTokens,
}

/// A request head accepted for forwarding. Positions are into the parsed buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    method: Range<usize>,
    target: Range<usize>,
    /// Length of the head, final empty line included; the body follows.
    pub head_len: usize,
    /// Length of the body (`Content-Length`, or 0).
    pub body_len: usize,
    /// The client asked to close the connection after this exchange.
    pub close: bool,
}

impl RequestHead {
    /// The method, from the buffer the head was parsed from.
    pub fn method<'b>(&self, buf: &'b [u8]) -> &'b str {
        ascii(buf, &self.method)
    }
    /// The request target (origin form: path and query).
    pub fn target<'b>(&self, buf: &'b [u8]) -> &'b str {
        ascii(buf, &self.target)
    }
    /// Head and body.
    pub fn len(&self) -> usize {
        self.head_len + self.body_len
    }
    /// Never: a head has at least a request line.
    pub fn is_empty(&self) -> bool {
        false
    }
}

fn ascii<'b>(buf: &'b [u8], r: &Range<usize>) -> &'b str {
    // The parser validated these bytes as tokens / URI characters (ASCII).
    buf.get(r.clone())
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("")
}

/// Headers that describe one hop's connection, never forwarded (RFC 9110, 7.6.1).
/// `Transfer-Encoding` is hop-by-hop too, but both hops here are HTTP/1.1 and bodies
/// pass through unchanged, so it stays.
const HOP_BY_HOP: [&str; 3] = ["connection", "keep-alive", "proxy-connection"];

/// Most headers a `Connection` header may name besides `close` and `keep-alive`.
const MAX_CONNECTION_TOKENS: usize = 8;

/// Parses the request head at the start of `buf` and, if it is one to forward as
/// bytes, writes the head to send to the app into `out` (cleared first):
///
/// - the request line as received (HTTP/1.1, origin form);
/// - every header line except the hop-by-hop ones, those named by `Connection`, and
///   those in `strip` (names compared by [`same_name`]);
/// - `host: app` if the request has no `Host`;
/// - then `add` (whole header lines, each ending in CRLF), then the empty line.
pub fn forward_request(
    buf: &[u8],
    strip: &[&str],
    add: &[u8],
    out: &mut Vec<u8>,
) -> Result<Parsed<RequestHead>, Declined> {
    let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(Declined::TooManyHeaders),
        Err(_) => return Err(Declined::Malformed),
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Err(Declined::Malformed);
    };
    if req.version != Some(1) {
        return Err(Declined::Version);
    }
    if method == "CONNECT" {
        return Err(Declined::Connect);
    }
    // A fragment is never sent (RFC 9112, 3.2); an app that kept it could see another
    // path than the one the policy decided on.
    if !target.starts_with('/')
        || !target
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'#')
    {
        return Err(Declined::Target);
    }
    let mut content_length = None;
    let mut hosts = 0;
    let mut close = false;
    let mut named: [&str; MAX_CONNECTION_TOKENS] = [""; MAX_CONNECTION_TOKENS];
    let mut n_named = 0;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return Err(Declined::ContentLength);
            }
            content_length = Some(decimal(h.value).ok_or(Declined::ContentLength)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Declined::TransferEncoding);
        } else if name.eq_ignore_ascii_case("upgrade") {
            return Err(Declined::Upgrade);
        } else if name.eq_ignore_ascii_case("expect") {
            return Err(Declined::Expect);
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if hosts > 1 {
                return Err(Declined::Host);
            }
        } else if name.eq_ignore_ascii_case("connection") {
            let value = std::str::from_utf8(h.value).map_err(|_| Declined::Malformed)?;
            for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("upgrade") {
                    return Err(Declined::Upgrade);
                } else if FRAMING.iter().any(|f| token.eq_ignore_ascii_case(f))
                    || strip.iter().any(|s| same_name(token, s))
                {
                    // `Connection: content-length` would have ward frame the body by a
                    // header the app never sees: the rest of the body would reach the
                    // app as a request of its own.
                    return Err(Declined::ConnectionTokens);
                } else if !token.eq_ignore_ascii_case("keep-alive") {
                    let slot = named.get_mut(n_named).ok_or(Declined::ConnectionTokens)?;
                    *slot = token;
                    n_named += 1;
                }
            }
        }
    }
    let body_len = match content_length {
        Some(n) if n > MAX_REQUEST_BODY as u64 => return Err(Declined::BodyTooLarge),
        Some(n) => n as usize,
        None => 0,
    };
    let named = &named[..n_named];
    out.clear();
    out.reserve(head_len + add.len() + 16);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in req.headers.iter() {
        let drop = is_hop_by_hop(h.name, named) || strip.iter().any(|s| same_name(h.name, s));
        if !drop {
            header_line(out, h);
        }
    }
    if hosts == 0 {
        out.extend_from_slice(b"host: app\r\n");
    }
    out.extend_from_slice(add);
    out.extend_from_slice(b"\r\n");
    let base = buf.as_ptr() as usize;
    let range = |s: &str| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    Ok(Parsed::Complete(RequestHead {
        method: range(method),
        target: range(target),
        head_len,
        body_len,
        close,
    }))
}

/// Headers that say where a message ends or whom it is for: a `Connection` header
/// cannot make them hop-by-hop here.
const FRAMING: [&str; 3] = ["content-length", "transfer-encoding", "host"];

/// Header names equal without case, `_` read as `-`: CGI, WSGI and Rack turn both
/// `X-Spiffe-Id` and `X_Spiffe_Id` into `HTTP_X_SPIFFE_ID`, so a stripped name must
/// take the underscore spelling with it.
pub fn same_name(name: &str, other: &str) -> bool {
    name.len() == other.len()
        && name.bytes().zip(other.bytes()).all(|(a, b)| {
            let fold = |c: u8| {
                if c == b'_' {
                    b'-'
                } else {
                    c.to_ascii_lowercase()
                }
            };
            fold(a) == fold(b)
        })
}

fn is_hop_by_hop(name: &str, named: &[&str]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || named.iter().any(|h| name.eq_ignore_ascii_case(h))
}

fn header_line(out: &mut Vec<u8>, h: &httparse::Header<'_>) {
    out.extend_from_slice(h.name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(h.value);
    out.extend_from_slice(b"\r\n");
}

/// `1*DIGIT` (RFC 9110, 8.6), surrounding whitespace allowed; no sign, no list.
fn decimal(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// How a response body is delimited (RFC 9112, 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a response to `HEAD`, a 1xx, 204 or 304.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding: see [`Chunked`].
    Chunked,
    /// Until the app closes the connection.
    UntilClose,
}

/// A response head from the app, rewritten for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// Length of the head in the parsed buffer; the body follows.
    pub head_len: usize,
    /// How the body ends.
    pub framing: Framing,
    /// A 1xx: another head follows (the final response).
    pub informational: bool,
    /// The app keeps its connection open after this response.
    pub app_keeps_alive: bool,
    /// The client connection must close after this response (`connection: close` was
    /// written).
    pub close: bool,
}

/// Why an app's response cannot be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadResponse {
    /// The head is not valid HTTP/1.x.
    Malformed,
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
    /// A 101 to a request that asked for no upgrade.
    UnexpectedUpgrade,
    /// A `Content-Length` that is not a number, or several different ones.
    ContentLength,
    /// Both `Content-Length` and `Transfer-Encoding` (RFC 9112, 6.3: a sign of
    /// response splitting).
    LengthAndEncoding,
}

impl std::fmt::Display for BadResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Malformed => "its response head is not valid HTTP/1.1",
            Self::TooManyHeaders => "its response has more than 100 header lines",
            Self::UnexpectedUpgrade => "it switched protocols (101) without being asked to",
            Self::ContentLength => "its response has an invalid or conflicting Content-Length",
            Self::LengthAndEncoding => "its response has both Content-Length and Transfer-Encoding",
        })
    }
}

impl std::error::Error for BadResponse {}

/// How to rewrite a response head for the client.
#[derive(Debug, Clone, Copy)]
pub struct ResponseRewrite<'a> {
    /// The request was `HEAD`: the response has no body whatever its headers say.
    pub head_request: bool,
    /// Close the client connection after this response (the client asked, or ward is
    /// shutting down).
    pub close: bool,
    /// A whole `date: ...\r\n` line, added if the app sent no `Date` (RFC 9110, 6.6.1:
    /// a recipient with a clock forwarding a response without one adds it).
    pub date: &'a [u8],
}

/// Parses the app's response head at the start of `buf` and writes the head to send to
/// the client into `out` (cleared first): the status line with HTTP/1.1 (an
/// intermediary sends its own version), every header line except the hop-by-hop ones
/// and those named by `Connection`, a `Date` if there is none, and `connection: close`
/// if the client connection will close after it. A 1xx head is rewritten the same way
/// without `Date` or `Connection`.
pub fn forward_response(
    buf: &[u8],
    how: &ResponseRewrite<'_>,
    out: &mut Vec<u8>,
) -> Result<Parsed<ResponseHead>, BadResponse> {
    let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(BadResponse::TooManyHeaders),
        Err(_) => return Err(BadResponse::Malformed),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err(BadResponse::Malformed);
    };
    if status == 101 {
        return Err(BadResponse::UnexpectedUpgrade);
    }
    let informational = (100..200).contains(&status);
    let mut length: Option<u64> = None;
    let mut encoding: Option<&[u8]> = None;
    let mut close_token = false;
    let mut keep_alive_token = false;
    let mut has_date = false;
    let mut named: [&str; MAX_CONNECTION_TOKENS] = [""; MAX_CONNECTION_TOKENS];
    let mut n_named = 0;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            // A list of one repeated value is tolerated (RFC 9110, 8.6); anything else
            // leaves the body's end in doubt.
            for v in h.value.split(|&b| b == b',') {
                let n = decimal(v).ok_or(BadResponse::ContentLength)?;
                if length.is_some_and(|l| l != n) {
                    return Err(BadResponse::ContentLength);
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Several lines form one list: the last coding is what counts.
            encoding = Some(h.value);
        } else if name.eq_ignore_ascii_case("date") {
            has_date = true;
        } else if name.eq_ignore_ascii_case("connection") {
            let value = std::str::from_utf8(h.value).map_err(|_| BadResponse::Malformed)?;
            for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if token.eq_ignore_ascii_case("close") {
                    close_token = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive_token = true;
                } else if FRAMING.iter().any(|f| token.eq_ignore_ascii_case(f)) {
                    // Kept: the client must frame the body by the same header as ward.
                } else if let Some(slot) = named.get_mut(n_named) {
                    *slot = token;
                    n_named += 1;
                }
                // (Beyond MAX_CONNECTION_TOKENS a named header is passed on: harmless.)
            }
        }
    }
    let named = &named[..n_named];
    let no_body = how.head_request || informational || status == 204 || status == 304;
    let framing = match (encoding, length) {
        (Some(_), Some(_)) => return Err(BadResponse::LengthAndEncoding),
        _ if no_body => Framing::Empty,
        (Some(te), None) => {
            let last = te.rsplit(|&b| b == b',').next().unwrap_or_default();
            if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                Framing::Chunked
            } else {
                Framing::UntilClose
            }
        }
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::UntilClose,
    };
    let app_keeps_alive = framing != Framing::UntilClose
        && if version == 1 {
            !close_token
        } else {
            keep_alive_token && !close_token
        };
    let close = !informational && (how.close || framing == Framing::UntilClose);
    out.clear();
    out.reserve(head_len + how.date.len() + 24);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status_digits(status).as_slice());
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in resp.headers.iter() {
        if !is_hop_by_hop(h.name, named) {
            header_line(out, h);
        }
    }
    if !informational {
        if !has_date {
            out.extend_from_slice(how.date);
        }
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    Ok(Parsed::Complete(ResponseHead {
        status,
        head_len,
        framing,
        informational,
        app_keeps_alive,
        close,
    }))
}

fn status_digits(status: u16) -> [u8; 3] {
    // httparse accepts exactly three digits.
    let d = |n: u16| b'0' + (n % 10) as u8;
    [d(status / 100), d(status / 10), d(status)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRIP: [&str; 2] = ["x-spiffe-id", "x-forwarded-client-cert"];
    const ADD: &[u8] = b"x-spiffe-id: spiffe://td/client\r\n";

    fn request(buf: &[u8]) -> (Result<Parsed<RequestHead>, Declined>, String) {
        let mut out = Vec::new();
        let r = forward_request(buf, &STRIP, ADD, &mut out);
        (r, String::from_utf8(out).unwrap())
    }

    fn declined(buf: &[u8]) -> Declined {
        match request(buf).0 {
            Err(d) => d,
            other => panic!("{:?} was accepted: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn a_plain_request_is_forwarded_with_spoofed_identity_headers_replaced() {
        let buf = b"POST /v1/x?q=1 HTTP/1.1\r\nHost: svc\r\nX-Spiffe-Id: spiffe://td/admin\r\n\
            x-forwarded-client-cert: forged\r\nContent-Length: 3\r\nAccept: */*\r\n\r\nabcGET";
        let (r, out) = request(buf);
        let Ok(Parsed::Complete(head)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(head.method(buf), "POST");
        assert_eq!(head.target(buf), "/v1/x?q=1");
        assert_eq!((head.body_len, head.close), (3, false));
        assert_eq!(&buf[head.len()..], b"GET");
        assert_eq!(
            out,
            "POST /v1/x?q=1 HTTP/1.1\r\nHost: svc\r\nContent-Length: 3\r\nAccept: */*\r\n\
             x-spiffe-id: spiffe://td/client\r\n\r\n"
        );
    }

    #[test]
    fn identity_headers_are_stripped_in_any_case_and_with_underscores() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\nX_SPIFFE_ID: forged\r\nx-Spiffe-id: forged\r\n\
            X_Forwarded_Client_Cert: forged\r\nX-Spiffe-Idx: kept\r\n\r\n";
        let (r, out) = request(buf);
        assert!(matches!(r, Ok(Parsed::Complete(_))), "{r:?}");
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nHost: a\r\nX-Spiffe-Idx: kept\r\nx-spiffe-id: spiffe://td/client\r\n\r\n"
        );
    }

    #[test]
    fn a_response_cannot_make_its_framing_headers_hop_by_hop() {
        let buf = b"HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding, Content-Length, X-A\r\n\
            Transfer-Encoding: chunked\r\nX-A: 1\r\nDate: D\r\n\r\n";
        let (r, out) = response(buf, false, false);
        let Ok(Parsed::Complete(head)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(head.framing, Framing::Chunked);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDate: D\r\n\r\n"
        );
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_and_close_is_noted() {
        let buf = b"GET / HTTP/1.1\r\nConnection: close, X-Hop\r\nKeep-Alive: 5\r\nX-Hop: 1\r\n\
            Proxy-Connection: keep-alive\r\nX-End: 2\r\n\r\n";
        let (r, out) = request(buf);
        let Ok(Parsed::Complete(head)) = r else {
            panic!("{r:?}")
        };
        assert!(head.close);
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nX-End: 2\r\nhost: app\r\nx-spiffe-id: spiffe://td/client\r\n\r\n"
        );
    }

    #[test]
    fn an_incomplete_head_asks_for_more() {
        assert_eq!(
            request(b"GET / HTTP/1.1\r\nHost: a\r\n").0,
            Ok(Parsed::Partial)
        );
        assert_eq!(request(b"GE").0, Ok(Parsed::Partial));
    }

    #[test]
    fn requests_the_fast_path_must_not_forward_are_declined() {
        use Declined::*;
        let cases: [(&[u8], Declined); 16] = [
            (b"GET / HTTP/1.0\r\n\r\n", Version),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Malformed),
            (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", Connect),
            (b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", Target),
            (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", Target),
            (
                b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
                Upgrade,
            ),
            (b"GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n", Upgrade),
            (
                b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
                Expect,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                TransferEncoding,
            ),
            // Smuggling shapes: two lengths, a length and an encoding, a signed length.
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                ContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                TransferEncoding,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
                ContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n",
                ContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n",
                BodyTooLarge,
            ),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Host),
            (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", Malformed),
        ];
        for (buf, want) in cases {
            assert_eq!(declined(buf), want, "{:?}", String::from_utf8_lossy(buf));
        }
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("x-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(declined(&many), TooManyHeaders);
        // A Connection header cannot hide how the body is framed, the host, or a
        // header ward strips.
        for token in [
            "Content-Length",
            "transfer-encoding",
            "Host",
            "X-Spiffe-Id",
            "x_spiffe_id",
        ] {
            let buf =
                format!("POST / HTTP/1.1\r\nConnection: {token}\r\nContent-Length: 1\r\n\r\nx");
            assert_eq!(declined(buf.as_bytes()), ConnectionTokens, "{token}");
        }
        assert_eq!(declined(b"GET /a#frag HTTP/1.1\r\n\r\n"), Target);
        assert_eq!(
            declined("GET /caf\u{e9} HTTP/1.1\r\n\r\n".as_bytes()),
            Target
        );
    }

    fn response(
        buf: &[u8],
        head_request: bool,
        close: bool,
    ) -> (Result<Parsed<ResponseHead>, BadResponse>, String) {
        let mut out = Vec::new();
        let how = ResponseRewrite {
            head_request,
            close,
            date: b"date: D\r\n",
        };
        let r = forward_response(buf, &how, &mut out);
        (r, String::from_utf8(out).unwrap())
    }

    fn framing(buf: &[u8], head_request: bool) -> Framing {
        match response(buf, head_request, false).0 {
            Ok(Parsed::Complete(h)) => h.framing,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_response_head_gets_our_version_a_date_and_loses_hop_by_hop_headers() {
        let buf = b"HTTP/1.0 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
            Content-Length: 2\r\n\r\nhi";
        let (r, out) = response(buf, false, false);
        let Ok(Parsed::Complete(head)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(head.status, 200);
        assert_eq!(&buf[head.head_len..], b"hi");
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.app_keeps_alive && !head.close);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\ndate: D\r\n\r\n"
        );
    }

    #[test]
    fn a_response_ending_at_close_closes_the_client_connection_too() {
        let (r, out) = response(b"HTTP/1.0 200 OK\r\nDate: X\r\n\r\nbody", false, false);
        let Ok(Parsed::Complete(head)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(head.framing, Framing::UntilClose);
        assert!(!head.app_keeps_alive && head.close);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nDate: X\r\nconnection: close\r\n\r\n"
        );
        let (r, _) = response(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            false,
            false,
        );
        let Ok(Parsed::Complete(head)) = r else {
            panic!("{r:?}")
        };
        assert!(
            !head.app_keeps_alive && !head.close,
            "the client connection can stay"
        );
        let (r, out) = response(b"HTTP/1.1 204 No Content\r\n\r\n", false, true);
        let Ok(Parsed::Complete(head)) = r else {
            panic!("{r:?}")
        };
        assert!(head.close && head.app_keeps_alive);
        assert_eq!(
            out,
            "HTTP/1.1 204 No Content\r\ndate: D\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn response_bodies_are_framed_by_rfc_9112() {
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true),
            Framing::Empty
        );
        assert_eq!(
            framing(b"HTTP/1.1 204 No Content\r\n\r\n", false),
            Framing::Empty
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                false
            ),
            Framing::Empty
        );
        assert_eq!(
            framing(b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n", false),
            Framing::Empty
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                false
            ),
            Framing::Chunked
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
                false
            ),
            Framing::UntilClose
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n", false),
            Framing::Length(7)
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\n\r\n", false),
            Framing::UntilClose
        );
    }

    #[test]
    fn an_informational_response_is_forwarded_without_date_or_close() {
        let (r, out) = response(
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n",
            false,
            true,
        );
        let Ok(Parsed::Complete(head)) = r else {
            panic!("{r:?}")
        };
        assert!(head.informational && !head.close);
        assert_eq!(out, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n");
    }

    #[test]
    fn ambiguous_or_malformed_responses_are_errors() {
        use BadResponse::*;
        let cases: [(&[u8], BadResponse); 6] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                LengthAndEncoding,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                ContentLength,
            ),
            (
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
                UnexpectedUpgrade,
            ),
            (b"HTTP/2 200 OK\r\n\r\n", Malformed),
            (b"HTTP/1.1 200 OK\r\n folded\r\n\r\n", Malformed),
        ];
        for (buf, want) in cases {
            assert_eq!(
                response(buf, false, false).0,
                Err(want),
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
        assert_eq!(
            response(b"HTTP/1.1 200 OK\r\nA: b", false, false).0,
            Ok(Parsed::Partial)
        );
    }
}
