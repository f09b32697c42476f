//! `rookery neerc …`: the jury's task work from scripts, through the running server's admin
//! socket. Changes go through the contest service as the jury's own do over XMPP, so the
//! room's occupants get the same broadcasts.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use rookery_config::Config;
use rookery_server::admin::{self, AdminRequest};
use rookery_server::neerc::admin::NeercOp;
use std::path::PathBuf;

#[derive(Args)]
pub struct NeercArgs {
    /// The host [default: the first configured host].
    #[arg(long, global = true)]
    host: Option<String>,
    /// The contest's chat room [default: `[neerc] default_room`, i.e. neerc].
    #[arg(long, global = true)]
    room: Option<String>,
    #[command(subcommand)]
    command: NeercCommand,
}

#[derive(Subcommand)]
enum NeercCommand {
    /// Print the tasks: `id<TAB>type<TAB>title[<TAB>schedule]`, then
    /// `<TAB>assignee<TAB>status[<TAB>value]` for each assignee.
    Tasks,
    /// Create a task (or replace task --id, whose statuses start again at none).
    Add {
        /// todo, todofail, confirm, okfail or question (or an alias: task, ok, reason, q).
        #[arg(long = "type", default_value = "todo")]
        kind: String,
        /// What to do.
        #[arg(long)]
        title: String,
        /// Assignees: user or group names, comma-separated (e.g. hall1,hall2,Halls).
        #[arg(long, value_delimiter = ',', required = true)]
        to: Vec<String>,
        /// The task's id [default: a new one].
        #[arg(long)]
        id: Option<String>,
    },
    /// Remove a task.
    Remove {
        /// The task's id.
        id: String,
    },
    /// Set an assignee's status on a task (the state machine applies).
    Status {
        /// The task's id.
        id: String,
        /// Whose status (a user name, e.g. hall3).
        #[arg(long)]
        assignee: String,
        /// none, running, success, fail or acknowledged.
        #[arg(long)]
        status: String,
        /// A reason or an answer.
        #[arg(long, default_value = "")]
        value: String,
    },
    /// Create the tasks of a file of task lines, `@type [assignees] [schedule] title`
    /// (see README.md); nothing is created if any line is bad.
    Import {
        /// The file ('-' for standard input).
        file: PathBuf,
    },
}

/// The admin request for a `rookery neerc …` command line.
fn request(args: NeercArgs, config: &Config) -> Result<AdminRequest> {
    let host = match args.host {
        Some(h) => h,
        None => config
            .hosts
            .first()
            .cloned()
            .context("the configuration has no hosts")?,
    };
    let room = args
        .room
        .unwrap_or_else(|| config.neerc.default_room.clone());
    let op = match args.command {
        NeercCommand::Tasks => NeercOp::Tasks,
        NeercCommand::Add {
            kind,
            title,
            to,
            id,
        } => NeercOp::Add {
            kind,
            title,
            to,
            id,
        },
        NeercCommand::Remove { id } => NeercOp::Remove { id },
        NeercCommand::Status {
            id,
            assignee,
            status,
            value,
        } => NeercOp::Status {
            id,
            assignee,
            status,
            value,
        },
        NeercCommand::Import { file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            NeercOp::Import { text }
        }
    };
    Ok(AdminRequest::Neerc { host, room, op })
}

/// Run a `rookery neerc …` command against the running server.
pub async fn neerc(args: NeercArgs, config: &Config) -> Result<std::process::ExitCode> {
    let req = request(args, config)?;
    let socket = config.admin_socket_path();
    match admin::request(&socket, &req).await? {
        Some(resp) => Ok(crate::report(resp)),
        None => bail!(
            "the server is not running (no answer at {}); `rookery neerc` works through it: \
             start it with `rookery serve`",
            socket.display()
        ),
    }
}

/// `rookery neerc-component`: the contest service in a process of its own.
#[derive(Args)]
pub struct ComponentArgs {
    /// The server's component listener, host:port.
    #[arg(long, default_value = "127.0.0.1:5347")]
    server: String,
    /// The component's name, as the server's configuration gives it (e.g. neerc.example.org).
    #[arg(long)]
    name: String,
    /// The component's secret.
    #[arg(long, env = "ROOKERY_COMPONENT_SECRET", hide_env_values = true)]
    secret: String,
    /// The XMPP domain whose chat rooms it serves [default: the name without its first label].
    #[arg(long)]
    host: Option<String>,
    /// The chat service's domain [default: conference.HOST].
    #[arg(long)]
    muc: Option<String>,
    /// The domain of group JIDs in room affiliations [default: groups.HOST].
    #[arg(long)]
    groups: Option<String>,
    /// Where the service keeps its tasks [default: the configuration's data directory
    /// with `-neerc` appended, i.e. rookery-data-neerc].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Run the contest service as an external component until a signal.
pub async fn component(args: ComponentArgs, mut config: Config) -> Result<std::process::ExitCode> {
    let host = match args.host {
        Some(h) => h,
        None => match args.name.split_once('.') {
            Some((_, rest)) if !rest.is_empty() => rest.to_owned(),
            _ => bail!("--name {} has no parent domain; give --host", args.name),
        },
    };
    config.data_dir = match args.data_dir {
        Some(d) => d,
        None => {
            let mut d = config.data_dir.into_os_string();
            d.push("-neerc");
            PathBuf::from(d)
        }
    };
    let opts = rookery_server::neerc::external::ExternalOptions {
        server: args.server,
        name: args.name,
        secret: args.secret,
        muc: args.muc.unwrap_or_else(|| format!("conference.{host}")),
        groups: args.groups.unwrap_or_else(|| format!("groups.{host}")),
        host,
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        crate::wait_for_signal().await;
        stop.cancel();
    });
    println!(
        "rookery {} contest service {} for {} via {} (data in {})",
        env!("CARGO_PKG_VERSION"),
        opts.name,
        opts.host,
        opts.server,
        config.data_dir.display()
    );
    rookery_server::neerc::external::run(opts, config, shutdown)
        .await
        .context("the contest component")?;
    Ok(std::process::ExitCode::SUCCESS)
}
