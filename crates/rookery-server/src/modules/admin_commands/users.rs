//! Account commands: add, delete, disable, re-enable, end sessions, change password,
//! roster, last login, user statistics.

use super::{accountjids, add, form, local_user, local_users, node, per_jid, result};
use crate::accounts::{self, AccountError};
use crate::adhoc::{CommandRequest, Field, HandlerResult, Permission, Reply, Values, simple_form};
use crate::error::StreamCondition;
use crate::module::{Event, ModuleContext};
use crate::util::format_datetime;
use crate::xml::{ElementExt, el};

pub(super) fn register(m: &mut ModuleContext<'_>) {
    add(
        m,
        &node("add-user"),
        "Add a user",
        Permission::Admin,
        simple_form(
            form("Adding a user", "Fill out this form to add a user.")
                .with_field(
                    Field::jid_single("accountjid", "The Jabber ID for the account to be added")
                        .required(),
                )
                .with_field(
                    Field::text_private("password", "The password for this account").required(),
                )
                .with_field(Field::text_private("password-verify", "Retype password").required())
                .with_field(Field::text_single("email", "Email address"))
                .with_field(Field::text_single("given_name", "Given name"))
                .with_field(Field::text_single("surname", "Family name")),
            add_user,
        ),
    );
    add(
        m,
        &node("delete-user"),
        "Delete a user",
        Permission::Admin,
        simple_form(
            form("Deleting a user", "Fill out this form to delete a user.")
                .with_field(accountjids("The Jabber ID(s) to delete")),
            delete_user,
        ),
    );
    add(
        m,
        &node("disable-user"),
        "Disable a user",
        Permission::Admin,
        simple_form(
            form("Disabling a user", "Fill out this form to disable a user.")
                .with_field(accountjids("The Jabber ID(s) to disable")),
            |req, v| set_disabled(req, v, true),
        ),
    );
    add(
        m,
        &node("reenable-user"),
        "Re-enable a user",
        Permission::Admin,
        simple_form(
            form(
                "Re-enabling a user",
                "Fill out this form to re-enable a user.",
            )
            .with_field(accountjids("The Jabber ID(s) to re-enable")),
            |req, v| set_disabled(req, v, false),
        ),
    );
    add(
        m,
        &node("end-user-session"),
        "End a user session",
        Permission::Admin,
        simple_form(
            form(
                "Ending a user session",
                "A bare JID ends every session of the user; a full JID ends that one.",
            )
            .with_field(accountjids("The Jabber ID(s) whose sessions to end")),
            end_user_session,
        ),
    );
    add(
        m,
        &node("change-user-password"),
        "Change user password",
        Permission::Admin,
        simple_form(
            form(
                "Changing a user password",
                "Fill out this form to change a user's password.",
            )
            .with_field(
                Field::jid_single("accountjid", "The Jabber ID for this account").required(),
            )
            .with_field(
                Field::text_private("password", "The password for this account").required(),
            ),
            change_password,
        ),
    );
    add(
        m,
        &node("get-user-roster"),
        "Get user roster",
        Permission::Admin,
        simple_form(
            form(
                "Getting a user's roster",
                "Fill out this form to get a user's roster.",
            )
            .with_field(accountjids(
                "The Jabber ID(s) for which to retrieve the roster",
            )),
            get_roster,
        ),
    );
    add(
        m,
        &node("get-user-lastlogin"),
        "Get user last login time",
        Permission::Admin,
        simple_form(
            form(
                "Getting a user's last login time",
                "Fill out this form to get a user's last login time.",
            )
            .with_field(accountjids(
                "The Jabber ID(s) for which to retrieve the last login time",
            )),
            last_login,
        ),
    );
    add(
        m,
        &node("user-stats"),
        "Get user statistics",
        Permission::Admin,
        simple_form(
            form(
                "Getting user statistics",
                "Fill out this form to get user statistics.",
            )
            .with_field(Field::jid_single("accountjid", "The Jabber ID for statistics").required()),
            user_stats,
        ),
    );
}

async fn add_user(req: CommandRequest, v: Values) -> HandlerResult {
    let jid = v.jid("accountjid").expect("required and checked");
    let user = match local_user(&req, &jid) {
        Ok(u) => u,
        Err(e) => return Ok(Reply::completed().error(e)),
    };
    if v.str("password") != v.str("password-verify") {
        return Ok(Reply::completed().error("the passwords do not match; nothing was changed"));
    }
    let password = v.str("password").unwrap_or_default();
    let server = &req.server;
    match server.accounts().create(&user, password).await {
        Ok(()) => {
            tracing::info!(jid = %user, by = %req.from, "account created by an administrator");
            server
                .registry()
                .fire(server, Event::UserRegistered { jid: user.clone() })
                .await;
            Ok(Reply::completed().info(format!("created the account {user}")))
        }
        Err(
            e @ (AccountError::Exists(_)
            | AccountError::BadPassword(_)
            | AccountError::Refused(_)
            | AccountError::Unavailable(_)),
        ) => Ok(Reply::completed().error(e.to_string())),
        Err(e) => Err(crate::error::StanzaError::internal(e.to_string())),
    }
}

async fn delete_user(req: CommandRequest, v: Values) -> HandlerResult {
    let mut done = Vec::new();
    let (users, mut failed) = local_users(&req, &v);
    for (_, user) in users {
        match accounts::remove(
            &req.server,
            &user,
            "your account has been deleted by an administrator",
        )
        .await
        {
            Ok(()) => {
                tracing::info!(jid = %user, by = %req.from, "account deleted by an administrator");
                done.push(user.to_string());
            }
            Err(e) => failed.push(format!("{user}: {e}")),
        }
    }
    per_jid("deleted", done, failed)
}

async fn set_disabled(req: CommandRequest, v: Values, disabled: bool) -> HandlerResult {
    let mut done = Vec::new();
    let (users, mut failed) = local_users(&req, &v);
    for (_, user) in users {
        let (host, name) = parts(&user);
        match req
            .server
            .stores()
            .accounts
            .set_disabled(&host, &name, disabled)
            .await
        {
            Ok(true) => {
                if disabled {
                    accounts::end_sessions(
                        &req.server,
                        &user,
                        StreamCondition::NotAuthorized,
                        "your account has been disabled by an administrator",
                    );
                }
                tracing::info!(jid = %user, by = %req.from, disabled, "account state changed");
                done.push(user.to_string());
            }
            Ok(false) => failed.push(format!("{user}: there is no such user")),
            Err(e) => failed.push(format!("{user}: database error: {e}")),
        }
    }
    per_jid(
        if disabled { "disabled" } else { "re-enabled" },
        done,
        failed,
    )
}

async fn end_user_session(req: CommandRequest, v: Values) -> HandlerResult {
    let reason = "your session was ended by an administrator";
    let mut done = Vec::new();
    let (users, mut failed) = local_users(&req, &v);
    for (jid, user) in users {
        let ended = match jid.try_as_full() {
            Ok(full) => match req.server.sm().resource(full) {
                Some(s) => {
                    s.close(crate::error::StreamError::new(
                        StreamCondition::PolicyViolation,
                        reason,
                    ));
                    1
                }
                None => 0,
            },
            Err(_) => {
                accounts::end_sessions(&req.server, &user, StreamCondition::PolicyViolation, reason)
            }
        };
        if ended == 0 {
            failed.push(format!("{jid}: no such session"));
        } else {
            done.push(format!("{jid} ({ended})"));
        }
    }
    per_jid("ended the sessions of", done, failed)
}

async fn change_password(req: CommandRequest, v: Values) -> HandlerResult {
    let jid = v.jid("accountjid").expect("required and checked");
    let user = match local_user(&req, &jid) {
        Ok(u) => u,
        Err(e) => return Ok(Reply::completed().error(e)),
    };
    let password = v.str("password").unwrap_or_default();
    match req.server.accounts().set_password(&user, password).await {
        Ok(()) => {
            tracing::info!(jid = %user, by = %req.from, "password changed by an administrator");
            Ok(Reply::completed().info(format!("changed the password of {user}")))
        }
        Err(e) => Ok(Reply::completed().error(format!("{user}: {e}"))),
    }
}

fn parts(user: &jid::BareJid) -> (String, String) {
    (
        user.domain().to_string(),
        user.node().map(|n| n.to_string()).unwrap_or_default(),
    )
}

async fn get_roster(req: CommandRequest, v: Values) -> HandlerResult {
    let mut table = result("Rosters").with_reported(vec![
        Field::jid_single("accountjid", "User"),
        Field::jid_single("jid", "Contact"),
        Field::text_single("name", "Name"),
        Field::text_single("subscription", "Subscription"),
        Field::text_single("groups", "Groups"),
    ]);
    let mut reply = Reply::completed();
    let (users, invalid) = local_users(&req, &v);
    for e in invalid {
        reply = reply.error(e);
    }
    for (_, user) in users {
        let (host, name) = parts(&user);
        let (_, items) = req.server.stores().roster.roster(&host, &name).await?;
        let mut query = el("query", crate::ns::ROSTER).with_attr("jid", &user.to_string());
        for item in items.iter().filter(|i| i.in_roster) {
            let u = user.to_string();
            let groups = item.groups.join(", ");
            let sub = item.subscription.as_str();
            table = table.with_item(&[
                ("accountjid", u.as_str()),
                ("jid", item.contact.as_str()),
                ("name", item.name.as_deref().unwrap_or("")),
                ("subscription", sub),
                ("groups", groups.as_str()),
            ]);
            let mut e = el("item", crate::ns::ROSTER)
                .with_attr("jid", &item.contact)
                .with_attr("subscription", sub);
            if let Some(n) = &item.name {
                e.put_attr("name", n);
            }
            for g in &item.groups {
                e.append_child(el("group", crate::ns::ROSTER).with_text(g));
            }
            query.append_child(e);
        }
        reply.other.push(query);
    }
    reply.form = Some(table);
    Ok(reply)
}

async fn last_login(req: CommandRequest, v: Values) -> HandlerResult {
    let mut table = result("Last login").with_reported(vec![
        Field::jid_single("accountjid", "User"),
        Field::text_single("lastlogin", "Last login"),
    ]);
    let mut reply = Reply::completed();
    let (users, invalid) = local_users(&req, &v);
    for e in invalid {
        reply = reply.error(e);
    }
    req.server.flush_stamps().await;
    for (_, user) in users {
        let (host, name) = parts(&user);
        let accounts = &req.server.stores().accounts;
        if !accounts.account_exists(&host, &name).await? {
            reply = reply.error(format!("{user}: there is no such user"));
            continue;
        }
        let when = match accounts.last_login(&host, &name).await? {
            Some(us) => format_datetime(us),
            None => "never".to_owned(),
        };
        table = table.with_item(&[("accountjid", &user.to_string()), ("lastlogin", &when)]);
    }
    reply.form = Some(table);
    Ok(reply)
}

async fn user_stats(req: CommandRequest, v: Values) -> HandlerResult {
    let jid = v.jid("accountjid").expect("required and checked");
    let user = match local_user(&req, &jid) {
        Ok(u) => u,
        Err(e) => return Ok(Reply::completed().error(e)),
    };
    let (host, name) = parts(&user);
    if !req
        .server
        .stores()
        .accounts
        .account_exists(&host, &name)
        .await?
    {
        return Ok(Reply::completed().error(format!("{user}: there is no such user")));
    }
    let (_, items) = req.server.stores().roster.roster(&host, &name).await?;
    let sessions = req.server.sm().resources(&user);
    let now = rookery_storage::now_us();
    let (mut stanzas, mut secs) = (0u64, 0f64);
    for s in &sessions {
        stanzas += s.stanzas_in();
        secs += ((now - s.since_us).max(1) as f64) / 1e6;
    }
    let rate = if secs > 0.0 {
        stanzas as f64 / secs
    } else {
        0.0
    };
    let mut ips: Vec<String> = sessions.iter().map(|s| s.peer.ip().to_string()).collect();
    ips.sort();
    ips.dedup();
    let form = result(&format!("Statistics of {user}"))
        .with_field(
            Field::text_single("rostersize", "Roster size")
                .with_value(items.iter().filter(|i| i.in_roster).count().to_string()),
        )
        .with_field(
            Field::text_single("onlineresources", "Online resources")
                .with_value(sessions.len().to_string()),
        )
        .with_field(
            Field::text_multi("resources", "Resources")
                .with_values(sessions.iter().map(|s| s.jid.to_string())),
        )
        .with_field(Field::text_multi("ipaddresses", "IP addresses").with_values(ips))
        .with_field(
            Field::text_single("stanzaspersecond", "Stanzas sent per second")
                .with_value(format!("{rate:.3}")),
        );
    Ok(Reply::result(form))
}
