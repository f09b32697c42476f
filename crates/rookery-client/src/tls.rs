//! TLS set-up for the client: the rustls configuration (trusted roots from PEM, or an
//! accept-anything verifier for hostile-input tests), the handshake itself, and the
//! channel-binding material SCRAM-*-PLUS needs from the finished connection.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsConnector;

use crate::{BoxIo, ClientConfig, ClientError};

/// Label of the RFC 9266 `tls-exporter` channel binding.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// Channel-binding material captured right after a TLS handshake.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsInfo {
    /// Whether TLS 1.3 was negotiated (the only version on which we use `tls-exporter`).
    pub(crate) tls13: bool,
    /// RFC 9266 `tls-exporter` data (32 bytes), only on TLS 1.3.
    pub(crate) exporter: Option<Vec<u8>>,
    /// RFC 5929 `tls-server-end-point` data: SHA-256 of the server's leaf certificate.
    pub(crate) end_point: Option<Vec<u8>>,
}

/// Build the rustls client configuration described by `config`.
///
/// `alpn` offers the XEP-0368 `xmpp-client` protocol (direct TLS only).
pub(crate) fn client_config(
    config: &ClientConfig,
    alpn: bool,
) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let mut tls = if config.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(accept_any_certificate(&provider))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(pem) = &config.ca_pem {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| ClientError::Tls(format!("bad CA PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| ClientError::Tls(format!("bad CA certificate: {e}")))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    if alpn {
        tls.alpn_protocols = vec![b"xmpp-client".to_vec()];
    }
    Ok(tls)
}

/// Run a client TLS handshake over `io` for `domain`, returning the encrypted stream and
/// the channel-binding material of the new connection.
pub(crate) async fn handshake(
    io: BoxIo,
    domain: &str,
    config: &ClientConfig,
    alpn: bool,
) -> Result<(BoxIo, TlsInfo), ClientError> {
    let connector = TlsConnector::from(Arc::new(client_config(config, alpn)?));
    let name = ServerName::try_from(domain.to_owned())
        .map_err(|e| ClientError::Tls(format!("invalid server name {domain:?}: {e}")))?;
    let stream = tokio::time::timeout(config.timeout, connector.connect(name, io))
        .await
        .map_err(|_| ClientError::Timeout("the TLS handshake".into()))?
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let (_, conn) = stream.get_ref();
    let tls13 = conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
    let exporter = if tls13 {
        conn.export_keying_material([0u8; 32], EXPORTER_LABEL, None)
            .ok()
            .map(|ekm| ekm.to_vec())
    } else {
        None
    };
    let end_point = conn
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|leaf| Sha256::digest(leaf.as_ref()).to_vec());
    tracing::debug!(
        version = ?conn.protocol_version(),
        suite = ?conn.negotiated_cipher_suite().map(|s| s.suite()),
        "TLS established"
    );
    Ok((
        Box::new(stream),
        TlsInfo {
            tls13,
            exporter,
            end_point,
        },
    ))
}

/// A certificate verifier that accepts every server certificate, while still checking that
/// the handshake signatures are made by the key in the presented certificate.
///
/// Only for tests against deliberately odd servers (`ClientConfig::insecure`) and for load
/// generation against servers with throwaway certificates.
pub fn accept_any_certificate(
    provider: &rustls::crypto::CryptoProvider,
) -> Arc<dyn ServerCertVerifier> {
    Arc::new(AcceptAnyServerCert {
        algorithms: provider.signature_verification_algorithms,
    })
}

#[derive(Debug)]
struct AcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_config_builds() {
        let mut cfg = ClientConfig::new("127.0.0.1:5222".parse().unwrap(), "a@localhost", "pw");
        cfg.insecure = true;
        let tls = client_config(&cfg, true).unwrap();
        assert_eq!(tls.alpn_protocols, vec![b"xmpp-client".to_vec()]);
    }

    #[test]
    fn bad_ca_pem_is_a_tls_error() {
        let mut cfg = ClientConfig::new("127.0.0.1:5222".parse().unwrap(), "a@localhost", "pw");
        cfg.ca_pem = Some("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".into());
        assert!(matches!(
            client_config(&cfg, false),
            Err(ClientError::Tls(_))
        ));
    }
}
