//! HTTPS: the server's certificate and key (PEM files named by `[server] tls`), read at start and read
//! again whenever either file changes, so a certificate is rotated without a restart. A new pair
//! that does not load (a half-written file, a key that does not match the certificate) is refused
//! with a warning and the pair in use stays; the next change is tried again.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use tend_engine::config::TlsConfig;

/// How often the files are looked at for a change.
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// What identifies one version of a file: its modification time, size and inode.
type Stamp = Option<(SystemTime, u64, u64)>;

/// The certificate in use, and where a new one comes from.
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    stamps: RwLock<(Stamp, Stamp)>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates").field("cert", &self.cert).field("key", &self.key).finish()
    }
}

impl Certificates {
    /// Loads the pair; an error names the file and what is wrong with it.
    pub fn load(cfg: &TlsConfig) -> anyhow::Result<Arc<Certificates>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamps = (stamp(&cfg.cert), stamp(&cfg.key));
        let pair = read_pair(&cfg.cert, &cfg.key, &provider)?;
        Ok(Arc::new(Certificates {
            cert: cfg.cert.clone(),
            key: cfg.key.clone(),
            provider,
            current: RwLock::new(Arc::new(pair)),
            stamps: RwLock::new(stamps),
        }))
    }

    /// The acceptor of TLS connections (TLS 1.2 and 1.3, HTTP/1.1 by ALPN) over these certificates.
    pub fn acceptor(self: &Arc<Self>) -> anyhow::Result<TlsAcceptor> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Reads the pair again when either file changed since the last look. `Ok(true)`: a new pair is
    /// in use; `Err`: the changed files do not load and the old pair stays.
    pub fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let now = (stamp(&self.cert), stamp(&self.key));
        if *self.stamps.read().unwrap_or_else(|e| e.into_inner()) == now {
            return Ok(false);
        }
        *self.stamps.write().unwrap_or_else(|e| e.into_inner()) = now;
        let pair = read_pair(&self.cert, &self.key, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
        Ok(true)
    }

    /// Looks for changes every [`RELOAD_CHECK`] until the process ends.
    pub async fn watch(self: Arc<Self>) {
        let mut every = tokio::time::interval(RELOAD_CHECK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match self.reload_if_changed() {
                Ok(true) => tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "the changed TLS files do not load: the previous certificate stays in use")
                }
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok()?, m.len(), ino))
}

fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let shown = |p: &Path| p.display().to_string();
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("tls cert {}: {e}", shown(cert)))?;
    if chain.is_empty() {
        anyhow::bail!("tls cert {}: no PEM certificate in it", shown(cert));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        anyhow::anyhow!("tls key {}: no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}", shown(key))
    })?;
    CertifiedKey::from_der(chain, private, provider)
        .map_err(|e| anyhow::anyhow!("tls key {} does not go with cert {}: {e}", shown(key), shown(cert)))
}
