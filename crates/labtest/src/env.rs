//! Whether a lab test can run here: root, and the peer binaries it needs.
//!
//! Tests call [`require`] (or [`require_netns`]) first and return early when it says no. In CI a skipped lab test
//! would hide a broken setup, so with `LABTEST_REQUIRE=1` in the environment a missing
//! prerequisite panics instead of skipping (`.ci/run` sets it).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Directories searched after `$PATH`: cargo's test environment often lacks the sbin
/// directories, and FRR keeps its daemons in `/usr/lib/frr`.
const EXTRA_DIRS: &[&str] = &[
    "/usr/lib/frr",
    "/usr/sbin",
    "/sbin",
    "/usr/local/sbin",
    "/usr/bin",
];

/// True when the process runs with effective uid 0 (needed for namespaces and port 179).
pub fn have_root() -> bool {
    // /proc/self/status has "Uid:\treal\teffective\tsaved\tfs"; std has no geteuid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The full path of executable `name`, from `$PATH` or the usual sbin and FRR directories.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// True when [`find_binary`] finds `name`.
pub fn have_binary(name: &str) -> bool {
    find_binary(name).is_some()
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Prints `SKIPPED: <test>: <reason>` to stderr; the test then returns. The test name is the
/// name cargo's harness gives the test's thread.
///
/// Panics instead when `LABTEST_REQUIRE=1`, so CI cannot pass by skipping.
pub fn skip(reason: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed test>");
    if std::env::var("LABTEST_REQUIRE").is_ok_and(|v| v == "1") {
        panic!("LABTEST_REQUIRE=1 but test {test} cannot run: {reason}");
    }
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing tests,
    // which would hide the skip.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {reason}");
}

/// True when the process is root and every binary in `binaries` is installed; otherwise calls
/// [`skip`] with what is missing and returns false.
///
/// ```no_run
/// if !labtest::require(&["bgpd", "vtysh"]) {
///     return;
/// }
/// ```
pub fn require(binaries: &[&str]) -> bool {
    check(binaries, false)
}

/// Like [`require`], and also checks that network namespaces can be created here (root in an
/// unprivileged container cannot). For tests that use [`crate::Netns`] or [`crate::Lan`].
pub fn require_netns(binaries: &[&str]) -> bool {
    check(binaries, true)
}

fn check(binaries: &[&str], netns: bool) -> bool {
    let mut missing = Vec::new();
    if !have_root() {
        missing.push("root".to_string());
    } else if netns && !have_netns() {
        missing.push("network namespaces (`ip netns add` failed)".to_string());
    }
    for b in binaries {
        if !have_binary(b) {
            missing.push(format!("binary `{b}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    skip(&format!("needs {}", missing.join(", ")));
    false
}

/// True when this process can create a network namespace (tried once, then remembered).
pub fn have_netns() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| have_binary("ip") && crate::Netns::new("probe").is_ok())
}
