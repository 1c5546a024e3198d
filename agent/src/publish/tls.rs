//! TLS to the broker: the CA that signs the broker's certificate, and optionally a client
//! certificate and key (mutual TLS). Built here with rustls (ring provider) rather than by
//! rumqttc, so that a missing or malformed file is reported by name when the agent starts, not
//! as a failed connection later.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// The files of a TLS connection; relative paths were resolved against the config file.
pub struct TlsFiles<'a> {
    pub ca_file: &'a Path,
    /// Client certificate chain and its private key, both PEM.
    pub client: Option<(&'a Path, &'a Path)>,
}

/// A rustls client configuration trusting only `ca_file`.
pub fn client_config(files: &TlsFiles<'_>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(files.ca_file, "ca_file")? {
        roots.add(cert).map_err(|e| format!("ca_file {}: {e}", files.ca_file.display()))?;
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots);
    let config = match files.client {
        Some((cert_file, key_file)) => {
            let chain = certificates(cert_file, "client_cert_file")?;
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| format!("client_key_file {}: no private key read: {e}", key_file.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("client_cert_file {} and client_key_file {}: {e}", cert_file.display(), key_file.display()))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file; an error names the key and the file when there is none.
fn certificates(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{key} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{key} {}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// A connection error, with the likely cause named when it is the certificate.
pub fn explain(error: &str, ca_file: Option<&Path>) -> String {
    match ca_file {
        Some(ca) if error.contains("UnknownIssuer") || error.contains("BadSignature") => {
            format!("{error}: the broker's certificate is not signed by the CA in ca_file {}", ca.display())
        }
        Some(_) if error.contains("NotValidForName") => format!("{error}: the broker's certificate does not name the host in the URL"),
        Some(_) if error.contains("CertificateRequired") || error.contains("certificate required") => {
            format!("{error}: the broker wants a client certificate (client_cert_file, client_key_file)")
        }
        _ => error.to_string(),
    }
}
