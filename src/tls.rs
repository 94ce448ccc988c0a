//! TLS from PEM files that are reloaded when they change (feature `tls`).
//!
//! [`ReloadingCert`] serves the certificate chain and key read from two PEM files (the Let's
//! Encrypt layout: `fullchain.pem`, `privkey.pem`). [`ReloadingCert::reload_if_changed`]
//! re-reads them when either file's modification time or size changed; new handshakes get the
//! new certificate, open connections keep theirs. A pair that does not load (a renewal caught
//! half-written) is reported and the previous certificate stays in service.
//! [`ReloadingCert::server_config`] builds a rustls config with TLS 1.2 and 1.3 only and ALPN
//! `h2`, `http/1.1`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

/// Why a certificate pair did not load.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(String);

/// A certificate pair from PEM files, swapped in place when the files change.
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
    stamp: Mutex<Stamp>,
}

type Stamp = [(Option<SystemTime>, u64); 2];

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

fn stamp_of(paths: [&Path; 2]) -> Stamp {
    paths.map(|p| match std::fs::metadata(p) {
        Ok(m) => (m.modified().ok(), m.len()),
        Err(_) => (None, 0),
    })
}

fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let open = |p: &Path| {
        std::fs::File::open(p)
            .map(std::io::BufReader::new)
            .map_err(|e| TlsError(format!("{}: {e}", p.display())))
    };
    let chain = rustls_pemfile::certs(&mut open(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(TlsError(format!("{}: no certificate", cert.display())));
    }
    let der = rustls_pemfile::private_key(&mut open(key)?)
        .map_err(|e| TlsError(format!("{}: {e}", key.display())))?
        .ok_or_else(|| TlsError(format!("{}: no private key", key.display())))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| TlsError(format!("{}: {e}", key.display())))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| TlsError(format!("the key does not match the certificate: {e}")))?;
    Ok(certified)
}

impl ReloadingCert {
    /// Loads the pair; fails when it does not load or the key does not match the certificate.
    pub fn load(
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
    ) -> Result<Arc<Self>, TlsError> {
        let (cert_path, key_path) = (cert_path.into(), key_path.into());
        let stamp = stamp_of([&cert_path, &key_path]);
        let current = load(&cert_path, &key_path)?;
        Ok(Arc::new(Self {
            cert_path,
            key_path,
            current: ArcSwap::from_pointee(current),
            stamp: Mutex::new(stamp),
        }))
    }

    /// Re-reads the files if they changed since the last load; `Ok(true)` when a new pair is
    /// in service. On error the previous pair stays in service.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = stamp_of([&self.cert_path, &self.key_path]);
        let mut last = self
            .stamp
            .lock()
            .map_err(|_| TlsError("reload lock poisoned".into()))?;
        if *last == now {
            return Ok(false);
        }
        let fresh = load(&self.cert_path, &self.key_path)?;
        self.current.store(Arc::new(fresh));
        *last = now;
        Ok(true)
    }

    /// A server config (TLS 1.2+, ALPN `h2` and `http/1.1`) that always presents the current
    /// pair.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
