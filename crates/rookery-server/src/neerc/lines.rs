//! Task creation lines, as the jury types them in the original client (`protocols.md`
//! A.10, A.12), for `rookery neerc import`:
//!
//! ```text
//! @type [assignees] [schedule] title
//! ```
//!
//! - `type`: `todo` (or `task`), `todofail`, `confirm` (or `ok`), `okfail` (or `reason`),
//!   `question` (or `q`);
//! - `assignees`: comma-separated user or group names (`hall1,hall2,Halls`). The word
//!   after the type is read as assignees only when one of its names is known (a user or
//!   group of the room, as the caller's `is_name` says); then every one of them must be
//!   known, else the line is refused. A word with no known name is the title's first
//!   word. So, unlike the original, `@todo Check the printers` keeps its whole title;
//! - `schedule`: `start` or `end`, an optional offset in minutes (`+N` or `-N`) and an
//!   optional `!` (activate without asking the jury), e.g. `start+30`, `end-60!`. It may
//!   follow the type directly (the original wanted assignees first);
//! - `title`: the rest of the line. `--` ends the prefix: `@todo -- start the clocks` has
//!   the title `start the clocks`, with neither assignees nor a schedule.
//!
//! In a file, blank lines and lines starting with `#` are skipped.

/// The task types of a line, by alias, and their wire type.
const ALIASES: &[(&str, &str)] = &[
    ("todo", "todo"),
    ("task", "todo"),
    ("todofail", "todofail"),
    ("confirm", "confirm"),
    ("ok", "confirm"),
    ("okfail", "okfail"),
    ("reason", "okfail"),
    ("question", "question"),
    ("q", "question"),
];

/// The most minutes an offset may have (a year; more is surely a typo).
const MAX_OFFSET_MINUTES: i64 = 366 * 24 * 60;

/// What a schedule counts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// The contest's start: the offset is contest time.
    Start,
    /// The contest's end: `end-60` is an hour before it.
    End,
}

impl Anchor {
    /// The schedule base on the wire (`start`, `end`).
    pub fn as_str(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::End => "end",
        }
    }
}

/// When a scheduled line's task becomes active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineSchedule {
    pub anchor: Anchor,
    /// Milliseconds from the anchor (negative: before it).
    pub offset_ms: i64,
    /// The jury confirms the task before it is sent (no `!` on the line).
    pub confirm: bool,
}

/// One parsed line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskLine {
    /// The wire type (`todo`, `todofail`, `confirm`, `okfail`, `question`).
    pub kind: &'static str,
    /// User or group names as written (each one known to `is_name`).
    pub assignees: Vec<String>,
    pub schedule: Option<LineSchedule>,
    pub title: String,
}

/// A refused line of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The wire type of a line's `@type`, if it is one.
pub fn wire_type(alias: &str) -> Option<&'static str> {
    ALIASES
        .iter()
        .find(|(a, _)| *a == alias)
        .map(|(_, wire)| *wire)
}

/// Split off the first whitespace-separated word: (word, rest with leading space gone).
fn first_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// `start`, `end`, `start+30`, `end-60!`, … or `None` if the word is not a schedule.
fn schedule(word: &str) -> Result<Option<LineSchedule>, String> {
    let (anchor, rest) = if let Some(r) = word.strip_prefix("start") {
        (Anchor::Start, r)
    } else if let Some(r) = word.strip_prefix("end") {
        (Anchor::End, r)
    } else {
        return Ok(None);
    };
    let (rest, confirm) = match rest.strip_suffix('!') {
        Some(r) => (r, false),
        None => (rest, true),
    };
    let minutes = if rest.is_empty() {
        0
    } else {
        let (sign, digits) = match rest.as_bytes()[0] {
            b'+' => (1, &rest[1..]),
            b'-' => (-1, &rest[1..]),
            _ => return Ok(None),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        match digits.parse::<i64>() {
            Ok(n) if n <= MAX_OFFSET_MINUTES => sign * n,
            _ => {
                return Err(format!(
                    "the offset of {word} is more than {MAX_OFFSET_MINUTES} minutes"
                ));
            }
        }
    };
    Ok(Some(LineSchedule {
        anchor,
        offset_ms: minutes * 60_000,
        confirm,
    }))
}

/// Skip a `--` word that ends the prefix; whether there was one.
fn take_dashes(rest: &mut &str) -> bool {
    let (word, after) = first_word(rest);
    if word == "--" {
        *rest = after;
        true
    } else {
        false
    }
}

/// The names of an assignee list, if `word` is one: when one of its names is known, all
/// must be (else the line is refused); when none is, the word is the title's.
fn assignee_list(
    word: &str,
    is_name: impl Fn(&str) -> bool,
) -> Result<Option<Vec<String>>, String> {
    let names: Vec<&str> = word.split(',').filter(|n| !n.is_empty()).collect();
    if !names.iter().any(|n| is_name(n)) {
        return Ok(None);
    }
    let unknown: Vec<&str> = names.iter().copied().filter(|n| !is_name(n)).collect();
    if !unknown.is_empty() {
        return Err(format!(
            "unknown assignee{} {} in {word}: not a user or group of the room",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", ")
        ));
    }
    Ok(Some(names.into_iter().map(str::to_owned).collect()))
}

/// Parse one line. `is_name` says whether a name (as written) is a user or group the
/// task may be assigned to.
pub fn parse_line(line: &str, is_name: impl Fn(&str) -> bool) -> Result<TaskLine, String> {
    let line = line.trim();
    let Some(rest) = line.strip_prefix('@') else {
        return Err(
            "a task line starts with @type, e.g. @todo hall1,hall2 Check the printers".into(),
        );
    };
    let (alias, mut rest) = first_word(rest);
    let Some(kind) = wire_type(alias) else {
        let known: Vec<&str> = ALIASES.iter().map(|(a, _)| *a).collect();
        return Err(format!(
            "unknown task type @{alias}: use one of {}",
            known.join(", ")
        ));
    };
    let mut assignees = Vec::new();
    let mut sched = None;
    // Assignees, then a schedule, each optional, then the title; `--` may end the prefix
    // before either or after both.
    let mut explicit_title = take_dashes(&mut rest);
    if !explicit_title {
        let (word, after) = first_word(rest);
        if let Some(names) = assignee_list(word, &is_name)? {
            assignees = names;
            rest = after;
            explicit_title = take_dashes(&mut rest);
        }
    }
    if !explicit_title {
        let (word, after) = first_word(rest);
        if let Some(s) = schedule(word)? {
            sched = Some(s);
            rest = after;
            explicit_title = take_dashes(&mut rest);
        }
    }
    let title = rest.trim();
    if title.is_empty() {
        return Err(if explicit_title {
            "the task has no title after --".into()
        } else {
            "the task has no title".into()
        });
    }
    Ok(TaskLine {
        kind,
        assignees,
        schedule: sched,
        title: title.to_owned(),
    })
}

/// Parse a file of lines, skipping blank lines and `#` comments: every task with its line
/// number, or every refused line.
pub fn parse_lines(
    text: &str,
    is_name: impl Fn(&str) -> bool,
) -> Result<Vec<(usize, TaskLine)>, Vec<LineError>> {
    let mut tasks = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match parse_line(trimmed, &is_name) {
            Ok(t) => tasks.push((i + 1, t)),
            Err(message) => errors.push(LineError {
                line: i + 1,
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(tasks)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The room of these tests: users hall1, hall2, jury1 and the group Halls.
    fn known(name: &str) -> bool {
        ["hall1", "hall2", "jury1", "halls"].contains(&name.to_lowercase().as_str())
    }

    fn line(s: &str) -> TaskLine {
        parse_line(s, known).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn refused(s: &str) -> String {
        match parse_line(s, known) {
            Ok(t) => panic!("{s} was accepted as {t:?}"),
            Err(e) => e,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn assignees_then_title() {
        assert_eq!(
            line("@todo hall1,Halls Check the printers"),
            TaskLine {
                kind: "todo",
                assignees: names(&["hall1", "Halls"]),
                schedule: None,
                title: "Check the printers".into(),
            }
        );
    }

    #[test]
    fn a_multi_word_title_without_assignees_keeps_its_first_word() {
        let t = line("@confirm Wallpapers set?");
        assert!(t.assignees.is_empty());
        assert_eq!(t.title, "Wallpapers set?");
        assert_eq!(t.kind, "confirm");
        // A word with a comma but no known name is title text too.
        assert_eq!(line("@todo Wait, then go").title, "Wait, then go");
    }

    #[test]
    fn aliases_give_wire_types() {
        for (alias, wire) in [
            ("task", "todo"),
            ("ok", "confirm"),
            ("reason", "okfail"),
            ("q", "question"),
            ("todofail", "todofail"),
        ] {
            assert_eq!(line(&format!("@{alias} hall2 Title")).kind, wire);
        }
    }

    #[test]
    fn schedules_with_or_without_assignees() {
        let t = line("@todo hall1 start+30 Collect the printouts");
        assert_eq!(
            t.schedule,
            Some(LineSchedule {
                anchor: Anchor::Start,
                offset_ms: 30 * 60_000,
                confirm: true,
            })
        );
        assert_eq!(t.title, "Collect the printouts");
        let t = line("@confirm end-60! Freeze the scoreboard");
        assert!(t.assignees.is_empty());
        assert_eq!(
            t.schedule,
            Some(LineSchedule {
                anchor: Anchor::End,
                offset_ms: -3_600_000,
                confirm: false,
            })
        );
        assert_eq!(t.title, "Freeze the scoreboard");
        let t = line("@todo Halls start Go");
        assert_eq!(
            t.schedule.map(|s| (s.anchor, s.offset_ms)),
            Some((Anchor::Start, 0))
        );
        // Not schedules: the word stays in the title.
        assert_eq!(line("@todo started already").title, "started already");
        assert_eq!(line("@todo end+ soon").title, "end+ soon");
    }

    #[test]
    fn double_dash_starts_the_title() {
        let t = line("@todo -- start the clocks");
        assert!(t.schedule.is_none() && t.assignees.is_empty());
        assert_eq!(t.title, "start the clocks");
        let t = line("@todo hall1 -- hall2 is next door");
        assert_eq!(t.assignees, names(&["hall1"]));
        assert_eq!(t.title, "hall2 is next door");
        let t = line("@todo hall1 end -- end");
        assert_eq!(t.schedule.map(|s| s.anchor), Some(Anchor::End));
        assert_eq!(t.title, "end");
    }

    #[test]
    fn bad_lines_say_why() {
        assert!(refused("todo hall1 Title").contains("starts with @type"));
        assert!(refused("@urgent hall1 Title").contains("unknown task type @urgent"));
        let e = refused("@todo hall1,hal2,hal3 Title");
        assert!(e.contains("unknown assignees hal2, hal3"), "{e}");
        assert!(refused("@todo hall1").contains("no title"));
        assert!(refused("@todo hall1 start+5").contains("no title"));
        assert!(refused("@todo --").contains("no title after --"));
        assert!(refused("@todo start+99999999 Title").contains("minutes"));
    }

    #[test]
    fn files_skip_blanks_and_comments_and_report_every_bad_line() {
        let text = "# the morning\n\n@todo hall1 Check\r\n  @q Halls Ready?\n";
        let ok = parse_lines(text, known).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!((ok[0].0, ok[0].1.title.as_str()), (3, "Check"));
        assert_eq!((ok[1].0, ok[1].1.kind), (4, "question"));

        let errors = parse_lines("@todo hall1 Fine\nbad\n# skip\n@nope x y\n", known).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 4]);
        assert!(
            errors[1]
                .to_string()
                .starts_with("line 4: unknown task type")
        );
    }
}
