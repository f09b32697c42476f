//! XEP-0054 vcard-temp: anyone may read a user's vCard; only the user may change it.

use crate::error::StanzaError;
use crate::module::{Address, IqRequest, IqResult, Module, ModuleContext};
use crate::ns;
use crate::xml::IqType;
use minidom::Element;

pub struct VCard;

const KIND: &str = "vcard";

impl Module for VCard {
    fn name(&self) -> &'static str {
        "vcard"
    }
    fn start(&self, m: &mut ModuleContext<'_>) {
        m.feature(Address::Host, ns::VCARD);
        m.iq(IqType::Get, Address::Bare, "vCard", ns::VCARD, get);
        m.iq(IqType::Set, Address::Bare, "vCard", ns::VCARD, set);
    }
}

async fn get(req: IqRequest) -> IqResult {
    let user = req.to_bare();
    let node = user.node().map(|n| n.as_str()).unwrap_or("");
    let stored = req
        .server
        .stores()
        .user_data
        .get_user_data(user.domain().as_str(), node, KIND, "")
        .await?;
    match stored.and_then(|s| s.parse::<Element>().ok()) {
        Some(v) => Ok(Some(v)),
        None => Ok(Some(Element::bare("vCard", ns::VCARD))),
    }
}

async fn set(req: IqRequest) -> IqResult {
    if !req.is_own_account() {
        return Err(StanzaError::forbidden("you can only change your own vCard"));
    }
    let user = req.from_bare();
    let node = user.node().map(|n| n.as_str()).unwrap_or("");
    let xml = String::from_utf8(rookery_xml::serialize(req.payload(), "")).unwrap_or_default();
    req.server
        .stores()
        .user_data
        .put_user_data(user.domain().as_str(), node, KIND, "", &xml)
        .await?;
    Ok(None)
}
