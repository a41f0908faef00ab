//! Shared helpers for the `identity_*` integration tests: run the real `ward` binary,
//! with every wait bounded in time.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test.
pub fn ward_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ward")
}

/// A command for the binary with a quiet, predictable environment.
pub fn ward() -> Command {
    let mut cmd = Command::new(ward_bin());
    cmd.env_remove("SPIFFE_ENDPOINT_SOCKET")
        .env_remove("WARD_TRUST_DOMAIN")
        .env("RUST_LOG", "warn");
    cmd
}

/// Runs a command to completion, killed after `limit`.
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ward");
    let id = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait for ward"),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(id.to_string())
                .status();
            panic!("command {cmd:?} did not finish within {limit:?}");
        }
    }
}

/// `ward ARGS...` to completion (30 s at most).
pub fn run_ward(args: &[&str]) -> Output {
    let mut cmd = ward();
    cmd.args(args);
    run_with_timeout(cmd, Duration::from_secs(30))
}

/// Text of a stream, for assertions.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running `ward dev`, stopped (SIGKILL) when dropped.
pub struct Dev {
    child: Child,
    /// Every stderr line seen so far (the ready lines and later the logs).
    lines: mpsc::Receiver<String>,
    /// The ready lines.
    pub ready: Vec<String>,
}

impl Dev {
    /// Starts `ward dev ARGS...` and waits (60 s at most) for one ready line per socket.
    pub fn start(args: &[&str], sockets: usize) -> Dev {
        Dev::start_with_env(args, &[], sockets)
    }

    /// [`Dev::start`] with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)], sockets: usize) -> Dev {
        let mut cmd = ward();
        cmd.envs(env.iter().copied());
        cmd.arg("dev")
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ward dev");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut dev = Dev {
            child,
            lines,
            ready: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while dev.ready.len() < sockets {
            let left = deadline.saturating_duration_since(Instant::now());
            match dev.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("ward dev: serving ") => dev.ready.push(line),
                Ok(line) => seen.push(line),
                Err(_) => {
                    let status = dev.child.try_wait().ok().flatten();
                    panic!(
                        "ward dev {args:?} not ready within 60s (exit: {status:?}); stderr:\n{}",
                        seen.join("\n")
                    );
                }
            }
        }
        dev
    }

    /// Stderr lines that arrived since the last call (waits up to `wait` for the first).
    pub fn drain_lines(&self, wait: Duration) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(line) = self.lines.recv_timeout(wait) {
            out.push(line);
        }
        while let Ok(line) = self.lines.try_recv() {
            out.push(line);
        }
        out
    }

    /// Sends SIGTERM and waits (10 s at most) for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for ward dev") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ward dev ignored SIGTERM for 10s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process at once (no clean-up: the crash case).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `unix://` address of a socket path.
pub fn unix(path: &Path) -> String {
    format!("unix://{}", path.display())
}

/// A fresh temporary directory with a short path (Unix socket paths are limited to
/// 108 bytes).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ward-id")
        .tempdir_in("/tmp")
        .expect("tempdir")
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Path of a file in the test data folder.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}
