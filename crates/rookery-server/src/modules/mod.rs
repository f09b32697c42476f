//! Built-in modules, one file per feature.

pub mod adhoc;
pub mod admin_commands;
pub mod blocking;
pub mod disco;
pub mod groups;
pub mod last;
pub mod offline;
pub mod ping;
pub mod private;
pub mod register;
pub mod session;
pub mod time;
pub mod vcard;
pub mod version;

use crate::module::Module;

/// Every built-in module, in load order.
pub fn builtin() -> Vec<Box<dyn Module>> {
    vec![
        Box::new(session::Session),
        Box::new(crate::im::roster::Roster),
        Box::new(disco::Disco),
        Box::new(adhoc::Adhoc),
        Box::new(admin_commands::AdminCommands::default()),
        Box::new(ping::Ping),
        Box::new(version::Version),
        Box::new(time::Time),
        Box::new(last::Last),
        Box::new(vcard::VCard),
        Box::new(private::Private),
        Box::new(blocking::Blocking::default()),
        Box::new(offline::Offline),
        Box::new(register::Register),
        Box::new(groups::Groups),
        Box::new(crate::muc::Muc),
        Box::new(crate::neerc::Neerc),
    ]
}
