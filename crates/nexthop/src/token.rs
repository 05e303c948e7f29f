//! API tokens (SPEC §6 `[api] admin_token_file`, `read_token_file`), both sides.
//!
//! Server: a state-changing call (any method but GET and HEAD) needs the admin token when one
//! is configured; with a read token configured, every GET (and `/metrics`) needs the read or
//! the admin token. No or a wrong token: 401; the read token on a state-changing call: 403.
//! Tokens are compared in constant time. A token file that group or others may read is refused
//! at start, as ssh refuses such a key. `nexthop run` refuses to serve the API on anything but
//! a loopback address without an admin token: anyone who reaches it could drain every NVA.
//!
//! Client: `--token-file FILE` (`NEXTHOP_TOKEN_FILE`) for every command that talks to the API
//! (the CLI, `agent`, `lb-mux`); the token goes in `Authorization: Bearer`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context};

/// A token, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// Equal to `given`, in time that depends only on the lengths.
    pub fn matches(&self, given: &[u8]) -> bool {
        let mut diff = self.0.len() ^ given.len();
        for (i, b) in self.0.iter().enumerate() {
            diff |= usize::from(b ^ given.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Reads a token file: owner-only permissions, one line of printable ASCII.
pub fn read_token_file(path: &Path) -> anyhow::Result<Secret> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("token file {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "token file {} can be read by group or others (mode {mode:03o}); `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("token file {}", path.display()))?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.is_empty() {
        bail!("token file {} is empty", path.display());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(
            "token file {}: the token must be one line of printable ASCII without spaces",
            path.display()
        );
    }
    Ok(Secret(token.as_bytes().to_vec()))
}

/// Why a call is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no token, or not one of ours.
    Unauthenticated,
    /// 403: the read token on a state-changing call.
    ReadOnly,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Unauthenticated => {
                "authentication required: send Authorization: Bearer <token> (nexthop --token-file FILE)"
            }
            Refusal::ReadOnly => "the read token cannot change anything; use the admin token",
        })
    }
}

/// The API's tokens, and its TLS server configuration.
#[derive(Debug, Default)]
pub struct ApiAuth {
    admin: Option<Secret>,
    read: Option<Secret>,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl ApiAuth {
    /// No tokens: everything is open (the demo; a loopback-only API).
    pub fn open() -> Self {
        Self::default()
    }

    pub fn load(api: &config::Api) -> anyhow::Result<Self> {
        let load = |p: &Option<PathBuf>| p.as_deref().map(read_token_file).transpose();
        let tls = match (&api.tls_cert, &api.tls_key) {
            (Some(cert), Some(key)) => Some(crate::apitls::server_config(cert, key)?),
            (None, None) => None,
            _ => bail!("api.tls_cert and api.tls_key go together: set both or neither"),
        };
        let auth = Self {
            admin: load(&api.admin_token_file).context("api.admin_token_file")?,
            read: load(&api.read_token_file).context("api.read_token_file")?,
            tls,
        };
        if auth.admin.is_some() && auth.admin == auth.read {
            bail!("api.read_token_file holds the admin token: give the read token its own");
        }
        Ok(auth)
    }

    /// The TLS server configuration, when the API speaks HTTPS.
    pub fn tls(&self) -> Option<std::sync::Arc<rustls::ServerConfig>> {
        self.tls.clone()
    }

    /// Whether an API on `listen` may serve with these tokens.
    pub fn check_listen(&self, listen: SocketAddr) -> anyhow::Result<()> {
        if !listen.ip().is_loopback() && self.admin.is_none() {
            bail!(
                "api.listen = \"{listen}\" is not a loopback address and api.admin_token_file is not set: \
                 anyone who reaches it could drain every NVA or reload the config. Set \
                 admin_token_file (and read_token_file to protect reads too), or listen on 127.0.0.1"
            );
        }
        Ok(())
    }

    /// Checks a call: `method` and the value of its Authorization header.
    pub fn check(&self, method: &str, authorization: Option<&[u8]>) -> Result<(), Refusal> {
        let changes_state = !matches!(method, "GET" | "HEAD");
        let token = authorization.and_then(|h| h.strip_prefix(b"Bearer "));
        let is = |s: &Option<Secret>| match (s, token) {
            (Some(s), Some(t)) => s.matches(t),
            _ => false,
        };
        if changes_state {
            match &self.admin {
                None => Ok(()),
                Some(_) if is(&self.admin) => Ok(()),
                Some(_) if is(&self.read) => Err(Refusal::ReadOnly),
                Some(_) => Err(Refusal::Unauthenticated),
            }
        } else {
            match &self.read {
                None => Ok(()),
                Some(_) if is(&self.read) || is(&self.admin) => Ok(()),
                Some(_) => Err(Refusal::Unauthenticated),
            }
        }
    }
}

/// The token this process sends to the API (`--token-file`), read once at start.
static CLIENT_TOKEN: OnceLock<Option<Secret>> = OnceLock::new();

/// Reads the client's token file, if one is given; call once, before the first request.
pub fn set_client_token_file(path: Option<&Path>) -> anyhow::Result<()> {
    let token = path.map(read_token_file).transpose()?;
    let _ = CLIENT_TOKEN.set(token);
    Ok(())
}

/// The token to send, if any.
pub fn client_token() -> anyhow::Result<Option<&'static str>> {
    Ok(CLIENT_TOKEN
        .get()
        .and_then(Option::as_ref)
        .map(Secret::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(admin: Option<&str>, read: Option<&str>) -> ApiAuth {
        ApiAuth {
            admin: admin.map(|s| Secret(s.into())),
            read: read.map(|s| Secret(s.into())),
            tls: None,
        }
    }

    #[test]
    fn who_may_do_what() {
        let a = auth(Some("adm"), Some("rd"));
        assert_eq!(a.check("POST", None), Err(Refusal::Unauthenticated));
        assert_eq!(
            a.check("POST", Some(b"Bearer nope")),
            Err(Refusal::Unauthenticated)
        );
        assert_eq!(a.check("POST", Some(b"Bearer rd")), Err(Refusal::ReadOnly));
        assert_eq!(a.check("POST", Some(b"Bearer adm")), Ok(()));
        assert_eq!(
            a.check("DELETE", Some(b"Basic adm")),
            Err(Refusal::Unauthenticated)
        );
        assert_eq!(a.check("GET", None), Err(Refusal::Unauthenticated));
        assert_eq!(a.check("GET", Some(b"Bearer rd")), Ok(()));
        assert_eq!(a.check("GET", Some(b"Bearer adm")), Ok(()));
        // An admin token only: reads are open, changes are not.
        let a = auth(Some("adm"), None);
        assert_eq!(a.check("GET", None), Ok(()));
        assert_eq!(a.check("POST", None), Err(Refusal::Unauthenticated));
        // Nothing configured: open.
        assert_eq!(ApiAuth::open().check("POST", None), Ok(()));
    }

    #[test]
    fn prefixes_and_longer_tokens_do_not_match() {
        let s = Secret(b"secret".to_vec());
        assert!(s.matches(b"secret"));
        assert!(!s.matches(b"secre"));
        assert!(!s.matches(b"secret2"));
        assert!(!s.matches(b""));
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn a_non_loopback_api_needs_an_admin_token() {
        let any: SocketAddr = "0.0.0.0:8179".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:8179".parse().unwrap();
        assert!(ApiAuth::open().check_listen(lo).is_ok());
        let e = ApiAuth::open().check_listen(any).unwrap_err().to_string();
        assert!(e.contains("admin_token_file"), "{e}");
        assert!(auth(Some("adm"), None).check_listen(any).is_ok());
    }

    #[test]
    fn token_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("nexthop-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t");
        std::fs::write(&f, "tok\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_token_file(&f).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token_file(&f).unwrap().as_str(), "tok");
        std::fs::write(&f, "\n").unwrap();
        assert!(read_token_file(&f).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
