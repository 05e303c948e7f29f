//! What to probe and how often: [`ProbeSpec`], its checks ([`SpecError`]) and the normalisation
//! [`crate::spawn`] applies so that a bad value degrades into a clear per-probe failure instead of
//! a panic.

use std::net::IpAddr;
use std::time::Duration;

/// The shortest probe interval nexthop supports (SPEC §4: "interval down to 100 ms").
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// How a backend is probed (SPEC §4: TCP, HTTP, HTTPS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Up iff a TCP connection can be established; it is closed at once.
    Tcp,
    /// Up iff `GET path HTTP/1.1` answers with status 200.
    Http,
    /// As [`Protocol::Http`], inside TLS.
    Https,
}

/// One probe configuration, shared by every target of a [`crate::Prober`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub protocol: Protocol,
    /// Destination port on every target.
    pub port: u16,
    /// Request path for HTTP(S); ignored for TCP. Empty means `/`.
    pub path: String,
    /// Time between the starts of two probes of one target; at least [`MIN_INTERVAL`].
    pub interval: Duration,
    /// Bound on one whole probe: connect, TLS handshake, request and status line. At most
    /// `interval`, so a target never has two probes in flight.
    pub timeout: Duration,
    /// HTTPS only. `false` (the default) accepts any certificate: an NVA usually presents a
    /// self-signed one, and the probe asks "is it serving?", not "is it who it claims?".
    /// `true` verifies against the system roots and fails every probe clearly if none load.
    pub verify_tls: bool,
    /// Local address to bind probe sockets to (e.g. the address the NVAs expect probes from).
    pub source: Option<IpAddr>,
}

impl ProbeSpec {
    /// A spec with the defaults: timeout = interval, path `/`, no TLS verification, no bind.
    pub fn new(protocol: Protocol, port: u16, interval: Duration) -> Self {
        Self {
            protocol,
            port,
            path: "/".to_owned(),
            interval,
            timeout: interval,
            verify_tls: false,
            source: None,
        }
    }

    pub fn tcp(port: u16, interval: Duration) -> Self {
        Self::new(Protocol::Tcp, port, interval)
    }

    pub fn http(port: u16, path: &str, interval: Duration) -> Self {
        Self {
            path: path.to_owned(),
            ..Self::new(Protocol::Http, port, interval)
        }
    }

    pub fn https(port: u16, path: &str, interval: Duration) -> Self {
        Self {
            path: path.to_owned(),
            ..Self::new(Protocol::Https, port, interval)
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_verify_tls(mut self, verify: bool) -> Self {
        self.verify_tls = verify;
        self
    }

    pub fn with_source(mut self, source: IpAddr) -> Self {
        self.source = Some(source);
        self
    }

    /// Checks the spec against `targets`; the configuration layer calls this to reject a bad
    /// config up front. [`crate::spawn`] does not require it (see [`ProbeSpec::normalized`]).
    pub fn validate(&self, targets: &[IpAddr]) -> Result<(), SpecError> {
        if self.port == 0 {
            return Err(SpecError::ZeroPort);
        }
        if self.interval < MIN_INTERVAL {
            return Err(SpecError::IntervalTooShort(self.interval));
        }
        if self.timeout.is_zero() {
            return Err(SpecError::ZeroTimeout);
        }
        if self.timeout > self.interval {
            return Err(SpecError::TimeoutAboveInterval {
                timeout: self.timeout,
                interval: self.interval,
            });
        }
        if self.protocol != Protocol::Tcp && !crate::http::valid_path(self.request_path()) {
            return Err(SpecError::BadPath(self.path.clone()));
        }
        if let Some(bind) = self.source {
            if let Some(&target) = targets.iter().find(|t| t.is_ipv4() != bind.is_ipv4()) {
                return Err(SpecError::FamilyMismatch { bind, target });
            }
        }
        Ok(())
    }

    /// The spec [`crate::spawn`] runs: interval raised to [`MIN_INTERVAL`], a zero timeout
    /// replaced by the interval and a longer one cut to it. Other problems (bad path, port 0,
    /// address families) are left in place and show up as the `detail` of failed probes.
    pub fn normalized(&self) -> Self {
        let interval = self.interval.max(MIN_INTERVAL);
        let timeout = if self.timeout.is_zero() {
            interval
        } else {
            self.timeout.min(interval)
        };
        Self {
            interval,
            timeout,
            ..self.clone()
        }
    }

    /// The path as sent on the request line: an empty path is `/`.
    pub(crate) fn request_path(&self) -> &str {
        if self.path.is_empty() {
            "/"
        } else {
            &self.path
        }
    }
}

/// Why a [`ProbeSpec`] is rejected by [`ProbeSpec::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("probe port must not be 0")]
    ZeroPort,
    #[error("probe interval {0:?} is below the minimum of 100 ms")]
    IntervalTooShort(Duration),
    #[error("probe timeout must be greater than zero")]
    ZeroTimeout,
    #[error("probe timeout {timeout:?} is longer than the interval {interval:?}")]
    TimeoutAboveInterval {
        timeout: Duration,
        interval: Duration,
    },
    #[error("HTTP probe path {0:?} must start with '/' and hold no spaces or control characters")]
    BadPath(String),
    #[error("probe source address {bind} and target {target} are of different address families")]
    FamilyMismatch { bind: IpAddr, target: IpAddr },
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn defaults() {
        let s = ProbeSpec::https(443, "/health", MS(200));
        assert_eq!(s.timeout, MS(200));
        assert!(!s.verify_tls);
        assert_eq!(s.source, None);
        assert_eq!(s.validate(&["10.0.0.1".parse().unwrap()]), Ok(()));
    }

    #[test]
    fn validate_rejects_each_problem() {
        let v4 = ["10.0.0.1".parse().unwrap()];
        let base = ProbeSpec::http(80, "/", MS(100));
        assert_eq!(
            ProbeSpec {
                port: 0,
                ..base.clone()
            }
            .validate(&v4),
            Err(SpecError::ZeroPort)
        );
        assert_eq!(
            ProbeSpec::tcp(80, MS(99)).validate(&v4),
            Err(SpecError::IntervalTooShort(MS(99)))
        );
        assert_eq!(
            base.clone().with_timeout(MS(0)).validate(&v4),
            Err(SpecError::ZeroTimeout)
        );
        assert!(matches!(
            base.clone().with_timeout(MS(101)).validate(&v4),
            Err(SpecError::TimeoutAboveInterval { .. })
        ));
        assert!(matches!(
            ProbeSpec::http(80, "/a b", MS(100)).validate(&v4),
            Err(SpecError::BadPath(_))
        ));
        assert!(matches!(
            ProbeSpec::http(80, "/a\r\nX: y", MS(100)).validate(&v4),
            Err(SpecError::BadPath(_))
        ));
        // A TCP probe has no path, so a bad one does not matter.
        assert_eq!(
            ProbeSpec {
                path: "x y".into(),
                ..ProbeSpec::tcp(80, MS(100))
            }
            .validate(&v4),
            Ok(())
        );
        assert!(matches!(
            base.with_source("::1".parse().unwrap()).validate(&v4),
            Err(SpecError::FamilyMismatch { .. })
        ));
    }

    #[test]
    fn normalized_clamps_times() {
        let s = ProbeSpec::tcp(80, MS(10)).with_timeout(MS(0)).normalized();
        assert_eq!((s.interval, s.timeout), (MS(100), MS(100)));
        let s = ProbeSpec::tcp(80, MS(500))
            .with_timeout(MS(900))
            .normalized();
        assert_eq!((s.interval, s.timeout), (MS(500), MS(500)));
        let s = ProbeSpec::tcp(80, MS(500))
            .with_timeout(MS(50))
            .normalized();
        assert_eq!((s.interval, s.timeout), (MS(500), MS(50)));
    }
}
