//! Log set-up: `RUST_LOG` filters (default `info`), `WARD_LOG_FORMAT=json` for JSON lines.
//!
//! Logs go to stderr so stdout stays for command output. They go through one buffer
//! instead of one `write(2)` per line: the access log writes a line per request, and
//! on the shared bench an unbuffered write per request cost about a quarter of ward's
//! keep-alive throughput. What is buffered is bounded in time: a background thread
//! flushes every [`FLUSH_EVERY`], a `WARN` or `ERROR` line is flushed at once (so
//! problems are never held back), and [`flush`] runs before `main` returns.
//!
//! The per-request access-log line of the http mode ([`request`]) is written by ward
//! itself, in exactly the layout `tracing`'s text or JSON formatter gives it, straight
//! into the buffer: going through the formatter (field visitors, one `fmt` call per
//! field, a timestamp formatter) cost about a twentieth of ward's CPU per request.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{self, BufWriter, IsTerminal, Stderr, Write};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Longest time an `INFO` (or more verbose) line waits in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Buffer size: many access-log lines per `write(2)` under load.
const BUFFER_BYTES: usize = 64 * 1024;

static STDERR: OnceLock<Mutex<BufWriter<Stderr>>> = OnceLock::new();

fn buffer() -> &'static Mutex<BufWriter<Stderr>> {
    STDERR.get_or_init(|| Mutex::new(BufWriter::with_capacity(BUFFER_BYTES, io::stderr())))
}

fn lock() -> MutexGuard<'static, BufWriter<Stderr>> {
    // A panic while holding the lock (only possible in a debug build: release aborts)
    // leaves at worst a partial line; logging must go on.
    buffer()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes out whatever log lines are buffered.
pub fn flush() {
    let _ = lock().flush();
}

/// The subscriber's writer: one locked buffer per event.
struct BufferedStderr;

/// One event's access to the buffer; flushes on drop when the event is a problem.
struct EventWriter {
    buf: MutexGuard<'static, BufWriter<Stderr>>,
    flush_on_drop: bool,
}

impl Write for EventWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.write(bytes)
    }
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.write_all(bytes)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.buf.flush()
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if self.flush_on_drop {
            let _ = self.buf.flush();
        }
    }
}

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            buf: lock(),
            flush_on_drop: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        EventWriter {
            buf: lock(),
            flush_on_drop: flushed_at_once(meta.level()),
        }
    }
}

/// WARN and ERROR lines are written out at once (levels order by verbosity:
/// ERROR < WARN < INFO).
fn flushed_at_once(level: &Level) -> bool {
    *level <= Level::WARN
}

/// The layouts [`request`] writes itself. Unset (tests, or colours at a terminal):
/// the line goes through `tracing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Text,
    Json,
}

static LAYOUT: OnceLock<Layout> = OnceLock::new();

/// One HTTP request as the access log records it (target `access`, level INFO).
#[derive(Debug)]
pub struct RequestLog<'a> {
    pub listener: &'a str,
    pub remote: &'a str,
    pub peer: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub decision: &'a str,
    pub rule: &'a str,
    pub duration_ms: u64,
}

/// Logs one HTTP request, unless `RUST_LOG` filters the `access` target out.
pub fn request(r: &RequestLog<'_>) {
    if !tracing::enabled!(target: "access", Level::INFO) {
        return;
    }
    match LAYOUT.get() {
        Some(&layout) => {
            thread_local! {
                static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
            }
            LINE.with(|line| {
                let mut line = line.borrow_mut();
                line.clear();
                r.write(layout, SystemTime::now(), &mut line);
                let _ = lock().write_all(line.as_bytes());
            });
        }
        None => request_via_tracing(r),
    }
}

/// The same line through `tracing`'s formatter (the reference layout).
fn request_via_tracing(r: &RequestLog<'_>) {
    tracing::info!(target: "access", listener = %r.listener, remote = %r.remote,
        peer = %r.peer, method = %r.method, path = %r.path, status = r.status,
        decision = r.decision, rule = r.rule, duration_ms = r.duration_ms, "request");
}

impl RequestLog<'_> {
    /// Appends the line (newline included) as `tracing`'s formatter would write it,
    /// except that control characters in the path are escaped in text lines (`tracing`
    /// escapes only terminal controls, and only in messages), so no client can forge a
    /// line or drive a terminal. (The http crate already refuses controls in paths;
    /// this does not depend on it.)
    fn write(&self, layout: Layout, now: SystemTime, out: &mut String) {
        match layout {
            Layout::Text => {
                let _ = write!(out, "{}", humantime::format_rfc3339_micros(now));
                // Listener names, addresses, SPIFFE IDs and methods are validated
                // text with no control characters; the path comes from the client.
                out.push_str("  INFO access: request listener=");
                out.push_str(self.listener);
                out.push_str(" remote=");
                out.push_str(self.remote);
                out.push_str(" peer=");
                out.push_str(self.peer);
                out.push_str(" method=");
                out.push_str(self.method);
                out.push_str(" path=");
                push_escaped(out, self.path);
                let _ = write!(
                    out,
                    " status={} decision={:?} rule={:?} duration_ms={}",
                    self.status, self.decision, self.rule, self.duration_ms
                );
            }
            Layout::Json => {
                let _ = write!(
                    out,
                    "{{\"timestamp\":\"{}\",\"level\":\"INFO\",\"fields\":{{\"message\":\"request\",\"listener\":",
                    humantime::format_rfc3339_micros(now)
                );
                push_json(out, self.listener);
                out.push_str(",\"remote\":");
                push_json(out, self.remote);
                out.push_str(",\"peer\":");
                push_json(out, self.peer);
                out.push_str(",\"method\":");
                push_json(out, self.method);
                out.push_str(",\"path\":");
                push_json(out, self.path);
                let _ = write!(out, ",\"status\":{},\"decision\":", self.status);
                push_json(out, self.decision);
                out.push_str(",\"rule\":");
                push_json(out, self.rule);
                let _ = write!(
                    out,
                    ",\"duration_ms\":{}}},\"target\":\"access\"}}",
                    self.duration_ms
                );
            }
        }
        out.push('\n');
    }
}

/// Appends `s` with every C0 control, DEL and C1 control escaped (`\x0a`, `\u{85}`):
/// a superset of what `tracing` escapes in messages (ESC, BEL, BS, FF, DEL, C1), in
/// the same notation, so that no line break either.
fn push_escaped(out: &mut String, s: &str) {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\u{80}'..='\u{9f}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Appends `s` as a JSON string, escaped as `serde_json` escapes it.
fn push_json(out: &mut String, s: &str) {
    out.push('"');
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

/// Installs the global subscriber and starts the periodic flush.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: a log file or collector gets plain
    // text (and formatting escape codes per field cost measurable time per request).
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(BufferedStderr);
    let json = std::env::var("WARD_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    if !ansi {
        let _ = LAYOUT.set(if json { Layout::Json } else { Layout::Text });
    }
    // A plain thread, not a task: it must keep flushing whatever the runtime does, and
    // commands that never start a runtime log too. It only wakes FLUSH_EVERY.
    let _ = std::thread::Builder::new()
        .name("ward-log-flush".into())
        .stack_size(64 * 1024)
        .spawn(|| loop {
            std::thread::sleep(FLUSH_EVERY);
            let mut buf = lock();
            if !buf.buffer().is_empty() {
                let _ = buf.flush();
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// What `tracing`'s own formatter (text, or JSON) writes for `r`, without the
    /// timestamp.
    fn via_tracing(r: &RequestLog<'_>, json: bool) -> String {
        #[derive(Clone, Default)]
        struct Capture(Arc<Mutex<Vec<u8>>>);
        impl Write for Capture {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let capture = Capture::default();
        let writer = capture.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_writer(move || writer.clone());
        if json {
            tracing::subscriber::with_default(builder.json().finish(), || request_via_tracing(r));
        } else {
            tracing::subscriber::with_default(builder.finish(), || request_via_tracing(r));
        }
        let bytes = capture.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn sample<'a>(path: &'a str, rule: &'a str) -> RequestLog<'a> {
        RequestLog {
            listener: "inbound",
            remote: "[::1]:51838",
            peer: "spiffe://example.org/ns/default/sa/client",
            method: "GET",
            path,
            status: 403,
            decision: "deny",
            rule,
            duration_ms: 12,
        }
    }

    #[test]
    fn access_lines_have_the_layout_of_the_tracing_formatter() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
        let ts = humantime::format_rfc3339_micros(now).to_string();
        assert_eq!(ts, "2026-11-18T11:06:40.123456Z");
        for r in [
            sample("/", "--allow"),
            sample("/a%20b/%C3%A9?q=1&r=\"x\"", "rule \"quoted\" \\ é\ttab"),
            sample("/ünïcode", "default-deny"),
        ] {
            let mut text = String::new();
            r.write(Layout::Text, now, &mut text);
            assert_eq!(text, format!("{ts} {}", via_tracing(&r, false)));

            let mut json = String::new();
            r.write(Layout::Json, now, &mut json);
            let reference = via_tracing(&r, true);
            assert_eq!(
                json,
                format!("{{\"timestamp\":\"{ts}\",{}", &reference[1..])
            );
            // And it is JSON.
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(v["fields"]["rule"], r.rule);
            assert_eq!(v["fields"]["status"], 403);
        }
    }

    #[test]
    fn control_characters_cannot_forge_an_access_line() {
        let r = sample("/x\n2026-01-01T00:00:00Z  INFO forged\u{1b}[31m\u{85}", "r");
        let mut text = String::new();
        r.write(Layout::Text, SystemTime::UNIX_EPOCH, &mut text);
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.ends_with('\n'));
        assert!(
            text.contains("path=/x\\x0a2026-01-01T00:00:00Z  INFO forged\\x1b[31m\\u{85} "),
            "{text}"
        );
        let mut json = String::new();
        r.write(Layout::Json, SystemTime::UNIX_EPOCH, &mut json);
        assert_eq!(json.matches('\n').count(), 1, "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["fields"]["path"], r.path);
    }

    #[test]
    fn problems_are_flushed_at_once_and_routine_lines_wait_for_the_buffer() {
        assert!(flushed_at_once(&Level::ERROR));
        assert!(flushed_at_once(&Level::WARN));
        assert!(!flushed_at_once(&Level::INFO));
        assert!(!flushed_at_once(&Level::DEBUG));
        assert!(!flushed_at_once(&Level::TRACE));
    }
}
