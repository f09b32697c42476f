//! Instant messaging and presence (RFC 6121): the roster with its subscription state
//! machine, and presence broadcast, probes and directed presence.

pub mod presence;
pub mod roster;
