//! Shared groups (like Prosody's mod_groups and ejabberd's shared roster groups): named
//! groups of users per host, managed by administrators with ad-hoc commands
//! (`rookery:groups:*`) and the CLI (`rookery group …`).
//!
//! A group has an id (a JID localpart such as `halls`), a display name (`Halls`) and a
//! "show in roster" flag. Members of a shown group see every other member in their
//! roster, with subscription `both` and the group's name as roster group, and presence
//! flows between them as if they were subscribed both ways. These contacts are never
//! written into the stored rosters: [`roster_extras`] adds them where the roster is read.
//!
//! Other features name a group by its JID, `<id>@groups.<host>` ([`group_jid`],
//! [`parse_group_jid`]) and expand it with [`members`]; [`groups_of`] goes the other way.

use crate::adhoc::{
    CommandDef, CommandRequest, DataForm, Field, HandlerResult, On, Permission, Reply, Values,
    immediate, prefilled_form, simple_form,
};
use crate::error::StanzaError;
use crate::module::{Event, EventKind, Flow, Module, ModuleContext};
use crate::server::Server;
use dashmap::DashMap;
use futures::future::BoxFuture;
use jid::{BareJid, NodePart};
use rookery_config::Config;
use rookery_storage::{RosterItem, StoreError, Stores, Subscription};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use rookery_storage::Group;

/// The module's name (also what `modules.disabled` names).
pub const MODULE: &str = "groups";

/// The prefix of the group commands' nodes.
pub const NODE_PREFIX: &str = "rookery:groups:";

/// The node of a group command, e.g. `rookery:groups:create`.
pub fn node(name: &str) -> String {
    format!("{NODE_PREFIX}{name}")
}

/// The longest display name, in bytes (the limit of a roster group name).
const MAX_NAME: usize = 1024;

pub struct Groups;

impl Module for Groups {
    fn name(&self) -> &'static str {
        MODULE
    }
    fn start(&self, m: &mut ModuleContext<'_>) {
        m.hook(EventKind::UserDeleted, 0, |server, event| async move {
            if let Event::UserDeleted { jid } = event {
                user_deleted(server.stores(), &jid).await;
                server.groups_cache().invalidate();
            }
            Flow::Continue
        });
        register_commands(m);
        // Each `groups.<host>` answers disco about its groups, for trusted readers.
        m.hook(EventKind::Started, 0, |server, _| async move {
            for host in server.config().hosts.clone() {
                let domain = format!("groups.{host}");
                let directory = Arc::new(Directory { host });
                if !server.try_register_service(&domain, directory) {
                    tracing::warn!(%domain, "another service has this domain; group disco is off");
                }
            }
            Flow::Continue
        });
    }
}

/// `groups.<host>` as a route: `<id>@groups.<host>` answers disco#info (its display name
/// as the identity's name) and disco#items (its members), so that a contest service
/// running as an external component can expand the groups named in a room's
/// affiliations. Membership is not public: only administrators and the server's own
/// components may read it.
struct Directory {
    host: String,
}

#[async_trait::async_trait]
impl crate::router::Route for Directory {
    async fn route(&self, server: &Server, stanza: minidom::Element) {
        use crate::xml::{ElementExt, IqType, el};
        if stanza.name() != "iq"
            || !matches!(
                IqType::parse(stanza.get_attr("type")),
                Some(IqType::Get | IqType::Set)
            )
        {
            return;
        }
        let reply = async {
            let from = stanza
                .get_attr("from")
                .and_then(|f| jid::Jid::new(f).ok())
                .ok_or_else(|| StanzaError::bad_request("no sender"))?;
            let trusted = server.is_admin(from.to_bare().as_str())
                || crate::component::is_configured(server, from.domain().as_str());
            let to = stanza
                .get_attr("to")
                .and_then(|t| BareJid::new(t).ok())
                .ok_or_else(|| StanzaError::bad_request("not a group JID"))?;
            let q = stanza
                .first_child()
                .filter(|q| {
                    q.is("query", crate::ns::DISCO_INFO) || q.is("query", crate::ns::DISCO_ITEMS)
                })
                .filter(|_| stanza.get_attr("type") == Some("get"))
                .ok_or_else(|| {
                    StanzaError::service_unavailable(
                        "groups answer disco#info and disco#items only",
                    )
                })?;
            let Some(id) = to.node() else {
                return Err(StanzaError::service_unavailable(
                    "the groups domain itself answers nothing; ask a group JID",
                ));
            };
            if !trusted {
                return Err(StanzaError::forbidden(
                    "only administrators and this server's components may read groups",
                ));
            }
            let group = server
                .stores()
                .groups
                .group(&self.host, id.as_str())
                .await?
                .ok_or_else(|| StanzaError::item_not_found(format!("there is no group {to}")))?;
            let mut out = el("query", &q.ns());
            if q.has_ns(crate::ns::DISCO_INFO) {
                out.append_child(
                    el("identity", crate::ns::DISCO_INFO)
                        .with_attr("category", "directory")
                        .with_attr("type", "group")
                        .with_attr("name", &group.name),
                );
            } else {
                for member in members(server, &self.host, id.as_str()).await {
                    out.append_child(
                        el("item", crate::ns::DISCO_ITEMS).with_attr("jid", member.as_str()),
                    );
                }
            }
            Ok(out)
        }
        .await;
        let reply = match reply {
            Ok(payload) => crate::xml::iq_result(&stanza, Some(payload)),
            Err(e) => e.bounce(&stanza),
        };
        server.route(reply).await;
    }
}

// ---------------------------------------------------------------------------
// Group JIDs and lookups, for other features
// ---------------------------------------------------------------------------

/// The JID that names a group: `<id>@groups.<host>`, e.g. `halls@groups.localhost`.
///
/// # Panics
///
/// If `id` is not a valid JID localpart; every stored group id is one (see [`parse_id`]).
pub fn group_jid(host: &str, id: &str) -> BareJid {
    BareJid::new(&format!("{id}@groups.{host}"))
        .unwrap_or_else(|e| panic!("{id}@groups.{host} is not a valid group JID: {e}"))
}

/// The (host, id) a group JID names, when its domain is `groups.<host>` for a hosted
/// host and it has a localpart. Whether the group exists is not checked.
pub fn parse_group_jid(server: &Server, jid: &BareJid) -> Option<(String, String)> {
    let host = jid.domain().as_str().strip_prefix("groups.")?;
    let id = jid.node()?;
    server
        .serves_host(host)
        .then(|| (host.to_owned(), id.as_str().to_owned()))
}

/// The members of a group, sorted; empty when there is no such group (or the store
/// fails, which is logged).
pub async fn members(server: &Server, host: &str, id: &str) -> Vec<BareJid> {
    match server.stores().groups.members(host, id).await {
        Ok(list) => list.iter().filter_map(|m| BareJid::new(m).ok()).collect(),
        Err(e) => {
            tracing::error!(error = %e, host, id, "could not load the members of a group");
            Vec::new()
        }
    }
}

/// The groups of every hosted host that `jid` is a member of, sorted by host, then id.
pub async fn groups_of(server: &Server, jid: &BareJid) -> Vec<Group> {
    let mut all = Vec::new();
    for host in &server.config().hosts {
        match server.stores().groups.groups_of(host, jid.as_str()).await {
            Ok(list) => all.extend(list),
            Err(e) => tracing::error!(error = %e, %jid, host, "could not load groups"),
        }
    }
    all.sort_by(|a, b| (&a.host, &a.id).cmp(&(&b.host, &b.id)));
    all
}

// ---------------------------------------------------------------------------
// Rosters and presence
// ---------------------------------------------------------------------------

/// What shared groups add to `user`'s roster: every other member of each shown group
/// `user` belongs to (on any hosted host), with subscription `both` and the display
/// names of the groups they share, sorted by contact. Presence treats them as
/// subscribed both ways.
///
/// The answer is cached per user until any group changes on this server. Membership
/// changes are not pushed to rosters: a client sees them at its next roster get (a
/// new login), and no presence is exchanged at the moment of a change; presence sent
/// afterwards (broadcasts, probes, unavailable) follows the new membership. A user cannot
/// remove a shared contact: removing it from the roster removes only the stored item.
pub async fn roster_extras(server: &Server, user: &BareJid) -> Arc<Vec<RosterItem>> {
    if server.config().modules.disabled.iter().any(|d| d == MODULE) {
        return Arc::default();
    }
    let cache = server.groups_cache();
    if let Some(hit) = cache.users.get(user.as_str()) {
        return hit.clone();
    }
    let generation = cache.generation.load(Ordering::Acquire);
    let mut contacts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for host in &server.config().hosts {
        match server
            .stores()
            .groups
            .shown_contacts(host, user.as_str())
            .await
        {
            Ok(pairs) => {
                for (contact, name) in pairs {
                    let names = contacts.entry(contact).or_default();
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            Err(e) => {
                // Not cached: the next call tries again.
                tracing::error!(error = %e, %user, host, "could not load shared group contacts");
                return Arc::default();
            }
        }
    }
    let extras: Arc<Vec<RosterItem>> = Arc::new(
        contacts
            .into_iter()
            .filter(|(contact, _)| contact != user.as_str())
            .map(|(contact, groups)| RosterItem {
                contact,
                groups,
                subscription: Subscription::Both,
                in_roster: true,
                ..RosterItem::default()
            })
            .collect(),
    );
    if cache.generation.load(Ordering::Acquire) == generation {
        cache.users.insert(user.to_string(), extras.clone());
    }
    extras
}

/// Whether `contact` is one of `extras` (as [`roster_extras`] returned them: sorted).
pub fn is_shared_contact(extras: &[RosterItem], contact: &str) -> bool {
    extras
        .binary_search_by(|e| e.contact.as_str().cmp(contact))
        .is_ok()
}

/// Adds the shared group contacts to a stored item for the same contact: it keeps its
/// own name and groups, gains the shared groups and shows as subscribed both ways.
pub fn merge_item(item: &mut RosterItem, extras: &[RosterItem]) {
    if let Ok(i) = extras.binary_search_by(|e| e.contact.cmp(&item.contact)) {
        merge_one(item, &extras[i]);
    }
}

fn merge_one(item: &mut RosterItem, extra: &RosterItem) {
    for g in &extra.groups {
        if !item.groups.contains(g) {
            item.groups.push(g.clone());
        }
    }
    item.subscription = Subscription::Both;
    item.ask_out = false;
    item.in_roster = true;
}

/// A stored roster with the shared group contacts (as [`roster_extras`] returned them)
/// merged in, sorted by contact.
pub fn merge_roster(items: &mut Vec<RosterItem>, extras: &[RosterItem]) {
    if extras.is_empty() {
        return;
    }
    let mut merged = HashSet::new();
    for item in items.iter_mut() {
        if let Ok(i) = extras.binary_search_by(|e| e.contact.cmp(&item.contact)) {
            merge_one(item, &extras[i]);
            merged.insert(i);
        }
    }
    items.extend(
        extras
            .iter()
            .enumerate()
            .filter(|(i, _)| !merged.contains(i))
            .map(|(_, e)| e.clone()),
    );
    items.sort_by(|a, b| a.contact.cmp(&b.contact));
}

/// The roster version to announce (RFC 6121 §2.6): the stored version alone when
/// there are no shared group contacts, else the stored version with a digest of them,
/// so that a client's cached roster is refreshed when group membership changed.
pub fn roster_version(stored: u64, extras: &[RosterItem]) -> String {
    if extras.is_empty() {
        return stored.to_string();
    }
    // FNV-1a: stable across builds and restarts, unlike the standard hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for e in extras {
        feed(e.contact.as_bytes());
        feed(b"\n");
        for g in &e.groups {
            feed(g.as_bytes());
            feed(b"\t");
        }
        feed(b"\n");
    }
    format!("{stored}-g{hash:016x}")
}

/// The per-user answers of [`roster_extras`], dropped whenever a group changes.
#[derive(Default)]
pub struct Cache {
    users: DashMap<String, Arc<Vec<RosterItem>>>,
    /// Bumped by every invalidation, so an answer computed across one is not kept.
    generation: AtomicU64,
}

impl Cache {
    /// Forget every cached answer (after any change to groups or memberships).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.users.clear();
    }
}

// ---------------------------------------------------------------------------
// Management, shared by the ad-hoc commands and the admin socket / CLI
// ---------------------------------------------------------------------------

/// Why a group operation failed, in words for the operator.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("'{0}' is not a valid group id (it must be a valid JID localpart, e.g. halls)")]
    BadId(String),
    #[error("this server does not serve the domain {0}")]
    UnknownHost(String),
    #[error("the group {0} already exists")]
    Exists(String),
    #[error("there is no group {0}")]
    NoSuchGroup(String),
    #[error("the group name is not acceptable: {0}")]
    BadName(String),
    /// Some of what was asked could not be done (the message says what was).
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Store(#[from] StoreError),
}

/// A group id as stored: the nodeprepped localpart, or why it is not one.
pub fn parse_id(id: &str) -> Result<String, GroupError> {
    let trimmed = id.trim();
    if trimmed.is_empty() {
        return Err(GroupError::BadId(id.to_owned()));
    }
    NodePart::new(trimmed)
        .map(|n| n.as_str().to_owned())
        .map_err(|_| GroupError::BadId(id.to_owned()))
}

fn check_host(config: &Config, host: &str) -> Result<(), GroupError> {
    if config.hosts.iter().any(|h| h == host) {
        Ok(())
    } else {
        Err(GroupError::UnknownHost(host.to_owned()))
    }
}

fn check_name(name: &str) -> Result<String, GroupError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(GroupError::BadName("it is empty".into()));
    }
    if name.contains(['\n', '\r']) {
        return Err(GroupError::BadName("it must be one line".into()));
    }
    if name.len() > MAX_NAME {
        return Err(GroupError::BadName(format!(
            "it is longer than {MAX_NAME} bytes"
        )));
    }
    Ok(name.to_owned())
}

/// `id@host` in messages.
fn label(host: &str, id: &str) -> String {
    format!("{id} on {host}")
}

/// Creates a group; its display name defaults to its id.
pub async fn create(
    stores: &Stores,
    config: &Config,
    host: &str,
    id: &str,
    name: Option<&str>,
    show_in_roster: bool,
) -> Result<Group, GroupError> {
    check_host(config, host)?;
    let id = parse_id(id)?;
    let name = check_name(name.filter(|n| !n.trim().is_empty()).unwrap_or(&id))?;
    if stores
        .groups
        .create_group(host, &id, &name, show_in_roster)
        .await?
    {
        Ok(Group {
            host: host.to_owned(),
            id,
            name,
            show_in_roster,
        })
    } else {
        Err(GroupError::Exists(label(host, &id)))
    }
}

/// Deletes a group and its memberships.
pub async fn delete(
    stores: &Stores,
    config: &Config,
    host: &str,
    id: &str,
) -> Result<(), GroupError> {
    check_host(config, host)?;
    let id = parse_id(id)?;
    if stores.groups.delete_group(host, &id).await? {
        Ok(())
    } else {
        Err(GroupError::NoSuchGroup(label(host, &id)))
    }
}

/// The groups of a host, sorted by id.
pub async fn list(stores: &Stores, config: &Config, host: &str) -> Result<Vec<Group>, GroupError> {
    check_host(config, host)?;
    Ok(stores.groups.groups(host).await?)
}

/// A group and its members (sorted).
pub async fn show(
    stores: &Stores,
    config: &Config,
    host: &str,
    id: &str,
) -> Result<(Group, Vec<String>), GroupError> {
    check_host(config, host)?;
    let id = parse_id(id)?;
    let Some(group) = stores.groups.group(host, &id).await? else {
        return Err(GroupError::NoSuchGroup(label(host, &id)));
    };
    let members = stores.groups.members(host, &id).await?;
    Ok((group, members))
}

/// What a change of members did: the JIDs that changed, those that were already (or
/// not) members, and a message for each one that is not a user JID.
#[derive(Debug, Default)]
pub struct MemberChange {
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    pub invalid: Vec<String>,
}

/// Members as stored: normalised bare JIDs with a localpart.
fn parse_members(jids: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut valid, mut invalid) = (Vec::new(), Vec::new());
    for j in jids {
        match BareJid::new(j.trim()) {
            Ok(b) if b.node().is_some() => {
                let s = b.to_string();
                if !valid.contains(&s) {
                    valid.push(s);
                }
            }
            _ => invalid.push(format!("'{j}' is not a user's bare JID (user@host)")),
        }
    }
    (valid, invalid)
}

/// Adds members to a group (any user JID, of this server or not).
pub async fn add_members(
    stores: &Stores,
    config: &Config,
    host: &str,
    id: &str,
    jids: &[String],
) -> Result<MemberChange, GroupError> {
    change_members(stores, config, host, id, jids, true).await
}

/// Removes members from a group.
pub async fn remove_members(
    stores: &Stores,
    config: &Config,
    host: &str,
    id: &str,
    jids: &[String],
) -> Result<MemberChange, GroupError> {
    change_members(stores, config, host, id, jids, false).await
}

async fn change_members(
    stores: &Stores,
    config: &Config,
    host: &str,
    id: &str,
    jids: &[String],
    add: bool,
) -> Result<MemberChange, GroupError> {
    check_host(config, host)?;
    let id = parse_id(id)?;
    if stores.groups.group(host, &id).await?.is_none() {
        return Err(GroupError::NoSuchGroup(label(host, &id)));
    }
    let (valid, invalid) = parse_members(jids);
    let changed = if add {
        stores.groups.add_members(host, &id, &valid).await?
    } else {
        stores.groups.remove_members(host, &id, &valid).await?
    };
    let unchanged = valid.into_iter().filter(|j| !changed.contains(j)).collect();
    Ok(MemberChange {
        changed,
        unchanged,
        invalid,
    })
}

/// A deleted account leaves every group.
pub async fn user_deleted(stores: &Stores, jid: &BareJid) {
    match stores.groups.remove_member_everywhere(jid.as_str()).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(%jid, memberships = n, "deleted account left its groups"),
        Err(e) => {
            tracing::error!(error = %e, %jid, "could not remove a deleted account from its groups")
        }
    }
}

// ---------------------------------------------------------------------------
// Ad-hoc commands
// ---------------------------------------------------------------------------

fn add_command<H>(m: &mut ModuleContext<'_>, name: &str, title: &str, h: H)
where
    H: Fn(CommandRequest, Option<Value>) -> BoxFuture<'static, HandlerResult>
        + Send
        + Sync
        + 'static,
{
    m.command(CommandDef::new(
        On::Hosts,
        &node(name),
        title,
        Permission::Admin,
        h,
    ));
}

fn form(title: &str, instructions: &str) -> DataForm {
    DataForm::form(title).with_instructions(instructions)
}

/// A form whose first field picks a group of the command's host.
fn group_form<F>(
    title: &'static str,
    instructions: &'static str,
    more: F,
) -> impl Fn(CommandRequest) -> BoxFuture<'static, Result<DataForm, StanzaError>> + Send + Sync
where
    F: Fn(DataForm) -> DataForm + Clone + Send + Sync + 'static,
{
    move |req: CommandRequest| {
        let more = more.clone();
        Box::pin(async move {
            let groups = req.server.stores().groups.groups(&req.host()).await?;
            let options: Vec<(String, String)> = groups
                .iter()
                .map(|g| (format!("{} ({})", g.name, g.id), g.id.clone()))
                .collect();
            let options: Vec<(&str, &str)> = options
                .iter()
                .map(|(l, v)| (l.as_str(), v.as_str()))
                .collect();
            Ok(more(form(title, instructions).with_field(
                Field::list_single("id", "The group", &options).required(),
            )))
        })
    }
}

/// Run a management operation for a command and invalidate the roster cache if it
/// changed something.
async fn acting<T, Fut>(req: &CommandRequest, op: Fut) -> Result<T, GroupError>
where
    Fut: Future<Output = Result<T, GroupError>>,
{
    let r = op.await;
    if r.is_ok() {
        req.server.groups_cache().invalidate();
    }
    r
}

/// A failure for the operator: an error note, or a stanza error for the database.
fn failed(e: GroupError) -> HandlerResult {
    match e {
        GroupError::Store(e) => Err(StanzaError::internal(format!("database error: {e}"))),
        e => Ok(Reply::completed().error(e.to_string())),
    }
}

fn register_commands(m: &mut ModuleContext<'_>) {
    add_command(
        m,
        "create",
        "Create a shared group",
        simple_form(
            form(
                "Creating a shared group",
                "The id is the group's JID localpart (e.g. halls); the name is what users \
                 see (e.g. Halls), by default the id.",
            )
            .with_field(Field::text_single("id", "Group id").required())
            .with_field(Field::text_single("name", "Display name"))
            .with_field(Field::boolean(
                "show_in_roster",
                "Show the members in each other's rosters",
            )),
            |req, v: Values| async move {
                let host = req.host();
                let server = req.server.clone();
                let op = create(
                    server.stores(),
                    server.config(),
                    &host,
                    v.str("id").unwrap_or_default(),
                    v.str("name"),
                    v.bool("show_in_roster"),
                );
                match acting(&req, op).await {
                    Ok(g) => {
                        tracing::info!(host, id = g.id, by = %req.from, "group created");
                        Ok(Reply::completed()
                            .info(format!("created the group {} ({}) on {host}", g.id, g.name)))
                    }
                    Err(e) => failed(e),
                }
            },
        ),
    );
    add_command(
        m,
        "delete",
        "Delete a shared group",
        prefilled_form(
            group_form(
                "Deleting a shared group",
                "The group and its memberships are removed.",
                |f| f,
            ),
            |req, v: Values| async move {
                let host = req.host();
                let id = v.str("id").unwrap_or_default().to_owned();
                let server = req.server.clone();
                match acting(&req, delete(server.stores(), server.config(), &host, &id)).await {
                    Ok(()) => {
                        tracing::info!(host, id, by = %req.from, "group deleted");
                        Ok(Reply::completed().info(format!("deleted the group {id} on {host}")))
                    }
                    Err(e) => failed(e),
                }
            },
        ),
    );
    add_command(
        m,
        "add-members",
        "Add members to a shared group",
        prefilled_form(
            group_form(
                "Adding members to a shared group",
                "Members are users' bare JIDs.",
                |f| f.with_field(Field::jid_multi("members", "The members to add").required()),
            ),
            |req, v| members_changed(req, v, true),
        ),
    );
    add_command(
        m,
        "remove-members",
        "Remove members from a shared group",
        prefilled_form(
            group_form(
                "Removing members from a shared group",
                "Members are users' bare JIDs.",
                |f| f.with_field(Field::jid_multi("members", "The members to remove").required()),
            ),
            |req, v| members_changed(req, v, false),
        ),
    );
    add_command(
        m,
        "list",
        "List shared groups",
        immediate(|req| async move {
            let host = req.host();
            let groups = match list(req.server.stores(), req.server.config(), &host).await {
                Ok(g) => g,
                Err(e) => return failed(e),
            };
            let mut table =
                DataForm::result(&format!("Shared groups on {host}")).with_reported(vec![
                    Field::text_single("id", "Id"),
                    Field::text_single("name", "Name"),
                    Field::boolean("show_in_roster", "In rosters"),
                    Field::text_single("members", "Members"),
                ]);
            for g in &groups {
                let count = req
                    .server
                    .stores()
                    .groups
                    .members(&host, &g.id)
                    .await?
                    .len();
                table = table.with_item(&[
                    ("id", g.id.as_str()),
                    ("name", g.name.as_str()),
                    ("show_in_roster", if g.show_in_roster { "1" } else { "0" }),
                    ("members", count.to_string().as_str()),
                ]);
            }
            Ok(Reply::result(table).info(format!("{} groups on {host}", groups.len())))
        }),
    );
    add_command(
        m,
        "members",
        "List the members of a shared group",
        prefilled_form(
            group_form("Members of a shared group", "Pick the group.", |f| f),
            |req, v: Values| async move {
                let host = req.host();
                let id = v.str("id").unwrap_or_default().to_owned();
                match show(req.server.stores(), req.server.config(), &host, &id).await {
                    Ok((g, members)) => {
                        let n = members.len();
                        let form = DataForm::result(&format!("Members of {} ({})", g.name, g.id))
                            .with_field(Field::text_single("id", "Id").with_value(g.id.clone()))
                            .with_field(
                                Field::text_single("name", "Name").with_value(g.name.clone()),
                            )
                            .with_field(
                                Field::boolean("show_in_roster", "In rosters")
                                    .with_value(if g.show_in_roster { "1" } else { "0" }),
                            )
                            .with_field(
                                Field::jid_multi("members", "Members").with_values(members),
                            );
                        Ok(Reply::result(form).info(format!("{n} members")))
                    }
                    Err(e) => failed(e),
                }
            },
        ),
    );
}

async fn members_changed(req: CommandRequest, v: Values, add: bool) -> HandlerResult {
    let host = req.host();
    let id = v.str("id").unwrap_or_default().to_owned();
    let jids = v.list("members").to_vec();
    let server = req.server.clone();
    let (stores, config) = (server.stores(), server.config());
    let op = async {
        if add {
            add_members(stores, config, &host, &id, &jids).await
        } else {
            remove_members(stores, config, &host, &id, &jids).await
        }
    };
    let change = match acting(&req, op).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    tracing::info!(host, id, by = %req.from, add, changed = ?change.changed, "group members changed");
    let mut reply = Reply::completed();
    if !change.changed.is_empty() {
        let verb = if add { "added to" } else { "removed from" };
        reply = reply.info(format!("{verb} {id}: {}", change.changed.join(", ")));
    }
    if !change.unchanged.is_empty() {
        let state = if add {
            "already members"
        } else {
            "not members"
        };
        reply = reply.warn(format!("{state}: {}", change.unchanged.join(", ")));
    }
    for e in change.invalid {
        reply = reply.error(e);
    }
    Ok(reply)
}

// ---------------------------------------------------------------------------
// Admin socket / CLI
// ---------------------------------------------------------------------------

/// A `rookery group …` operation of the admin interface (see [`crate::admin`]).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum GroupOp {
    /// Create a group (its name defaults to its id).
    Add {
        id: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        show_in_roster: bool,
    },
    /// Delete a group and its memberships.
    Del { id: String },
    /// The host's groups: items are `id<TAB>name<TAB>shown|hidden`.
    List,
    /// A group's members: items are bare JIDs.
    Members { id: String },
    /// Add members (bare JIDs).
    MemberAdd { id: String, jids: Vec<String> },
    /// Remove members (bare JIDs).
    MemberDel { id: String, jids: Vec<String> },
}

/// Run one admin operation on `host`, in the running `server` if there is one (whose
/// roster cache is then refreshed) or on the store alone. Returns (success, message for
/// the operator, listed items).
pub async fn admin(
    server: Option<&Server>,
    stores: &Stores,
    config: &Config,
    host: &str,
    op: GroupOp,
) -> (bool, String, Vec<String>) {
    let outcome = admin_op(stores, config, host, op).await;
    if let Some(server) = server {
        server.groups_cache().invalidate();
    }
    match outcome {
        Ok((message, items)) => (true, message, items),
        Err(e) => (false, e.to_string(), Vec::new()),
    }
}

async fn admin_op(
    stores: &Stores,
    config: &Config,
    host: &str,
    op: GroupOp,
) -> Result<(String, Vec<String>), GroupError> {
    Ok(match op {
        GroupOp::Add {
            id,
            name,
            show_in_roster,
        } => {
            let g = create(stores, config, host, &id, name.as_deref(), show_in_roster).await?;
            tracing::info!(host, id = g.id, "group created");
            (
                format!("created the group {} ({}) on {host}", g.id, g.name),
                Vec::new(),
            )
        }
        GroupOp::Del { id } => {
            delete(stores, config, host, &id).await?;
            tracing::info!(host, id, "group deleted");
            (format!("deleted the group {id} on {host}"), Vec::new())
        }
        GroupOp::List => {
            let groups = list(stores, config, host).await?;
            let items: Vec<String> = groups
                .iter()
                .map(|g| {
                    let shown = if g.show_in_roster { "shown" } else { "hidden" };
                    format!("{}\t{}\t{shown}", g.id, g.name)
                })
                .collect();
            (format!("{} groups on {host}", items.len()), items)
        }
        GroupOp::Members { id } => {
            let (g, members) = show(stores, config, host, &id).await?;
            (
                format!(
                    "{} members in {} ({}) on {host}",
                    members.len(),
                    g.id,
                    g.name
                ),
                members,
            )
        }
        GroupOp::MemberAdd { id, jids } | GroupOp::MemberDel { id, jids } if jids.is_empty() => {
            return Err(GroupError::Invalid(format!("no JIDs were given for {id}")));
        }
        GroupOp::MemberAdd { id, jids } => {
            let c = add_members(stores, config, host, &id, &jids).await?;
            tracing::info!(host, id, added = ?c.changed, "group members added");
            member_report(&id, c, "added to", "already members")?
        }
        GroupOp::MemberDel { id, jids } => {
            let c = remove_members(stores, config, host, &id, &jids).await?;
            tracing::info!(host, id, removed = ?c.changed, "group members removed");
            member_report(&id, c, "removed from", "not members")?
        }
    })
}

/// The answer to a change of members: the changed JIDs as items; invalid JIDs fail it.
fn member_report(
    id: &str,
    c: MemberChange,
    verb: &str,
    unchanged: &str,
) -> Result<(String, Vec<String>), GroupError> {
    let mut message = format!("{} {verb} {id}", c.changed.len());
    if !c.unchanged.is_empty() {
        message.push_str(&format!("; {unchanged}: {}", c.unchanged.join(", ")));
    }
    if !c.invalid.is_empty() {
        message.push_str(&format!("; {}", c.invalid.join("; ")));
        return Err(GroupError::Invalid(message));
    }
    Ok((message, c.changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(contact: &str, name: Option<&str>, groups: &[&str], sub: Subscription) -> RosterItem {
        RosterItem {
            contact: contact.into(),
            name: name.map(str::to_owned),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            subscription: sub,
            in_roster: true,
            ..RosterItem::default()
        }
    }

    fn extra(contact: &str, groups: &[&str]) -> RosterItem {
        stored(contact, None, groups, Subscription::Both)
    }

    #[test]
    fn shared_contacts_merge_into_the_stored_roster() {
        let mut items = vec![
            stored("bob@x", Some("Bobby"), &["Friends"], Subscription::None),
            stored("dave@x", None, &[], Subscription::To),
        ];
        let extras = vec![
            extra("alice@x", &["Halls"]),
            extra("bob@x", &["Halls", "Friends"]),
        ];
        merge_roster(&mut items, &extras);
        assert_eq!(
            items,
            vec![
                extra("alice@x", &["Halls"]),
                stored(
                    "bob@x",
                    Some("Bobby"),
                    &["Friends", "Halls"],
                    Subscription::Both
                ),
                stored("dave@x", None, &[], Subscription::To),
            ]
        );
    }

    #[test]
    fn the_roster_version_changes_with_the_shared_contacts() {
        assert_eq!(roster_version(7, &[]), "7");
        let a = roster_version(7, &[extra("alice@x", &["Halls"])]);
        assert!(a.starts_with("7-g"), "{a}");
        assert_eq!(a, roster_version(7, &[extra("alice@x", &["Halls"])]));
        assert_ne!(a, roster_version(7, &[extra("alice@x", &["Staff"])]));
        assert_ne!(a, roster_version(7, &[extra("bob@x", &["Halls"])]));
        assert_ne!(a, roster_version(8, &[extra("alice@x", &["Halls"])]));
    }

    #[test]
    fn group_ids_are_nodeprepped_localparts() {
        assert_eq!(parse_id(" Halls ").unwrap(), "halls");
        for bad in ["", "  ", "a@b", "a/b", "a b"] {
            assert!(parse_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            group_jid("localhost", "halls").as_str(),
            "halls@groups.localhost"
        );
    }
}
