//! Namespaces and LANs: addresses land where asked, traffic flows on the LAN, and dropping
//! removes namespaces and the processes inside — also on panic.

use std::process::Command;
use std::time::Duration;

use labtest::{Lan, Netns};

fn netns_exists(name: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn loopback_addresses_and_cleanup() {
    if !labtest::require_netns(&[]) {
        return;
    }
    let dir = labtest::Workdir::new("netns-test").unwrap();
    let (name, pid) = {
        let ns = Netns::new("lo-test").unwrap();
        ns.add_loopback_addr("10.1.2.10/32").unwrap();
        ns.add_loopback_addr("2001:db8::10/128").unwrap();
        let addrs = ns.exec("ip", &["-o", "addr", "show", "dev", "lo"]).unwrap();
        assert!(addrs.contains("10.1.2.10/32"), "{addrs}");
        assert!(addrs.contains("2001:db8::10/128"), "{addrs}");
        assert!(
            addrs.contains("127.0.0.1/8"),
            "lo must be up with 127.0.0.1: {addrs}"
        );
        let sleeper = ns.spawn("sleep", &["600"], &dir.file("sleep.log")).unwrap();
        let pid = sleeper.pid();
        // Hand the process to the namespace: the namespace's drop must still end it.
        std::mem::forget(sleeper);
        assert!(labtest::wait_until(Duration::from_secs(5), || ns
            .pids()
            .contains(&pid)));
        (ns.name().to_string(), pid)
    };
    assert!(!netns_exists(&name), "namespace {name} left behind");
    assert!(labtest::wait_until(Duration::from_secs(5), || !pid_alive(
        pid
    )
        || is_zombie(pid)));
}

/// The forgotten `Child` is never reaped, so a killed process stays a zombie until exit.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

#[test]
fn namespaces_are_deleted_when_the_test_panics() {
    if !labtest::require_netns(&[]) {
        return;
    }
    let names = std::sync::Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(|| {
        let lan = Lan::new(&[("a", &["10.9.0.1/24"]), ("b", &["10.9.0.2/24"])]).unwrap();
        names
            .lock()
            .unwrap()
            .extend([lan.hub().name().to_string(), lan.ns("a").name().to_string()]);
        panic!("deliberate");
    });
    assert!(result.is_err());
    for n in names.lock().unwrap().iter() {
        assert!(!netns_exists(n), "namespace {n} left behind after a panic");
    }
}

#[test]
fn lan_members_reach_each_other() {
    if !labtest::require_netns(&["python3"]) {
        return;
    }
    let lan = Lan::new(&[
        ("nva", &["10.1.2.10/16"]),
        ("rs", &["10.1.1.4/16", "10.1.1.5/16"]),
    ])
    .unwrap();
    let rs = lan.ns("rs");
    let addrs = rs
        .exec("ip", &["-o", "-4", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(
        addrs.contains("10.1.1.4/16") && addrs.contains("10.1.1.5/16"),
        "{addrs}"
    );
    // A TCP round trip from nva to each route-server address.
    let dir = labtest::Workdir::new("lan-test").unwrap();
    let server = "import socket,sys\n\
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind(('0.0.0.0', 1790)); s.listen(4)\n\
while True:\n  c,a=s.accept(); c.sendall(a[0].encode()); c.close()\n";
    let _listener = rs
        .spawn("python3", &["-c", server], &dir.file("server.log"))
        .unwrap();
    for target in ["10.1.1.4", "10.1.1.5"] {
        let client = format!(
            "import socket,time\n\
for i in range(50):\n  try:\n    c=socket.create_connection(('{target}',1790),timeout=1); print(c.recv(100).decode()); break\n  except OSError: time.sleep(0.1)\n"
        );
        let out = lan.ns("nva").exec("python3", &["-c", &client]).unwrap();
        assert_eq!(
            out.trim(),
            "10.1.2.10",
            "server at {target} saw the wrong source"
        );
    }
}
