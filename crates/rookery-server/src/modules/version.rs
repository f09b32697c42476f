//! XEP-0092 Software Version of the server (the OS only when `modules.version_show_os`).

use crate::module::{Address, Module, ModuleContext};
use crate::ns;
use crate::xml::{ElementExt, IqType, el};

pub struct Version;

impl Module for Version {
    fn name(&self) -> &'static str {
        "version"
    }
    fn start(&self, m: &mut ModuleContext<'_>) {
        let show_os = m.config.modules.version_show_os;
        m.feature(Address::Host, ns::VERSION);
        m.iq(
            IqType::Get,
            Address::Host,
            "query",
            ns::VERSION,
            move |_| async move {
                let mut q = el("query", ns::VERSION)
                    .with_child(el("name", ns::VERSION).with_text("Rookery"))
                    .with_child(el("version", ns::VERSION).with_text(env!("CARGO_PKG_VERSION")));
                if show_os {
                    q.append_child(el("os", ns::VERSION).with_text(std::env::consts::OS));
                }
                Ok(Some(q))
            },
        );
    }
}
