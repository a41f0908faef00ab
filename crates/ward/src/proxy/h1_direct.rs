//! Inbound http mode, HTTP/1.1 forwarded directly: each request's head is parsed and
//! rewritten (ward-h1), the request goes to the client connection's own app connection
//! as bytes, and the response comes back as bytes, its head rewritten and its body
//! followed only far enough to know where it ends.
//!
//! Why not hyper's server and client here, as for HTTP/2: on the keep-alive benchmark
//! most of ward's user-space time per request went to hyper parsing each head into a
//! `HeaderMap` and writing it out again, twice per exchange, plus the channels and
//! tasks between a server connection, a client connection and a body. Forwarding bytes
//! does one parse per head and one write per direction, in the client connection's task.
//!
//! Only plain requests take this path (see [`ward_h1::Declined`]): an HTTP/1.1 request
//! in origin form with no body or a `Content-Length` one of at most 64 KiB. At the first
//! request that is anything else (an upgrade, `CONNECT`, `Expect`, a chunked or large
//! body, HTTP/1.0, an HTTP/2 preface, a malformed head), the connection is handed with
//! its unread bytes to the general path ([`super::http`]), which serves it from then on.

use std::io;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use ward_h1::{Chunked, Framing, Parsed, RequestHead, ResponseRewrite};

use super::http::{
    path_is_normal, HttpInbound, Peer, APP_REUSE_WITHIN, APP_SWEEP_EVERY, H1_MAX_BUF,
};
use super::inbound::InboundTls;
use super::io::{target_display, TargetStream};

/// How a connection left this path.
pub enum End {
    /// It is over (closed by either side, idle, draining, or broken).
    Closed,
    /// The next request is not one for this path: the general path serves the
    /// connection from here, starting with these bytes already read.
    HandOff(BytesMut),
}

/// Client-sent headers dropped from every request: the identity ward vouches for is
/// added by ward alone.
const STRIP: [&str; 2] = ["x-spiffe-id", "x-forwarded-client-cert"];

/// Read size for heads (and small bodies): a whole TLS record.
const READ_CHUNK: usize = 16 * 1024;

/// Serves `tls` until it closes or a request needs the general path.
pub async fn serve(
    http: &HttpInbound,
    tls: &mut InboundTls,
    peer: &Peer,
    shutdown: &mut watch::Receiver<bool>,
) -> End {
    let mut client = BytesMut::with_capacity(READ_CHUNK);
    // The rewritten request head and its body, then the response head: reused.
    let mut out = Vec::with_capacity(1024);
    let mut app: Option<App> = None;
    // Closes an app connection left unused, so idle clients do not hold one open.
    let first = tokio::time::Instant::now() + APP_SWEEP_EVERY;
    let mut sweep = tokio::time::interval_at(first, APP_SWEEP_EVERY);
    sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let req = loop {
            if !client.is_empty() {
                match ward_h1::forward_request(&client, &STRIP, &peer.h1_lines, &mut out) {
                    Ok(Parsed::Complete(req)) => break req,
                    Ok(Parsed::Partial) if client.len() < H1_MAX_BUF => {}
                    Ok(Parsed::Partial) => return End::HandOff(client),
                    Err(why) => {
                        tracing::debug!(listener = %http.name, ?why, "request left to the general HTTP path");
                        return End::HandOff(client);
                    }
                }
            } else if *shutdown.borrow() {
                // Draining: an idle connection closes now.
                let _ = tls.shutdown().await;
                return End::Closed;
            }
            client.reserve(READ_CHUNK);
            tokio::select! {
                biased;
                r = tls.read_buf(&mut client) => match r {
                    Ok(0) | Err(_) => return End::Closed,
                    Ok(_) => {}
                },
                () = super::stopped(shutdown), if client.is_empty() => {
                    let _ = tls.shutdown().await;
                    return End::Closed;
                }
                _ = sweep.tick() => {
                    if app.as_ref().is_some_and(App::stale) {
                        app = None;
                    }
                }
            }
        };
        while client.len() < req.len() {
            client.reserve(req.len() - client.len());
            match tls.read_buf(&mut client).await {
                Ok(0) | Err(_) => return End::Closed,
                Ok(_) => {}
            }
        }
        let after = Exchange {
            http,
            peer,
            request: &client[..req.len()],
            head: &req,
            shutdown,
        }
        .run(tls, &mut out, &mut app)
        .await;
        client.advance(req.len());
        match after {
            After::Keep => {}
            After::Close => {
                let _ = tls.shutdown().await;
                return End::Closed;
            }
            // No close_notify: for a body that ends at close, it would tell the client
            // that the cut-short body was whole.
            After::Abort => return End::Closed,
        }
    }
}

/// One request, from its decision to the end of its response.
struct Exchange<'a> {
    http: &'a HttpInbound,
    peer: &'a Peer,
    /// The request as received: head and body.
    request: &'a [u8],
    head: &'a RequestHead,
    /// Read when the response goes out: a drain that began meanwhile closes the client
    /// connection after it, and the response says so.
    shutdown: &'a watch::Receiver<bool>,
}

/// What becomes of the client connection after an exchange.
enum After {
    /// Open for the next request.
    Keep,
    /// Closed, politely (close_notify).
    Close,
    /// Closed at once: a response was cut short.
    Abort,
}

/// Why a response did not make it to the client.
enum Failed {
    /// Nothing of a response was sent: the client gets a 502.
    Before(io::Error),
    /// Part of the response was sent: the client connection can only be closed.
    After(u16, io::Error),
}

impl Exchange<'_> {
    /// The client connection closes after this exchange: the client asked, or ward is
    /// draining.
    fn close(&self) -> bool {
        self.head.close || *self.shutdown.borrow()
    }

    fn is_head(&self) -> bool {
        self.head.method(self.request) == "HEAD"
    }

    /// Decides, forwards and logs. `out` holds the rewritten request head on entry.
    async fn run(&self, tls: &mut InboundTls, out: &mut Vec<u8>, app: &mut Option<App>) -> After {
        let start = Instant::now();
        let http = self.http;
        let method = self.head.method(self.request);
        let target = self.head.target(self.request);
        let path = target.split_once('?').map_or(target, |(p, _)| p);
        let log = |status: u16, decision: &str, rule: &str| {
            crate::logging::request(&crate::logging::RequestLog {
                listener: &http.name,
                remote: &self.peer.remote,
                peer: self.peer.id.as_str(),
                method,
                path,
                status,
                decision,
                rule,
                duration_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        };
        if !path_is_normal(path) {
            // As in the general path: a policy on `/b/**` must not be bypassed by
            // `/a/../b` reaching an app that normalizes differently.
            let body = format!("ward: rejected: the path {path} is not in normal form\n");
            let after = self
                .own_response(tls, out, StatusCode::BAD_REQUEST, &body)
                .await;
            log(400, "reject", "-");
            return after;
        }
        let decision = http
            .shared
            .policy
            .current()
            .decide(&crate::policy::Request {
                listener: &http.name,
                peer: &self.peer.id,
                method: Some(method),
                path: Some(path),
            });
        http.metrics.authz(decision.rule.as_ref(), decision.allow);
        let rule = decision.rule.as_deref().unwrap_or("default-deny");
        if !decision.allow {
            let body = format!(
                "ward: denied: {} is not allowed {method} {path} on listener {}\n",
                self.peer.id, http.name
            );
            let after = self
                .own_response(tls, out, StatusCode::FORBIDDEN, &body)
                .await;
            log(403, "deny", rule);
            return after;
        }
        out.extend_from_slice(&self.request[self.head.head_len..]);
        match self.forward(tls, out, app).await {
            Ok((status, close)) => {
                log(status, "allow", rule);
                if close {
                    After::Close
                } else {
                    After::Keep
                }
            }
            Err(Failed::Before(e)) => {
                http.metrics.upstream_errors.inc();
                let target = target_display(&http.target);
                tracing::warn!(listener = %http.name, target, error = %e, "request to the app failed");
                let body =
                    format!("ward: upstream error: the app at {target} did not answer: {e}\n");
                let after = self
                    .own_response(tls, out, StatusCode::BAD_GATEWAY, &body)
                    .await;
                log(502, "allow", rule);
                after
            }
            Err(Failed::After(status, e)) => {
                tracing::debug!(listener = %http.name, error = %e, "response cut short; closing the connection");
                log(status, "allow", rule);
                After::Abort
            }
        }
    }

    /// Sends the request in `out` and streams the response back; returns its status and
    /// whether the client connection must close after it.
    async fn forward(
        &self,
        tls: &mut InboundTls,
        out: &mut Vec<u8>,
        app: &mut Option<App>,
    ) -> Result<(u16, bool), Failed> {
        let http = self.http;
        let mut kept = app.take().filter(App::usable);
        let (mut a, head) = loop {
            let reused = kept.is_some();
            let mut a = match kept.take() {
                Some(a) => a,
                None => App::connect(http).await.map_err(Failed::Before)?,
            };
            match a.send(out, tls, self, reused).await {
                Ok(head) => break (a, head),
                // The app closed a kept connection just as the request went out (its
                // keep-alive timeout racing ours): it never saw the request, which may
                // go again on a new connection if it is idempotent (RFC 9110, 9.2.2).
                Err(Sent::Unanswered) if reused && idempotent(self.head.method(self.request)) => {}
                Err(Sent::Unanswered) => {
                    return Err(Failed::Before(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "it closed the connection without answering",
                    )))
                }
                Err(Sent::Failed(e)) => return Err(e),
            }
        };
        a.buf.advance(head.head_len);
        let status = head.status;
        let after = |e: io::Error| Failed::After(status, e);
        let mut body = Body::new(head.framing);
        // The head and whatever of the body came with it: one write, one TLS record
        // for a small response.
        let (n, mut done) = body.take(&a.buf).map_err(after)?;
        out.extend_from_slice(&a.buf[..n]);
        a.buf.advance(n);
        tls.write_all(out).await.map_err(after)?;
        while !done {
            a.buf.reserve(super::io::COPY_BUFFER);
            let read = a.stream.read_buf(&mut a.buf).await.map_err(after)?;
            if read == 0 {
                if head.framing == Framing::UntilClose {
                    break;
                }
                return Err(after(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the app closed the connection in the middle of a response body",
                )));
            }
            let (n, d) = body.take(&a.buf).map_err(after)?;
            // Flushed piece by piece: a streamed response (server-sent events, long
            // polling) must not wait in ward for the app's next piece.
            tls.write_all(&a.buf[..n]).await.map_err(after)?;
            tls.flush().await.map_err(after)?;
            a.buf.advance(n);
            done = d;
        }
        tls.flush().await.map_err(after)?;
        // Bytes beyond the response (there was one request) mean the app and ward
        // disagree on where it ended: that connection is not used again.
        if head.app_keeps_alive && a.buf.is_empty() {
            a.last_used = Instant::now();
            *app = Some(a);
        }
        Ok((status, head.close))
    }

    /// ward's own short text answer (its head only, to a `HEAD`).
    async fn own_response(
        &self,
        tls: &mut InboundTls,
        out: &mut Vec<u8>,
        status: StatusCode,
        body: &str,
    ) -> After {
        let close = self.close();
        out.clear();
        let reason = status.canonical_reason().unwrap_or("");
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n",
                status.as_u16(),
                body.len()
            )
            .as_bytes(),
        );
        date_line(|d| out.extend_from_slice(d));
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !self.is_head() {
            out.extend_from_slice(body.as_bytes());
        }
        let sent = tls.write_all(out).await.is_ok() && tls.flush().await.is_ok();
        match (sent, close) {
            (true, false) => After::Keep,
            (true, true) => After::Close,
            (false, _) => After::Abort,
        }
    }
}

/// Methods a request of which may be sent again (RFC 9110, 9.2.2).
fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

/// How sending a request and reading its response head failed.
enum Sent {
    /// No byte came back: the app closed the connection (or reset it).
    Unanswered,
    /// Anything else.
    Failed(Failed),
}

/// The client connection's own connection to the app.
struct App {
    stream: TargetStream,
    /// Bytes read from the app and not yet forwarded.
    buf: BytesMut,
    /// When its last response ended.
    last_used: Instant,
}

impl App {
    async fn connect(http: &HttpInbound) -> io::Result<Self> {
        let stream = TargetStream::connect(&http.target, http.shared.limits.connect_timeout)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("connect: {e}")))?;
        Ok(Self {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            last_used: Instant::now(),
        })
    }

    /// Unused long enough that the app may be closing it (see [`APP_REUSE_WITHIN`]).
    fn stale(&self) -> bool {
        self.last_used.elapsed() >= APP_REUSE_WITHIN
    }

    /// Fresh, and not closed by the app meanwhile.
    fn usable(&self) -> bool {
        !self.stale() && self.stream.is_open()
    }

    /// Writes `request` and reads the final response head, forwarding 1xx heads to the
    /// client. On success the head is in `out` and `buf` starts with it.
    async fn send(
        &mut self,
        out: &mut Vec<u8>,
        tls: &mut InboundTls,
        x: &Exchange<'_>,
        reused: bool,
    ) -> Result<ward_h1::ResponseHead, Sent> {
        let before = |e: io::Error| Sent::Failed(Failed::Before(e));
        if let Err(e) = self.stream.write_all(out).await {
            return Err(if reused { Sent::Unanswered } else { before(e) });
        }
        let head_request = x.is_head();
        let mut informational_sent = false;
        loop {
            let parsed = date_line(|date| {
                let how = ResponseRewrite {
                    head_request,
                    close: x.close(),
                    date,
                };
                ward_h1::forward_response(&self.buf, &how, out)
            });
            let bad = |e: io::Error| {
                if informational_sent {
                    Sent::Failed(Failed::After(100, e))
                } else {
                    before(e)
                }
            };
            match parsed {
                Ok(Parsed::Complete(head)) if head.informational => {
                    // 100 Continue, 103 Early Hints: passed on; the final head follows.
                    self.buf.advance(head.head_len);
                    tls.write_all(out).await.map_err(bad)?;
                    tls.flush().await.map_err(bad)?;
                    informational_sent = true;
                    continue;
                }
                Ok(Parsed::Complete(head)) => return Ok(head),
                Ok(Parsed::Partial) if self.buf.len() >= H1_MAX_BUF => {
                    return Err(bad(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "its response head is larger than 64 KiB",
                    )))
                }
                Ok(Parsed::Partial) => {}
                Err(e) => return Err(bad(io::Error::new(io::ErrorKind::InvalidData, e))),
            }
            self.buf.reserve(READ_CHUNK);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) if self.buf.is_empty() && !informational_sent => {
                    return Err(Sent::Unanswered)
                }
                Ok(0) => {
                    return Err(bad(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "it closed the connection in the middle of a response head",
                    )))
                }
                Ok(_) => {}
                Err(e) if reused && self.buf.is_empty() && !informational_sent => {
                    tracing::debug!(error = %e, "kept app connection failed");
                    return Err(Sent::Unanswered);
                }
                Err(e) => return Err(bad(e)),
            }
        }
    }
}

/// Where a response body ends.
enum Body {
    Empty,
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

impl Body {
    fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty => Self::Empty,
            Framing::Length(n) => Self::Length(n),
            Framing::Chunked => Self::Chunked(Chunked::new()),
            Framing::UntilClose => Self::UntilClose,
        }
    }

    /// How much of `buf` is body, and whether the body ends there.
    fn take(&mut self, buf: &[u8]) -> io::Result<(usize, bool)> {
        Ok(match self {
            Self::Empty => (0, true),
            Self::Length(rest) => {
                let n = usize::try_from(*rest).unwrap_or(usize::MAX).min(buf.len());
                *rest -= n as u64;
                (n, *rest == 0)
            }
            Self::Chunked(c) => {
                let n = c
                    .advance(buf)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                (n, c.is_done())
            }
            Self::UntilClose => (buf.len(), false),
        })
    }
}

/// Calls `f` with the current `date: <IMF-fixdate>\r\n` line, formatted once a second.
fn date_line<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static DATE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
    }
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |t| t.as_secs());
        if d.0 != secs {
            d.0 = secs;
            d.1.clear();
            d.1.extend_from_slice(b"date: ");
            d.1.extend_from_slice(httpdate::fmt_http_date(now).as_bytes());
            d.1.extend_from_slice(b"\r\n");
        }
        f(&d.1)
    })
}
