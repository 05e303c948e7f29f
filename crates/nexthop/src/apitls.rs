//! TLS for the API, both sides (SPEC §6 `[api] tls_cert`, `tls_key`; `--ca-file`): rustls with
//! the `ring` provider, as the HTTPS probes use. The server speaks HTTPS only when it has a
//! certificate; clients (ureq, `crate::cli`) verify it against `--ca-file` (a private CA) or
//! the system roots.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration of a certificate chain and its key (PEM files).
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("api.tls_cert {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("api.tls_cert {}", cert.display()))?;
    if certs.is_empty() {
        bail!("api.tls_cert {}: no certificate in it", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("api.tls_key {}: no private key read", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("api.tls_cert and api.tls_key do not go together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The CA file clients trust (`--ca-file`), set once at start.
static CA_FILE: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();

pub fn set_ca_file(path: Option<&Path>) {
    let _ = CA_FILE.set(path.map(Path::to_path_buf));
}

/// The roots clients trust: the certificates of `--ca-file`, else the system's. A file that
/// cannot be read gives no roots, so an https:// API fails verification (and says so) rather
/// than being trusted; plain http:// needs none.
pub fn client_roots() -> Vec<ureq::tls::Certificate<'static>> {
    match CA_FILE.get().and_then(Option::as_deref) {
        Some(ca) => match std::fs::read(ca) {
            Ok(pem) => ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect(),
            Err(e) => {
                tracing::warn!(file = %ca.display(), error = %e, "--ca-file not read: no roots to verify the API with");
                Vec::new()
            }
        },
        None => rustls_native_certs::load_native_certs()
            .certs
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect(),
    }
}
