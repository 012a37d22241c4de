//! The one way Tend builds HTTP clients (webhooks, scrapes of workers' `/metrics`): reqwest over
//! rustls, with ring as the crypto provider, installed for the process on first use. No proxy: every
//! address Tend talks to is one the config names.

use std::sync::Once;

/// A client builder: HTTPS verifies against the system's roots, like a browser.
pub fn builder() -> reqwest::ClientBuilder {
    install_provider();
    reqwest::Client::builder().no_proxy()
}

/// Makes ring the process's TLS crypto provider, unless one was installed already.
pub fn install_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
