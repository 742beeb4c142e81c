//! Redis over TLS (`rediss://`, rustls): a server signed by a public CA needs only the
//! URL; one signed by the operator's own CA, or one that asks for a client
//! certificate, needs [`RedisTls`].

use redis::cluster::ClusterClient;
use redis::{ClientTlsConfig, TlsCertificates};
use tether_core::{Error, Result};

use crate::RedisStore;

/// The certificates a `rediss://` connection trusts and shows.
///
/// ```
/// let ca = std::fs::read("/etc/ssl/redis-ca.pem").unwrap_or_default();
/// let tls = tether_redis::RedisTls::with_root_ca(ca);
/// // tether_redis::RedisStore::connect_tls("rediss://redis.internal:6380", &tls)?;
/// ```
#[derive(Clone)]
pub struct RedisTls {
    root_ca: Option<Vec<u8>>,
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("root_ca", &self.root_ca.is_some())
            .field("client_certificate", &self.client.is_some())
            .finish()
    }
}

impl RedisTls {
    /// Trust the CA certificate(s) in `pem` (instead of the system's roots).
    pub fn with_root_ca(pem: impl Into<Vec<u8>>) -> Self {
        Self {
            root_ca: Some(pem.into()),
            client: None,
        }
    }

    /// The system's roots (for a certificate from a public CA; add a client
    /// certificate with [`RedisTls::with_client_certificate`]).
    pub fn with_system_roots() -> Self {
        Self {
            root_ca: None,
            client: None,
        }
    }

    /// Show this client certificate and key (PEM) to a server that asks for one.
    #[must_use]
    pub fn with_client_certificate(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.client = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Checks the PEM now, so a mistake is a configuration error at start-up rather
    /// than a failed connection at the first request.
    fn check(&self) -> Result<()> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = |what: &str, pem: &[u8]| -> Result<()> {
            let parsed: std::result::Result<Vec<_>, _> =
                CertificateDer::pem_slice_iter(pem).collect();
            match parsed {
                Ok(certs) if !certs.is_empty() => Ok(()),
                Ok(_) => Err(Error::config(format!("{what}: no certificate in the PEM"))),
                Err(e) => Err(Error::config(format!("{what}: {e}"))),
            }
        };
        if let Some(ca) = &self.root_ca {
            certs("Redis TLS root CA", ca)?;
        }
        if let Some((cert, key)) = &self.client {
            certs("Redis TLS client certificate", cert)?;
            PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| Error::config(format!("Redis TLS client key: {e}")))?;
        }
        Ok(())
    }

    pub(crate) fn certificates(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: self
                .client
                .clone()
                .map(|(client_cert, client_key)| ClientTlsConfig {
                    client_cert,
                    client_key,
                }),
            root_cert: self.root_ca.clone(),
        }
    }
}

/// Makes sure rustls has a process-wide crypto provider: ring, unless the app
/// installed one already (rustls cannot choose by itself when the build enables both
/// of its providers, or neither).
pub(crate) fn crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may install one first; either way one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn require_tls(url: &str) -> Result<()> {
    if url.starts_with("rediss://") {
        crypto_provider();
        Ok(())
    } else {
        Err(Error::config(format!(
            "Redis URL {}: TLS settings need a rediss:// URL",
            tether_core::redact_url(url)
        )))
    }
}

impl RedisStore {
    /// A store on a standalone Redis over TLS (`rediss://host:port`), trusting and
    /// showing the certificates `tls` gives. Like [`RedisStore::connect`], the
    /// connection is made on first use: a malformed URL or PEM fails here, a server
    /// whose certificate does not verify is a 503 (never a fresh session).
    ///
    /// # Errors
    /// [`Error::Config`] for a URL that is not `rediss://` or certificates that do not
    /// parse.
    pub fn connect_tls(url: &str, tls: &RedisTls) -> Result<Self> {
        require_tls(url)?;
        tls.check()?;
        let client = redis::Client::build_with_tls(url, tls.certificates()).map_err(|e| {
            Error::config(format!(
                "Redis URL {} with its TLS certificates: {e}",
                tether_core::redact_url(url)
            ))
        })?;
        Ok(Self::single(client, url))
    }

    /// A store on Redis Cluster over TLS, given one or more `rediss://` nodes.
    ///
    /// # Errors
    /// As [`RedisStore::connect_tls`].
    pub fn connect_cluster_tls<I, S>(urls: I, tls: &RedisTls) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls: Vec<String> = urls.into_iter().map(Into::into).collect();
        for url in &urls {
            require_tls(url)?;
        }
        tls.check()?;
        Self::cluster(
            ClusterClient::builder(urls.clone()).certs(tls.certificates()),
            &urls,
            Some(tls.clone()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_bytes_as_a_root_ca_never_panic_and_text_without_a_certificate_is_refused(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000)
        ) {
            let no_certificate = !bytes.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----");
            let root = RedisTls::with_root_ca(bytes.clone()).check();
            let client = RedisTls::with_system_roots()
                .with_client_certificate(bytes.clone(), bytes)
                .check();
            if no_certificate {
                prop_assert!(matches!(root, Err(Error::Config(_))), "{root:?}");
                prop_assert!(matches!(client, Err(Error::Config(_))), "{client:?}");
            }
        }
    }
}
