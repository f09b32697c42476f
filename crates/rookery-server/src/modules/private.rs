//! XEP-0049 Private XML Storage: a user keeps XML fragments keyed by element and namespace.

use crate::error::StanzaError;
use crate::module::{Address, IqRequest, IqResult, Module, ModuleContext};
use crate::ns;
use crate::xml::{IqType, el};
use minidom::Element;

pub struct Private;

const KIND: &str = "private";

impl Module for Private {
    fn name(&self) -> &'static str {
        "private"
    }
    fn start(&self, m: &mut ModuleContext<'_>) {
        m.iq(IqType::Get, Address::Bare, "query", ns::PRIVATE, get);
        m.iq(IqType::Set, Address::Bare, "query", ns::PRIVATE, set);
    }
}

fn key(e: &Element) -> String {
    format!("{{{}}}{}", e.ns(), e.name())
}

/// The query's children, checked: at least one, none in jabber:iq:private (XEP-0049 §3).
fn fragments(req: &IqRequest) -> Result<Vec<&Element>, StanzaError> {
    if !req.is_own_account() {
        return Err(StanzaError::forbidden(
            "private storage belongs to its owner only",
        ));
    }
    let v: Vec<&Element> = req.payload().children().collect();
    if v.is_empty() {
        return Err(StanzaError::bad_request(
            "the query must contain an element to store or fetch",
        ));
    }
    if v.iter().any(|e| e.ns() == ns::PRIVATE || e.ns().is_empty()) {
        return Err(StanzaError::not_allowed(
            "stored elements need a namespace of their own, not jabber:iq:private",
        ));
    }
    Ok(v)
}

async fn get(req: IqRequest) -> IqResult {
    let items = fragments(&req)?;
    if items.len() != 1 {
        return Err(StanzaError::bad_request("fetch one element at a time"));
    }
    let user = req.from_bare();
    let node = user.node().map(|n| n.as_str()).unwrap_or("");
    let stored = req
        .server
        .stores()
        .user_data
        .get_user_data(user.domain().as_str(), node, KIND, &key(items[0]))
        .await?;
    let frag = stored
        .and_then(|s| s.parse::<Element>().ok())
        .unwrap_or_else(|| items[0].clone());
    let mut q = el("query", ns::PRIVATE);
    q.append_child(frag);
    Ok(Some(q))
}

async fn set(req: IqRequest) -> IqResult {
    let items = fragments(&req)?;
    let user = req.from_bare();
    let node = user.node().map(|n| n.as_str()).unwrap_or("");
    for e in items {
        let xml = String::from_utf8(rookery_xml::serialize(e, "")).unwrap_or_default();
        req.server
            .stores()
            .user_data
            .put_user_data(user.domain().as_str(), node, KIND, &key(e), &xml)
            .await?;
    }
    Ok(None)
}
