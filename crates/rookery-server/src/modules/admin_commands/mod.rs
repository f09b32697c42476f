//! The XEP-0133 Service Administration commands, complete but for the retracted
//! get-user-password, plus a few of our own (ping, uptime, statistics, sessions, reload).
//! Each is a form and a function over the [`crate::adhoc`] helpers; the CLI reaches the
//! same definitions through the admin socket (`rookery admin run NODE`).

mod control;
mod lists;
mod messages;
mod users;

use crate::adhoc::{
    CommandDef, CommandRequest, DataForm, Field, HandlerResult, On, Permission, Reply, Values,
};
use crate::module::{Module, ModuleContext};
use futures::future::BoxFuture;
use jid::{BareJid, Jid};
use serde_json::Value;

/// `http://jabber.org/protocol/admin`: the XEP-0133 node prefix and `FORM_TYPE`.
pub const NS_ADMIN: &str = "http://jabber.org/protocol/admin";
/// Node prefix of our own administration commands.
pub const NS_ROOKERY: &str = "urn:rookery:admin";

#[derive(Default)]
pub struct AdminCommands {
    lists: control::AccessLists,
}

impl Module for AdminCommands {
    fn name(&self) -> &'static str {
        "admin_commands"
    }
    fn start(&self, m: &mut ModuleContext<'_>) {
        users::register(m);
        lists::register(m);
        messages::register(m);
        control::register(m, &self.lists);
    }
}

/// The node of a XEP-0133 command.
pub fn node(name: &str) -> String {
    format!("{NS_ADMIN}#{name}")
}

/// Register one command on every hosted domain.
fn add<H>(m: &mut ModuleContext<'_>, node: &str, name: &str, permission: Permission, h: H)
where
    H: Fn(CommandRequest, Option<Value>) -> BoxFuture<'static, HandlerResult>
        + Send
        + Sync
        + 'static,
{
    m.command(CommandDef::new(On::Hosts, node, name, permission, h));
}

/// A XEP-0133 form: title, instructions and `FORM_TYPE`.
fn form(title: &str, instructions: &str) -> DataForm {
    DataForm::form(title)
        .with_instructions(instructions)
        .with_form_type(NS_ADMIN)
}

/// A XEP-0133 result form.
fn result(title: &str) -> DataForm {
    DataForm::result(title).with_form_type(NS_ADMIN)
}

/// The usual `accountjids` field.
fn accountjids(label: &str) -> Field {
    Field::jid_multi("accountjids", label).required()
}

/// A submitted JID as a local account, or why not.
fn local_user(req: &CommandRequest, jid: &Jid) -> Result<BareJid, String> {
    crate::accounts::parse_user(req.server.config(), &jid.to_bare().to_string())
        .map_err(|e| format!("{jid}: {e}"))
}

/// The `accountjids` of a submission as local accounts (with the JID as given), and a
/// message for each JID that is not one.
fn local_users(req: &CommandRequest, v: &Values) -> (Vec<(Jid, BareJid)>, Vec<String>) {
    let (mut users, mut invalid) = (Vec::new(), Vec::new());
    for jid in v.jids("accountjids") {
        match local_user(req, &jid) {
            Ok(u) => users.push((jid, u)),
            Err(e) => invalid.push(e),
        }
    }
    (users, invalid)
}

/// The reply of a command over a list of JIDs: what worked as one info note, each
/// failure as an error note (XEP-0050: a completed command with an error note failed).
fn per_jid(done_verb: &str, done: Vec<String>, failed: Vec<String>) -> HandlerResult {
    let mut reply = Reply::completed();
    if !done.is_empty() {
        reply = reply.info(format!("{done_verb}: {}", done.join(", ")));
    }
    for f in failed {
        reply = reply.error(f);
    }
    if reply.notes.is_empty() {
        reply = reply.warn("no JIDs were given");
    }
    Ok(reply)
}
