//! TLS with rustls: HTTP/2 and HTTP/1.1 by ALPN, and a certificate that can be replaced while
//! serving (SIGHUP reloads the files; a bad file keeps the old certificate and logs why).

use crate::config::TlsConfig;
use anyhow::Context;
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::{Arc, PoisonError, RwLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The TLS side of a listener. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
    certificate: Arc<Reloadable>,
}

/// The certificate in use, replaceable.
#[derive(Debug)]
struct Reloadable {
    files: TlsConfig,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

impl Tls {
    /// Loads the certificate and key.
    ///
    /// # Errors
    /// When a file cannot be read or parsed, or the key does not fit rustls.
    pub(crate) fn load(files: &TlsConfig) -> anyhow::Result<Tls> {
        let certificate = Arc::new(Reloadable {
            current: RwLock::new(Arc::new(certified_key(files)?)),
            files: files.clone(),
        });
        let resolver: Arc<dyn ResolvesServerCert> = certificate.clone();
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()
                .context("TLS protocol versions")?
                .with_no_client_auth()
                .with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
        })
    }

    /// Reads the files again; on failure the old certificate stays.
    pub(crate) fn reload(&self) {
        match certified_key(&self.certificate.files) {
            Ok(key) => {
                *self
                    .certificate
                    .current
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
                tracing::info!("TLS certificate reloaded");
            }
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "TLS reload failed; keeping the old certificate");
            }
        }
    }

    pub(crate) async fn accept<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: IO,
    ) -> std::io::Result<TlsStream<IO>> {
        self.acceptor.accept(io).await
    }
}

fn certified_key(files: &TlsConfig) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("reading {}", files.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", files.cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{} holds no certificate",
        files.cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("reading {}", files.key.display()))?;
    let signer = ring::sign::any_supported_type(&key).context("unsupported private key")?;
    Ok(CertifiedKey::new(chain, signer))
}
