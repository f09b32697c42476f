//! XEP-0030 Service Discovery, generated from the registry: the server's identities and
//! features, an account's features, and the services with their own routes as items.

use crate::error::StanzaError;
use crate::module::{Address, IqRequest, IqResult, Module, ModuleContext};
use crate::ns;
use crate::xml::{ElementExt, IqType, el};

pub struct Disco;

impl Module for Disco {
    fn name(&self) -> &'static str {
        "disco"
    }
    fn start(&self, m: &mut ModuleContext<'_>) {
        m.identity("server", "im", "Rookery");
        m.feature(Address::Host, ns::DISCO_INFO);
        m.feature(Address::Host, ns::DISCO_ITEMS);
        m.feature(Address::Bare, ns::DISCO_INFO);
        m.feature(Address::Bare, ns::DISCO_ITEMS);
        m.iq(IqType::Get, Address::Host, "query", ns::DISCO_INFO, |r| {
            info(r, Address::Host)
        });
        m.iq(IqType::Get, Address::Bare, "query", ns::DISCO_INFO, |r| {
            info(r, Address::Bare)
        });
        m.iq(IqType::Get, Address::Host, "query", ns::DISCO_ITEMS, items);
        m.iq(IqType::Get, Address::Bare, "query", ns::DISCO_ITEMS, items);
    }
}

async fn info(req: IqRequest, address: Address) -> IqResult {
    if let Some(node) = req.payload().get_attr("node") {
        if address == Address::Host
            && let Some(r) = crate::adhoc::disco_info(&req.server, &req.from, &req.to, node)
        {
            return r.map(Some);
        }
        return Err(StanzaError::item_not_found(format!(
            "there is no node '{node}' here"
        )));
    }
    let mut q = el("query", ns::DISCO_INFO);
    let registry = req.server.registry();
    match address {
        Address::Host => {
            for i in registry.identities() {
                q.append_child(
                    el("identity", ns::DISCO_INFO)
                        .with_attr("category", &i.category)
                        .with_attr("type", &i.kind)
                        .with_attr("name", &i.name),
                );
            }
        }
        Address::Bare => {
            // An account: its owner or a contact may ask (XEP-0030 §3.1 "account" identity).
            q.append_child(
                el("identity", ns::DISCO_INFO)
                    .with_attr("category", "account")
                    .with_attr("type", "registered"),
            );
        }
    }
    for f in registry.features(address) {
        q.append_child(el("feature", ns::DISCO_INFO).with_attr("var", &f));
    }
    Ok(Some(q))
}

async fn items(req: IqRequest) -> IqResult {
    if let Some(node) = req.payload().get_attr("node") {
        if req.to.node().is_none()
            && let Some(q) = crate::adhoc::disco_items(&req.server, &req.from, &req.to, node)
        {
            return Ok(Some(q));
        }
        return Err(StanzaError::item_not_found(format!(
            "there is no node '{node}' here"
        )));
    }
    let mut q = el("query", ns::DISCO_ITEMS);
    if req.to.node().is_none() {
        for domain in req.server.service_domains() {
            q.append_child(el("item", ns::DISCO_ITEMS).with_attr("jid", &domain));
        }
    }
    Ok(Some(q))
}
