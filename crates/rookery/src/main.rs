//! `rookery`: the XMPP server and its admin CLI in one binary.
#![forbid(unsafe_code)]

mod adhoc;
mod contest;
mod group;
mod neerc;
mod render;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use rookery_config::Config;
use rookery_server::Server;
use rookery_server::admin::{self, AdminRequest, AdminResponse, AdminTarget};
use rookery_server::server::Exit;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "rookery", version, about = "Rookery XMPP server")]
struct Cli {
    /// Configuration file (TOML). Without it, built-in defaults: host localhost, data in ./rookery-data.
    #[arg(long, short, global = true, env = "ROOKERY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Check the configuration and report every problem, without starting.
    CheckConfig,
    /// Manage accounts (works whether or not the server is running).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage shared groups (works whether or not the server is running).
    Group(group::GroupArgs),
    /// Set up a NEERC contest: accounts, groups and the room (works whether or not the
    /// server is running).
    Contest(contest::ContestArgs),
    /// The contest's tasks, through the running server.
    Neerc(neerc::NeercArgs),
    /// Run the NEERC contest service as an external component (XEP-0114) of a server:
    /// rookery or any other that accepts components.
    NeercComponent(neerc::ComponentArgs),
    /// Show whether the server runs, its uptime and sessions.
    Status,
    /// Ad-hoc commands (XEP-0050) over XMPP, logged in as an account.
    #[command(subcommand)]
    Adhoc(adhoc::AdhocCommand),
    /// The running server's admin commands, over its local admin socket.
    #[command(subcommand)]
    Admin(adhoc::AdminCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account.
    Add {
        /// user@host
        jid: String,
        /// The password; when absent it is asked for, or read from standard input.
        #[arg(long)]
        password: Option<String>,
    },
    /// Delete an account and all its data; its sessions end.
    Del { jid: String },
    /// Change an account's password.
    Passwd {
        jid: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// List the accounts of a host.
    List { host: String },
}

fn load_config(path: Option<&PathBuf>) -> Result<Config> {
    match path {
        Some(p) => Config::load(p).map_err(|e| anyhow::anyhow!("{e}")),
        None => Ok(Config::default()),
    }
}

fn read_password(prompt: &str) -> Result<String> {
    let stdin = std::io::stdin();
    let pw = if stdin.is_terminal() {
        let first = rpassword::prompt_password(prompt)?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            bail!("the passwords do not match");
        }
        first
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if pw.is_empty() {
        bail!("no password given");
    }
    Ok(pw)
}

fn init_logs(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},sqlx=warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rookery: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let config = load_config(cli.config.as_ref())?;
    match cli.command {
        Command::CheckConfig => {
            let origin = cli
                .config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "built-in defaults".into());
            println!(
                "{origin}: configuration is valid; hosts: {}",
                config.hosts.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve => serve(config, cli.config.clone()).await,
        Command::Adhoc(cmd) => adhoc::adhoc(cmd, &config).await,
        Command::Admin(cmd) => adhoc::admin(cmd, &config).await,
        Command::Status => {
            let resp = admin_request(&config, AdminRequest::Status).await?;
            Ok(report(resp))
        }
        Command::Group(args) => {
            let resp = admin_request(&config, group::request(args, &config)?).await?;
            Ok(report(resp))
        }
        Command::Contest(args) => contest::contest(args, &config).await,
        Command::Neerc(args) => neerc::neerc(args, &config).await,
        Command::NeercComponent(args) => {
            init_logs(&config.log.level);
            neerc::component(args, config).await
        }
        Command::User(cmd) => {
            let req = match cmd {
                UserCommand::Add { jid, password } => {
                    let password = match password {
                        Some(p) => p,
                        None => read_password(&format!("Password for {jid}: "))?,
                    };
                    AdminRequest::UserAdd { jid, password }
                }
                UserCommand::Del { jid } => AdminRequest::UserDel { jid },
                UserCommand::Passwd { jid, password } => {
                    let password = match password {
                        Some(p) => p,
                        None => read_password(&format!("New password for {jid}: "))?,
                    };
                    AdminRequest::UserPasswd { jid, password }
                }
                UserCommand::List { host } => AdminRequest::UserList { host },
            };
            let resp = admin_request(&config, req).await?;
            Ok(report(resp))
        }
    }
}

fn report(resp: AdminResponse) -> ExitCode {
    for item in &resp.items {
        println!("{item}");
    }
    if resp.ok {
        eprintln!("{}", resp.message);
        ExitCode::SUCCESS
    } else {
        eprintln!("rookery: {}", resp.message);
        ExitCode::FAILURE
    }
}

/// Ask the running server; when none runs, act on the store directly.
async fn admin_request(config: &Config, req: AdminRequest) -> Result<AdminResponse> {
    if let Some(resp) = admin::request(&config.admin_socket_path(), &req).await? {
        return Ok(resp);
    }
    if matches!(req, AdminRequest::Status) {
        return Ok(admin::execute_offline_status());
    }
    let db = config.data_dir.join("rookery.sqlite");
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let store = rookery_storage::sqlite::SqliteStore::open(&db)
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    let stores = store.into_stores();
    Ok(admin::execute(
        AdminTarget::Offline {
            stores: &stores,
            config,
        },
        req,
    )
    .await)
}

async fn serve(config: Config, config_path: Option<PathBuf>) -> Result<ExitCode> {
    init_logs(&config.log.level);
    let server = Server::open(config).await?;
    server.set_config_path(config_path);
    let listening = server.start().await?;
    let cfg = server.config();
    println!(
        "rookery {} serving {}",
        env!("CARGO_PKG_VERSION"),
        cfg.hosts.join(", ")
    );
    if let Some(a) = listening.c2s {
        println!("  c2s (STARTTLS)      {a}");
    }
    if let Some(a) = listening.c2s_tls {
        println!("  c2s (direct TLS)    {a}");
    }
    if let Some(a) = listening.component {
        let names: Vec<&str> = cfg.components.iter().map(|c| c.name.as_str()).collect();
        println!("  components          {a} ({})", names.join(", "));
    }
    if let Some(p) = &listening.admin_socket {
        println!("  admin socket        {}", p.display());
    }
    println!("  data directory      {}", cfg.data_dir.display());
    if let Some(ca) = server.tls().and_then(|t| t.generated_ca.as_ref()) {
        println!(
            "  self-signed CA      {} (trust it in clients)",
            ca.display()
        );
    }
    let exit = tokio::select! {
        _ = wait_for_signal() => Exit::Shutdown,
        e = server.exit_requested() => e,
    };
    tracing::info!(?exit, "shutting down");
    server.shutdown().await;
    if exit == Exit::Restart {
        // Start again as the same program with the same arguments (XEP-0133 restart).
        use std::os::unix::process::CommandExt;
        let mut args = std::env::args_os();
        let program = std::env::current_exe().context("finding the running program")?;
        let _ = args.next();
        let err = std::process::Command::new(program).args(args).exec();
        bail!("could not restart: {err}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
