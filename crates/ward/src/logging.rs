//! Log set-up: `RUST_LOG` filters (default `info`), `WARD_LOG_FORMAT=json` for JSON lines.
//!
//! Logs go to stderr so stdout stays for command output. They go through one buffer
//! instead of one `write(2)` per line: the access log writes a line per request, and
//! on the shared bench an unbuffered write per request cost about a quarter of ward's
//! keep-alive throughput. What is buffered is bounded in time: a background thread
//! flushes every [`FLUSH_EVERY`], a `WARN` or `ERROR` line is flushed at once (so
//! problems are never held back), and [`flush`] runs before `main` returns.

use std::io::{self, BufWriter, IsTerminal, Stderr, Write};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

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
    if std::env::var("WARD_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
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

    #[test]
    fn problems_are_flushed_at_once_and_routine_lines_wait_for_the_buffer() {
        assert!(flushed_at_once(&Level::ERROR));
        assert!(flushed_at_once(&Level::WARN));
        assert!(!flushed_at_once(&Level::INFO));
        assert!(!flushed_at_once(&Level::DEBUG));
        assert!(!flushed_at_once(&Level::TRACE));
    }
}
