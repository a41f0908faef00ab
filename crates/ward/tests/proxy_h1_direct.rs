//! End-to-end: inbound `http` mode's direct HTTP/1.1 path (requests and responses
//! forwarded as bytes, ward-h1) and its hand-off to the general (hyper) path, byte for
//! byte: a raw HTTP/1.1 client over mTLS on one side, a scripted raw TCP app on the
//! other, the real `ward` binary in between with `ward dev` as the authority.

mod proxy_support;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proxy_support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use ward_workload::X509Source;

/// The app's own `Date` line: ward adds none to a response that has one, so the heads
/// the client gets can be compared byte for byte.
const DATE: &str = "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n";

/// Longest wait for any one read or write, client or app side: nothing hangs.
const WAIT: Duration = Duration::from_secs(10);

/// `ward inbound --protocol http` in front of `app`, allowing [`CLIENT`].
fn inbound(app: SocketAddr) -> Inbound {
    start_inbound("http", &app.to_string(), &[])
}

impl Inbound {
    /// The client's identity (its SVID from `ward dev`).
    async fn identity(&self) -> X509Source {
        source(&self.dir.path().join("client.sock")).await
    }

    /// A new mTLS connection to ward, HTTP/1.1 by ALPN.
    async fn connect(&self, id: &X509Source) -> Wire<TlsStream<TcpStream>> {
        let tls = tls_connect(self.addr, id, &[b"http/1.1"]).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        Wire::new(tls)
    }

    fn log(&self) -> String {
        log_of(self.dir.path(), "inbound")
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

fn eof(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, format!("EOF in {what}"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One side of a connection, with what was read and not yet consumed. Every read and
/// write is bounded by [`WAIT`].
struct Wire<S> {
    s: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    fn new(s: S) -> Self {
        Self { s, buf: Vec::new() }
    }

    /// Writes and flushes `bytes` (one TLS write on the client side).
    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let s = &mut self.s;
        tokio::time::timeout(WAIT, async {
            s.write_all(bytes).await?;
            s.flush().await
        })
        .await
        .map_err(|_| timed_out("write"))?
    }

    /// One more read into the buffer; 0 at EOF.
    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(16 * 1024);
        tokio::time::timeout(WAIT, self.s.read_buf(&mut self.buf))
            .await
            .map_err(|_| timed_out("read"))?
    }

    /// The bytes up to and including the first `end`.
    async fn until(&mut self, end: &[u8]) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, end) {
                return Ok(self.buf.drain(..i + end.len()).collect());
            }
            if self.fill().await? == 0 {
                return Err(eof("a line or head"));
            }
        }
    }

    /// The next `n` bytes.
    async fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Err(eof("a body"));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Everything until the peer closes, and whether it closed cleanly (for TLS: with
    /// close_notify) or with an error.
    async fn rest(&mut self) -> (Vec<u8>, io::Result<()>) {
        let end = loop {
            match self.fill().await {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        (std::mem::take(&mut self.buf), end)
    }

    /// A chunked body: (as on the wire, decoded).
    async fn chunked(&mut self) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let (mut raw, mut data) = (Vec::new(), Vec::new());
        loop {
            let line = self.until(b"\r\n").await?;
            let text = std::str::from_utf8(&line).expect("ascii chunk size line");
            let hex = text.trim_end().split(';').next().unwrap().trim();
            let size = usize::from_str_radix(hex, 16).expect("hex chunk size");
            raw.extend_from_slice(&line);
            if size == 0 {
                loop {
                    let trailer = self.until(b"\r\n").await?;
                    raw.extend_from_slice(&trailer);
                    if trailer == b"\r\n" {
                        return Ok((raw, data));
                    }
                }
            }
            let chunk = self.exact(size + 2).await?;
            assert_eq!(&chunk[size..], b"\r\n", "chunk data not followed by CRLF");
            data.extend_from_slice(&chunk[..size]);
            raw.extend_from_slice(&chunk);
        }
    }

    /// A message head, as text.
    async fn head(&mut self) -> io::Result<String> {
        let head = self.until(b"\r\n\r\n").await?;
        Ok(String::from_utf8(head).expect("ascii head"))
    }

    /// A message body framed by `head` (RFC 9112, 6): (as on the wire, decoded).
    /// `until_close` says whether a body without length may run to the end of the
    /// connection (responses) or is empty (requests).
    async fn body(&mut self, head: &str, until_close: bool) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let te = header(head, "transfer-encoding");
        if te
            .last()
            .is_some_and(|v| v.rsplit(',').next().unwrap().trim() == "chunked")
        {
            return self.chunked().await;
        }
        if let Some(n) = header(head, "content-length").first() {
            let body = self.exact(n.parse().expect("content-length")).await?;
            return Ok((body.clone(), body));
        }
        if until_close {
            let (body, end) = self.rest().await;
            end?;
            return Ok((body.clone(), body));
        }
        Ok((Vec::new(), Vec::new()))
    }

    /// The next response (a 1xx one too) to a request; `head_request` for `HEAD`.
    async fn response(&mut self, head_request: bool) -> io::Result<Resp> {
        let head = self.head().await?;
        let status = status_of(&head);
        let (raw, body) = if head_request || (100..200).contains(&status) || status == 204 {
            (Vec::new(), Vec::new())
        } else {
            self.body(&head, true).await?
        };
        Ok(Resp {
            head,
            status,
            raw,
            body,
        })
    }

    /// Sends `request` and reads its response.
    async fn exchange(&mut self, request: &[u8]) -> Resp {
        self.send(request).await.unwrap();
        let head_request = request.starts_with(b"HEAD ");
        self.response(head_request).await.unwrap()
    }
}

#[derive(Debug)]
struct Resp {
    head: String,
    status: u16,
    /// The body as on the wire (chunk framing and trailers included).
    raw: Vec<u8>,
    /// The body decoded.
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The values of header `name` in `head` (names without case), in order.
fn header<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

fn status_of(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"))
}

/// A request as the app read it.
#[derive(Debug, Clone)]
struct Seen {
    /// The app connection it came on, from 1.
    conn: usize,
    head: String,
    /// Decoded (a chunked body without its framing).
    body: Vec<u8>,
}

impl Seen {
    fn target(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }
}

/// One connection of the scripted app.
struct AppConn {
    wire: Wire<TcpStream>,
    n: usize,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl AppConn {
    /// The next request on this connection (recorded), or `None` once ward closed it.
    async fn request(&mut self) -> Option<Seen> {
        let head = self.wire.head().await.ok()?;
        let (_, body) = self.wire.body(&head, false).await.ok()?;
        let seen = Seen {
            conn: self.n,
            head,
            body,
        };
        self.seen.lock().unwrap().push(seen.clone());
        Some(seen)
    }

    async fn send(&mut self, bytes: &[u8]) -> bool {
        self.wire.send(bytes).await.is_ok()
    }

    /// Aborts the connection: a TCP reset rather than a close.
    fn reset(self) {
        self.wire.s.set_zero_linger().unwrap();
    }
}

/// A raw TCP app: `serve` runs for each connection; every request it reads is recorded.
struct App {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl App {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn app<F, Fut>(serve: F) -> App
where
    F: Fn(AppConn) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let all = seen.clone();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((s, _)) = l.accept().await {
            n += 1;
            tokio::spawn(serve(AppConn {
                wire: Wire::new(s),
                n,
                seen: all.clone(),
            }));
        }
    });
    App { addr, seen }
}

/// A 200 with a `Content-Length` body and the app's own `Date`.
fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{DATE}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// The response `ok(body)` as the direct path forwards it: unchanged.
fn ok_forwarded(body: &[u8]) -> (String, Vec<u8>) {
    (
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{DATE}\r\n",
            body.len()
        ),
        body.to_vec(),
    )
}

/// An app answering every request with `ok("<conn> <target>")`.
async fn plain_app() -> App {
    app(|mut c| async move {
        while let Some(req) = c.request().await {
            let body = format!("{} {}", c.n, req.target());
            if !c.send(&ok(body.as_bytes())).await {
                return;
            }
        }
    })
    .await
}

/// Whether a response head was written by the general path (hyper writes header names
/// in lower case; the direct path passes the app's `Content-Length` as written).
fn by_general_path(head: &str) -> bool {
    head.contains("\r\ncontent-length: ") && !head.contains("\r\nContent-Length: ")
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: svc\r\n\r\n").into_bytes()
}

/// Pseudo-random bytes (xorshift): a reordered or repeated piece would show.
fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn a_chunked_response_with_extensions_and_trailers_passes_unchanged_and_the_connection_is_reused(
) {
    const HEAD: &str = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n";
    const BODY: &[u8] =
        b"5;name=value;q=\"a b\"\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\nX-More: x\r\n\r\n";
    let app = app(|mut c| async move {
        while let Some(req) = c.request().await {
            if req.target() == "/chunked" {
                // In pieces cut inside a size line, data, and a trailer line: ward
                // follows the chunked framing across reads.
                let mut whole = format!("{HEAD}{DATE}\r\n").into_bytes();
                whole.extend_from_slice(BODY);
                let cuts = [
                    HEAD.len() + DATE.len() + 2 + 3,
                    whole.len() - 40,
                    whole.len() - 8,
                ];
                let mut from = 0;
                for to in cuts.into_iter().chain([whole.len()]) {
                    if !c.send(&whole[from..to]).await {
                        return;
                    }
                    from = to;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            } else if !c.send(&ok(b"second")).await {
                return;
            }
        }
    })
    .await;
    let s = inbound(app.addr);
    let id = s.identity().await;
    let mut c = s.connect(&id).await;
    let r = c.exchange(&get("/chunked")).await;
    assert_eq!(r.head, format!("{HEAD}{DATE}\r\n"));
    assert_eq!(
        String::from_utf8_lossy(&r.raw),
        String::from_utf8_lossy(BODY)
    );
    assert_eq!(r.body, b"hello world");
    let r = c.exchange(&get("/next")).await;
    assert_eq!((r.head, r.body), ok_forwarded(b"second"));
    let seen = app.seen();
    let conns: Vec<_> = seen.iter().map(|r| (r.conn, r.target())).collect();
    assert_eq!(conns, [(1, "/chunked"), (1, "/next")], "{seen:?}");
}

#[tokio::test]
async fn a_response_to_head_has_no_body_whatever_its_content_length() {
    let app = app(|mut c| async move {
        while let Some(req) = c.request().await {
            let resp = if req.head.starts_with("HEAD ") {
                format!("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n{DATE}\r\n").into_bytes()
            } else {
                ok(b"0123456789")
            };
            if !c.send(&resp).await {
                return;
            }
        }
    })
    .await;
    let s = inbound(app.addr);
    let id = s.identity().await;
    let mut c = s.connect(&id).await;
    let r = c.exchange(b"HEAD /h HTTP/1.1\r\nHost: svc\r\n\r\n").await;
    assert_eq!(
        r.head,
        format!("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n{DATE}\r\n")
    );
    assert!(c.buf.is_empty(), "bytes after a HEAD response: {:?}", c.buf);
    // The next response starts right there: no stray body bytes in between.
    let r = c.exchange(&get("/g")).await;
    assert_eq!((r.head, r.body), ok_forwarded(b"0123456789"));
    let seen = app.seen();
    let conns: Vec<_> = seen.iter().map(|r| (r.conn, r.target())).collect();
    assert_eq!(conns, [(1, "/h"), (1, "/g")], "{seen:?}");
}

#[tokio::test]
async fn a_body_ending_at_the_apps_close_reaches_the_client_which_ward_then_closes() {
    let body = pattern(100_000, 3);
    let sent = body.clone();
    let app = app(move |mut c| {
        let body = sent.clone();
        async move {
            if c.request().await.is_none() {
                return;
            }
            // HTTP/1.0 style: no length, the body ends when the connection does.
            let mut resp = format!("HTTP/1.0 200 OK\r\nX-App: old\r\n{DATE}\r\n").into_bytes();
            resp.extend_from_slice(&body[..1000]);
            c.send(&resp).await;
            for piece in body[1000..].chunks(33_000) {
                tokio::time::sleep(Duration::from_millis(10)).await;
                c.send(piece).await;
            }
        }
    })
    .await;
    let s = inbound(app.addr);
    let id = s.identity().await;
    let mut c = s.connect(&id).await;
    c.send(&get("/old")).await.unwrap();
    let head = c.head().await.unwrap();
    assert_eq!(
        head,
        format!("HTTP/1.1 200 OK\r\nX-App: old\r\n{DATE}connection: close\r\n\r\n")
    );
    let (got, end) = c.rest().await;
    assert!(got == body, "{} bytes of {}", got.len(), body.len());
    // A body delimited by the close must end in a clean close (TLS close_notify), or
    // the client could not tell it from a cut one.
    end.expect("ward closes the client connection cleanly after the body");
}

#[tokio::test]
async fn an_apps_connection_close_ends_its_connection_not_the_clients() {
    let app = app(|mut c| async move {
        if let Some(req) = c.request().await {
            let body = format!("{} {}", c.n, req.target());
            let resp = format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n{DATE}\r\n{body}",
                body.len()
            );
            c.send(resp.as_bytes()).await;
        }
        // Then closes: the connection carried one exchange.
    })
    .await;
    let s = inbound(app.addr);
    let id = s.identity().await;
    let mut c = s.connect(&id).await;
    let r = c.exchange(&get("/1")).await;
    // The app's `Connection` is about its own hop: not passed on, no close added.
    assert_eq!((r.head, r.body), ok_forwarded(b"1 /1"));
    let r = c.exchange(&get("/2")).await;
    assert_eq!((r.head, r.body), ok_forwarded(b"2 /2"));
    let seen = app.seen();
    let conns: Vec<_> = seen.iter().map(|r| (r.conn, r.target())).collect();
    assert_eq!(conns, [(1, "/1"), (2, "/2")], "{seen:?}");
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_both_ways_and_identity_headers_are_wards_alone() {
    let app = app(|mut c| async move {
        while c.request().await.is_some() {
            let resp = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Resp-Hop\r\n\
                Keep-Alive: timeout=5\r\nX-Resp-Hop: 1\r\nX-Resp: kept\r\nContent-Length: 2\r\n\r\nok";
            if !c.send(resp.as_bytes()).await {
                return;
            }
        }
    })
    .await;
    let s = inbound(app.addr);
    let id = s.identity().await;
    let mut c = s.connect(&id).await;
    let r = c
        .exchange(
            b"GET /h?q=1 HTTP/1.1\r\nHost: svc\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
            Keep-Alive: 5\r\nX-Spiffe-Id: spiffe://example.org/admin\r\n\
            x-forwarded-client-cert: By=x;URI=spiffe://example.org/admin\r\nX-Keep: yes\r\n\
            x-spiffe-id: spiffe://example.org/admin2\r\n\r\n",
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let date = header(&r.head, "date");
    assert_eq!(date.len(), 1, "{}", r.head);
    httpdate::parse_http_date(date[0]).expect("an HTTP date");
    assert_eq!(
        r.head,
        format!(
            "HTTP/1.1 200 OK\r\nX-Resp: kept\r\nContent-Length: 2\r\ndate: {}\r\n\r\n",
            date[0]
        )
    );
    assert_eq!(r.body, b"ok");
    // What the app got: the client's own headers in order, then ward's identity headers.
    let leaf = id.svid().expect("client SVID");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf.leaf().as_ref());
    let hash: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let seen = app.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].head,
        format!(
            "GET /h?q=1 HTTP/1.1\r\nHost: svc\r\nX-Keep: yes\r\nx-spiffe-id: {CLIENT}\r\n\
             x-forwarded-client-cert: By={SERVER};Hash={hash};URI={CLIENT}\r\n\r\n"
        )
    );
}

#[tokio::test]
async fn a_chunked_request_mid_connection_goes_to_the_general_path_and_the_connection_goes_on() {
    let app = app(|mut c| async move {
        while let Some(req) = c.request().await {
            let body = format!(
                "{} {} {}",
                req.head.split(' ').next().unwrap(),
                req.target(),
                String::from_utf8_lossy(&req.body)
            );
            if !c.send(&ok(body.as_bytes())).await {
                return;
            }
        }
    })
    .await;
    let s = inbound(app.addr);
    let id = s.identity().await;
    let mut c = s.connect(&id).await;
    let r = c.exchange(&get("/1")).await;
    assert_eq!((r.head, r.body), ok_forwarded(b"GET /1 "));
    // Declined (Transfer-Encoding): served by hyper from here on.
    c.send(b"POST /2 HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.send(b"3;x=y\r\nefg\r\n0\r\n\r\n").await.unwrap();
    let r = c.response(false).await.unwrap();
    assert_eq!(
        (r.status, r.text()),
        (200, "POST /2 abcdefg".into()),
        "{r:?}"
    );
    assert!(by_general_path(&r.head), "{r:?}");
    // The general path serves the connection from then on.
    let r = c.exchange(&get("/3")).await;
    assert_eq!((r.status, r.text()), (200, "GET /3 ".into()), "{r:?}");
    assert!(by_general_path(&r.head), "{r:?}");
    let seen = app.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[1].body, b"abcdefg");
    assert!(header(&seen[1].head, "x-spiffe-id") == [CLIENT], "{seen:?}");
}

#[tokio::test]
async fn request_bodies_direct_and_over_64_kib_reach_the_app_intact() {
    let app = app(|mut c| async move {
        while let Some(req) = c.request().await {
            let body = format!("{} {}", req.target(), req.body.len());
            if !c.send(&ok(body.as_bytes())).await {
                return;
            }
        }
    })
    .await;
    let s = inbound(app.addr);
    let id = s.identity().await;
    let mut c = s.connect(&id).await;
    // 10 KiB: the direct path, the body arriving in several TLS writes.
    let small = pattern(10 * 1024, 7);
    let mut req = format!(
        "POST /small HTTP/1.1\r\nHost: svc\r\nContent-Length: {}\r\n\r\n",
        small.len()
    )
    .into_bytes();
    req.extend_from_slice(&small[..1000]);
    c.send(&req).await.unwrap();
    for piece in small[1000..].chunks(3000) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        c.send(piece).await.unwrap();
    }
    let r = c.response(false).await.unwrap();
    assert_eq!((r.head, r.body), ok_forwarded(b"/small 10240"));
    // 100 KiB: declined (over 64 KiB), streamed by the general path.
    let large = pattern(100 * 1024, 11);
    let mut req = format!(
        "POST /large HTTP/1.1\r\nHost: svc\r\nContent-Length: {}\r\n\r\n",
        large.len()
    )
    .into_bytes();
    req.extend_from_slice(&large);
    let r = c.exchange(&req).await;
    assert_eq!((r.status, r.text()), (200, "/large 102400".into()), "{r:?}");
    assert!(by_general_path(&r.head), "{r:?}");
    let seen = app.seen();
    assert_eq!(seen.len(), 2, "{} requests", seen.len());
    assert!(seen[0].body == small, "the 10 KiB body changed");
    assert!(seen[1].body == large, "the 100 KiB body changed");
}

#[tokio::test]
async fn expect_100_continue_gets_its_100_before_the_body_is_sent() {
    let app = app(|mut c| async move {
        while let Some(req) = c.request().await {
            let body = format!("{} {}", req.target(), String::from_utf8_lossy(&req.body));
            if !c.send(&ok(body.as_bytes())).await {
                return;
            }
        }
    })
    .await;
    let s = inbound(app.addr);
    let id = s.identity().await;
    let mut c = s.connect(&id).await;
    c.send(b"POST /e HTTP/1.1\r\nHost: svc\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await
        .unwrap();
    // No body until the 100 (bounded by WAIT).
    let r = c.response(false).await.expect("a 100 Continue");
    assert_eq!(r.head, "HTTP/1.1 100 Continue\r\n\r\n");
    c.send(b"hello").await.unwrap();
    let r = c.response(false).await.unwrap();
    assert_eq!((r.status, r.text()), (200, "/e hello".into()), "{r:?}");
    assert!(by_general_path(&r.head), "{r:?}");
    // And the connection goes on.
    let r = c.exchange(&get("/after")).await;
    assert_eq!((r.status, r.text()), (200, "/after ".into()), "{r:?}");
}

#[tokio::test]
async fn a_malformed_response_head_is_a_502_and_an_upstream_error() {
    let app = app(|mut c| async move {
        while c.request().await.is_some() {
            let bad = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
            if !c.send(bad).await {
                return;
            }
        }
    })
    .await;
    let s = inbound(app.addr);
    let id = s.identity().await;
    let mut c = s.connect(&id).await;
    let r = c.exchange(&get("/bad")).await;
    assert_eq!(r.status, 502, "{r:?}\n{}", s.log());
    let body = r.text();
    assert!(
        body.starts_with(&format!("ward: upstream error: the app at {} ", app.addr)),
        "{body}"
    );
    assert_eq!(header(&r.head, "content-length"), [body.len().to_string()]);
    let (_, text) = plain_get(s.admin, "/metrics", &[]).await.unwrap();
    let errors = metric(&text, "ward_upstream_errors_total{listener=\"inbound\"}");
    assert_eq!(errors, 1.0, "{text}");
}

#[tokio::test]
async fn an_app_closing_in_the_middle_of_a_body_closes_the_client_connection() {
    let app = app(|mut c| async move {
        while let Some(req) = c.request().await {
            if req.target() == "/cut" {
                let mut resp =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n{DATE}\r\n").into_bytes();
                resp.extend_from_slice(&[b'x'; 40]);
                c.send(&resp).await;
                return;
            }
            if !c.send(&ok(b"fine")).await {
                return;
            }
        }
    })
    .await;
    let s = inbound(app.addr);
    let id = s.identity().await;
    let mut c = s.connect(&id).await;
    c.send(&get("/cut")).await.unwrap();
    let head = c.head().await.unwrap();
    assert_eq!(
        head,
        format!("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n{DATE}\r\n")
    );
    // The 40 bytes there are, then the end of the connection (clean or not): the
    // client sees fewer bytes than the length, and no later response.
    let (got, end) = c.rest().await;
    assert_eq!(got, [b'x'; 40], "end: {end:?}");
    if let Err(e) = &end {
        assert_ne!(e.kind(), io::ErrorKind::TimedOut, "ward left it open");
    }
    // ward goes on serving.
    let mut c = s.connect(&id).await;
    let r = c.exchange(&get("/ok")).await;
    assert_eq!((r.head, r.body), ok_forwarded(b"fine"));
}

#[tokio::test]
async fn an_app_connection_closed_after_a_keep_alive_response_is_replaced() {
    // Answers one request per connection, keep-alive, then closes without saying so;
    // after `/then-drop`, it first takes the next request and closes without an answer
    // (its close racing ward's next request, seen from the app's side).
    let app = app(|mut c| async move {
        if let Some(req) = c.request().await {
            let body = format!("{} {}", c.n, req.target());
            c.send(&ok(body.as_bytes())).await;
            if req.target() == "/then-drop" {
                let _ = c.request().await;
            }
        }
    })
    .await;
    let s = inbound(app.addr);
    let id = s.identity().await;
    let mut c = s.connect(&id).await;
    let r = c.exchange(&get("/1")).await;
    assert_eq!((r.head, r.body), ok_forwarded(b"1 /1"));
    // Time for the app's close to reach ward: it is seen before the next request.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = c.exchange(&get("/2")).await;
    assert_eq!((r.head, r.body), ok_forwarded(b"2 /2"));
    // No pause: the close may race the request, which (a GET) is sent again.
    for i in 3..6 {
        let r = c.exchange(&get(&format!("/{i}"))).await;
        assert_eq!(
            (r.head, r.body),
            ok_forwarded(format!("{i} /{i}").as_bytes())
        );
    }
    // The request reaches the app connection as it closes: a GET is sent again on a
    // new one.
    let r = c.exchange(&get("/then-drop")).await;
    assert_eq!((r.head, r.body), ok_forwarded(b"6 /then-drop"));
    let r = c.exchange(&get("/again")).await;
    assert_eq!((r.head, r.body), ok_forwarded(b"7 /again"));
    let seen = app.seen();
    let last: Vec<_> = seen.iter().skip(5).map(|r| (r.conn, r.target())).collect();
    assert_eq!(
        last,
        [(6, "/then-drop"), (6, "/again"), (7, "/again")],
        "{seen:?}"
    );
}

#[tokio::test]
async fn an_http_1_0_request_is_answered_by_the_general_path() {
    let app = plain_app().await;
    let s = inbound(app.addr);
    let id = s.identity().await;
    let mut c = s.connect(&id).await;
    let r = c.exchange(b"GET /ten HTTP/1.0\r\nHost: svc\r\n\r\n").await;
    assert_eq!((r.status, r.text()), (200, "1 /ten".into()), "{r:?}");
    assert!(r.head.starts_with("HTTP/1."), "{}", r.head);
    assert!(by_general_path(&r.head), "{r:?}");
    // HTTP/1.0 without keep-alive: the connection ends after the response.
    let (rest, _) = c.rest().await;
    assert!(rest.is_empty(), "{rest:?}");
    let seen = app.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(header(&seen[0].head, "x-spiffe-id"), [CLIENT]);
}

#[tokio::test]
async fn a_1_mib_response_body_arrives_complete_and_unchanged() {
    let big = pattern(1 << 20, 5);
    let sent = big.clone();
    let app = app(move |mut c| {
        let big = sent.clone();
        async move {
            while let Some(req) = c.request().await {
                let body = if req.target() == "/big" {
                    big.clone()
                } else {
                    b"small".to_vec()
                };
                if !c.send(&ok(&body)).await {
                    return;
                }
            }
        }
    })
    .await;
    let s = inbound(app.addr);
    let id = s.identity().await;
    let mut c = s.connect(&id).await;
    let r = c.exchange(&get("/big")).await;
    assert_eq!(r.head, ok_forwarded(&big).0);
    assert!(r.body == big, "the 1 MiB body changed");
    let r = c.exchange(&get("/small")).await;
    assert_eq!((r.head, r.body), ok_forwarded(b"small"));
}

/// A body that ends at the app's close, cut by an app reset: only a clean TLS close
/// tells the client such a body is whole, so ward must not send one (the general path
/// does not either).
#[tokio::test]
async fn a_body_ending_at_close_cut_by_an_app_reset_does_not_end_cleanly() {
    let app = app(|mut c| async move {
        if c.request().await.is_none() {
            return;
        }
        let mut resp = format!("HTTP/1.0 200 OK\r\n{DATE}\r\n").into_bytes();
        resp.extend_from_slice(&[b'x'; 1000]);
        c.send(&resp).await;
        // The bytes reach ward first; then the app aborts.
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.reset();
    })
    .await;
    let s = inbound(app.addr);
    let id = s.identity().await;
    let mut c = s.connect(&id).await;
    c.send(&get("/abort")).await.unwrap();
    let head = c.head().await.unwrap();
    assert_eq!(
        head,
        format!("HTTP/1.1 200 OK\r\n{DATE}connection: close\r\n\r\n")
    );
    let (got, end) = c.rest().await;
    assert_eq!(got, [b'x'; 1000]);
    // Only the end of the connection delimits this body: a clean close (close_notify)
    // would tell the client it has all of it.
    let e = end.expect_err("an aborted body ended with a clean TLS close");
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
}

#[tokio::test]
async fn a_connection_header_naming_content_length_cannot_smuggle_a_request() {
    let app = app(|mut c| async move {
        while let Some(req) = c.request().await {
            if !c.send(&ok(req.target().as_bytes())).await {
                return;
            }
        }
    })
    .await;
    let s = inbound(app.addr);
    let id = s.identity().await;
    let mut c = s.connect(&id).await;
    // Were Content-Length dropped as hop-by-hop while ward framed the body by it, the
    // app would read the body as a second request, forged identity and all.
    let inner =
        b"GET /admin HTTP/1.1\r\nHost: app\r\nX-Spiffe-Id: spiffe://example.org/admin\r\n\r\n";
    let mut req = format!(
        "POST /allowed HTTP/1.1\r\nHost: svc\r\nConnection: Content-Length\r\nContent-Length: {}\r\n\r\n",
        inner.len()
    )
    .into_bytes();
    req.extend_from_slice(inner);
    let r = c.exchange(&req).await;
    assert_eq!((r.status, r.text()), (200, "/allowed".into()), "{r:?}");
    let r = c.exchange(&get("/next")).await;
    assert_eq!((r.status, r.text()), (200, "/next".into()), "{r:?}");
    let seen = app.seen();
    let targets: Vec<&str> = seen.iter().map(Seen::target).collect();
    assert_eq!(targets, ["/allowed", "/next"], "{seen:?}");
    assert_eq!(seen[0].body, inner);
    assert_eq!(header(&seen[0].head, "x-spiffe-id"), [CLIENT], "{seen:?}");
}

#[tokio::test]
async fn wards_own_answer_to_head_has_no_body_and_the_connection_goes_on() {
    let app = plain_app().await;
    let s = inbound(app.addr);
    let id = s.identity().await;
    let mut c = s.connect(&id).await;
    let r = c
        .exchange(b"HEAD /a/../b HTTP/1.1\r\nHost: svc\r\n\r\n")
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let length: usize = header(&r.head, "content-length")[0].parse().unwrap();
    assert!(length > 0, "{r:?}");
    // Had the body been sent after all, it would be read here as the next response.
    let r = c.exchange(&get("/after")).await;
    assert_eq!((r.head, r.body), ok_forwarded(b"1 /after"));
}
