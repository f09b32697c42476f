//! Admin commands, defined once and served two ways: over the local admin socket of a
//! running server (a Unix socket in the data directory, mode 0600, one JSON request and one
//! JSON response per line), and directly on the store when no server runs. The CLI uses
//! whichever is available, like `prosodyctl` and `ejabberdctl`.

use crate::accounts;
use crate::server::Server;
use rookery_config::Config;
use rookery_storage::Stores;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// A request to the admin interface.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum AdminRequest {
    UserAdd {
        jid: String,
        password: String,
    },
    UserDel {
        jid: String,
    },
    UserPasswd {
        jid: String,
        password: String,
    },
    UserList {
        host: String,
    },
    /// Shared groups of one host (`rookery group …`).
    Group {
        host: String,
        op: crate::modules::groups::GroupOp,
    },
    /// Create or set up a persistent, members-only room of the chat room service, adding
    /// affiliations (`rookery contest init`).
    MucRoom {
        host: String,
        setup: crate::muc::provision::RoomSetup,
    },
    /// The contest tasks of a room (`rookery neerc …`); needs the running server.
    Neerc {
        host: String,
        room: String,
        op: crate::neerc::admin::NeercOp,
    },
    /// Online sessions and uptime.
    Status,
    /// The ad-hoc commands of the first host: items are `node<TAB>name`.
    AdhocList,
    /// One step of an ad-hoc command on the first host, with every permission: the
    /// reply `<command/>` comes back as XML in `command`.
    Adhoc {
        node: String,
        #[serde(default)]
        sessionid: Option<String>,
        /// execute, next, prev, complete or cancel (default execute).
        #[serde(default)]
        action: Option<String>,
        /// The submitted `<x xmlns='jabber:x:data' type='submit'/>` as XML.
        #[serde(default)]
        form: Option<String>,
    },
}

/// The answer: success, a message for the operator, and listed items.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AdminResponse {
    pub ok: bool,
    pub message: String,
    #[serde(default)]
    pub items: Vec<String>,
    /// The reply `<command/>` of an ad-hoc step, as XML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

impl AdminResponse {
    fn ok(message: impl Into<String>) -> Self {
        AdminResponse {
            ok: true,
            message: message.into(),
            items: Vec::new(),
            command: None,
        }
    }
    fn err(e: impl std::fmt::Display) -> Self {
        AdminResponse {
            ok: false,
            message: e.to_string(),
            items: Vec::new(),
            command: None,
        }
    }
}

/// Where a command runs: inside the running server, or on the store alone.
pub enum AdminTarget<'a> {
    Running(&'a Server),
    Offline {
        stores: &'a Stores,
        config: &'a Config,
    },
}

impl AdminTarget<'_> {
    fn stores(&self) -> &Stores {
        match self {
            AdminTarget::Running(s) => s.stores(),
            AdminTarget::Offline { stores, .. } => stores,
        }
    }
    fn config(&self) -> &Config {
        match self {
            AdminTarget::Running(s) => s.config(),
            AdminTarget::Offline { config, .. } => config,
        }
    }
    /// The running server's account backend, or one of our own (an external program is
    /// then started for this command only).
    fn auth_backend(&self) -> accounts::AuthBackend {
        match self {
            AdminTarget::Running(s) => s.auth_backend().clone(),
            AdminTarget::Offline { config, .. } => accounts::AuthBackend::from_config(config),
        }
    }
}

/// Run one admin command.
pub async fn execute(target: AdminTarget<'_>, req: AdminRequest) -> AdminResponse {
    let config = target.config();
    let stores = target.stores();
    let backend = target.auth_backend();
    let accounts = accounts::Accounts::new(stores, config, &backend);
    match req {
        AdminRequest::UserAdd { jid, password } => {
            let jid = match accounts::parse_user(config, &jid) {
                Ok(j) => j,
                Err(e) => return AdminResponse::err(e),
            };
            match accounts.create(&jid, &password).await {
                Ok(()) => {
                    tracing::info!(%jid, "account created");
                    if let AdminTarget::Running(server) = target {
                        let event = crate::module::Event::UserRegistered { jid: jid.clone() };
                        server.registry().fire(server, event).await;
                    }
                    AdminResponse::ok(format!("created {jid}"))
                }
                Err(e) => AdminResponse::err(e),
            }
        }
        AdminRequest::UserDel { jid } => {
            let jid = match accounts::parse_user(config, &jid) {
                Ok(j) => j,
                Err(e) => return AdminResponse::err(e),
            };
            let result = match target {
                AdminTarget::Running(server) => {
                    accounts::remove(server, &jid, "your account has been deleted").await
                }
                AdminTarget::Offline { .. } => {
                    let deleted = accounts.delete(&jid).await;
                    if deleted.is_ok() {
                        // What the running server's UserDeleted hook would do.
                        crate::modules::groups::user_deleted(stores, &jid).await;
                    }
                    deleted
                }
            };
            if let Err(e) = result {
                return AdminResponse::err(e);
            }
            tracing::info!(%jid, "account deleted");
            AdminResponse::ok(format!("deleted {jid}"))
        }
        AdminRequest::UserPasswd { jid, password } => {
            let jid = match accounts::parse_user(config, &jid) {
                Ok(j) => j,
                Err(e) => return AdminResponse::err(e),
            };
            match accounts.set_password(&jid, &password).await {
                Ok(()) => AdminResponse::ok(format!("changed the password of {jid}")),
                Err(e) => AdminResponse::err(e),
            }
        }
        AdminRequest::UserList { host } => {
            if !config.hosts.contains(&host) {
                return AdminResponse::err(format!("this server does not serve {host}"));
            }
            match stores.accounts.list_accounts(&host).await {
                Ok(users) => AdminResponse {
                    ok: true,
                    message: format!("{} users on {host}", users.len()),
                    items: users.into_iter().map(|u| format!("{u}@{host}")).collect(),
                    command: None,
                },
                Err(e) => AdminResponse::err(e),
            }
        }
        AdminRequest::Group { host, op } => {
            let server = match target {
                AdminTarget::Running(server) => Some(server),
                AdminTarget::Offline { .. } => None,
            };
            let (ok, message, items) =
                crate::modules::groups::admin(server, stores, config, &host, op).await;
            AdminResponse {
                ok,
                message,
                items,
                command: None,
            }
        }
        AdminRequest::MucRoom { host, setup } => {
            let server = match target {
                AdminTarget::Running(server) => Some(server),
                AdminTarget::Offline { .. } => None,
            };
            let (ok, message, items) =
                crate::muc::provision::admin(server, stores, config, &host, setup).await;
            AdminResponse {
                ok,
                message,
                items,
                command: None,
            }
        }
        AdminRequest::Neerc { host, room, op } => match target {
            AdminTarget::Running(server) => {
                let (ok, message, items) =
                    crate::neerc::admin::admin(server, &host, &room, op).await;
                AdminResponse {
                    ok,
                    message,
                    items,
                    command: None,
                }
            }
            AdminTarget::Offline { .. } => AdminResponse::err(
                "the server is not running; contest tasks are changed through it (start it with `rookery serve`)",
            ),
        },
        AdminRequest::Status => match target {
            AdminTarget::Running(server) => {
                let sessions = server.sm().all();
                AdminResponse {
                    ok: true,
                    message: format!(
                        "running for {} s; {} sessions",
                        server.uptime().as_secs(),
                        sessions.len()
                    ),
                    items: sessions
                        .iter()
                        .map(|s| format!("{} {}", s.jid, s.peer))
                        .collect(),
                    command: None,
                }
            }
            AdminTarget::Offline { .. } => AdminResponse::err("the server is not running"),
        },
        AdminRequest::AdhocList => match target {
            AdminTarget::Running(server) => {
                let (requester, responder) = socket_requester(server);
                let commands = crate::adhoc::visible(server, &requester, &responder);
                AdminResponse {
                    ok: true,
                    message: format!("{} commands on {responder}", commands.len()),
                    items: commands
                        .iter()
                        .map(|c| format!("{}\t{}", c.node, c.name))
                        .collect(),
                    command: None,
                }
            }
            AdminTarget::Offline { .. } => {
                AdminResponse::err("the server is not running; commands need a running server")
            }
        },
        AdminRequest::Adhoc {
            node,
            sessionid,
            action,
            form,
        } => match target {
            AdminTarget::Running(server) => adhoc_step(server, node, sessionid, action, form).await,
            AdminTarget::Offline { .. } => {
                AdminResponse::err("the server is not running; commands need a running server")
            }
        },
    }
}

/// The admin socket acts as `<first host>/admin-socket` with every permission.
fn socket_requester(server: &Server) -> (crate::adhoc::Requester, jid::Jid) {
    let host = server.config().hosts.first().cloned().unwrap_or_default();
    let jid = jid::Jid::new(&format!("{host}/admin-socket")).expect("hosts are valid domains");
    let responder = jid::Jid::new(&host).expect("hosts are valid domains");
    (
        crate::adhoc::Requester {
            jid,
            privileged: true,
        },
        responder,
    )
}

async fn adhoc_step(
    server: &Server,
    node: String,
    sessionid: Option<String>,
    action: Option<String>,
    form: Option<String>,
) -> AdminResponse {
    use crate::xml::{ElementExt, el};
    let mut cmd = el("command", crate::adhoc::NS).with_attr("node", &node);
    if let Some(s) = &sessionid {
        cmd.put_attr("sessionid", s);
    }
    if let Some(a) = &action {
        cmd.put_attr("action", a);
    }
    if let Some(f) = form {
        match f.parse::<minidom::Element>() {
            Ok(x) => cmd.append_child(x),
            Err(e) => return AdminResponse::err(format!("the submitted form is not XML: {e}")),
        };
    }
    let (requester, responder) = socket_requester(server);
    match crate::adhoc::execute(server, requester, responder, &cmd).await {
        Ok(reply) => AdminResponse {
            ok: true,
            message: String::new(),
            items: Vec::new(),
            command: Some(String::from(&reply)),
        },
        Err(e) => AdminResponse::err(format!("{}: {}", e.condition.as_str(), e.text)),
    }
}

/// Serve the admin socket at `path`. Fails if another server already answers there.
pub fn listen(server: Server, path: &Path) -> anyhow::Result<PathBuf> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another server is already running with this data directory (its admin socket {} answers)",
                path.display()
            );
        }
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let s = server.clone();
    server.spawn(async move {
        let shutdown = s.shutdown_token().clone();
        loop {
            let stream = tokio::select! {
                r = listener.accept() => match r { Ok((st, _)) => st, Err(_) => continue },
                _ = shutdown.cancelled() => return,
            };
            let s2 = s.clone();
            tokio::spawn(async move { serve_admin(s2, stream).await });
        }
    });
    Ok(path.to_owned())
}

async fn serve_admin(server: Server, stream: UnixStream) {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r.take(1024 * 1024)).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let resp = match serde_json::from_str::<AdminRequest>(&line) {
            Ok(req) => execute(AdminTarget::Running(&server), req).await,
            Err(e) => AdminResponse::err(format!("bad admin request: {e}")),
        };
        let mut out = serde_json::to_string(&resp).unwrap_or_default();
        out.push('\n');
        if w.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

use tokio::io::AsyncReadExt as _;

/// Send one request to a running server. `Ok(None)` when no server answers at `path`.
pub async fn request(path: &Path, req: &AdminRequest) -> std::io::Result<Option<AdminResponse>> {
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let (r, mut w) = stream.into_split();
    let mut line = serde_json::to_string(req).map_err(std::io::Error::other)?;
    line.push('\n');
    w.write_all(line.as_bytes()).await?;
    let mut lines = BufReader::new(r).lines();
    match lines.next_line().await? {
        Some(l) => serde_json::from_str(&l)
            .map(Some)
            .map_err(std::io::Error::other),
        None => Err(std::io::Error::other(
            "the server closed the admin connection",
        )),
    }
}

/// The answer to `status` when no server answers.
pub fn execute_offline_status() -> AdminResponse {
    AdminResponse::err("the server is not running")
}
