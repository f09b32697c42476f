//! Server control: administrators, black and white lists, restart and shutdown, and our
//! own ping, uptime, statistics, session list and configuration reload.

use super::{NS_ROOKERY, add, form, messages, node, result};
use crate::adhoc::{
    CommandRequest, Field, HandlerResult, Permission, Reply, Values, immediate, prefilled_form,
};
use crate::error::StanzaError;
use crate::module::{Direction, EventKind, Flow, ModuleContext, Verdict};
use crate::server::{Exit, Server};
use crate::util::format_datetime;
use crate::xml::ElementExt;
use jid::Jid;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Server-wide lists stored as the first host's documents.
const LIST_KIND: &str = "server";

/// The black and white lists, kept in memory for the stanza filter.
#[derive(Clone, Default)]
pub(super) struct AccessLists(Arc<RwLock<Lists>>, Arc<std::sync::atomic::AtomicBool>);

#[derive(Default)]
struct Lists {
    black: Vec<String>,
    white: Vec<String>,
}

/// Whether `jid` is matched by a list entry: the same bare JID, or its domain.
fn listed(list: &[String], jid: &Jid) -> bool {
    let bare = jid.to_bare().to_string();
    let domain = jid.domain().as_str();
    list.iter().any(|e| *e == bare || e == domain)
}

impl AccessLists {
    fn set(&self, lists: Lists) {
        self.change(|l| *l = lists);
    }

    /// Change the lists, and note whether any is in force.
    fn change(&self, f: impl FnOnce(&mut Lists)) {
        let mut l = self.0.write().unwrap();
        f(&mut l);
        let active = !l.black.is_empty() || !l.white.is_empty();
        self.1.store(active, std::sync::atomic::Ordering::Release);
    }

    /// Blacklisted JIDs and domains may not exchange stanzas with local users; a
    /// non-empty whitelist admits only listed remote JIDs (local users and services are
    /// always admitted).
    fn verdict(&self, server: &Server, stanza: &minidom::Element, dir: Direction) -> Verdict {
        // Most servers have no lists: every stanza passes without taking the lock.
        if !self.1.load(std::sync::atomic::Ordering::Acquire) {
            return Verdict::Pass;
        }
        let l = self.0.read().unwrap();
        let attr = if dir == Direction::Outbound {
            "to"
        } else {
            "from"
        };
        let Some(other) = stanza.get_attr(attr).and_then(|a| Jid::new(a).ok()) else {
            return Verdict::Pass;
        };
        let domain = other.domain().as_str();
        let local = server.serves_host(domain) || server.service(domain).is_some();
        let refused = listed(&l.black, &other)
            || (!local && !l.white.is_empty() && !listed(&l.white, &other));
        match (refused, dir) {
            (false, _) => Verdict::Pass,
            (true, Direction::Inbound) => Verdict::Drop,
            (true, Direction::Outbound) => Verdict::Bounce(StanzaError::not_allowed(format!(
                "{other} is not allowed to communicate with this server"
            ))),
        }
    }
}

pub(super) fn register(m: &mut ModuleContext<'_>, lists: &AccessLists) {
    admins(m);
    restart_and_shutdown(m);
    access_lists(m, lists);
    ours(m);
}

fn first_host(server: &Server) -> String {
    server.config().hosts.first().cloned().unwrap_or_default()
}

async fn load_list(server: &Server, key: &str) -> Result<Vec<String>, StanzaError> {
    Ok(server
        .stores()
        .user_data
        .get_user_data(&first_host(server), "", LIST_KIND, key)
        .await?
        .map(|s| {
            s.lines()
                .map(str::to_owned)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default())
}

async fn store_list(server: &Server, key: &str, list: &[String]) -> Result<(), StanzaError> {
    server
        .stores()
        .user_data
        .put_user_data(&first_host(server), "", LIST_KIND, key, &list.join("\n"))
        .await?;
    Ok(())
}

fn admins(m: &mut ModuleContext<'_>) {
    m.hook(EventKind::Started, 0, |server, _| async move {
        match load_list(&server, "admins").await {
            Ok(stored) if !stored.is_empty() => server.set_admins(stored),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not load the administrators"),
        }
        Flow::Continue
    });
    add(
        m,
        &node("edit-admin"),
        "Edit admin list",
        Permission::GlobalAdmin,
        prefilled_form(
            |req: CommandRequest| async move {
                Ok(form(
                    "Editing the administrators",
                    "Administrators listed in the configuration file stay administrators.",
                )
                .with_field(
                    Field::jid_multi("adminjids", "The administrators")
                        .with_values(req.server.admins()),
                ))
            },
            |req: CommandRequest, v: Values| async move {
                let wanted: Vec<String> = v
                    .jids("adminjids")
                    .iter()
                    .map(|j| j.to_bare().to_string())
                    .collect();
                let server = &req.server;
                server.set_admins(wanted.clone());
                store_list(server, "admins", &server.admins()).await?;
                let mut reply = Reply::completed()
                    .info(format!("administrators: {}", server.admins().join(", ")));
                for kept in server
                    .configured_admins()
                    .iter()
                    .filter(|a| !wanted.contains(a))
                {
                    reply = reply.warn(format!("{kept} is listed in the configuration file and stays an administrator; remove it there"));
                }
                tracing::info!(by = %req.from, admins = ?server.admins(), "administrators changed");
                Ok(reply)
            },
        ),
    );
}

fn restart_and_shutdown(m: &mut ModuleContext<'_>) {
    for (name, label, exit) in [
        ("restart", "Restart service", Exit::Restart),
        ("shutdown", "Shut down service", Exit::Shutdown),
    ] {
        let verb = if exit == Exit::Restart {
            "restart"
        } else {
            "shut down"
        };
        add(
            m,
            &node(name),
            label,
            Permission::GlobalAdmin,
            crate::adhoc::simple_form(
                form(
                    label,
                    &format!(
                        "The server will {verb} after the delay; online users get the announcement."
                    ),
                )
                .with_field(
                    Field::list_single(
                        "delay",
                        "Time delay before the action",
                        &[
                            ("Now", "0"),
                            ("5 seconds", "5"),
                            ("30 seconds", "30"),
                            ("60 seconds", "60"),
                            ("90 seconds", "90"),
                            ("2 minutes", "120"),
                            ("3 minutes", "180"),
                            ("4 minutes", "240"),
                            ("5 minutes", "300"),
                        ],
                    )
                    .with_value("30"),
                )
                .with_field(Field::text_multi("announcement", "Announcement")),
                move |req: CommandRequest, v: Values| async move {
                    let delay: u64 = v.str("delay").and_then(|d| d.parse().ok()).unwrap_or(30);
                    let mut text = v.text("announcement");
                    if text.trim().is_empty() {
                        text = format!("The server will {verb} in {delay} seconds.");
                    }
                    let n = messages::announce_everywhere(&req.server, &text);
                    tracing::warn!(by = %req.from, delay, ?exit, "stop requested by an administrator");
                    let server = req.server.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(delay)).await;
                        server.request_exit(exit);
                    });
                    Ok(Reply::completed().info(format!(
                        "the server will {verb} in {delay} seconds; {n} online resources were told"
                    )))
                },
            ),
        );
    }
}

fn access_lists(m: &mut ModuleContext<'_>, lists: &AccessLists) {
    let l = lists.clone();
    m.hook(EventKind::Started, 0, move |server, _| {
        let l = l.clone();
        async move {
            match (
                load_list(&server, "blacklist").await,
                load_list(&server, "whitelist").await,
            ) {
                (Ok(black), Ok(white)) => l.set(Lists { black, white }),
                _ => tracing::warn!("could not load the black and white lists"),
            }
            Flow::Continue
        }
    });
    let l = lists.clone();
    m.filter(move |server, stanza, dir| l.verdict(server, stanza, dir));
    for (name, label, key, var) in [
        (
            "edit-blacklist",
            "Edit blacklist",
            "blacklist",
            "blacklistjids",
        ),
        (
            "edit-whitelist",
            "Edit whitelist",
            "whitelist",
            "whitelistjids",
        ),
    ] {
        let lists = lists.clone();
        add(
            m,
            &node(name),
            label,
            Permission::GlobalAdmin,
            prefilled_form(
                move |req: CommandRequest| async move {
                    let current = load_list(&req.server, key).await?;
                    let what = if key == "blacklist" {
                        "These JIDs and domains may not communicate with this server's users."
                    } else {
                        "When not empty, only these remote JIDs and domains may communicate with this server's users."
                    };
                    Ok(form(label, what)
                        .with_field(Field::jid_multi(var, "JIDs or domains").with_values(current)))
                },
                move |req: CommandRequest, v: Values| {
                    let lists = lists.clone();
                    async move {
                        let mut list: Vec<String> =
                            v.jids(var).iter().map(|j| j.to_string()).collect();
                        list.sort();
                        list.dedup();
                        store_list(&req.server, key, &list).await?;
                        lists.change(|l| {
                            if key == "blacklist" {
                                l.black = list.clone();
                            } else {
                                l.white = list.clone();
                            }
                        });
                        tracing::info!(by = %req.from, list = key, entries = list.len(), "access list changed");
                        Ok(
                            Reply::completed()
                                .info(format!("the {key} has {} entries", list.len())),
                        )
                    }
                },
            ),
        );
    }
}

fn ours(m: &mut ModuleContext<'_>) {
    let n = |name: &str| format!("{NS_ROOKERY}#{name}");
    add(
        m,
        &n("ping"),
        "Ping the server",
        Permission::Any,
        immediate(|req: CommandRequest| async move {
            Ok(Reply::completed().info(format!("pong from {}", req.to)))
        }),
    );
    add(
        m,
        &n("uptime"),
        "Server uptime",
        Permission::Admin,
        immediate(|req: CommandRequest| async move {
            let up = req.server.uptime().as_secs();
            Ok(Reply::result(
                result("Uptime")
                    .with_field(
                        Field::text_single("uptime", "Seconds since start")
                            .with_value(up.to_string()),
                    )
                    .with_field(Field::text_single("human", "Uptime").with_value(human(up))),
            ))
        }),
    );
    add(
        m,
        &n("stats"),
        "Server statistics",
        Permission::Admin,
        immediate(|req: CommandRequest| async move { stats(req).await }),
    );
    add(
        m,
        &n("sessions"),
        "List connected sessions",
        Permission::Admin,
        immediate(|req: CommandRequest| async move { sessions(req) }),
    );
    add(
        m,
        &n("reload"),
        "Reload the configuration",
        Permission::GlobalAdmin,
        immediate(|req: CommandRequest| async move { reload(req) }),
    );
}

fn human(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m {s}s")
    } else if h > 0 {
        format!("{h}h {m}m {s}s")
    } else {
        format!("{m}m {s}s")
    }
}

/// Resident memory of this process in KiB, from /proc.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn stats(req: CommandRequest) -> HandlerResult {
    let server = &req.server;
    let mut f = result("Server statistics");
    for host in &server.config().hosts {
        let n = server.stores().accounts.count_accounts(host).await?;
        f = f.with_field(
            Field::text_single(
                &format!("registered@{host}"),
                &format!("Registered users on {host}"),
            )
            .with_value(n.to_string()),
        );
    }
    let all = server.sm().all();
    let mut users: Vec<_> = all.iter().map(|s| s.jid.to_bare()).collect();
    users.sort();
    users.dedup();
    let stanzas: u64 = all.iter().map(|s| s.stanzas_in()).sum();
    f = f
        .with_field(
            Field::text_single("onlineusers", "Online users").with_value(users.len().to_string()),
        )
        .with_field(
            Field::text_single("sessions", "Connected resources").with_value(all.len().to_string()),
        )
        .with_field(
            Field::text_single("available", "Available resources")
                .with_value(all.iter().filter(|s| s.is_available()).count().to_string()),
        )
        .with_field(
            Field::text_single("stanzasin", "Stanzas received from connected resources")
                .with_value(stanzas.to_string()),
        )
        .with_field(
            Field::text_single("adhocsessions", "Open command sessions")
                .with_value(server.adhoc().open_sessions().to_string()),
        )
        .with_field(
            Field::text_single("uptime", "Uptime, seconds")
                .with_value(server.uptime().as_secs().to_string()),
        );
    if let Some(kib) = rss_kib() {
        f = f.with_field(
            Field::text_single("rss_kib", "Resident memory, KiB").with_value(kib.to_string()),
        );
    }
    Ok(Reply::result(f))
}

fn sessions(req: CommandRequest) -> HandlerResult {
    let mut all = req.server.sm().all();
    all.sort_by_key(|s| s.jid.to_string());
    let now = rookery_storage::now_us();
    let mut table = result("Connected sessions").with_reported(vec![
        Field::jid_single("jid", "JID"),
        Field::text_single("ip", "Address"),
        Field::text_single("since", "Connected since"),
        Field::text_single("presence", "Presence"),
        Field::text_single("priority", "Priority"),
        Field::text_single("stanzas", "Stanzas sent"),
        Field::text_single("idle", "Idle, seconds"),
    ]);
    for s in &all {
        let presence = match s.show() {
            None => "unavailable".to_owned(),
            Some(show) if show.is_empty() => "available".to_owned(),
            Some(show) => show,
        };
        table = table.with_item(&[
            ("jid", &s.jid.to_string()),
            ("ip", &s.peer.to_string()),
            ("since", &format_datetime(s.since_us)),
            ("presence", &presence),
            ("priority", &s.priority().to_string()),
            ("stanzas", &s.stanzas_in().to_string()),
            (
                "idle",
                &((now - s.last_active_us()) / 1_000_000).to_string(),
            ),
        ]);
    }
    Ok(Reply::result(table).info(format!("{} sessions", all.len())))
}

/// Re-read the configuration file: the administrators take effect now; other changed
/// sections are named, as they need a restart.
fn reload(req: CommandRequest) -> HandlerResult {
    let server = &req.server;
    let Some(path) = server.config_path() else {
        return Ok(Reply::completed().warn(
            "the server was started without a configuration file; there is nothing to reload",
        ));
    };
    let new = match rookery_config::Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Reply::completed().error(format!("the configuration was not reloaded: {e}")));
        }
    };
    let old = server.config();
    server.set_configured_admins(new.admins.clone());
    let mut restart = Vec::new();
    if new.hosts != old.hosts {
        restart.push("hosts");
    }
    if new.data_dir != old.data_dir {
        restart.push("data_dir");
    }
    if new.listen != old.listen {
        restart.push("listen");
    }
    if new.tls != old.tls {
        restart.push("tls");
    }
    if new.limits != old.limits {
        restart.push("limits");
    }
    if new.auth != old.auth {
        restart.push("auth");
    }
    if new.modules != old.modules {
        restart.push("modules");
    }
    if new.log != old.log {
        restart.push("log");
    }
    tracing::info!(by = %req.from, path = %path.display(), "configuration reloaded");
    let mut reply = Reply::completed().info(format!(
        "reloaded {}; administrators: {}",
        path.display(),
        server.admins().join(", ")
    ));
    if !restart.is_empty() {
        reply = reply.warn(format!(
            "changed settings that take effect after a restart: {}",
            restart.join(", ")
        ));
    }
    Ok(reply)
}
