//! `rookery contest init`: the accounts, shared groups and chat room of a NEERC contest,
//! through the running server's admin socket or, when no server runs, on the store (like
//! `rookery user …` and `rookery group …`).
//!
//! What it makes, on one host:
//! - accounts `jury1..juryM` and `hall1..hallN` with random 20-character passwords.
//!   Accounts that exist already are skipped: their passwords are not changed, and they
//!   are not in the credentials written (so running it again with more halls adds the
//!   new ones only);
//! - the shared groups `jury` (`Jury`) and `halls` (`Halls`), not shown in rosters (the
//!   contest client works from the room, and a hall need not see the others), with those
//!   accounts as members; existing groups are kept and get the missing members;
//! - the room `R@conference.<host>`: persistent, members-only and hidden, with the group
//!   `jury` as owner (the jury: power in the contest service) and `halls` as member;
//!   when the contest service runs as an external component (a `[[component]]` named
//!   `neerc.<host>`), the component too is an owner, so that it may read the room.
//!
//! The credentials go to standard output, or to `--out FILE` (created with mode 0600;
//! an existing file is never overwritten), as CSV or as XEP-0227 `users.xml`.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use rand::RngExt;
use rookery_config::Config;
use rookery_server::admin::{AdminRequest, AdminResponse};
use rookery_server::modules::groups::GroupOp;
use rookery_server::muc::provision::RoomSetup;
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ContestArgs {
    #[command(subcommand)]
    command: ContestCommand,
}

#[derive(Subcommand)]
enum ContestCommand {
    /// Create the jury and hall accounts, the groups jury and halls, and the contest room.
    Init(InitArgs),
}

#[derive(Args)]
struct InitArgs {
    /// How many hall accounts (hall1..hallN).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    halls: u32,
    /// How many jury accounts (jury1..juryM).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    jury: u32,
    /// The host [default: the first configured host].
    #[arg(long)]
    host: Option<String>,
    /// The chat room's name [default: `[neerc] default_room`, i.e. neerc].
    #[arg(long)]
    room: Option<String>,
    /// Write the credentials to this new file (mode 0600) instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// How to write the credentials.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// `user,jid,password` lines after a header line.
    Csv,
    /// XEP-0227 `users.xml` (`urn:xmpp:pie:0`), for importing into another server.
    Xep0227,
}

/// The group ids and display names a contest uses.
const JURY: (&str, &str) = ("jury", "Jury");
const HALLS: (&str, &str) = ("halls", "Halls");

/// A random password of 20 letters and digits.
fn password() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(20)
        .map(char::from)
        .collect()
}

pub async fn contest(args: ContestArgs, config: &Config) -> Result<ExitCode> {
    match args.command {
        ContestCommand::Init(a) => init(a, config).await,
    }
}

/// One admin request that must succeed.
async fn ask(config: &Config, req: AdminRequest) -> Result<AdminResponse> {
    let resp = crate::admin_request(config, req).await?;
    if !resp.ok {
        bail!("{}", resp.message);
    }
    Ok(resp)
}

async fn init(a: InitArgs, config: &Config) -> Result<ExitCode> {
    let host = match a.host {
        Some(h) => h,
        None => config
            .hosts
            .first()
            .cloned()
            .context("the configuration has no hosts")?,
    };
    if !config.hosts.contains(&host) {
        bail!("this server does not serve the domain {host}");
    }
    let room = a.room.unwrap_or_else(|| config.neerc.default_room.clone());
    // Opened first: a file that cannot be written must not cost the passwords made.
    let mut out: Box<dyn Write> = match &a.out {
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| {
                    format!(
                        "creating {} (an existing file is never overwritten)",
                        path.display()
                    )
                })?;
            Box::new(file)
        }
        None => Box::new(std::io::stdout()),
    };
    let mut created: Vec<(String, String)> = Vec::new();
    let outcome = provision(config, &host, &room, a.jury, a.halls, &mut created).await;
    // Whatever happened after, the accounts made have their passwords written.
    let text = match a.format {
        Format::Csv => csv(&host, &created),
        Format::Xep0227 => xep0227(&host, &created),
    };
    if !created.is_empty() {
        out.write_all(text.as_bytes())?;
        out.flush()?;
        if let Some(path) = &a.out {
            eprintln!(
                "wrote the credentials of {} accounts to {}",
                created.len(),
                path.display()
            );
        }
    } else if let Some(path) = &a.out {
        // Nothing to record: no empty file is left to be refused next time.
        drop(out);
        std::fs::remove_file(path)
            .with_context(|| format!("removing the unused {}", path.display()))?;
        eprintln!("no account was created; {} was not written", path.display());
    }
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// Accounts, groups and room; `created` gets each new account's (name, password).
async fn provision(
    config: &Config,
    host: &str,
    room: &str,
    jury: u32,
    halls: u32,
    created: &mut Vec<(String, String)>,
) -> Result<()> {
    let existing: HashSet<String> = ask(
        config,
        AdminRequest::UserList {
            host: host.to_owned(),
        },
    )
    .await?
    .items
    .into_iter()
    .collect();
    let juries: Vec<String> = (1..=jury).map(|i| format!("jury{i}")).collect();
    let hall_names: Vec<String> = (1..=halls).map(|i| format!("hall{i}")).collect();
    let mut skipped = Vec::new();
    for name in juries.iter().chain(&hall_names) {
        let jid = format!("{name}@{host}");
        if existing.contains(&jid) {
            skipped.push(name.clone());
            continue;
        }
        let pw = password();
        ask(
            config,
            AdminRequest::UserAdd {
                jid,
                password: pw.clone(),
            },
        )
        .await?;
        created.push((name.clone(), pw));
    }
    eprintln!("created {} accounts on {host}", created.len());
    if !skipped.is_empty() {
        eprintln!(
            "kept {} existing accounts, passwords unchanged: {}",
            skipped.len(),
            skipped.join(", ")
        );
    }

    let groups = ask(
        config,
        AdminRequest::Group {
            host: host.to_owned(),
            op: GroupOp::List,
        },
    )
    .await?
    .items;
    for ((id, name), members) in [(JURY, &juries), (HALLS, &hall_names)] {
        let exists = groups.iter().any(|g| g.split('\t').next() == Some(id));
        if !exists {
            ask(
                config,
                AdminRequest::Group {
                    host: host.to_owned(),
                    op: GroupOp::Add {
                        id: id.to_owned(),
                        name: Some(name.to_owned()),
                        show_in_roster: false,
                    },
                },
            )
            .await?;
            eprintln!("created the group {id} ({name})");
        }
        if members.is_empty() {
            continue;
        }
        let resp = ask(
            config,
            AdminRequest::Group {
                host: host.to_owned(),
                op: GroupOp::MemberAdd {
                    id: id.to_owned(),
                    jids: members.iter().map(|m| format!("{m}@{host}")).collect(),
                },
            },
        )
        .await?;
        eprintln!("{}", resp.message);
    }

    let group = |id: &str| format!("{id}@groups.{host}");
    let mut affiliations = vec![
        (group(JURY.0), "owner".to_owned()),
        (group(HALLS.0), "member".to_owned()),
    ];
    // A contest service run as an external component reads the room as one of its owners.
    let component = format!("{}.{host}", config.neerc.subdomain);
    if config.components.iter().any(|c| c.name == component) {
        affiliations.push((component, "owner".to_owned()));
    }
    let resp = ask(
        config,
        AdminRequest::MucRoom {
            host: host.to_owned(),
            setup: RoomSetup {
                room: room.to_owned(),
                name: None,
                affiliations,
            },
        },
    )
    .await?;
    eprintln!("{}", resp.message);
    for item in &resp.items {
        eprintln!("  {}", item.replace('\t', " is "));
    }
    Ok(())
}

/// `user,jid,password` with a header line; none of these values needs quoting.
fn csv(host: &str, accounts: &[(String, String)]) -> String {
    let mut s = String::from("user,jid,password\n");
    for (name, pw) in accounts {
        s.push_str(&format!("{name},{name}@{host},{pw}\n"));
    }
    s
}

/// XEP-0227 portable import/export: the accounts with their passwords and empty rosters.
fn xep0227(host: &str, accounts: &[(String, String)]) -> String {
    let mut s = String::from(
        "<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n",
    );
    s.push_str(&format!("  <host jid='{host}'>\n"));
    for (name, pw) in accounts {
        s.push_str(&format!("    <user name='{name}' password='{pw}'/>\n"));
    }
    s.push_str("  </host>\n</server-data>\n");
    s
}
