//! XEP-0202 Entity Time of the server (always UTC).

use crate::module::{Address, Module, ModuleContext};
use crate::ns;
use crate::xml::{ElementExt, IqType, el};

pub struct Time;

impl Module for Time {
    fn name(&self) -> &'static str {
        "time"
    }
    fn start(&self, m: &mut ModuleContext<'_>) {
        m.feature(Address::Host, ns::TIME);
        m.iq(IqType::Get, Address::Host, "time", ns::TIME, |_| async {
            let now = crate::util::format_datetime(rookery_storage::now_us());
            Ok(Some(
                el("time", ns::TIME)
                    .with_child(el("tzo", ns::TIME).with_text("+00:00"))
                    .with_child(el("utc", ns::TIME).with_text(&now)),
            ))
        });
    }
}
