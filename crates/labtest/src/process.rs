//! Child processes that die with their handle, and per-instance temp directories.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A number unique within this process; with the pid it makes names unique across the
/// parallel tests of one `cargo test` and across concurrent test binaries.
pub(crate) fn unique_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Keeps only `[A-Za-z0-9_-]` and at most `max` characters, for names that end up in paths,
/// namespace names and unix socket paths (which are limited to 107 bytes).
pub(crate) fn sanitize(tag: &str, max: usize) -> String {
    tag.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(max)
        .collect()
}

/// A fresh directory `$TMPDIR/lt-<pid>-<n>-<tag>` for one daemon's config, sockets and logs.
///
/// Dropping it removes it — unless the thread is panicking or `LABTEST_KEEP=1` is set, in which
/// case it stays and its path is printed, so a failed test leaves its configs and logs behind.
#[derive(Debug)]
pub struct Workdir {
    path: PathBuf,
}

impl Workdir {
    pub fn new(tag: &str) -> io::Result<Workdir> {
        let name = format!(
            "lt-{}-{}-{}",
            std::process::id(),
            unique_id(),
            sanitize(tag, 24)
        );
        let path = std::env::temp_dir().join(name);
        fs::create_dir_all(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("create {}: {e}", path.display())))?;
        Ok(Workdir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` inside this directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `contents` to `name` inside this directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> io::Result<PathBuf> {
        let p = self.file(name);
        fs::write(&p, contents)
            .map_err(|e| io::Error::new(e.kind(), format!("write {}: {e}", p.display())))?;
        Ok(p)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let keep = std::env::var("LABTEST_KEEP").is_ok_and(|v| v == "1");
        if std::thread::panicking() || keep {
            eprintln!("labtest: kept {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A child process that is stopped when the handle drops: SIGTERM first so daemons clean up
/// (FRR removes its `/var/tmp/frr/bgpd.<pid>` crash-log dir only then), SIGKILL after 3 s.
/// Its stdout and stderr go to one file.
#[derive(Debug)]
pub struct Process {
    child: Child,
    name: String,
    output: PathBuf,
}

impl Process {
    /// Spawns `cmd` with stdin closed and stdout+stderr appended to `output`. `name` is used in
    /// messages only.
    pub fn spawn(mut cmd: Command, name: &str, output: &Path) -> io::Result<Process> {
        let out = File::options().create(true).append(true).open(output)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("spawn {name} ({cmd:?}): {e}")))?;
        Ok(Process {
            child,
            name: name.to_string(),
            output: output.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// False once the process has exited (it is reaped then).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.output).unwrap_or_default()
    }

    pub fn output_path(&self) -> &Path {
        &self.output
    }

    /// Stops the process (SIGTERM, then SIGKILL after 3 s) and reaps it. Idempotent.
    pub fn stop(&mut self) {
        if !self.is_running() {
            return;
        }
        signal(self.pid(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the process at once (SIGKILL: no shutdown, no goodbye to its peers, as a crash or
    /// a host failure) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Returns an error naming the process and quoting the end of its output if it has exited.
    pub(crate) fn check_alive(&mut self) -> io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "{} exited early; output ({}):\n{}",
            self.name,
            self.output.display(),
            tail(&self.output(), 40)
        )))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `SIG<sig>` to one pid. std has no kill(2) and this crate has no unsafe, so it goes
/// through the shell's builtin (present even where procps is not).
pub(crate) fn signal(pid: u32, sig: &str) {
    let _ = Command::new("sh")
        .args([
            "-c",
            "kill -s \"$1\" \"$2\" 2>/dev/null",
            "sh",
            sig,
            &pid.to_string(),
        ])
        .status();
}

/// Runs `cmd` to completion; its stdout on success, an error quoting the command, the exit
/// status and stderr otherwise.
pub fn run(cmd: &mut Command) -> io::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("run {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `n` lines of `s`.
pub(crate) fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A command for `program` that runs inside namespace `netns` (via `ip netns exec`) or, with
/// `None`, on the host.
pub(crate) fn command_in(netns: Option<&str>, program: &Path) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Resolves a peer binary or explains which package is missing.
pub(crate) fn binary(name: &str, package: &str) -> io::Result<PathBuf> {
    crate::env::find_binary(name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("`{name}` not found (install the `{package}` package)"),
        )
    })
}
