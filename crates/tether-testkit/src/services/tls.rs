//! A certificate authority made at run time, for the services' TLS listeners: no key
//! or certificate is ever committed.

use std::io;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A fresh CA and one server certificate it signed, for `localhost` and `127.0.0.1`,
/// written as PEM files into a directory.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("tether-doc-ca-{}", std::process::id()));
/// let ca = tether_testkit::services::TestCa::create(&dir)?;
/// assert!(std::fs::read_to_string(ca.ca_cert())?.contains("BEGIN CERTIFICATE"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TestCa {
    dir: PathBuf,
}

fn invalid(e: &rcgen::Error) -> io::Error {
    io::Error::other(format!("making the test CA: {e}"))
}

impl TestCa {
    /// Makes the CA and the server certificate in `dir` (created if missing):
    /// `ca.pem`, `server.pem`, `server.key` (mode 0600).
    ///
    /// # Errors
    /// When a key cannot be made or a file cannot be written.
    pub fn create(dir: &Path) -> io::Result<Self> {
        super::create_dir(dir)?;
        let ca_key = KeyPair::generate().map_err(|e| invalid(&e))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| invalid(&e))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "tether test CA");
        let ca = params.self_signed(&ca_key).map_err(|e| invalid(&e))?;

        let key = KeyPair::generate().map_err(|e| invalid(&e))?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .map_err(|e| invalid(&e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "tether test server");
        let server = params
            .signed_by(&key, &ca, &ca_key)
            .map_err(|e| invalid(&e))?;

        std::fs::write(dir.join("ca.pem"), ca.pem())?;
        std::fs::write(dir.join("server.pem"), server.pem())?;
        let key_path = dir.join("server.key");
        std::fs::write(&key_path, key.serialize_pem())?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The CA's certificate (PEM), which clients trust.
    #[must_use]
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The server's certificate (PEM).
    #[must_use]
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// The server's private key (PEM).
    #[must_use]
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// redis-server's arguments to speak only TLS on `port` with this CA's server
    /// certificate (clients are not asked for one).
    #[must_use]
    pub fn redis_server_args(&self, port: u16) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = ["--port", "0", "--tls-port", &port.to_string()]
            .into_iter()
            .map(Into::into)
            .collect();
        for (flag, path) in [
            ("--tls-cert-file", self.server_cert()),
            ("--tls-key-file", self.server_key()),
            ("--tls-ca-cert-file", self.ca_cert()),
        ] {
            args.push(flag.into());
            args.push(path.into());
        }
        args.extend(["--tls-auth-clients".into(), "no".into()]);
        args
    }
}
