//! `rookery group …`: shared groups, through the running server's admin socket or, when
//! no server runs, directly on the store (like `rookery user …`).

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use rookery_config::Config;
use rookery_server::admin::AdminRequest;
use rookery_server::modules::groups::GroupOp;

#[derive(Args)]
pub struct GroupArgs {
    /// The host whose groups to manage [default: the first configured host].
    #[arg(long, global = true)]
    host: Option<String>,
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Create a group.
    Add {
        /// The group's id, a JID localpart (e.g. halls).
        id: String,
        /// The display name users see (e.g. Halls) [default: the id].
        #[arg(long)]
        name: Option<String>,
        /// Show the members in each other's rosters.
        #[arg(long)]
        show_in_roster: bool,
    },
    /// Delete a group and its memberships.
    Del {
        /// The group's id.
        id: String,
    },
    /// List the groups: id, name, and whether they are shown in rosters.
    List,
    /// List a group's members.
    Members {
        /// The group's id.
        id: String,
    },
    /// Add members (users' bare JIDs) to a group.
    MemberAdd {
        /// The group's id.
        id: String,
        /// Users' bare JIDs (user@host).
        #[arg(required = true)]
        jids: Vec<String>,
    },
    /// Remove members from a group.
    MemberDel {
        /// The group's id.
        id: String,
        /// Users' bare JIDs (user@host).
        #[arg(required = true)]
        jids: Vec<String>,
    },
}

/// The admin request for a `rookery group …` command line.
pub fn request(args: GroupArgs, config: &Config) -> Result<AdminRequest> {
    let host = match args.host {
        Some(h) => h,
        None => match config.hosts.first() {
            Some(h) => h.clone(),
            None => bail!("the configuration has no hosts"),
        },
    };
    let op = match args.command {
        GroupCommand::Add {
            id,
            name,
            show_in_roster,
        } => GroupOp::Add {
            id,
            name,
            show_in_roster,
        },
        GroupCommand::Del { id } => GroupOp::Del { id },
        GroupCommand::List => GroupOp::List,
        GroupCommand::Members { id } => GroupOp::Members { id },
        GroupCommand::MemberAdd { id, jids } => GroupOp::MemberAdd { id, jids },
        GroupCommand::MemberDel { id, jids } => GroupOp::MemberDel { id, jids },
    };
    Ok(AdminRequest::Group { host, op })
}
