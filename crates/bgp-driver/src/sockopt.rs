//! Socket options that std and tokio do not expose: TCP-MD5 signatures (RFC 2385) for BGP
//! sessions. The only `unsafe` of the crate lives here.
//!
//! The kernel keys MD5 by peer address: on a listening socket one key per configured peer, on a
//! connecting socket the key of the one peer, set before `connect`. Keys are at most 80 octets
//! (`TCP_MD5SIG_MAXKEYLEN`).
#![allow(unsafe_code)]

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

/// The longest key the kernel accepts.
pub const MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` of linux/tcp.h.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; MAX_KEY_LEN],
}

/// Sets (or, with an empty key, removes) the TCP-MD5 key for `peer` on `sock`.
pub fn set_tcp_md5(sock: &impl AsRawFd, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TCP-MD5 key is {} octets, at most {MAX_KEY_LEN}", key.len()),
        ));
    }
    // SAFETY: sockaddr_storage and the rest of TcpMd5Sig are plain integers and arrays, for
    // which all-zero bytes are a valid value.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    match peer {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut sig.addr as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from(a).to_be();
        }
        IpAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut sig.addr as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.octets();
        }
    }
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: the pointer and length describe `sig`, which outlives the call; the kernel only
    // reads from it.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&sig as *const TcpMd5Sig).cast::<libc::c_void>(),
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The TTL a GTSM session sends with and the lowest it accepts (RFC 5082 §3: one hop).
pub const GTSM_TTL: u32 = 255;
pub const GTSM_MIN_TTL: u32 = 254;

fn set_ip_option(sock: &impl AsRawFd, option: libc::c_int, value: u32) -> io::Result<()> {
    set_option(sock, libc::IPPROTO_IP, option, value)
}

/// IPV6_MINHOPCOUNT (Linux, in6.h): the IPv6 counterpart of IP_MINTTL.
const IPV6_MINHOPCOUNT: libc::c_int = 73;

/// Whether the socket is an IPv6 one (AF_INET6).
fn is_ipv6(sock: &impl AsRawFd) -> bool {
    // SAFETY: `ss` is a zeroed sockaddr_storage, large enough for any address; `len` says so;
    // the kernel writes at most `len` octets into it.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let rc = libc::getsockname(
            sock.as_raw_fd(),
            (&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr>(),
            &mut len,
        );
        rc == 0 && libc::c_int::from(ss.ss_family) == libc::AF_INET6
    }
}

fn set_option(
    sock: &impl AsRawFd,
    level: libc::c_int,
    option: libc::c_int,
    value: u32,
) -> io::Result<()> {
    let v = value as libc::c_int;
    // SAFETY: the pointer and length describe `v`, an int that outlives the call; the kernel
    // only reads it.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            option,
            (&v as *const libc::c_int).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// GTSM (RFC 5082) on a socket: send with TTL (IPv6: hop limit) 255, drop whatever arrives
/// with less than 254 (a sender more than one hop away cannot forge it).
pub fn set_ttl_security(sock: &impl AsRawFd) -> io::Result<()> {
    if is_ipv6(sock) {
        set_option(sock, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, GTSM_TTL)?;
        return set_option(sock, libc::IPPROTO_IPV6, IPV6_MINHOPCOUNT, GTSM_MIN_TTL);
    }
    set_ip_option(sock, libc::IP_TTL, GTSM_TTL)?;
    set_ip_option(sock, libc::IP_MINTTL, GTSM_MIN_TTL)
}

/// Undoes [`set_ttl_security`]: the system's default TTL, no minimum.
pub fn clear_ttl_security(sock: &impl AsRawFd) -> io::Result<()> {
    // -1: the kernel's default (ip(7)); passed as the int the option takes.
    if is_ipv6(sock) {
        set_option(sock, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, u32::MAX)?;
        return set_option(sock, libc::IPPROTO_IPV6, IPV6_MINHOPCOUNT, 0);
    }
    set_ip_option(sock, libc::IP_TTL, u32::MAX)?;
    set_ip_option(sock, libc::IP_MINTTL, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_security_sets_both_options() {
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_ttl_security(&s).unwrap();
        let get = |opt| {
            let mut v: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: `v` and `len` describe an int the kernel writes once.
            let rc = unsafe {
                libc::getsockopt(
                    s.as_raw_fd(),
                    libc::IPPROTO_IP,
                    opt,
                    (&mut v as *mut libc::c_int).cast::<libc::c_void>(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0);
            v
        };
        assert_eq!(get(libc::IP_TTL), 255);
        assert_eq!(get(libc::IP_MINTTL), 254);
        clear_ttl_security(&s).unwrap();
        assert_eq!(get(libc::IP_MINTTL), 0);
        assert!(get(libc::IP_TTL) < 255, "the default TTL again");
    }

    #[test]
    fn layout_matches_the_kernel() {
        assert_eq!(std::mem::size_of::<TcpMd5Sig>(), 216);
    }

    #[test]
    fn key_set_on_a_socket_and_too_long_refused() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_tcp_md5(&l, "127.0.0.2".parse().unwrap(), b"secret").unwrap();
        set_tcp_md5(&l, "127.0.0.2".parse().unwrap(), b"").unwrap();
        assert!(set_tcp_md5(&l, "127.0.0.2".parse().unwrap(), &[b'x'; 81]).is_err());
    }
}
