//! XEP-0199 XMPP Ping: the server answers pings to itself and, as the account, to users.

use crate::module::{Address, Module, ModuleContext};
use crate::ns;
use crate::xml::IqType;

pub struct Ping;

impl Module for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }
    fn start(&self, m: &mut ModuleContext<'_>) {
        m.feature(Address::Host, ns::PING);
        m.iq(IqType::Get, Address::Host, "ping", ns::PING, |_| async {
            Ok(None)
        });
        m.iq(IqType::Get, Address::Bare, "ping", ns::PING, |_| async {
            Ok(None)
        });
    }
}
