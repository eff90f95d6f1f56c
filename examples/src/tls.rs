//! TLS with rustls, over uringo streams through `uringo::compat::Compat` and
//! `tokio-rustls` (Compat implements tokio's `AsyncRead`/`AsyncWrite`, which is all
//! tokio-rustls asks of a transport; no tokio runtime is involved).
//!
//! ```no_run
//! # async fn run(stream: uringo::net::TcpStream) -> std::io::Result<()> {
//! let config = uringo_examples::tls::server_config("cert.pem".as_ref(), "key.pem".as_ref())?;
//! let acceptor = tokio_rustls::TlsAcceptor::from(config);
//! let tls = acceptor.accept(uringo::compat::Compat::new(stream)).await?;
//! # drop(tls); Ok(()) }
//! ```

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// ALPN protocols the servers offer, most preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The crypto provider every config here is built with (`ring`, chosen at build time
/// rather than through a process-wide default).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config from a PEM certificate chain and a PEM private key, offering
/// [`ALPN`].
pub fn server_config(cert: &Path, key: &Path) -> io::Result<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| invalid(format!("{}: {err}", cert.display())))?;
    if chain.is_empty() {
        return Err(invalid(format!("{}: no certificate", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|err| invalid(format!("{}: {err}", key.display())))?;
    server_config_from(chain, key)
}

/// A server config from a DER certificate chain and key, offering [`ALPN`].
pub fn server_config_from(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> io::Result<Arc<rustls::ServerConfig>> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| invalid(err.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|err| invalid(format!("certificate and key: {err}")))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
