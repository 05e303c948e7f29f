//! The smallest HTTP/1.1 client a health probe needs: one `GET`, read the status line, hang up.
//! Pure functions (request bytes, status-line parsing) are separate from the one async function
//! so they can be tested on fixtures.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::check::ProbeError;

/// A status line longer than this is not HTTP (real ones are ~20 bytes).
const MAX_STATUS_LINE: usize = 1024;

/// `path` may go on the request line: starts with `/`, visible ASCII only (no space, CR, LF).
pub(crate) fn valid_path(path: &str) -> bool {
    path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic())
}

/// The request for one probe. `Host` names the target as an address (with `[]` for IPv6) and
/// port; `Connection: close` so the server does not hold the connection for us.
pub(crate) fn request(path: &str, target: SocketAddr) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: nexthop-probe/{}\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// The status code of an `HTTP/1.x NNN reason` line (without its CRLF).
pub(crate) fn parse_status_line(line: &[u8]) -> Result<u16, ProbeError> {
    let bad = || ProbeError::BadStatusLine(String::from_utf8_lossy(line).into_owned());
    let rest = line.strip_prefix(b"HTTP/1.").ok_or_else(bad)?;
    // One minor-version digit, one space, three digits, then end or a space and a reason.
    match rest {
        [minor, b' ', a, b, c, tail @ ..]
            if minor.is_ascii_digit()
                && [a, b, c].iter().all(|d| d.is_ascii_digit())
                && (tail.is_empty() || tail[0] == b' ') =>
        {
            Ok(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => Err(bad()),
    }
}

/// Sends `request` and returns the status code of the answer. The caller bounds it in time.
pub(crate) async fn exchange<S>(stream: &mut S, request: &[u8]) -> Result<u16, ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(request).await.map_err(ProbeError::Http)?;
    stream.flush().await.map_err(ProbeError::Http)?;
    let mut buf = [0u8; MAX_STATUS_LINE];
    let mut filled = 0;
    loop {
        let n = stream
            .read(&mut buf[filled..])
            .await
            .map_err(ProbeError::Http)?;
        if n == 0 {
            return Err(ProbeError::ClosedBeforeStatus);
        }
        let searched_from = filled.saturating_sub(1);
        filled += n;
        if let Some(i) = buf[searched_from..filled]
            .windows(2)
            .position(|w| w == b"\r\n")
        {
            return parse_status_line(&buf[..searched_from + i]);
        }
        if filled == buf.len() {
            return Err(ProbeError::BadStatusLine(format!(
                "no CRLF in the first {MAX_STATUS_LINE} bytes"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes() {
        let r = request("/health?x=1", "127.0.0.1:8080".parse().unwrap());
        let r = String::from_utf8(r).unwrap();
        assert!(
            r.starts_with("GET /health?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"),
            "{r}"
        );
        assert!(r.ends_with("Connection: close\r\n\r\n"), "{r}");
        let r = String::from_utf8(request("/", "[::1]:80".parse().unwrap())).unwrap();
        assert!(r.contains("\r\nHost: [::1]:80\r\n"), "{r}");
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK").unwrap(), 200);
        assert_eq!(
            parse_status_line(b"HTTP/1.0 500 Internal Server Error").unwrap(),
            500
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 301").unwrap(), 301);
        for bad in [
            &b""[..],
            b"HTTP/2 200 OK",
            b"HTTP/1.1 20 OK",
            b"HTTP/1.1 2000 OK",
            b"SSH-2.0-x",
            b"HTTP/1.1  200",
        ] {
            assert!(
                matches!(parse_status_line(bad), Err(ProbeError::BadStatusLine(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn paths() {
        assert!(valid_path("/"));
        assert!(valid_path("/a/b?c=d&e=%20"));
        assert!(!valid_path("health"));
        assert!(!valid_path("/a b"));
        assert!(!valid_path("/a\r\n"));
        assert!(!valid_path("/é"));
    }

    #[tokio::test]
    async fn exchange_reads_a_status_line_split_over_reads() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let srv = tokio::spawn(async move {
            let mut req = vec![0u8; 512];
            let n = server.read(&mut req).await.unwrap();
            assert!(req[..n].starts_with(b"GET / HTTP/1.1\r\n"));
            for chunk in [
                &b"HTTP/1.1 2"[..],
                b"00 OK\r",
                b"\nContent-Length: 0\r\n\r\n",
            ] {
                server.write_all(chunk).await.unwrap();
                server.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let req = request("/", "127.0.0.1:80".parse().unwrap());
        assert_eq!(exchange(&mut client, &req).await.unwrap(), 200);
        srv.await.unwrap();
    }

    #[tokio::test]
    async fn exchange_reports_early_close() {
        let (mut client, server) = tokio::io::duplex(1024);
        drop(server);
        let err = exchange(&mut client, b"GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap_err();
        // Writing into a closed duplex fails before the read sees EOF; both are "HTTP" failures.
        assert!(
            matches!(err, ProbeError::Http(_) | ProbeError::ClosedBeforeStatus),
            "{err}"
        );
    }
}
