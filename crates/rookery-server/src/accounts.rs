//! Accounts: creation with SCRAM keys (never a plaintext password), password changes and
//! removal. Used by the admin commands and in-band registration.

use jid::BareJid;
use rookery_config::Config;
use rookery_sasl::{HashAlgo, ScramKeys};
use rookery_storage::{Credential, Stores};

/// Why an account operation failed, in words for the operator or user.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("'{0}' is not a valid user JID (expected user@host)")]
    BadJid(String),
    #[error("this server does not serve the domain {0}")]
    UnknownHost(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("there is no user {0}")]
    NoSuchUser(String),
    #[error("the password is not acceptable: {0}")]
    BadPassword(String),
    #[error("database error: {0}")]
    Store(#[from] rookery_storage::StoreError),
}

/// Parse `user@host`, requiring a node part and a hosted domain.
pub fn parse_user(config: &Config, s: &str) -> Result<BareJid, AccountError> {
    let jid = BareJid::new(s.trim()).map_err(|_| AccountError::BadJid(s.to_owned()))?;
    if jid.node().is_none() {
        return Err(AccountError::BadJid(s.to_owned()));
    }
    let host = jid.domain().as_str();
    if !config.hosts.iter().any(|h| h == host) {
        return Err(AccountError::UnknownHost(host.to_owned()));
    }
    Ok(jid)
}

fn parts(jid: &BareJid) -> (&str, &str) {
    (
        jid.domain().as_str(),
        jid.node().map(|n| n.as_str()).unwrap_or(""),
    )
}

/// The stored SCRAM keys for one hash.
pub fn keys_from_credential(c: Credential) -> ScramKeys {
    ScramKeys {
        hash: HashAlgo::from_name(&c.hash).unwrap_or(HashAlgo::Sha256),
        salt: c.salt,
        iterations: c.iterations,
        stored_key: c.stored_key,
        server_key: c.server_key,
    }
}

/// SCRAM-SHA-1 and SCRAM-SHA-256 keys for a password.
pub fn credentials(password: &str, iterations: u32) -> Result<Vec<Credential>, AccountError> {
    if password.is_empty() {
        return Err(AccountError::BadPassword("it is empty".into()));
    }
    if password.len() > 1024 {
        return Err(AccountError::BadPassword(
            "it is longer than 1024 bytes".into(),
        ));
    }
    [HashAlgo::Sha1, HashAlgo::Sha256]
        .into_iter()
        .map(|h| {
            let k = ScramKeys::generate(h, password, iterations)
                .map_err(|e| AccountError::BadPassword(e.to_string()))?;
            Ok(Credential {
                hash: h.name().to_owned(),
                salt: k.salt,
                iterations: k.iterations,
                stored_key: k.stored_key,
                server_key: k.server_key,
            })
        })
        .collect()
}

pub async fn create(
    stores: &Stores,
    config: &Config,
    jid: &BareJid,
    password: &str,
) -> Result<(), AccountError> {
    let (host, node) = parts(jid);
    // Deriving the keys is the expensive part: skip it for a name that is taken (the
    // insert below still decides if two requests race).
    if stores.accounts.account_exists(host, node).await? {
        return Err(AccountError::Exists(jid.to_string()));
    }
    let creds = credentials(password, config.auth.scram_iterations)?;
    if stores.accounts.create_account(host, node, &creds).await? {
        Ok(())
    } else {
        Err(AccountError::Exists(jid.to_string()))
    }
}

pub async fn set_password(
    stores: &Stores,
    config: &Config,
    jid: &BareJid,
    password: &str,
) -> Result<(), AccountError> {
    let creds = credentials(password, config.auth.scram_iterations)?;
    let (host, node) = parts(jid);
    if stores.accounts.set_credentials(host, node, &creds).await? {
        Ok(())
    } else {
        Err(AccountError::NoSuchUser(jid.to_string()))
    }
}

pub async fn delete(stores: &Stores, jid: &BareJid) -> Result<(), AccountError> {
    let (host, node) = parts(jid);
    if stores.accounts.delete_account(host, node).await? {
        Ok(())
    } else {
        Err(AccountError::NoSuchUser(jid.to_string()))
    }
}

/// Delete an account on a running server: its data goes, its sessions end with
/// `not-authorized` and `reason`, and the `UserDeleted` hooks run.
pub async fn remove(
    server: &crate::Server,
    jid: &BareJid,
    reason: &str,
) -> Result<(), AccountError> {
    delete(server.stores(), jid).await?;
    end_sessions(
        server,
        jid,
        crate::error::StreamCondition::NotAuthorized,
        reason,
    );
    server
        .registry()
        .fire(
            server,
            crate::module::Event::UserDeleted { jid: jid.clone() },
        )
        .await;
    Ok(())
}

/// End every session of a user with a stream error; returns how many there were.
pub fn end_sessions(
    server: &crate::Server,
    jid: &BareJid,
    condition: crate::error::StreamCondition,
    reason: &str,
) -> usize {
    let sessions = server.sm().resources(jid);
    for s in &sessions {
        s.close(crate::error::StreamError::new(condition, reason));
    }
    sessions.len()
}
