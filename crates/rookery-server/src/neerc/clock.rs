//! The contest clock (A.11): elapsed and total time and a status. Only its query exists so
//! far; until a clock source (the contest system's file, or a jury command) sets it, the
//! status is 0 ("no clock").

use minidom::Element;

use crate::xml::{ElementExt, el};

/// Clock status ids on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClockStatus {
    /// No clock file, or an unknown status.
    #[default]
    Unknown = 0,
    Before = 1,
    Running = 2,
    Paused = 3,
    Over = 4,
}

impl ClockStatus {
    /// The status named in the contest system's clock file (`BEFORE`, `RUNNING`, …).
    pub fn from_name(name: &str) -> ClockStatus {
        match name.trim().to_ascii_uppercase().as_str() {
            "BEFORE" => ClockStatus::Before,
            "RUNNING" => ClockStatus::Running,
            "PAUSED" => ClockStatus::Paused,
            "OVER" => ClockStatus::Over,
            _ => ClockStatus::Unknown,
        }
    }
}

/// The clock as last known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// Elapsed contest time, in milliseconds.
    pub time_ms: i64,
    /// Contest length, in milliseconds.
    pub total_ms: i64,
    pub status: ClockStatus,
}

impl Clock {
    /// `<clock time total status/>` in namespace `ns`.
    pub fn element(&self, ns: &str) -> Element {
        el("clock", ns)
            .with_attr("time", &self.time_ms.to_string())
            .with_attr("total", &self.total_ms.to_string())
            .with_attr("status", &(self.status as u8).to_string())
    }
}
