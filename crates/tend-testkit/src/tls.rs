//! A certificate authority made for one test: it signs server certificates for loopback addresses
//! (`IP:127.0.0.2` style subject alternative names), and gives a TLS client configuration that trusts
//! it and nothing else. Keys are ECDSA P-256, made fresh each time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};

pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A server certificate and its key, in PEM.
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl ServerCert {
    /// Writes `cert.pem` and `key.pem` (mode 0600) into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        write_private(&cert, &self.cert_pem);
        write_private(&key, &self.key_pem);
        (cert, key)
    }
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    // Written beside, then renamed: a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write PEM");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).expect("chmod PEM");
    std::fs::rename(&tmp, path).expect("rename PEM");
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, format!("Tend test CA {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        TestCa { pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// The CA's certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A certificate for these IP addresses (and `localhost`), valid from yesterday for a year.
    pub fn server_cert(&self, ips: &[&str]) -> ServerCert {
        self.server_cert_valid(ips, -1, 365)
    }

    /// A certificate valid from `from_days` to `to_days` days from now (negative: in the past), to
    /// make an expired one.
    pub fn server_cert_valid(&self, ips: &[&str], from_days: i64, to_days: i64) -> ServerCert {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(ip.parse().expect("an IP address")));
        }
        params.distinguished_name.push(DnType::CommonName, ips.first().copied().unwrap_or("localhost"));
        // TLS clients check validity against the wall clock, so the certificate must use it too.
        #[allow(clippy::disallowed_methods)]
        let now = std::time::SystemTime::now();
        let day = std::time::Duration::from_secs(86_400);
        let at = |days: i64| {
            if days >= 0 { now + day * days as u32 } else { now - day * days.unsigned_abs() as u32 }
        };
        params.not_before = at(from_days).into();
        params.not_after = at(to_days).into();
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        ServerCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    /// A client configuration (ring, TLS 1.2/1.3) that trusts this CA only.
    pub fn client_config(&self) -> rustls::ClientConfig {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("add CA");
        }
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
    }
}
