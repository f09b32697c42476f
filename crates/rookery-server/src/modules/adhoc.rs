//! XEP-0050 Ad-Hoc Commands on the server's own domains: the IQ handler and the disco
//! feature. The framework itself is in [`crate::adhoc`]; commands come from other modules.

use crate::adhoc::{self, NS, Requester};
use crate::error::{Condition, StanzaError};
use crate::module::{Address, IqRequest, IqResult, Module, ModuleContext};
use crate::xml::IqType;

pub struct Adhoc;

impl Module for Adhoc {
    fn name(&self) -> &'static str {
        "adhoc"
    }
    fn start(&self, m: &mut ModuleContext<'_>) {
        m.feature(Address::Host, NS);
        m.iq(IqType::Set, Address::Host, "command", NS, run);
        // An account is no command responder (RFC 6120 would say service-unavailable;
        // XEP-0050 §4.6 names feature-not-implemented, which tells the client more).
        m.iq(IqType::Set, Address::Bare, "command", NS, |_| async {
            Err(StanzaError::new(
                Condition::FeatureNotImplemented,
                "accounts do not run commands; send them to the server's domain",
            ))
        });
        m.iq(IqType::Get, Address::Host, "command", NS, |_| async {
            Err(StanzaError::bad_request(
                "commands are executed with an IQ of type 'set', not 'get'",
            ))
        });
    }
}

async fn run(req: IqRequest) -> IqResult {
    let requester = Requester {
        jid: req.from.clone(),
        privileged: false,
    };
    adhoc::execute(&req.server, requester, req.to.clone(), req.payload())
        .await
        .map(Some)
}
