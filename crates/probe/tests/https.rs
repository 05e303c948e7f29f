//! HTTPS probes against a server with a self-signed certificate generated here (rcgen).

mod support;

use std::sync::Arc;
use std::time::Duration;

use probe::{spawn, ProbeSpec};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const INTERVAL: Duration = Duration::from_millis(100);
const WITHIN: Duration = Duration::from_millis(400);

fn self_signed_acceptor(name: &str) -> tokio_rustls::TlsAcceptor {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("generate cert");
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[tokio::test]
async fn self_signed_is_accepted_without_verification_and_rejected_with_it() {
    let target = ip(127, 81, 5, 1);
    let (port, mut listeners) = listen_all(&[target], 128);
    let backend = HttpBackend::new(
        listeners.remove(0),
        Some(self_signed_acceptor(&target.to_string())),
    );

    let (tx, mut rx) = mpsc::channel(64);
    let _unverified = spawn(ProbeSpec::https(port, "/ready", INTERVAL), vec![target], tx);
    let r = next_for(&mut rx, target, WITHIN).await;
    assert!(r.ok, "{r:?}");
    assert!(r.detail.starts_with("HTTP 200 in "), "{r:?}");
    assert!(backend.seen.lock().unwrap().requests[0].starts_with("GET /ready HTTP/1.1\r\n"));

    backend.set_status(500);
    let r = loop {
        let r = next_for(&mut rx, target, WITHIN).await;
        if !r.ok {
            break r;
        }
    };
    assert_eq!(r.detail, "HTTP 500");
    backend.set_status(200);

    let (tx, mut rx) = mpsc::channel(64);
    let _verified = spawn(
        ProbeSpec::https(port, "/ready", INTERVAL).with_verify_tls(true),
        vec![target],
        tx,
    );
    let r = next_for(&mut rx, target, WITHIN).await;
    assert!(!r.ok, "{r:?}");
    // With system roots present (ca-certificates) the chain fails; without them the probe says
    // that instead. Either way the detail names TLS.
    assert!(
        r.detail
            .starts_with("TLS handshake failed: invalid peer certificate")
            || r.detail
                .starts_with("TLS verification requested but no system root certificates"),
        "{r:?}"
    );
    eprintln!(
        "verify_tls = true against a self-signed certificate: {}",
        r.detail
    );
}

#[tokio::test]
async fn plain_http_server_fails_the_tls_handshake_clearly() {
    let target = ip(127, 81, 5, 2);
    let (port, mut listeners) = listen_all(&[target], 128);
    // Like a real HTTP server fed a ClientHello: a plaintext 400 at once.
    let listener = listeners.remove(0);
    let _backend = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                .await;
        }
    });
    let (tx, mut rx) = mpsc::channel(64);
    let _prober = spawn(ProbeSpec::https(port, "/", INTERVAL), vec![target], tx);
    let r = next_for(&mut rx, target, WITHIN).await;
    assert!(!r.ok);
    assert!(r.detail.starts_with("TLS handshake failed: "), "{r:?}");
    eprintln!("HTTPS probe of a plain HTTP server: {}", r.detail);
}
