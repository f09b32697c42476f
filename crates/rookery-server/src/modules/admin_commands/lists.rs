//! Counts and lists of registered, disabled, online, active and idle users.

use super::{add, form, node, result};
use crate::adhoc::{
    CommandRequest, Field, HandlerResult, Permission, Reply, Values, immediate, simple_form,
};
use crate::server::Server;
use std::collections::BTreeMap;

/// Which users a command counts.
#[derive(Clone, Copy)]
enum Which {
    Registered,
    Disabled,
    Online,
    Active,
    Idle,
}

impl Which {
    /// (num node, num var, list node, list var, label).
    fn names(
        self,
    ) -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ) {
        match self {
            Which::Registered => (
                "get-registered-users-num",
                "registeredusersnum",
                "get-registered-users-list",
                "registereduserjids",
                "registered",
            ),
            Which::Disabled => (
                "get-disabled-users-num",
                "disabledusersnum",
                "get-disabled-users-list",
                "disableduserjids",
                "disabled",
            ),
            Which::Online => (
                "get-online-users-num",
                "onlineusersnum",
                "get-online-users-list",
                "onlineuserjids",
                "online",
            ),
            Which::Active => (
                "get-active-users-num",
                "activeusersnum",
                "get-active-users",
                "activeuserjids",
                "active",
            ),
            // XEP-0133's example reuses activeuserjids here; idleuserjids says what it is.
            Which::Idle => (
                "get-idle-users-num",
                "idleusersnum",
                "get-idle-users",
                "idleuserjids",
                "idle",
            ),
        }
    }
}

pub(super) fn register(m: &mut ModuleContext<'_>) {
    for which in [
        Which::Registered,
        Which::Disabled,
        Which::Online,
        Which::Active,
        Which::Idle,
    ] {
        let (num_node, num_var, list_node, list_var, label) = which.names();
        add(
            m,
            &node(num_node),
            &format!("Get number of {label} users"),
            Permission::Admin,
            immediate(move |req| count(req, which, num_var, label)),
        );
        add(
            m,
            &node(list_node),
            &format!("Get list of {label} users"),
            Permission::Admin,
            simple_form(
                form(
                    &format!("Getting the list of {label} users"),
                    "How many users should be listed at most?",
                )
                .with_field(
                    Field::list_single(
                        "max_items",
                        "Maximum number of items to report",
                        &[
                            ("25", "25"),
                            ("50", "50"),
                            ("75", "75"),
                            ("100", "100"),
                            ("150", "150"),
                            ("200", "200"),
                            ("None", "none"),
                        ],
                    )
                    .with_value("100"),
                ),
                move |req, v| list(req, v, which, list_var, label),
            ),
        );
    }
}

use crate::module::ModuleContext;

async fn count(req: CommandRequest, which: Which, var: &'static str, label: &str) -> HandlerResult {
    let n = users(&req.server, &req.host(), which).await?.len();
    Ok(Reply::result(
        result(&format!("Number of {label} users")).with_field(
            Field::text_single(var, &format!("The number of {label} users"))
                .with_value(n.to_string()),
        ),
    ))
}

async fn list(
    req: CommandRequest,
    v: Values,
    which: Which,
    var: &'static str,
    label: &str,
) -> HandlerResult {
    let max = match v.str("max_items") {
        Some("none") | None => usize::MAX,
        Some(n) => n.parse().unwrap_or(usize::MAX),
    };
    let all = users(&req.server, &req.host(), which).await?;
    let total = all.len();
    let shown: Vec<String> = all.into_iter().take(max).collect();
    let mut reply = Reply::result(result(&format!("The {label} users")).with_field(
        Field::jid_multi(var, &format!("The list of all {label} users")).with_values(shown.clone()),
    ));
    if shown.len() < total {
        reply = reply.info(format!("showing {} of {total} {label} users", shown.len()));
    }
    Ok(reply)
}

/// Bare JIDs of the users of `host` in the given state, sorted.
async fn users(
    server: &Server,
    host: &str,
    which: Which,
) -> Result<Vec<String>, crate::error::StanzaError> {
    let accounts = &server.stores().accounts;
    let local = |u: String| format!("{u}@{host}");
    Ok(match which {
        Which::Registered => accounts
            .list_accounts(host)
            .await?
            .into_iter()
            .map(local)
            .collect(),
        Which::Disabled => accounts
            .disabled_accounts(host)
            .await?
            .into_iter()
            .map(local)
            .collect(),
        Which::Online | Which::Active | Which::Idle => {
            let idle_after = server.config().limits.idle_user_secs as i64 * 1_000_000;
            let now = rookery_storage::now_us();
            // A user is active when one of their resources sent something lately and is
            // not away; online users are active or idle.
            let mut state: BTreeMap<String, bool> = BTreeMap::new();
            for s in server.sm().all() {
                if s.jid.domain().as_str() != host {
                    continue;
                }
                let away = matches!(s.show().as_deref(), Some("away") | Some("xa"));
                let active = !away && now - s.last_active_us() < idle_after;
                *state.entry(s.jid.to_bare().to_string()).or_default() |= active;
            }
            state
                .into_iter()
                .filter(|(_, active)| match which {
                    Which::Active => *active,
                    Which::Idle => !*active,
                    _ => true,
                })
                .map(|(j, _)| j)
                .collect()
        }
    })
}
