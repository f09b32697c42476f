//! The contest clock (A.11): elapsed and total time and a status.
//!
//! The contest system writes a clock file (`<anything time="ms" length="ms"
//! status="RUNNING"/>`); [`watch`] reads it whenever its content changes and the service
//! announces the new clock to its rooms. Unlike the original, a file that does not parse
//! (caught half-written, say) is read again at the next poll, and a vanished file gives
//! status 0 ("no clock"). Without a file the jury sets the clock by command.
//!
//! Between readings the elapsed time runs on while the contest runs ([`Reading::now`]);
//! readings that would move the contest's start forward by less than a minute are
//! smoothed away (the original's jitter rule), so a file written every few seconds with
//! rounded times does not make the clock jump back and forth.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use minidom::Element;
use quick_xml::events::Event as XmlEvent;

use super::NeercService;
use crate::server::Server;
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
    /// The status named in the contest system's clock file (`BEFORE`, `RUNNING`, …; the
    /// numbers 0–4 of files older than 2016 too).
    pub fn from_name(name: &str) -> ClockStatus {
        match name.trim().to_ascii_uppercase().as_str() {
            "BEFORE" | "1" => ClockStatus::Before,
            "RUNNING" | "2" => ClockStatus::Running,
            "PAUSED" | "3" => ClockStatus::Paused,
            "OVER" | "4" => ClockStatus::Over,
            _ => ClockStatus::Unknown,
        }
    }

    /// The status with this wire id.
    pub fn from_id(id: u8) -> Option<ClockStatus> {
        Some(match id {
            0 => ClockStatus::Unknown,
            1 => ClockStatus::Before,
            2 => ClockStatus::Running,
            3 => ClockStatus::Paused,
            4 => ClockStatus::Over,
            _ => return None,
        })
    }

    /// Whether the contest has started (scheduled tasks may fire): running, paused or
    /// over. "No clock" is not a start, unlike in the original.
    pub fn started(self) -> bool {
        matches!(
            self,
            ClockStatus::Running | ClockStatus::Paused | ClockStatus::Over
        )
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

    /// A clock from `<clock time total status/>` (status as a wire id or a name).
    pub fn from_element(e: &Element) -> Result<Clock, String> {
        let number = |name: &str| -> Result<i64, String> {
            let v = e.get_attr(name).unwrap_or("0");
            v.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| format!("{name} is a number of milliseconds, not {v:?}"))
        };
        let status = e.get_attr("status").unwrap_or("");
        let status = match status.trim().parse::<u8>() {
            Ok(id) => ClockStatus::from_id(id),
            Err(_) => Some(ClockStatus::from_name(status)).filter(|s| *s != ClockStatus::Unknown),
        }
        .ok_or_else(|| {
            format!("status is 0–4 or BEFORE, RUNNING, PAUSED or OVER, not {status:?}")
        })?;
        Ok(Clock {
            time_ms: number("time")?,
            total_ms: number("total")?,
            status,
        })
    }
}

/// Parse the contest system's clock file: a root element of any name with `time` and
/// `length` in milliseconds and a `status` name.
pub fn parse_file(text: &str) -> Result<Clock, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event() {
            Ok(XmlEvent::Start(e) | XmlEvent::Empty(e)) => {
                let mut time = None;
                let mut length = None;
                let mut status = None;
                for a in e.attributes() {
                    let a = a.map_err(|e| format!("bad attribute: {e}"))?;
                    let value = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| format!("bad attribute value: {e}"))?
                        .into_owned();
                    match a.key.0 {
                        "time" => time = Some(value),
                        "length" => length = Some(value),
                        "status" => status = Some(value),
                        _ => {}
                    }
                }
                let number = |what: &str, v: Option<String>| -> Result<i64, String> {
                    let v = v.ok_or_else(|| format!("no {what} attribute"))?;
                    v.trim()
                        .parse::<i64>()
                        .ok()
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| format!("{what} is not a number of milliseconds: {v:?}"))
                };
                let status_name = status.ok_or("no status attribute")?;
                let status = ClockStatus::from_name(&status_name);
                if status == ClockStatus::Unknown {
                    return Err(format!("unknown status {status_name:?}"));
                }
                return Ok(Clock {
                    time_ms: number("time", time)?,
                    total_ms: number("length", length)?,
                    status,
                });
            }
            Ok(XmlEvent::Eof) => return Err("no element".to_owned()),
            Ok(_) => {}
            Err(e) => return Err(format!("not XML: {e}")),
        }
    }
}

/// A clock with the wall-clock time (ms since 1970) it was read at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    pub clock: Clock,
    pub at_ms: i64,
}

/// Readings that move the implied start forward by less than this are jitter.
const JITTER_MS: i64 = 60_000;

impl Reading {
    /// The clock at `now_ms`: a running contest's time runs on, up to its length.
    pub fn now(&self, now_ms: i64) -> Clock {
        let mut c = self.clock;
        if c.status == ClockStatus::Running {
            c.time_ms += (now_ms - self.at_ms).max(0);
            if c.total_ms > 0 {
                c.time_ms = c.time_ms.min(c.total_ms);
            }
        }
        c
    }

    /// The reading after `new` is read at `now_ms`: while the contest runs, a start
    /// moved forward by less than a minute keeps the earlier start.
    pub fn next(&self, new: Clock, now_ms: i64) -> Reading {
        let mut clock = new;
        if self.clock.status == ClockStatus::Running && new.status == ClockStatus::Running {
            let start = self.at_ms - self.clock.time_ms;
            let new_start = now_ms - new.time_ms;
            if new_start > start && new_start - start < JITTER_MS {
                clock.time_ms = now_ms - start;
            }
        }
        Reading {
            clock,
            at_ms: now_ms,
        }
    }
}

/// The longest clock file read.
const MAX_FILE: u64 = 64 * 1024;

/// Watch the clock file: read it every `poll`, and when its content changed and parses,
/// hand the clock to the service; when it disappears, the clock becomes status 0. Parse
/// errors are logged once per content and the file is read again at the next poll.
pub async fn watch(svc: Arc<NeercService>, server: Server, path: PathBuf, poll: Duration) {
    let mut last: Option<Vec<u8>> = None;
    let mut failed: Option<Vec<u8>> = None;
    let mut missing = false;
    loop {
        match read_capped(&path).await {
            Ok(content) => {
                missing = false;
                if last.as_ref() != Some(&content) && failed.as_ref() != Some(&content) {
                    match parse_file(&String::from_utf8_lossy(&content)) {
                        Ok(clock) => {
                            tracing::debug!(file = %path.display(), ?clock, "clock file read");
                            last = Some(content);
                            failed = None;
                            svc.clock_read(&server, clock).await;
                        }
                        Err(e) => {
                            tracing::warn!(file = %path.display(), error = %e, "the clock file does not parse; reading it again at the next change");
                            failed = Some(content);
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !missing {
                    missing = true;
                    last = None;
                    failed = None;
                    tracing::warn!(file = %path.display(), "no clock file: the clock has no status");
                    svc.clock_read(&server, Clock::default()).await;
                }
            }
            Err(e) => {
                if failed.is_none() {
                    tracing::warn!(file = %path.display(), error = %e, "cannot read the clock file");
                    failed = Some(Vec::new());
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = server.shutdown_token().cancelled() => return,
        }
    }
}

async fn read_capped(path: &PathBuf) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await?;
    let mut content = Vec::new();
    file.take(MAX_FILE).read_to_end(&mut content).await?;
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contest_systems_file_parses_with_any_root_name() {
        let c = parse_file(
            "<?xml version='1.0'?>\n<clock time='3600000' length='18000000' status='RUNNING'/>",
        )
        .unwrap();
        assert_eq!(
            c,
            Clock {
                time_ms: 3_600_000,
                total_ms: 18_000_000,
                status: ClockStatus::Running
            }
        );
        let c = parse_file("<contest status=\"paused\" time=\"5\" length=\"10\"></contest>");
        assert_eq!(c.unwrap().status, ClockStatus::Paused);
        assert_eq!(
            parse_file("<c time='1' length='2' status='2'/>")
                .unwrap()
                .status,
            ClockStatus::Running,
            "numeric statuses of old files"
        );
        assert!(parse_file("<c time='1' length='2' status='LATE'/>").is_err());
        assert!(parse_file("<c time='-1' length='2' status='OVER'/>").is_err());
        assert!(parse_file("<c time='1' status='OVER'/>").is_err());
        assert!(parse_file("<c time='1' length='2' status='OV").is_err());
        assert!(parse_file("").is_err());
    }

    fn running(time_ms: i64) -> Clock {
        Clock {
            time_ms,
            total_ms: 5 * 3_600_000,
            status: ClockStatus::Running,
        }
    }

    #[test]
    fn a_running_clock_runs_on_and_stops_at_the_end() {
        let r = Reading {
            clock: running(1_000),
            at_ms: 10_000,
        };
        assert_eq!(r.now(12_500).time_ms, 3_500);
        assert_eq!(r.now(100_000_000).time_ms, 5 * 3_600_000);
        let paused = Reading {
            clock: Clock {
                status: ClockStatus::Paused,
                ..running(1_000)
            },
            at_ms: 10_000,
        };
        assert_eq!(paused.now(20_000).time_ms, 1_000);
    }

    #[test]
    fn small_forward_moves_of_the_start_are_smoothed_away() {
        // Started at wall time 0.
        let r = Reading {
            clock: running(10_000),
            at_ms: 10_000,
        };
        // Read 5 s later with a time 2 s short: the start seems 2 s later: jitter.
        let next = r.next(running(13_000), 15_000);
        assert_eq!(next.clock.time_ms, 15_000);
        // A start moved back (time ahead) is taken as is.
        assert_eq!(r.next(running(16_000), 15_000).clock.time_ms, 16_000);
        // A start moved forward by a minute or more (a pause not seen) is taken.
        assert_eq!(r.next(running(1_000), 70_000).clock.time_ms, 1_000);
        // Any other status is taken as is.
        let paused = Clock {
            status: ClockStatus::Paused,
            ..running(13_000)
        };
        assert_eq!(r.next(paused, 15_000).clock, paused);
    }
}
