//! TLS for server-to-server streams, both ways, and what a peer's certificate proves.
//!
//! Trust is the system's CAs plus `[s2s] ca_file` ([`Trust`]).
//! - Streams we initiate check the peer's certificate for its domain against it, unless
//!   `[s2s] accept_self_signed` lets any certificate through (dialback then proves the
//!   peer's identity, as on a LAN), and present our own certificate as a TLS client
//!   certificate, so that the peer may authenticate us with SASL EXTERNAL.
//! - Streams we receive ask for the peer's certificate but take any, or none, in the
//!   handshake (checking only that the peer holds its key): peers without a usable
//!   certificate still connect and use dialback. Whether the certificate authenticates the
//!   peer's domain for SASL EXTERNAL is [`Trust::check`]'s to say, and it never heeds
//!   `accept_self_signed`.

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use std::path::Path;
use std::sync::Arc;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The CA certificates in `[s2s] ca_file`.
pub(super) fn read_ca_file(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading s2s.ca_file {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing s2s.ca_file {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "s2s.ca_file {} holds no certificate",
        path.display()
    );
    Ok(certs)
}

/// The CAs whose certificates we trust for other servers.
pub(super) struct Trust {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl Trust {
    /// The system's trusted CAs plus `extra` (`[s2s] ca_file`).
    pub(super) fn load(extra: &[CertificateDer<'static>]) -> Trust {
        let mut roots = RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "reading the system's trusted CAs");
        }
        let (system, ignored) = roots.add_parsable_certificates(found.certs);
        let (added, refused) = roots.add_parsable_certificates(extra.iter().cloned());
        if refused > 0 {
            tracing::warn!(
                refused,
                "certificates in s2s.ca_file that cannot be trust anchors"
            );
        }
        tracing::debug!(
            system,
            ignored,
            ca_file = added,
            "trusted CAs for server-to-server TLS"
        );
        Trust {
            roots: Arc::new(roots),
            provider: provider(),
        }
    }

    /// Whether `chain` (the peer's certificate first, then intermediates) chains to a
    /// trusted CA, is meant for TLS clients or servers, and names `domain` (as a
    /// subjectAltName dNSName, wildcards allowed, or an XmppAddr). The error says why not,
    /// for people.
    pub(super) fn check(&self, chain: &[CertificateDer<'_>], domain: &str) -> Result<(), String> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err("no certificate was presented".to_owned());
        };
        let cert = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| format!("the certificate cannot be read ({e:?})"))?;
        let algorithms = self.provider.signature_verification_algorithms.all;
        let now = UnixTime::now();
        // A client certificate is meant for clients; many servers' certificates are only
        // marked for servers and are what XMPP servers present both ways, so either does.
        let verify = |usage| {
            cert.verify_for_usage(
                algorithms,
                &self.roots.roots,
                intermediates,
                now,
                usage,
                None,
                None,
            )
            .map(|_| ())
        };
        verify(webpki::KeyUsage::client_auth())
            .or_else(|_| verify(webpki::KeyUsage::server_auth()))
            .map_err(why_invalid)?;
        let by_dns = ServerName::try_from(domain)
            .ok()
            .is_some_and(|name| cert.verify_is_valid_for_subject_name(&name).is_ok());
        if by_dns
            || xmpp_addrs(leaf)
                .iter()
                .any(|a| a.eq_ignore_ascii_case(domain))
        {
            Ok(())
        } else {
            Err(format!("the certificate is not valid for {domain}"))
        }
    }
}

/// A chain validation error, for people.
fn why_invalid(e: webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        // The latter: an issuer with a trusted CA's name but not its key.
        E::UnknownIssuer | E::InvalidSignatureForPublicKey => {
            "the certificate is not issued by a CA this server trusts (self-signed?)".to_owned()
        }
        E::CertExpired { .. } => "the certificate has expired".to_owned(),
        E::CertNotValidYet { .. } => "the certificate is not valid yet".to_owned(),
        E::RequiredEkuNotFoundContext(_) => {
            "the certificate is not meant for TLS clients or servers (extended key usage)"
                .to_owned()
        }
        other => format!("the certificate does not validate ({other:?})"),
    }
}

/// id-on-xmppAddr (1.3.6.1.5.5.7.8.5), DER-encoded.
const ID_ON_XMPPADDR: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x05];
/// id-ce-subjectAltName (2.5.29.17), DER-encoded.
const ID_CE_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// The XmppAddr names (RFC 6120 §13.7.1.4) in a certificate's subjectAltName; nothing if
/// the certificate cannot be read. Only ever asked of a certificate that validated.
fn xmpp_addrs(cert: &[u8]) -> Vec<String> {
    xmpp_addrs_in(cert).unwrap_or_default()
}

fn xmpp_addrs_in(cert: &[u8]) -> Option<Vec<String>> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { …, [3] EXPLICIT Extensions } … }
    let (_, certificate, _) = der(cert, 0x30)?;
    let (_, mut tbs, _) = der(certificate, 0x30)?;
    let extensions = loop {
        let (tag, value, rest) = der_any(tbs)?;
        if tag == 0xa3 {
            break der(value, 0x30)?.1;
        }
        tbs = rest;
    };
    let mut out = Vec::new();
    let mut exts = extensions;
    while !exts.is_empty() {
        // Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, OCTET STRING }
        let (_, ext, rest) = der(exts, 0x30)?;
        exts = rest;
        let (_, oid, mut fields) = der(ext, 0x06)?;
        if oid != ID_CE_SUBJECT_ALT_NAME {
            continue;
        }
        if fields.first() == Some(&0x01) {
            fields = der(fields, 0x01)?.2;
        }
        let (_, value, _) = der(fields, 0x04)?;
        let (_, mut names, _) = der(value, 0x30)?;
        while !names.is_empty() {
            let (tag, name, rest) = der_any(names)?;
            names = rest;
            // otherName [0] ::= SEQUENCE { type-id OID, value [0] EXPLICIT ANY }
            if tag != 0xa0 {
                continue;
            }
            let (_, type_id, value) = der(name, 0x06)?;
            if type_id != ID_ON_XMPPADDR {
                continue;
            }
            let (_, explicit, _) = der(value, 0xa0)?;
            let (_, utf8, _) = der(explicit, 0x0c)?;
            out.push(String::from_utf8(utf8.to_vec()).ok()?);
        }
    }
    Some(out)
}

/// The DER element at the start of `input` if it has tag `tag`: (tag, value, rest).
fn der(input: &[u8], tag: u8) -> Option<(u8, &[u8], &[u8])> {
    der_any(input).filter(|(t, _, _)| *t == tag)
}

/// The DER element at the start of `input` (single-byte tags, definite lengths).
fn der_any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The client configuration for outgoing server-to-server TLS: the peer's certificate is
/// checked against `verify_with`, or not at all without (`[s2s] accept_self_signed`);
/// `ours` is presented when the peer asks for a client certificate.
pub(super) fn client_config(
    verify_with: Option<&Trust>,
    ours: Option<Arc<CertifiedKey>>,
) -> Arc<ClientConfig> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default versions");
    let builder = match verify_with {
        Some(trust) => builder.with_root_certificates(trust.roots.clone()),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
    };
    let config = match ours {
        Some(ours) => builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(ours))),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// The server configuration for incoming server-to-server TLS: our certificate, and the
/// peer's asked for but not required.
pub(super) fn server_config(ours: Arc<CertifiedKey>) -> Arc<ServerConfig> {
    let provider = provider();
    let config = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default versions")
        .with_client_cert_verifier(Arc::new(AnyCertificate(provider)))
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(ours)));
    Arc::new(config)
}

/// Accepts any certificate, but still checks that the peer holds its key (the handshake
/// signatures), so the session keys are not shared with a passive third party. As a
/// client verifier it asks for a certificate and takes none as well.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl AnyCertificate {
    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
}

impl ServerCertVerifier for AnyCertificate {
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
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for AnyCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        OtherNameValue, SanType,
    };

    struct Ca {
        cert: CertificateDer<'static>,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca() -> Ca {
        named_ca("Test CA")
    }

    fn named_ca(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(
        ca: &Ca,
        sans: Vec<SanType>,
        usage: Vec<ExtendedKeyUsagePurpose>,
    ) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params.extended_key_usages = usage;
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, &ca.issuer).unwrap().der().clone()
    }

    fn dns(name: &str) -> SanType {
        SanType::DnsName(name.try_into().unwrap())
    }

    fn xmpp_addr(name: &str) -> SanType {
        SanType::OtherName((
            vec![1, 3, 6, 1, 5, 5, 7, 8, 5],
            OtherNameValue::Utf8String(name.into()),
        ))
    }

    fn trust(ca: &Ca) -> Trust {
        let mut roots = RootCertStore::empty();
        roots.add(ca.cert.clone()).unwrap();
        Trust {
            roots: Arc::new(roots),
            provider: provider(),
        }
    }

    fn check(trust: &Trust, cert: &CertificateDer<'static>, domain: &str) -> Result<(), String> {
        trust.check(std::slice::from_ref(cert), domain)
    }

    #[test]
    fn a_certificate_from_a_trusted_ca_authenticates_the_domains_it_names() {
        let ca = ca();
        let trust = trust(&ca);
        use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let both = leaf(&ca, vec![dns("a.test")], vec![ServerAuth, ClientAuth]);
        assert_eq!(check(&trust, &both, "a.test"), Ok(()));
        assert_eq!(check(&trust, &both, "A.test"), Ok(()));
        let err = check(&trust, &both, "b.test").unwrap_err();
        assert!(err.contains("not valid for b.test"), "{err}");

        // Server-only and client-only certificates do, and wildcards cover one label.
        let server_only = leaf(&ca, vec![dns("*.a.test")], vec![ServerAuth]);
        assert_eq!(check(&trust, &server_only, "chat.a.test"), Ok(()));
        assert!(check(&trust, &server_only, "x.chat.a.test").is_err());
        let client_only = leaf(&ca, vec![dns("a.test")], vec![ClientAuth]);
        assert_eq!(check(&trust, &client_only, "a.test"), Ok(()));
        let email_only = leaf(
            &ca,
            vec![dns("a.test")],
            vec![ExtendedKeyUsagePurpose::EmailProtection],
        );
        let err = check(&trust, &email_only, "a.test").unwrap_err();
        assert!(err.contains("extended key usage"), "{err}");

        // An XmppAddr names a domain as well.
        let by_xmpp_addr = leaf(
            &ca,
            vec![dns("other.test"), xmpp_addr("a.test")],
            vec![ServerAuth],
        );
        assert_eq!(xmpp_addrs(&by_xmpp_addr), ["a.test"]);
        assert_eq!(check(&trust, &by_xmpp_addr, "a.test"), Ok(()));
        assert!(check(&trust, &by_xmpp_addr, "b.test").is_err());
    }

    #[test]
    fn a_certificate_from_an_unknown_ca_or_none_authenticates_nobody() {
        let ours = ca();
        let trust = trust(&ours);
        // Another CA, and one that takes our CA's name.
        for theirs in [named_ca("Other CA"), ca()] {
            let cert = leaf(&theirs, vec![dns("a.test")], vec![]);
            let err = check(&trust, &cert, "a.test").unwrap_err();
            assert!(
                err.contains("not issued by a CA this server trusts"),
                "{err}"
            );
        }
        assert_eq!(
            trust.check(&[], "a.test").unwrap_err(),
            "no certificate was presented"
        );
        assert!(
            trust
                .check(&[CertificateDer::from(vec![1, 2, 3])], "a.test")
                .is_err()
        );
    }

    #[test]
    fn xmpp_addrs_of_garbage_are_none() {
        assert!(xmpp_addrs(&[]).is_empty());
        assert!(xmpp_addrs(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_empty());
        assert!(xmpp_addrs(&[0x30, 0x03, 0x30, 0x01, 0xa3]).is_empty());
    }
}
