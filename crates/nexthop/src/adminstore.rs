//! Admin overrides (`lb set-admin`) that survive a restart and every reload: kept in
//! `STATE_DIR/admin.json` (`state_dir` in the config), written atomically (a new file, fsync,
//! rename over the old one, fsync of the directory), read at start and applied whenever a load
//! balancer (re)starts. The last `set-admin` of a backend wins over the config's `admin_state`
//! until the next one (`none` gives the backend back to its probes).
//!
//! Without `state_dir` the overrides live in memory, as before, and the API says so.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use api_types::AdminState;

/// Load balancer name → backend → the state last set.
type Overrides = BTreeMap<String, BTreeMap<IpAddr, AdminState>>;

#[derive(Debug, Default)]
pub struct AdminStore {
    /// `STATE_DIR/admin.json`; None: nothing is persisted.
    file: Option<PathBuf>,
    overrides: Overrides,
}

impl AdminStore {
    /// The store of `state_dir` (created, owner-only, when missing), with what it holds.
    pub fn open(state_dir: Option<&Path>) -> anyhow::Result<Self> {
        let Some(dir) = state_dir else {
            return Ok(Self::default());
        };
        if !dir.exists() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("state_dir {}", dir.display()))?;
        }
        let file = dir.join("admin.json");
        let overrides = match std::fs::read_to_string(&file) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: not the admin overrides this version writes; fix or remove it (the overrides it held are lost)",
                    file.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Overrides::new(),
            Err(e) => return Err(e).with_context(|| format!("{}", file.display())),
        };
        Ok(Self {
            file: Some(file),
            overrides,
        })
    }

    /// The overrides of one load balancer.
    pub fn overrides(&self, lb: &str) -> BTreeMap<IpAddr, AdminState> {
        self.overrides.get(lb).cloned().unwrap_or_default()
    }

    /// Records a `set-admin` and writes the store; true when it is on disk.
    pub fn record(&mut self, lb: &str, backend: IpAddr, state: AdminState) -> anyhow::Result<bool> {
        self.overrides
            .entry(lb.to_string())
            .or_default()
            .insert(backend, state);
        let Some(file) = &self.file else {
            return Ok(false);
        };
        let text = serde_json::to_string_pretty(&self.overrides)?;
        write_atomically(file, text.as_bytes())
            .with_context(|| format!("writing {}", file.display()))?;
        Ok(true)
    }
}

/// Replaces `file` with `bytes` so that a crash leaves the old or the new content, never a mix.
fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = file.parent().unwrap_or(Path::new("."));
    let tmp = file.with_extension("json.new");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_survive_a_reopen() {
        let dir = std::env::temp_dir().join(format!("nexthop-admin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let nva1: IpAddr = "10.1.2.10".parse().unwrap();
        let mut s = AdminStore::open(Some(&dir)).unwrap();
        assert!(s.record("nva-ilb", nva1, AdminState::Drain).unwrap());
        let again = AdminStore::open(Some(&dir)).unwrap();
        assert_eq!(again.overrides("nva-ilb")[&nva1], AdminState::Drain);
        assert!(again.overrides("other").is_empty());
        // A file that is not ours is an error that names it, not an empty store.
        std::fs::write(dir.join("admin.json"), "{oops").unwrap();
        let e = AdminStore::open(Some(&dir)).unwrap_err();
        assert!(format!("{e:#}").contains("admin.json"), "{e:#}");
        std::fs::remove_dir_all(&dir).unwrap();
        // No state_dir: kept in memory only.
        let mut m = AdminStore::open(None).unwrap();
        assert!(!m.record("nva-ilb", nva1, AdminState::Down).unwrap());
        assert_eq!(m.overrides("nva-ilb")[&nva1], AdminState::Down);
    }
}
