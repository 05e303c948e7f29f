//! One probe of one target: connect (from `source` if set), then TLS and HTTP as the protocol
//! asks, all under the probe timeout. The outcome is a status or a [`ProbeError`] whose `Display`
//! is the `detail` users see, so each variant reads as evidence ("connection refused").

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use crate::spec::{ProbeSpec, Protocol};

/// Why a probe failed. Its text becomes [`crate::ProbeResult::detail`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    #[error("timed out after {}", crate::fmt_duration(*.0))]
    TimedOut(Duration),
    #[error("connection refused")]
    Refused,
    #[error("connect failed: {0}")]
    Connect(io::Error),
    #[error("cannot bind probe source address {addr}: {err}")]
    Bind { addr: SocketAddr, err: io::Error },
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    /// The TLS configuration could not be built (e.g. no system roots); the text says why.
    #[error("{0}")]
    TlsSetup(String),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("invalid HTTP status line: {0:?}")]
    BadStatusLine(String),
    #[error("connection closed before the HTTP status line")]
    ClosedBeforeStatus,
    #[error("HTTP exchange failed: {0}")]
    Http(io::Error),
    #[error("invalid HTTP probe path {0:?}")]
    BadPath(String),
}

/// What a successful probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Success {
    Connected,
    Status200,
}

/// Everything a target task needs that is the same for all targets of one Prober.
pub(crate) struct Context {
    pub(crate) spec: ProbeSpec,
    /// HTTPS only: built once; its error is reported by every probe.
    pub(crate) tls: Option<Result<TlsConnector, String>>,
}

impl Context {
    pub(crate) fn new(spec: ProbeSpec) -> Self {
        let tls = (spec.protocol == Protocol::Https)
            .then(|| crate::tls::client_config(spec.verify_tls).map(TlsConnector::from));
        Self { spec, tls }
    }
}

/// Runs one probe of `target`, bounded by the spec's timeout. `request` is the HTTP request for
/// this target (empty for TCP).
pub(crate) async fn probe(
    ctx: &Arc<Context>,
    target: SocketAddr,
    request: &[u8],
) -> Result<Success, ProbeError> {
    let timeout = ctx.spec.timeout;
    match tokio::time::timeout(timeout, exchange(ctx, target, request)).await {
        Ok(outcome) => outcome,
        Err(_elapsed) => Err(ProbeError::TimedOut(timeout)),
    }
}

async fn exchange(
    ctx: &Context,
    target: SocketAddr,
    request: &[u8],
) -> Result<Success, ProbeError> {
    let spec = &ctx.spec;
    if spec.protocol != Protocol::Tcp && !crate::http::valid_path(spec.request_path()) {
        return Err(ProbeError::BadPath(spec.path.clone()));
    }
    // Fail before connecting if TLS cannot work at all: no traffic for a probe that cannot pass.
    let tls = match &ctx.tls {
        Some(Ok(connector)) => Some(connector),
        Some(Err(why)) => return Err(ProbeError::TlsSetup(why.clone())),
        None => None,
    };
    let mut stream = connect(target, spec).await?;
    match (spec.protocol, tls) {
        (Protocol::Tcp, _) => Ok(Success::Connected),
        (Protocol::Http, _) => status(crate::http::exchange(&mut stream, request).await?),
        (Protocol::Https, Some(connector)) => {
            let mut tls = connector
                .connect(ServerName::from(target.ip()), stream)
                .await
                .map_err(ProbeError::Tls)?;
            status(crate::http::exchange(&mut tls, request).await?)
        }
        (Protocol::Https, None) => Err(ProbeError::TlsSetup("TLS not configured".to_owned())),
    }
}

fn status(code: u16) -> Result<Success, ProbeError> {
    // SPEC §4: only 200 is up; a redirect or a 204 is not.
    if code == 200 {
        Ok(Success::Status200)
    } else {
        Err(ProbeError::Status(code))
    }
}

async fn connect(target: SocketAddr, spec: &ProbeSpec) -> Result<TcpStream, ProbeError> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(ProbeError::Connect)?;
    if let Some(ip) = spec.source {
        let addr = SocketAddr::new(ip, 0);
        socket
            .bind(addr)
            .map_err(|err| ProbeError::Bind { addr, err })?;
    }
    let stream = socket.connect(target).await.map_err(|e| match e.kind() {
        io::ErrorKind::ConnectionRefused => ProbeError::Refused,
        _ => ProbeError::Connect(e),
    })?;
    // Close with RST, not FIN: the prober would otherwise keep a TIME_WAIT socket per probe for a
    // minute (5000 backends at 100 ms would be 3M of them). Health checkers such as HAProxy do the
    // same. Zero linger never blocks on drop. Failing to set it only costs TIME_WAITs.
    let _ = stream.set_zero_linger();
    Ok(stream)
}
