//! `[mrt] updates_dir`: every UPDATE the instances receive, as BGP4MP_MESSAGE_AS4 records
//! (RFC 6396) in `updates.<unix time>.mrt`, a new file every `rotate_s` seconds.
//!
//! ```text
//!  instance tasks ──record bytes (try_send: a full queue drops and counts)──> writer thread
//!      ──> updates.1796680200.mrt, updates.1796681100.mrt, …
//! ```
//!
//! The instance tasks never wait for the disk: a slow disk costs records (counted, logged), not
//! BGP sessions.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bgp::wire::UpdateMessage;

/// Records queued for the writer before new ones are dropped.
const QUEUE: usize = 64 * 1024;

/// The sending side, one clone per instance task.
#[derive(Clone)]
pub struct MrtLog {
    tx: SyncSender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl MrtLog {
    /// Starts the writer in `cfg.updates_dir` (created if missing); None when no directory is
    /// configured. A directory that cannot be written is an error (nothing starts).
    pub fn start(cfg: &config::Mrt) -> anyhow::Result<Option<Self>> {
        let Some(dir) = cfg.updates_dir.clone() else {
            return Ok(None);
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("mrt.updates_dir {}", dir.display()))?;
        let probe = dir.join(".nexthop-write-test");
        std::fs::write(&probe, b"")
            .with_context(|| format!("mrt.updates_dir {}: cannot write", dir.display()))?;
        let _ = std::fs::remove_file(&probe);
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let rotate = u64::from(cfg.rotate_s.max(60));
        std::thread::Builder::new()
            .name("mrt-writer".into())
            .spawn(move || {
                let mut w = Writer {
                    dir,
                    rotate,
                    file: None,
                };
                loop {
                    match rx.recv_timeout(Duration::from_secs(1)) {
                        Ok(rec) => {
                            w.write(&rec);
                            // Whatever else is queued goes in the same flush.
                            for rec in rx.try_iter() {
                                w.write(&rec);
                            }
                            w.flush();
                        }
                        Err(RecvTimeoutError::Timeout) => w.flush(),
                        Err(RecvTimeoutError::Disconnected) => {
                            w.flush();
                            return;
                        }
                    }
                }
            })
            .context("starting the MRT writer")?;
        Ok(Some(Self { tx, dropped }))
    }

    /// Logs `update`, received from `peer` (AS, address) on the session with `local`.
    pub fn update(&self, peer: (u32, IpAddr), local: (u32, IpAddr), update: &UpdateMessage) {
        let mut msg = Vec::new();
        bgp::mrt::emit_update(update, &mut msg);
        let mut rec = Vec::with_capacity(msg.len() + 32);
        let now = u32::try_from(unix_now()).unwrap_or(u32::MAX);
        bgp::mrt::bgp4mp_message(now, peer, local, &msg, &mut rec);
        if self.tx.try_send(rec).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    "MRT update log behind the disk: records dropped"
                );
            }
        }
    }
}

/// The writer thread's state: the current file and when it ends.
struct Writer {
    dir: PathBuf,
    rotate: u64,
    /// The open file and the end of its period.
    file: Option<(std::io::BufWriter<std::fs::File>, u64)>,
}

impl Writer {
    fn write(&mut self, rec: &[u8]) {
        let now = unix_now();
        if self.file.as_ref().is_some_and(|(_, end)| now >= *end) {
            self.flush();
            self.file = None;
        }
        if self.file.is_none() {
            // Periods are aligned on multiples of `rotate` (files of two restarts line up).
            let start = now - now % self.rotate;
            let path = file_name(&self.dir, start);
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
            {
                Ok(f) => self.file = Some((std::io::BufWriter::new(f), start + self.rotate)),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot open the MRT update log");
                    return;
                }
            }
        }
        if let Some((f, _)) = &mut self.file {
            if let Err(e) = f.write_all(rec) {
                tracing::warn!(error = %e, "cannot write the MRT update log");
            }
        }
    }

    fn flush(&mut self) {
        if let Some((f, _)) = &mut self.file {
            let _ = f.flush();
        }
    }
}

/// `DIR/updates.<period start, unix seconds>.mrt`.
pub fn file_name(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("updates.{start}.mrt"))
}
