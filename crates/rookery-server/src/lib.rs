//! Rookery's XMPP server: router, session manager, c2s streams, the module API and the
//! built-in modules. See ARCHITECTURE.md at the repository root for a stanza's path.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod adhoc;
pub mod admin;
pub mod c2s;
pub mod component;
pub mod error;
pub mod extauth;
pub mod im;
pub mod module;
pub mod modules;
pub mod muc;
pub mod neerc;
pub mod ns;
pub mod router;
pub mod s2s;
pub mod server;
pub mod sm;
pub mod stamps;
pub mod tls;
pub mod util;
pub mod xml;

pub use rookery_config::Config;
pub use server::{Listening, Server};
