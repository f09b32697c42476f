//! XEP-0077 In-Band Registration (off unless `auth.registration = true`): account creation
//! before authentication, and password change or account removal after it.

use crate::accounts;
use crate::error::{Condition, StanzaError};
use crate::module::{Address, Event, IqRequest, IqResult, Module, ModuleContext};
use crate::ns;
use crate::server::Server;
use crate::xml::{ElementExt, IqType, el, iq_result};
use minidom::Element;

pub struct Register;

impl Module for Register {
    fn name(&self) -> &'static str {
        "register"
    }
    fn start(&self, m: &mut ModuleContext<'_>) {
        if !m.config.auth.registration {
            return;
        }
        m.feature(Address::Host, ns::REGISTER);
        m.iq(
            IqType::Get,
            Address::Bare,
            "query",
            ns::REGISTER,
            |req| async move {
                if !req.is_own_account() {
                    return Err(StanzaError::forbidden("not your account"));
                }
                let node = req
                    .from_bare()
                    .node()
                    .map(|n| n.to_string())
                    .unwrap_or_default();
                Ok(Some(
                    el("query", ns::REGISTER)
                        .with_child(el("registered", ns::REGISTER))
                        .with_child(el("username", ns::REGISTER).with_text(&node))
                        .with_child(el("password", ns::REGISTER)),
                ))
            },
        );
        m.iq(IqType::Set, Address::Bare, "query", ns::REGISTER, change);
    }
}

fn form() -> Element {
    el("query", ns::REGISTER)
        .with_child(el("instructions", ns::REGISTER).with_text("Choose a username and password."))
        .with_child(el("username", ns::REGISTER))
        .with_child(el("password", ns::REGISTER))
}

/// An IQ sent before authentication (only registration is allowed then).
pub async fn pre_auth(server: &Server, host: &str, iq: Element) -> Element {
    let Some(q) = iq.get_child("query", ns::REGISTER) else {
        return StanzaError::new(Condition::NotAuthorized, "authenticate first").bounce(&iq);
    };
    match iq.get_attr("type") {
        Some("get") => iq_result(&iq, Some(form())),
        Some("set") => {
            if q.has_child("remove", ns::REGISTER) {
                return StanzaError::not_allowed("authenticate before removing an account")
                    .bounce(&iq);
            }
            let user = q.child_text("username", ns::REGISTER).unwrap_or_default();
            let password = q.child_text("password", ns::REGISTER).unwrap_or_default();
            if user.is_empty() || password.is_empty() {
                return StanzaError::new(
                    Condition::NotAcceptable,
                    "both username and password are required",
                )
                .bounce(&iq);
            }
            let jid = match accounts::parse_user(server.config(), &format!("{user}@{host}")) {
                Ok(j) => j,
                Err(e) => {
                    return StanzaError::new(Condition::JidMalformed, e.to_string()).bounce(&iq);
                }
            };
            match server.accounts().create(&jid, &password).await {
                Ok(()) => {
                    tracing::info!(%jid, "account registered in-band");
                    server
                        .registry()
                        .fire(server, Event::UserRegistered { jid })
                        .await;
                    iq_result(&iq, None)
                }
                Err(accounts::AccountError::Exists(_)) => {
                    StanzaError::new(Condition::Conflict, "that username is taken").bounce(&iq)
                }
                Err(e @ accounts::AccountError::Refused(_)) => {
                    StanzaError::new(Condition::Conflict, e.to_string()).bounce(&iq)
                }
                Err(e @ accounts::AccountError::Unavailable(_)) => {
                    StanzaError::service_unavailable(e.to_string()).bounce(&iq)
                }
                Err(e) => StanzaError::new(Condition::NotAcceptable, e.to_string()).bounce(&iq),
            }
        }
        _ => StanzaError::bad_request("registration uses IQ get or set").bounce(&iq),
    }
}

async fn change(req: IqRequest) -> IqResult {
    if !req.is_own_account() {
        return Err(StanzaError::forbidden("not your account"));
    }
    let user = req.from_bare();
    let q = req.payload();
    let server = &req.server;
    if q.has_child("remove", ns::REGISTER) {
        accounts::remove(server, &user, "your account has been removed")
            .await
            .map_err(|e| StanzaError::internal(e.to_string()))?;
        tracing::info!(jid = %user, "account removed in-band");
        return Ok(None);
    }
    let password = q
        .child_text("password", ns::REGISTER)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| StanzaError::bad_request("a new <password/> is required"))?;
    server
        .accounts()
        .set_password(&user, &password)
        .await
        .map_err(|e| StanzaError::new(Condition::NotAcceptable, e.to_string()))?;
    Ok(None)
}
