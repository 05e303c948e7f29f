//! The only module with `unsafe`: thin wrappers over the libc socket calls the crate needs
//! (netlink and packet sockets, `setns`). Every wrapper takes and returns safe Rust types
//! (`OwnedFd`, slices) and checks the return value; nothing here interprets packet contents.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// `-1` → the thread's `errno` as an `io::Error`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes plain integers; a non-negative result is a new descriptor that
    // nothing else owns, so handing it to OwnedFd is sound.
    let fd = check(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: see above — `fd` is open and owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A `NETLINK_ROUTE` socket bound with a kernel-assigned port id, in the calling thread's
/// network namespace.
pub fn netlink_route_socket() -> io::Result<OwnedFd> {
    let fd = socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
    // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value (pid 0 = let the kernel
    // choose, no multicast groups).
    let mut sa: libc::sockaddr_nl = unsafe { mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `sa` is a valid sockaddr_nl and the length passed is its size.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_nl).cast(),
            mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

fn setsockopt_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `v` is a valid c_int and the length passed is its size.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `send(2)`: on a netlink socket the destination is the kernel.
pub fn send(fd: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    check_size(unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) })
}

/// `recv(2)` into `buf`.
pub fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`, writable and outliving the call.
    check_size(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) })
}

/// Moves the calling thread into the network namespace `ns` (an open `/run/netns/NAME`).
/// Only this thread changes namespace; sockets it opens afterwards stay in `ns` for their
/// whole life, whichever thread uses them.
pub fn setns_net(ns: &File) -> io::Result<()> {
    // SAFETY: setns(2) takes a descriptor we hold open for the call and a flag constant.
    check(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }).map(drop)
}

/// Raises the soft limit on open descriptors to the hard limit; returns (soft before, soft
/// now). A route server with a thousand peers needs two descriptors a peer and more while
/// sessions collide; the usual soft limit is 1024.
pub fn raise_open_files_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes one rlimit, which `lim` is, and reads nothing else.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit(2) reads one rlimit, which `lim` is.
        check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok((before, lim.rlim_cur))
}

/// Geometry of a TPACKET_V3 receive ring.
#[derive(Clone, Copy, Debug)]
pub struct RingSpec {
    /// Bytes per block; a power of two, a multiple of the page size.
    pub block_size: u32,
    pub block_nr: u32,
    /// A block with at least one frame is handed over after this many milliseconds even if
    /// not full: the latency bound at low packet rates.
    pub retire_ms: u32,
    /// Join this `PACKET_FANOUT` group (hash mode): the interface's frames are spread over
    /// the group's sockets by flow hash, so each flow always reaches the same socket.
    pub fanout: Option<u16>,
}

/// An `AF_PACKET` socket with a TPACKET_V3 memory-mapped receive ring, bound to one
/// interface for one ethertype (`ETH_P_IP` or `ETH_P_IPV6`), not seeing outgoing frames. The kernel writes frames into blocks of the shared mapping; a block
/// belongs to user space while its `block_status` has `TP_STATUS_USER`, until [`Block`] hands
/// it back.
pub struct RxRing {
    fd: OwnedFd,
    map: *mut u8,
    map_len: usize,
    spec: RingSpec,
    next: usize,
}

// SAFETY: the mapping is owned by this value alone (no aliases escape except through `Block`,
// which borrows the ring mutably), so moving it to another thread is sound.
unsafe impl Send for RxRing {}

const BLOCK_STATUS: usize = 8; // tpacket_block_desc.hdr.bh1.block_status
const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST_PKT: usize = 16;
const SENDMMSG_BATCH: usize = 64;

impl RxRing {
    /// The ring on interface `ifindex` for frames of `ethertype` (host order, e.g.
    /// `libc::ETH_P_IPV6`).
    pub fn open(ifindex: u32, ethertype: u16, spec: RingSpec) -> io::Result<RxRing> {
        let proto_be = ethertype.to_be();
        let fd = socket(libc::AF_PACKET, libc::SOCK_RAW, libc::c_int::from(proto_be))?;
        setsockopt_int(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            libc::tpacket_versions::TPACKET_V3 as libc::c_int,
        )?;
        let req = libc::tpacket_req3 {
            tp_block_size: spec.block_size,
            tp_block_nr: spec.block_nr,
            tp_frame_size: 2048,
            tp_frame_nr: spec.block_size / 2048 * spec.block_nr,
            tp_retire_blk_tov: spec.retire_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        // SAFETY: `req` is a valid tpacket_req3 and the length passed is its size.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_RX_RING,
                (&req as *const libc::tpacket_req3).cast(),
                mem::size_of::<libc::tpacket_req3>() as libc::socklen_t,
            )
        })?;
        let map_len = spec.block_size as usize * spec.block_nr as usize;
        // SAFETY: a fresh shared mapping of the ring the kernel just allocated for `fd`; the
        // kernel checks the length against the ring.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ring = RxRing {
            fd,
            map: map.cast(),
            map_len,
            spec,
            next: 0,
        };
        let _ = setsockopt_int(&ring.fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1);
        // Frames this socket sends go straight to the driver, not through the qdisc layer
        // (the mux does its own batching; a qdisc would only add a lock and a queue).
        let _ = setsockopt_int(&ring.fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1);
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
        let mut sa: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = proto_be;
        sa.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: `sa` is a valid sockaddr_ll and the length passed is its size.
        check(unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        if let Some(group) = ring.spec.fanout {
            let arg = i32::from(group) | ((libc::PACKET_FANOUT_HASH as i32) << 16);
            setsockopt_int(&ring.fd, libc::SOL_PACKET, libc::PACKET_FANOUT, arg)?;
        }
        Ok(ring)
    }

    /// Frames the kernel dropped because the ring was full, since the last call (reading
    /// resets the kernel's counters).
    pub fn take_drops(&self) -> io::Result<u64> {
        // SAFETY: tpacket_stats_v3 is plain old data; all-zero is valid.
        let mut st: libc::tpacket_stats_v3 = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `st`/`len` describe a writable tpacket_stats_v3 that outlives the call.
        check(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        })?;
        Ok(u64::from(st.tp_drops))
    }

    fn block_base(&self, i: usize) -> *mut u8 {
        // SAFETY (of the arithmetic): i < block_nr, so the offset stays inside the mapping.
        self.map.wrapping_add(i * self.spec.block_size as usize)
    }

    fn block_status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: block_status is a 4-byte-aligned u32 inside the mapping (blocks are
        // page-aligned), shared with the kernel, so it is accessed atomically only.
        unsafe { &*(self.block_base(i).add(BLOCK_STATUS) as *const AtomicU32) }
    }

    /// The next block the kernel has filled, waiting up to `timeout`; None on timeout.
    pub fn next_block(&mut self, timeout: Duration) -> io::Result<Option<Block<'_>>> {
        let i = self.next;
        if self.block_status(i).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            // SAFETY: one valid pollfd, count 1.
            let r = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    return Ok(None);
                }
                return Err(e);
            }
            if self.block_status(i).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                return Ok(None);
            }
        }
        self.next = (i + 1) % self.spec.block_nr as usize;
        Ok(Some(Block {
            fd: &self.fd,
            base: self.block_base(i),
            size: self.spec.block_size as usize,
            status: self.block_status(i),
        }))
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `open`; no Block can be alive (they
        // borrow the ring).
        unsafe { libc::munmap(self.map.cast(), self.map_len) };
    }
}

/// One received frame inside a [`Block`].
pub struct RxFrame<'a> {
    pub data: &'a mut [u8],
    /// `tp_status` of the frame (e.g. `TP_STATUS_CSUMNOTREADY`).
    pub status: u32,
    /// `sll_pkttype`.
    pub pkttype: u8,
}

/// What [`Block::forward`] sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    pub ok: u64,
    pub failed: u64,
}

/// A block of the ring owned by user space; handed back to the kernel when dropped.
pub struct Block<'a> {
    fd: &'a OwnedFd,
    base: *mut u8,
    size: usize,
    status: &'a AtomicU32,
}

impl Block<'_> {
    /// Calls `f` on every frame (in place, mutable); the frames for which it returns true are
    /// then sent out of the socket's interface with `sendmmsg`, straight from the ring, in
    /// batches of 64. Malformed block descriptors end the walk early rather than read outside
    /// the block.
    pub fn forward(self, mut f: impl FnMut(RxFrame<'_>) -> bool) -> Sent {
        let mut out: Vec<libc::iovec> = Vec::new();
        // SAFETY: the block is user-owned (TP_STATUS_USER seen with Acquire) and `size` bytes
        // long; the header fields read are inside its first 24 bytes.
        let (num, first) = unsafe {
            (
                std::ptr::read_unaligned(self.base.add(BLOCK_NUM_PKTS) as *const u32),
                std::ptr::read_unaligned(self.base.add(BLOCK_FIRST_PKT) as *const u32),
            )
        };
        let mut off = first as usize;
        for _ in 0..num {
            let hdr_len = mem::size_of::<libc::tpacket3_hdr>();
            if off + hdr_len + 16 > self.size {
                break;
            }
            // SAFETY: `off + hdr_len` is inside the block (checked above); the kernel aligns
            // frame headers to 16 bytes, read_unaligned does not rely on it anyway.
            let h: libc::tpacket3_hdr = unsafe {
                std::ptr::read_unaligned(self.base.add(off) as *const libc::tpacket3_hdr)
            };
            let start = off + usize::from(h.tp_mac);
            let len = h.tp_snaplen as usize;
            // sockaddr_ll follows the header at TPACKET_ALIGN(sizeof tpacket3_hdr).
            let sll = off + ((hdr_len + 15) & !15);
            if start + len > self.size || sll + 12 > self.size {
                break;
            }
            // SAFETY: `sll + 10` is inside the block (checked above).
            let pkttype = unsafe { *self.base.add(sll + 10) };
            // SAFETY: [start, start+len) is inside the block and the only live reference to
            // those bytes (frames do not overlap and each is handed out once).
            let data = unsafe { std::slice::from_raw_parts_mut(self.base.add(start), len) };
            if f(RxFrame {
                data,
                status: h.tp_status,
                pkttype,
            }) {
                out.push(libc::iovec {
                    // SAFETY (of the arithmetic): inside the block, as above.
                    iov_base: self.base.wrapping_add(start).cast(),
                    iov_len: len,
                });
            }
            if h.tp_next_offset == 0 {
                break;
            }
            off += h.tp_next_offset as usize;
        }
        send_iovecs(self.fd, &mut out)
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        self.status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }
}

/// Sends each iovec as one frame with `sendmmsg`, retrying the rest after a short count and
/// skipping (counting) a frame the kernel refuses.
fn send_iovecs(fd: &OwnedFd, iovs: &mut [libc::iovec]) -> Sent {
    let mut sent = Sent::default();
    let mut i = 0;
    while i < iovs.len() {
        let n = (iovs.len() - i).min(SENDMMSG_BATCH);
        let mut msgs: Vec<libc::mmsghdr> = iovs[i..i + n]
            .iter_mut()
            .map(|iov| {
                // SAFETY: mmsghdr is plain old data; all-zero is valid (no name, no control).
                let mut m: libc::mmsghdr = unsafe { mem::zeroed() };
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        // SAFETY: `msgs` holds `n` valid mmsghdr whose iovecs point into the user-owned block
        // (alive for the call); no names or control buffers.
        let r = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, 0) };
        if r <= 0 {
            sent.failed += 1;
            i += 1;
        } else {
            sent.ok += r as u64;
            i += r as usize;
        }
    }
    sent
}
