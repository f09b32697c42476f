//! Accounts: creation, password checks and changes, removal, existence. Used by logins,
//! routing, the admin commands, the CLI and in-band registration.
//!
//! [`Accounts`] is the one place that knows the backend (`auth.backend`): with the
//! internal one, passwords become SCRAM keys in the store (never plaintext); with the
//! external one, a program decides ([`crate::extauth`]) and the store keeps each account's
//! row, without credentials, for its data, listing, disabling and last login.

use crate::extauth::{ExtAuth, ExtAuthError};
use jid::BareJid;
use rookery_config::Config;
use rookery_sasl::{HashAlgo, ScramKeys};
use rookery_storage::{Credential, Stores};
use std::sync::Arc;

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
    /// The external program answered no where no other reason is known.
    #[error("the authentication program refused to {0}")]
    Refused(String),
    /// The external program could not be asked (not running, timed out).
    #[error("{0}; try again later")]
    Unavailable(ExtAuthError),
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
    check_password_shape(password)?;
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

/// Who checks passwords and decides which accounts exist (`auth.backend`).
#[derive(Clone, Debug)]
pub enum AuthBackend {
    /// The store's SCRAM keys.
    Internal,
    /// A program speaking ejabberd's extauth protocol.
    External(Arc<ExtAuth>),
}

impl AuthBackend {
    /// The backend the configuration names. An external pool starts its program on
    /// first use (or [`ExtAuth::start`]).
    pub fn from_config(config: &Config) -> AuthBackend {
        if config.auth.backend == "external" {
            AuthBackend::External(Arc::new(ExtAuth::from_config(&config.auth)))
        } else {
            AuthBackend::Internal
        }
    }

    pub fn is_external(&self) -> bool {
        matches!(self, AuthBackend::External(_))
    }
}

/// The outcome of a password check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordCheck {
    Valid,
    /// Wrong password or no such user (never told apart).
    Invalid,
    /// The password is right but an administrator disabled the account.
    Disabled,
}

/// Account operations on one backend and store. Get one from [`crate::Server::accounts`]
/// or, without a running server, [`Accounts::new`].
#[derive(Clone, Copy)]
pub struct Accounts<'a> {
    stores: &'a Stores,
    config: &'a Config,
    backend: &'a AuthBackend,
}

impl crate::Server {
    /// Account operations with the server's backend.
    pub fn accounts(&self) -> Accounts<'_> {
        Accounts::new(self.stores(), self.config(), self.auth_backend())
    }
}

/// A password we accept to store or pass on: not empty, at most 1024 bytes.
fn check_password_shape(password: &str) -> Result<(), AccountError> {
    if password.is_empty() {
        return Err(AccountError::BadPassword("it is empty".into()));
    }
    if password.len() > 1024 {
        return Err(AccountError::BadPassword(
            "it is longer than 1024 bytes".into(),
        ));
    }
    Ok(())
}

/// A request the program could not be sent is the caller's problem, anything else the
/// program's.
fn ext_error(e: ExtAuthError) -> AccountError {
    match e {
        ExtAuthError::TooLong(_) | ExtAuthError::BadName(_) => {
            AccountError::BadPassword(e.to_string())
        }
        e => AccountError::Unavailable(e),
    }
}

impl<'a> Accounts<'a> {
    pub fn new(stores: &'a Stores, config: &'a Config, backend: &'a AuthBackend) -> Self {
        Accounts {
            stores,
            config,
            backend,
        }
    }

    /// Create an account (external: `tryregister`).
    pub async fn create(&self, jid: &BareJid, password: &str) -> Result<(), AccountError> {
        let (host, node) = parts(jid);
        let ext = match self.backend {
            AuthBackend::Internal => {
                return create_internal(self.stores, self.config, jid, password).await;
            }
            AuthBackend::External(ext) => ext,
        };
        check_password_shape(password)?;
        if ext.is_user(node, host).await.map_err(ext_error)? {
            return Err(AccountError::Exists(jid.to_string()));
        }
        if !ext
            .try_register(node, host, password)
            .await
            .map_err(ext_error)?
        {
            // 0 cannot say why; a name taken meanwhile is the likely reason.
            return Err(AccountError::Refused(format!(
                "create {jid} (it may exist already)"
            )));
        }
        self.note_local(host, node).await?;
        Ok(())
    }

    /// Set a new password (external: `setpass`).
    pub async fn set_password(&self, jid: &BareJid, password: &str) -> Result<(), AccountError> {
        let (host, node) = parts(jid);
        let ext = match self.backend {
            AuthBackend::Internal => {
                let creds = credentials(password, self.config.auth.scram_iterations)?;
                return if self
                    .stores
                    .accounts
                    .set_credentials(host, node, &creds)
                    .await?
                {
                    Ok(())
                } else {
                    Err(AccountError::NoSuchUser(jid.to_string()))
                };
            }
            AuthBackend::External(ext) => ext,
        };
        check_password_shape(password)?;
        if ext
            .set_pass(node, host, password)
            .await
            .map_err(ext_error)?
        {
            return Ok(());
        }
        if !ext.is_user(node, host).await.map_err(ext_error)? {
            return Err(AccountError::NoSuchUser(jid.to_string()));
        }
        Err(AccountError::Refused(format!(
            "change the password of {jid}"
        )))
    }

    /// Delete an account and all its data (external: `removeuser` first). Sessions and
    /// hooks are [`remove`]'s business.
    pub async fn delete(&self, jid: &BareJid) -> Result<(), AccountError> {
        let (host, node) = parts(jid);
        if let AuthBackend::External(ext) = self.backend {
            if !ext.remove_user(node, host).await.map_err(ext_error)? {
                if !ext.is_user(node, host).await.map_err(ext_error)? {
                    // Data left from an account removed elsewhere still goes.
                    self.stores.accounts.delete_account(host, node).await?;
                    return Err(AccountError::NoSuchUser(jid.to_string()));
                }
                return Err(AccountError::Refused(format!("delete {jid}")));
            }
            self.stores.accounts.delete_account(host, node).await?;
            return Ok(());
        }
        if self.stores.accounts.delete_account(host, node).await? {
            Ok(())
        } else {
            Err(AccountError::NoSuchUser(jid.to_string()))
        }
    }

    /// Whether the account exists (external: `isuser`, answers reused briefly; when the
    /// program cannot answer, whether the store knows the account).
    pub async fn exists(&self, jid: &BareJid) -> Result<bool, AccountError> {
        let (host, node) = parts(jid);
        if node.is_empty() {
            return Ok(false);
        }
        if let AuthBackend::External(ext) = self.backend {
            match ext.is_user(node, host).await {
                Ok(known) => return Ok(known),
                Err(e) => {
                    tracing::warn!(%jid, error = %e, "isuser failed; asking the store instead");
                }
            }
        }
        Ok(self.stores.accounts.account_exists(host, node).await?)
    }

    /// Check a plaintext password (SASL PLAIN). An error means no answer could be had
    /// (store or program unavailable): a temporary failure, not a wrong password.
    pub async fn check_password(
        &self,
        jid: &BareJid,
        password: &str,
    ) -> Result<PasswordCheck, AccountError> {
        let (host, node) = parts(jid);
        let ext = match self.backend {
            AuthBackend::Internal => return self.check_internal(host, node, password).await,
            AuthBackend::External(ext) => ext,
        };
        if password.is_empty() {
            return Ok(PasswordCheck::Invalid);
        }
        match ext.auth(node, host, password).await {
            Ok(true) => {}
            Ok(false) | Err(ExtAuthError::TooLong(_) | ExtAuthError::BadName(_)) => {
                return Ok(PasswordCheck::Invalid);
            }
            Err(e) => return Err(AccountError::Unavailable(e)),
        }
        if self.stores.accounts.is_disabled(host, node).await? {
            return Ok(PasswordCheck::Disabled);
        }
        self.note_local(host, node).await?;
        Ok(PasswordCheck::Valid)
    }

    async fn check_internal(
        &self,
        host: &str,
        node: &str,
        password: &str,
    ) -> Result<PasswordCheck, AccountError> {
        let cred = self
            .stores
            .accounts
            .login_credential(host, node, HashAlgo::Sha256.name())
            .await?;
        Ok(match cred {
            Some((c, disabled)) => {
                if !keys_from_credential(c).verify_password(password) {
                    PasswordCheck::Invalid
                } else if disabled {
                    PasswordCheck::Disabled
                } else {
                    PasswordCheck::Valid
                }
            }
            None => {
                // Spend the same work on an unknown user, so timing does not reveal accounts.
                let _ = ScramKeys::derive(
                    HashAlgo::Sha256,
                    password,
                    b"rookery-no-such-user",
                    self.config.auth.scram_iterations,
                );
                PasswordCheck::Invalid
            }
        })
    }

    /// Make sure the store has the row of an account the external program knows (without
    /// credentials), so that its data, last login and disabling work as for any account.
    async fn note_local(&self, host: &str, node: &str) -> Result<(), AccountError> {
        if !self.stores.accounts.account_exists(host, node).await? {
            self.stores.accounts.create_account(host, node, &[]).await?;
        }
        Ok(())
    }
}

async fn create_internal(
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

/// Delete an account on a running server: its data goes, its sessions end with
/// `not-authorized` and `reason`, and the `UserDeleted` hooks run.
pub async fn remove(
    server: &crate::Server,
    jid: &BareJid,
    reason: &str,
) -> Result<(), AccountError> {
    server.accounts().delete(jid).await?;
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
