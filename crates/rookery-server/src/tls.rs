//! TLS for c2s: the configured certificate, or a generated one on first start.
//!
//! With no `[tls]` section the server creates, in its data directory, a private CA
//! (`ca.pem`, which clients can be told to trust) and a certificate for every hosted domain
//! signed by it (`cert.pem` with the chain, `key.pem`). They are made again when the list of
//! hosts changes.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// What a c2s listener needs for TLS.
#[derive(Clone)]
pub struct TlsSetup {
    pub acceptor: TlsAcceptor,
    /// RFC 5929 tls-server-end-point binding: SHA-256 of our leaf certificate (all our
    /// certificates use SHA-256 or stronger signatures, for which RFC 5929 says SHA-256).
    pub end_point_hash: Vec<u8>,
    /// The generated CA a client can trust, when the certificate was generated.
    pub generated_ca: Option<PathBuf>,
    /// Our certificate chain and key, for server-to-server streams: we present them as a
    /// TLS client certificate too (SASL EXTERNAL, XEP-0178).
    pub certified: Arc<CertifiedKey>,
}

/// Load the configured pair or the generated one (creating it when needed).
pub fn setup(config: &rookery_config::Config) -> Result<TlsSetup> {
    let (cert_path, key_path, generated_ca) = match (&config.tls.cert, &config.tls.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), None),
        _ => {
            let dir = &config.data_dir;
            ensure_generated(dir, &config.hosts)?;
            (
                dir.join("cert.pem"),
                dir.join("key.pem"),
                Some(dir.join("ca.pem")),
            )
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .with_context(|| format!("reading certificate {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificate {}", cert_path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no certificate",
        cert_path.display()
    );
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("reading private key {}", key_path.display()))?;
    let end_point_hash = Sha256::digest(certs[0].as_ref()).to_vec();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certified = CertifiedKey::from_der(certs.clone(), key.clone_key(), &provider)
        .context("certificate and key do not match")?;
    let mut server_config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    server_config.alpn_protocols = vec![b"xmpp-client".to_vec()];
    Ok(TlsSetup {
        acceptor: TlsAcceptor::from(Arc::new(server_config)),
        end_point_hash,
        generated_ca,
        certified: Arc::new(certified),
    })
}

fn ensure_generated(dir: &Path, hosts: &[String]) -> Result<()> {
    let marker = dir.join("cert.hosts");
    let wanted = hosts.join("\n");
    let have = std::fs::read_to_string(&marker).ok();
    if have.as_deref() == Some(wanted.as_str())
        && dir.join("cert.pem").exists()
        && dir.join("key.pem").exists()
    {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Rookery local CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut names: Vec<String> = Vec::new();
    for h in hosts {
        names.push(h.clone());
        names.push(format!("*.{h}"));
    }
    let mut leaf_params = CertificateParams::new(names)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, hosts[0].clone());
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate()?;
    let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;

    write_private(&dir.join("key.pem"), &leaf_key.serialize_pem())?;
    std::fs::write(
        dir.join("cert.pem"),
        format!("{}{}", leaf.pem(), ca_cert.pem()),
    )?;
    std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
    std::fs::write(&marker, wanted)?;
    tracing::info!(dir = %dir.display(), hosts = ?hosts, "generated a self-signed certificate (trust ca.pem in clients)");
    Ok(())
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}
