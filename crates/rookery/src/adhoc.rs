//! `rookery adhoc` (XEP-0050 commands over XMPP, logged in as an account) and
//! `rookery admin` (the running server's commands over its local admin socket). Both run
//! the same stage loop: show the stage, fill in its form from `--field` values or by
//! asking, pick the action, send, until the command completes or is canceled.

use crate::render::{self, Given};
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use rookery_client::{Client, ClientConfig, ClientError, CommandSession, Element, Security};
use rookery_config::Config;
use rookery_forms::{Action, Command, FormType};
use rookery_server::admin::{self, AdminRequest};
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// The most stages one run goes through before giving up (a guard against a command
/// that never ends, or `--action prev` going back and forth).
const MAX_STAGES: usize = 64;

#[derive(Subcommand)]
pub enum AdhocCommand {
    /// List the commands an entity (a server, a user, a service) offers.
    List {
        /// The entity to ask, e.g. the server's domain.
        jid: String,
        #[command(flatten)]
        login: Login,
    },
    /// Run a command. At a terminal, fields without a --field value are asked for;
    /// otherwise the --field values and the form's defaults are sent.
    Run {
        /// The entity that runs the command.
        jid: String,
        /// The command's node (see `adhoc list`); a bare name such as `add-user` means the
        /// XEP-0133 command `http://jabber.org/protocol/admin#add-user`.
        node: String,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        login: Login,
    },
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// List the running server's admin commands.
    List,
    /// Run an admin command on the running server (over its local admin socket, no
    /// login needed).
    Run {
        /// The command's node (see `admin list`); a bare name such as `add-user` means the
        /// XEP-0133 command `http://jabber.org/protocol/admin#add-user`.
        node: String,
        #[command(flatten)]
        run: RunArgs,
    },
}

/// How to log in.
#[derive(Args)]
pub struct Login {
    /// The account to log in as: user@host (or user@host/resource).
    #[arg(long, env = "ROOKERY_ACCOUNT", value_name = "USER@HOST")]
    account: String,
    /// The account's password; asked for at a terminal when absent.
    #[arg(long, env = "ROOKERY_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// The server to connect to [default: the account's domain, port 5222, or 5223 with
    /// --direct-tls].
    #[arg(long, value_name = "HOST:PORT")]
    server: Option<String>,
    /// PEM file of CA certificates to trust [default: the server's generated ca.pem in
    /// the data directory, if there is one].
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// TLS from the first byte (XEP-0368) instead of STARTTLS.
    #[arg(long)]
    direct_tls: bool,
}

/// What to submit.
#[derive(Args)]
pub struct RunArgs {
    /// A field value; repeat the option for the values of a multi-value field.
    #[arg(long = "field", value_name = "VAR=VALUE", value_parser = parse_field)]
    fields: Vec<(String, String)>,
    /// The action to take at each stage that allows it (other stages take their
    /// default): next, prev, complete or cancel.
    #[arg(long, value_parser = parse_action)]
    action: Option<Action>,
}

fn parse_field(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((var, value)) if !var.is_empty() => Ok((var.to_owned(), value.to_owned())),
        _ => Err(format!("'{s}' is not VAR=VALUE")),
    }
}

fn parse_action(s: &str) -> Result<Action, String> {
    match Action::parse(s) {
        Some(a) if a != Action::Execute => Ok(a),
        _ => Err(format!("'{s}' is not next, prev, complete or cancel")),
    }
}

impl RunArgs {
    fn given(&self) -> Given {
        let mut g = Given::new();
        for (var, value) in &self.fields {
            g.entry(var.clone()).or_default().push(value.clone());
        }
        g
    }
}

/// `rookery adhoc …`
pub async fn adhoc(cmd: AdhocCommand, config: &Config) -> Result<ExitCode> {
    match cmd {
        AdhocCommand::List { jid, login } => {
            let mut client = connect(&login, config).await?;
            let listed = client.list_commands(&jid).await;
            let _ = client.close().await;
            let items: Vec<(String, Option<String>)> =
                listed?.into_iter().map(|i| (i.node, i.name)).collect();
            print_list(&items, &jid);
            Ok(ExitCode::SUCCESS)
        }
        AdhocCommand::Run {
            jid,
            node,
            run,
            login,
        } => {
            let client = Box::new(connect(&login, config).await?);
            let mut transport = Transport::Xmpp { client, to: jid };
            let outcome = drive(&mut transport, &full_node(&node), &run).await;
            if let Transport::Xmpp { client, .. } = transport {
                let _ = client.close().await;
            }
            outcome
        }
    }
}

/// `rookery admin …`
pub async fn admin(cmd: AdminCommand, config: &Config) -> Result<ExitCode> {
    let socket = config.admin_socket_path();
    match cmd {
        AdminCommand::List => {
            let resp = admin::request(&socket, &AdminRequest::AdhocList)
                .await
                .with_context(|| format!("admin socket {}", socket.display()))?
                .ok_or_else(|| not_running(&socket))?;
            if !resp.ok {
                bail!("{}", resp.message);
            }
            let items: Vec<(String, Option<String>)> = resp
                .items
                .iter()
                .map(|i| match i.split_once('\t') {
                    Some((node, name)) => (node.to_owned(), Some(name.to_owned())),
                    None => (i.clone(), None),
                })
                .collect();
            print_list(&items, "the server");
            if !items.is_empty() {
                eprintln!("{}", resp.message);
            }
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::Run { node, run } => {
            let node = full_node(&node);
            drive(&mut Transport::Admin { socket }, &node, &run).await
        }
    }
}

fn print_list(items: &[(String, Option<String>)], at: &str) {
    if items.is_empty() {
        eprintln!("{at} offers no commands");
    } else {
        print!("{}", render::command_list(items));
    }
}

fn not_running(socket: &std::path::Path) -> anyhow::Error {
    anyhow!(
        "the server is not running (nothing answers on {})",
        socket.display()
    )
}

/// Where commands are sent.
enum Transport {
    /// Over XMPP, to `to`.
    Xmpp { client: Box<Client>, to: String },
    /// To the running server's admin socket.
    Admin { socket: PathBuf },
}

impl Transport {
    /// Who runs the command, for the session.
    fn peer(&self) -> String {
        match self {
            Transport::Xmpp { to, .. } => to.clone(),
            Transport::Admin { socket } => socket.display().to_string(),
        }
    }

    /// Send one request; the reply's `<command/>`, or the whole error as text.
    async fn send(&mut self, cmd: &Command) -> Result<Command, String> {
        match self {
            Transport::Xmpp { client, to } => client
                .send_command(to, cmd)
                .await
                .map_err(|e| e.to_string()),
            Transport::Admin { socket } => {
                let form = match &cmd.form {
                    None => None,
                    Some(f) => {
                        let mut buf = Vec::new();
                        f.to_element()
                            .write_to(&mut buf)
                            .map_err(|e| format!("serialising the form: {e}"))?;
                        Some(String::from_utf8(buf).map_err(|e| e.to_string())?)
                    }
                };
                let req = AdminRequest::Adhoc {
                    node: cmd.node.clone(),
                    sessionid: cmd.sessionid.clone(),
                    action: cmd.action.map(|a| a.as_str().to_owned()),
                    form,
                };
                let resp = admin::request(socket, &req)
                    .await
                    .map_err(|e| format!("admin socket {}: {e}", socket.display()))?
                    .ok_or_else(|| not_running(socket).to_string())?;
                if !resp.ok {
                    return Err(resp.message);
                }
                let xml = resp
                    .command
                    .ok_or_else(|| "the server answered without a command".to_owned())?;
                let el: Element = xml
                    .parse()
                    .map_err(|e| format!("the server's command is not XML: {e}"))?;
                Command::from_element(&el).map_err(|e| format!("the server's command: {e}"))
            }
        }
    }
}

/// A bare command name is a XEP-0133 command: `add-user` →
/// `http://jabber.org/protocol/admin#add-user`.
fn full_node(node: &str) -> String {
    if node.contains(':') || node.contains('#') {
        node.to_owned()
    } else {
        format!("http://jabber.org/protocol/admin#{node}")
    }
}

/// Run `node` to its end; exit code 0 when it completed without an error note.
async fn drive(transport: &mut Transport, node: &str, run: &RunArgs) -> Result<ExitCode> {
    let given = run.given();
    let interactive = std::io::stdin().is_terminal();
    let mut term = render::Tty;
    let first = transport
        .send(&Command::request(node, Action::Execute))
        .await
        .map_err(|e| anyhow!(e))?;
    let mut session = CommandSession::from_reply(&transport.peer(), node, first)?;
    let mut seen_vars = BTreeSet::new();
    let mut stages = 0;
    loop {
        print!("{}", render::stage(&session));
        if !session.is_executing() {
            break;
        }
        stages += 1;
        if stages > MAX_STAGES {
            cancel(transport, &session).await;
            bail!("the command did not end after {MAX_STAGES} stages; canceled it");
        }
        let layout = session.form.as_ref().filter(|f| f.kind == FormType::Form);
        if let Some(f) = layout {
            seen_vars.extend(f.fields.iter().filter_map(|x| x.var.clone()));
        }
        let ask = interactive && layout.is_some_and(|f| render::needs_input(f, &given));
        let form = match layout {
            None => None,
            Some(f) if ask => match render::ask_form(f, &given, &mut term)? {
                Some(sub) => Some(sub),
                None => {
                    cancel(transport, &session).await;
                    eprintln!("rookery: end of input; canceled the command");
                    return Ok(ExitCode::FAILURE);
                }
            },
            Some(f) => match render::fill_from(f, &given) {
                Ok(sub) => Some(sub),
                Err(e) => {
                    cancel(transport, &session).await;
                    bail!(e);
                }
            },
        };
        let default = session.default_action().unwrap_or(Action::Execute);
        let allowed = session.allowed_actions();
        let action = match run.action {
            Some(a) if allowed.contains(&a) => a,
            Some(_) => default,
            None if ask => match render::ask_action(&allowed, default, &mut term)? {
                Some(a) => a,
                None => {
                    cancel(transport, &session).await;
                    eprintln!("rookery: end of input; canceled the command");
                    return Ok(ExitCode::FAILURE);
                }
            },
            None => default,
        };
        if !ask {
            println!("-> {}", action.as_str());
        }
        match transport.send(&session.request(action, form)).await {
            Ok(reply) => session.apply(reply)?,
            Err(e) => {
                if action != Action::Cancel {
                    cancel(transport, &session).await;
                }
                bail!(e);
            }
        }
        println!();
    }
    for var in given.keys().filter(|v| !seen_vars.contains(*v)) {
        eprintln!("rookery: warning: --field {var}: no stage of the command has that field");
    }
    Ok(if session.is_completed() && !session.has_error_notes() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Cancel a session that is being abandoned, so the responder can free it; failures do
/// not matter any more.
async fn cancel(transport: &mut Transport, session: &CommandSession) {
    if session.is_executing() && session.sessionid.is_some() {
        let _ = transport.send(&session.request(Action::Cancel, None)).await;
    }
}

/// Log in as `--account`.
async fn connect(login: &Login, config: &Config) -> Result<Client> {
    let (bare, resource) = match login.account.split_once('/') {
        Some((b, r)) => (b, Some(r.to_owned())),
        None => (login.account.as_str(), None),
    };
    let domain = match bare.split_once('@') {
        Some((user, domain)) if !user.is_empty() && !domain.is_empty() => domain,
        _ => bail!("--account must be user@host, not '{}'", login.account),
    };
    let password = match &login.password {
        Some(p) => p.clone(),
        None if std::io::stdin().is_terminal() => {
            rpassword::prompt_password(format!("Password for {bare}: "))?
        }
        None => bail!("no password: give --password or set ROOKERY_PASSWORD"),
    };
    let port = if login.direct_tls { 5223 } else { 5222 };
    let target = match &login.server {
        Some(s) => with_port(s, port),
        None => with_port(domain, port),
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&target)
        .await
        .with_context(|| format!("resolving {target}"))?
        .collect();
    let ca_pem = match &login.ca {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => std::fs::read_to_string(config.data_dir.join("ca.pem")).ok(),
    };
    let Some(&first) = addrs.first() else {
        bail!("{target} has no address");
    };
    let mut cfg = ClientConfig::new(first, bare, &password);
    cfg.resource = resource;
    cfg.ca_pem = ca_pem;
    cfg.security = if login.direct_tls {
        Security::DirectTls
    } else {
        Security::StartTls
    };
    let mut last = None;
    for addr in addrs {
        cfg.addr = addr;
        match Client::connect(cfg.clone()).await {
            Ok(c) => return Ok(c),
            // Another address of the same name may answer.
            Err(ClientError::Io(e)) => last = Some(e),
            Err(e) => return Err(e).with_context(|| format!("logging in as {bare} at {addr}")),
        }
    }
    let e = last.expect("every address was tried and failed");
    Err(e).with_context(|| format!("connecting to {target}"))
}

/// `host:port` from `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
fn with_port(s: &str, default: u16) -> String {
    if s.parse::<SocketAddr>().is_ok() {
        return s.to_owned();
    }
    if s.starts_with('[') {
        return if s.ends_with(']') {
            format!("{s}:{default}")
        } else {
            s.to_owned()
        };
    }
    match s.matches(':').count() {
        0 => format!("{s}:{default}"),
        1 => s.to_owned(),
        _ => format!("[{s}]:{default}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(with_port("example.org", 5222), "example.org:5222");
        assert_eq!(with_port("example.org:5269", 5222), "example.org:5269");
        assert_eq!(with_port("127.0.0.1", 5223), "127.0.0.1:5223");
        assert_eq!(with_port("[::1]", 5222), "[::1]:5222");
        assert_eq!(with_port("[::1]:6000", 5222), "[::1]:6000");
        assert_eq!(with_port("::1", 5222), "[::1]:5222");
    }

    #[test]
    fn field_and_action_arguments() {
        assert_eq!(
            parse_field("motd=a=b").unwrap(),
            ("motd".to_owned(), "a=b".to_owned())
        );
        assert_eq!(parse_field("x=").unwrap(), ("x".to_owned(), String::new()));
        assert!(parse_field("=x").is_err());
        assert!(parse_field("x").is_err());
        assert_eq!(parse_action("complete"), Ok(Action::Complete));
        assert!(parse_action("execute").is_err());
        let run = RunArgs {
            fields: vec![
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("a".into(), "3".into()),
            ],
            action: None,
        };
        let g = run.given();
        assert_eq!(g["a"], ["1", "3"]);
        assert_eq!(g["b"], ["2"]);
    }
}
