//! The legacy `session` IQ (RFC 3921 §3, optional in RFC 6121): accepted and answered.

use crate::module::{Address, Module, ModuleContext};
use crate::ns;
use crate::xml::IqType;

pub struct Session;

impl Module for Session {
    fn name(&self) -> &'static str {
        "session"
    }
    fn start(&self, m: &mut ModuleContext<'_>) {
        m.iq(
            IqType::Set,
            Address::Bare,
            "session",
            ns::SESSION,
            |_| async { Ok(None) },
        );
    }
}
