//! Running code inside a named network namespace (`ip netns add NAME`) without a child
//! process: a scoped thread joins the namespace, runs the closure and ends. Sockets the closure
//! opens stay in that namespace, so they can be returned and used from any thread — this is
//! how tests drive the agent and the mux in namespaces they created, and how one process can
//! serve an interface in another namespace.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use crate::sys;

/// The file `ip netns` keeps for namespace `name`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Runs `f` on a thread inside namespace `name` and returns its result.
pub fn run_in<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let ns = File::open(path(name))?;
    std::thread::scope(|s| {
        s.spawn(move || -> io::Result<T> {
            sys::setns_net(&ns)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}
