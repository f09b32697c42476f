//! Ad-hoc commands at the terminal: each stage rendered as plain text (pure functions
//! returning `String`), and the answers to a form read from the user or from `--field`.

use rookery_client::CommandSession;
use rookery_forms::{Action, DataForm, Field, FieldType, FormType, Note, NoteType};
use std::collections::BTreeMap;
use std::io;

/// Values given on the command line (`--field var=value`), by `var`, in order.
pub type Given = BTreeMap<String, Vec<String>>;

// ---- rendering ---------------------------------------------------------------------

/// A whole stage: its form (to fill in, or a result), other payloads, notes, and then the
/// allowed actions while executing or the final status.
pub fn stage(s: &CommandSession) -> String {
    let mut parts = Vec::new();
    if let Some(f) = &s.form {
        parts.push(form(f));
    }
    for o in &s.other {
        parts.push(other_payload(o));
    }
    if !s.notes.is_empty() {
        parts.push(notes(&s.notes));
    }
    if s.is_executing() {
        parts.push(actions(&s.allowed_actions(), s.default_action()));
    } else {
        parts.push(format!("status: {}\n", s.status.as_str()));
    }
    parts.retain(|p| !p.is_empty());
    parts.join("\n")
}

/// A form of any type: a layout to fill in (`form`), or values to read.
pub fn form(f: &DataForm) -> String {
    match f.kind {
        FormType::Form => layout(f),
        _ => result(f),
    }
}

/// A form to fill in: title, instructions, and each field with its label (or `var`),
/// `*` when required, a hint for its type, its description, numbered options and default.
pub fn layout(f: &DataForm) -> String {
    let mut out = heading(f);
    let fields: String = f.fields.iter().map(layout_field).collect();
    out.push_str(&fields);
    if !f.items.is_empty() || f.reported.is_some() {
        if !fields.is_empty() {
            out.push('\n');
        }
        out.push_str(&table(f.reported.as_deref(), &f.items));
    }
    out
}

/// One field of a form to fill in (hidden fields render as nothing).
pub fn layout_field(f: &Field) -> String {
    const DETAIL: &str = "      ";
    let mut out = String::new();
    match f.kind {
        FieldType::Hidden => return out,
        FieldType::Fixed => {
            for v in &f.values {
                for line in v.lines() {
                    out.push_str(&format!("  {line}\n"));
                }
            }
            if f.values.is_empty()
                && let Some(l) = &f.label
            {
                out.push_str(&format!("  {l}\n"));
            }
            return out;
        }
        _ => {}
    }
    out.push_str("  ");
    out.push_str(name(f));
    if f.required {
        out.push_str(" *");
    }
    if let (Some(_), Some(var)) = (&f.label, &f.var)
        && f.label.as_deref() != Some(var.as_str())
    {
        out.push_str(&format!(" [{var}]"));
    }
    out.push_str(&format!("  ({})\n", hint(f.kind)));
    if let Some(d) = &f.desc {
        for line in d.lines() {
            out.push_str(&format!("{DETAIL}{line}\n"));
        }
    }
    for (i, (label, value)) in f.options.iter().enumerate() {
        match label {
            Some(l) if l != value => out.push_str(&format!("{DETAIL}{}) {l} [{value}]\n", i + 1)),
            _ => out.push_str(&format!("{DETAIL}{}) {value}\n", i + 1)),
        }
    }
    if !f.values.is_empty() {
        match f.kind {
            FieldType::TextPrivate => out.push_str(&format!("{DETAIL}default: (hidden)\n")),
            FieldType::TextMulti => {
                out.push_str(&format!("{DETAIL}default:\n"));
                for v in &f.values {
                    out.push_str(&format!("{DETAIL}| {v}\n"));
                }
            }
            _ => out.push_str(&format!(
                "{DETAIL}default: {}\n",
                shown_values(f).join(", ")
            )),
        }
    }
    out
}

/// The hint shown after a field's name.
pub fn hint(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Boolean => "yes/no",
        FieldType::Fixed | FieldType::Hidden => "",
        FieldType::JidMulti => "JIDs",
        FieldType::JidSingle => "a JID",
        FieldType::ListMulti => "any of",
        FieldType::ListSingle => "one of",
        FieldType::TextMulti => "lines of text",
        FieldType::TextPrivate => "secret",
        FieldType::TextSingle => "text",
    }
}

/// A result (or any form that is not a layout): title, instructions, each field as
/// `label: value` (further values on lines of their own, aligned), then the table, if
/// any.
pub fn result(f: &DataForm) -> String {
    let mut out = heading(f);
    let rows: Vec<(Option<&str>, Vec<String>)> = f
        .fields
        .iter()
        .filter(|x| x.kind != FieldType::Hidden)
        .map(|x| {
            let label = match (x.kind, &x.label) {
                (FieldType::Fixed, None) => None,
                _ => Some(name(x)),
            };
            (label, shown_values(x))
        })
        .collect();
    let width = rows
        .iter()
        .filter_map(|(l, _)| l.map(|l| width(l) + 1))
        .max()
        .unwrap_or(0);
    for (label, values) in &rows {
        match label {
            None => {
                for v in values {
                    out.push_str(v);
                    out.push('\n');
                }
            }
            Some(l) => {
                let head = pad(&format!("{l}:"), width);
                let mut values = values.iter().flat_map(|v| v.lines());
                match values.next() {
                    None => out.push_str(&format!("{}\n", head.trim_end())),
                    Some(first) => out.push_str(&format!("{head} {first}\n")),
                }
                for v in values {
                    out.push_str(&format!("{} {v}\n", " ".repeat(width)));
                }
            }
        }
    }
    if !f.items.is_empty() || f.reported.is_some() {
        if !rows.is_empty() {
            out.push('\n');
        }
        out.push_str(&table(f.reported.as_deref(), &f.items));
    }
    out
}

/// A `<reported/>` / `<item/>` table as aligned text columns under the reported labels.
/// Without `<reported/>` the columns are the `var`s of the items, in order of appearance.
pub fn table(reported: Option<&[Field]>, items: &[Vec<Field>]) -> String {
    let columns: Vec<(String, Option<&Field>)> = match reported {
        Some(cols) => cols
            .iter()
            .map(|c| (c.var.clone().unwrap_or_default(), Some(c)))
            .collect(),
        None => {
            let mut vars: Vec<String> = Vec::new();
            for f in items.iter().flatten() {
                if let Some(v) = &f.var
                    && !vars.contains(v)
                {
                    vars.push(v.clone());
                }
            }
            vars.into_iter().map(|v| (v, None)).collect()
        }
    };
    if columns.is_empty() {
        return String::new();
    }
    let headers: Vec<String> = columns
        .iter()
        .map(|(var, col)| {
            col.map(|c| name(c).to_owned())
                .unwrap_or_else(|| var.clone())
        })
        .collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|(var, col)| {
                    let Some(cell) = item.iter().find(|f| f.var.as_deref() == Some(var)) else {
                        return String::new();
                    };
                    // A cell takes its type (and options) from the column unless it has
                    // its own.
                    let mut typed = cell.clone();
                    if let Some(c) = col {
                        if !cell.explicit_type {
                            typed.kind = c.kind;
                        }
                        if cell.options.is_empty() {
                            typed.options = c.options.clone();
                        }
                    }
                    shown_values(&typed).join(", ").replace('\n', " ")
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            rows.iter()
                .map(|r| width(&r[i]))
                .chain([width(&headers[i])])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| -> String {
        let joined: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| pad(c, *w)).collect();
        format!("{}\n", joined.join("  ").trim_end())
    };
    let mut out = line(&headers);
    let rules: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rules));
    for r in &rows {
        out.push_str(&line(r));
    }
    if rows.is_empty() {
        out.push_str("(no items)\n");
    }
    out
}

/// Notes, each prefixed with `info:`, `warning:` or `error:` (further lines indented).
pub fn notes(notes: &[Note]) -> String {
    let mut out = String::new();
    for n in notes {
        let prefix = match n.kind {
            NoteType::Info => "info: ",
            NoteType::Warn => "warning: ",
            NoteType::Error => "error: ",
        };
        let mut lines = n.text.trim().lines();
        out.push_str(&format!("{prefix}{}\n", lines.next().unwrap_or("")));
        for l in lines {
            out.push_str(&format!("{}{l}\n", " ".repeat(prefix.len())));
        }
    }
    out
}

/// The allowed actions, the default one marked.
pub fn actions(allowed: &[Action], default: Option<Action>) -> String {
    let list: Vec<String> = allowed
        .iter()
        .map(|a| {
            if Some(*a) == default {
                format!("{} (default)", a.as_str())
            } else {
                a.as_str().to_owned()
            }
        })
        .collect();
    format!("actions: {}\n", list.join(", "))
}

/// A list of commands: `node` and name in two aligned columns.
pub fn command_list(items: &[(String, Option<String>)]) -> String {
    let w = items.iter().map(|(n, _)| width(n)).max().unwrap_or(0);
    items
        .iter()
        .map(
            |(node, name)| match name.as_deref().filter(|n| !n.is_empty()) {
                Some(name) => format!("{}  {name}\n", pad(node, w)),
                None => format!("{node}\n"),
            },
        )
        .collect()
}

/// A payload that is not a data form: a XEP-0066 link, or its element name.
fn other_payload(e: &rookery_client::Element) -> String {
    if e.name() == "x" && e.ns() == "jabber:x:oob" {
        let url = e.get_child("url", "jabber:x:oob").map(|u| u.text());
        let desc = e.get_child("desc", "jabber:x:oob").map(|d| d.text());
        return match (url, desc) {
            (Some(u), Some(d)) if !d.is_empty() => format!("link: {u} ({d})\n"),
            (Some(u), _) => format!("link: {u}\n"),
            _ => String::new(),
        };
    }
    format!("(payload <{} xmlns='{}'/> not shown)\n", e.name(), e.ns())
}

/// Title (underlined) and instructions, followed by a blank line when there was any.
fn heading(f: &DataForm) -> String {
    let mut out = String::new();
    if let Some(t) = &f.title {
        out.push_str(&format!("{t}\n{}\n", "=".repeat(width(t))));
    }
    for i in &f.instructions {
        for line in i.trim().lines() {
            out.push_str(line.trim());
            out.push('\n');
        }
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// A field's label, else its `var`.
fn name(f: &Field) -> &str {
    f.label.as_deref().or(f.var.as_deref()).unwrap_or("")
}

/// A field's values as shown: booleans as yes/no, list values with their option label.
fn shown_values(f: &Field) -> Vec<String> {
    f.values
        .iter()
        .map(|v| match f.kind {
            FieldType::Boolean => match v.trim() {
                "1" | "true" => "yes".to_owned(),
                "0" | "false" => "no".to_owned(),
                other => other.to_owned(),
            },
            FieldType::ListSingle | FieldType::ListMulti => {
                match f.options.iter().find(|(_, o)| o == v) {
                    Some((Some(l), _)) if l != v => format!("{l} [{v}]"),
                    _ => v.clone(),
                }
            }
            _ => v.clone(),
        })
        .collect()
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

// ---- answers -----------------------------------------------------------------------

/// Where the answers come from: the user at a terminal (or a script in tests).
pub trait Terminal {
    /// Show a line of text to the user (not part of the command's output).
    fn say(&mut self, text: &str) -> io::Result<()>;
    /// Ask for one line; `None` at the end of input.
    fn line(&mut self, prompt: &str) -> io::Result<Option<String>>;
    /// Ask for one line without echoing it; `None` at the end of input.
    fn secret(&mut self, prompt: &str) -> io::Result<Option<String>>;
}

/// The real terminal: prompts on standard error, answers from standard input, secrets
/// read without echo.
pub struct Tty;

impl Terminal for Tty {
    fn say(&mut self, text: &str) -> io::Result<()> {
        use io::Write;
        io::stdout().flush()?;
        let mut e = io::stderr();
        writeln!(e, "{text}")?;
        e.flush()
    }

    fn line(&mut self, prompt: &str) -> io::Result<Option<String>> {
        use io::Write;
        io::stdout().flush()?;
        let mut e = io::stderr();
        write!(e, "{prompt}")?;
        e.flush()?;
        let mut line = String::new();
        if io::stdin().read_line(&mut line)? == 0 {
            writeln!(e)?;
            return Ok(None);
        }
        Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
    }

    fn secret(&mut self, prompt: &str) -> io::Result<Option<String>> {
        use io::Write;
        io::stdout().flush()?;
        match rpassword::prompt_password(prompt) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Whether a field takes input from the user (not fixed, not hidden, has a `var`).
fn fillable(f: &Field) -> bool {
    f.var.is_some() && !matches!(f.kind, FieldType::Fixed | FieldType::Hidden)
}

/// Whether some field of `form` has no `--field` value (so a terminal user is asked).
pub fn needs_input(form: &DataForm, given: &Given) -> bool {
    form.fields
        .iter()
        .filter(|f| fillable(f))
        .any(|f| !given.contains_key(f.var.as_deref().unwrap_or_default()))
}

/// A boolean answer as `1`/`0`; `None` if it is none.
pub fn parse_bool(s: &str) -> Option<&'static str> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "on" => Some("1"),
        "0" | "false" | "no" | "n" | "off" => Some("0"),
        _ => None,
    }
}

/// A list answer: an option's value, or its number (1-based) as shown by
/// [`layout_field`]. A field without options takes any value.
pub fn parse_option(f: &Field, s: &str) -> Result<String, String> {
    let s = s.trim();
    if f.options.is_empty() || f.options.iter().any(|(_, v)| v == s) {
        return Ok(s.to_owned());
    }
    match s.parse::<usize>() {
        Ok(n) if (1..=f.options.len()).contains(&n) => Ok(f.options[n - 1].1.clone()),
        _ => Err(format!(
            "'{s}' is not one of the options (give a value or a number from 1 to {})",
            f.options.len()
        )),
    }
}

/// Several values separated by commas (one line of a multi-value answer).
pub fn split_values(line: &str) -> Vec<String> {
    line.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The `--field` values for `f`, checked and normalised for its type.
fn given_values(f: &Field, raw: &[String]) -> Result<Vec<String>, String> {
    let var = f.var.as_deref().unwrap_or_default();
    let values: Vec<String> = match f.kind {
        FieldType::Boolean => raw
            .iter()
            .map(|v| {
                parse_bool(v)
                    .map(str::to_owned)
                    .ok_or_else(|| format!("--field {var}: '{v}' is not yes or no"))
            })
            .collect::<Result<_, _>>()?,
        FieldType::TextMulti => raw
            .iter()
            .flat_map(|v| v.split('\n').map(str::to_owned))
            .collect(),
        _ => raw.to_vec(),
    };
    if values.len() > 1 && !f.kind.is_multi() {
        return Err(format!(
            "--field {var} was given {} times, but '{}' takes one value",
            values.len(),
            name(f)
        ));
    }
    Ok(values)
}

/// The submission of `form` without asking anything: the `--field` values where given,
/// the form's defaults elsewhere.
pub fn fill_from(form: &DataForm, given: &Given) -> Result<DataForm, String> {
    let mut sub = form.to_submission();
    for f in form.fields.iter().filter(|f| fillable(f)) {
        let var = f.var.as_deref().unwrap_or_default();
        if let Some(raw) = given.get(var) {
            let values = given_values(f, raw)?;
            if let Some(s) = sub.field_mut(var) {
                s.values = values;
            }
        }
    }
    Ok(sub)
}

/// The submission of `form`, asking at `term` for every field that has no `--field`
/// value. Each answer is checked against the field (required, JID syntax, options) and
/// asked again when wrong. `None` if the input ends.
pub fn ask_form(
    form: &DataForm,
    given: &Given,
    term: &mut dyn Terminal,
) -> io::Result<Option<DataForm>> {
    let mut sub = match fill_from(form, given) {
        Ok(s) => s,
        Err(e) => {
            term.say(&e)?;
            // Ask again for the fields whose --field value was wrong.
            let mut given = given.clone();
            given.retain(|var, raw| {
                form.field(var)
                    .is_some_and(|f| given_values(f, raw).is_ok())
            });
            return ask_form(form, &given, term);
        }
    };
    for f in form.fields.iter().filter(|f| fillable(f)) {
        let var = f.var.as_deref().unwrap_or_default();
        if given.contains_key(var) {
            continue;
        }
        let Some(values) = ask_field(f, term)? else {
            return Ok(None);
        };
        if let Some(s) = sub.field_mut(var) {
            s.values = values;
        }
    }
    Ok(Some(sub))
}

/// Ask for one field until the answer passes the field's checks; `None` if the input
/// ends.
pub fn ask_field(f: &Field, term: &mut dyn Terminal) -> io::Result<Option<Vec<String>>> {
    loop {
        let values = match read_field(f, term)? {
            Read::End => return Ok(None),
            Read::Keep => f.values.clone(),
            Read::Values(v) => v,
            Read::Wrong(msg) => {
                term.say(&format!("  {msg}"))?;
                continue;
            }
        };
        let var = f.var.as_deref().unwrap_or_default();
        let layout = DataForm::new(FormType::Form).with_field(f.clone());
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        match layout.check(&DataForm::submit().set(var, &refs)) {
            Ok(_) => return Ok(Some(values)),
            Err(msg) => term.say(&format!("  {msg}"))?,
        }
    }
}

/// One attempt at reading a field.
enum Read {
    /// The input ended.
    End,
    /// Empty answer: keep the default.
    Keep,
    Values(Vec<String>),
    /// An answer that cannot be used, and why.
    Wrong(String),
}

fn read_field(f: &Field, term: &mut dyn Terminal) -> io::Result<Read> {
    let mut prompt = name(f).to_owned();
    if f.required {
        prompt.push_str(" *");
    }
    let default = match f.kind {
        _ if f.values.is_empty() => None,
        FieldType::TextPrivate => Some("keep the default".to_owned()),
        FieldType::TextMulti => Some("empty line keeps the default".to_owned()),
        _ => Some(format!("default {}", shown_values(f).join(", "))),
    };
    let how = match f.kind {
        FieldType::Boolean => Some("y/n"),
        FieldType::ListSingle if !f.options.is_empty() => Some("value or number"),
        FieldType::JidMulti => Some("commas or one per line, empty line ends"),
        FieldType::ListMulti => Some("values or numbers, commas or one per line, empty line ends"),
        FieldType::TextMulti => Some("empty line ends"),
        _ => None,
    };
    let extra: Vec<String> = how.map(str::to_owned).into_iter().chain(default).collect();
    if !extra.is_empty() {
        prompt.push_str(&format!(" ({})", extra.join("; ")));
    }
    prompt.push_str(": ");

    let first = match f.kind {
        FieldType::TextPrivate => term.secret(&prompt)?,
        _ => term.line(&prompt)?,
    };
    let Some(first) = first else {
        return Ok(Read::End);
    };
    if first.trim().is_empty() {
        return Ok(Read::Keep);
    }
    Ok(match f.kind {
        FieldType::Boolean => match parse_bool(&first) {
            Some(b) => Read::Values(vec![b.to_owned()]),
            None => Read::Wrong(format!("'{}' is not yes or no", first.trim())),
        },
        FieldType::ListSingle => match parse_option(f, &first) {
            Ok(v) => Read::Values(vec![v]),
            Err(e) => Read::Wrong(e),
        },
        FieldType::JidMulti | FieldType::ListMulti => {
            let mut tokens = split_values(&first);
            loop {
                match term.line("... ")? {
                    None => break,
                    Some(l) if l.trim().is_empty() => break,
                    Some(l) => tokens.extend(split_values(&l)),
                }
            }
            if f.kind == FieldType::ListMulti {
                match tokens
                    .iter()
                    .map(|t| parse_option(f, t))
                    .collect::<Result<Vec<_>, _>>()
                {
                    Ok(v) => Read::Values(v),
                    Err(e) => Read::Wrong(e),
                }
            } else {
                Read::Values(tokens)
            }
        }
        FieldType::TextMulti => {
            let mut lines = vec![first];
            loop {
                match term.line("... ")? {
                    None => break,
                    Some(l) if l.is_empty() => break,
                    Some(l) => lines.push(l),
                }
            }
            Read::Values(lines)
        }
        _ => Read::Values(vec![first.trim().to_owned()]),
    })
}

/// Ask which action to take: `allowed` listed with `default` marked; an empty answer
/// takes the default. Names may be abbreviated as long as they stay unambiguous.
/// `None` if the input ends.
pub fn ask_action(
    allowed: &[Action],
    default: Action,
    term: &mut dyn Terminal,
) -> io::Result<Option<Action>> {
    let listed: Vec<String> = allowed
        .iter()
        .map(|a| {
            if *a == default {
                format!("[{}]", a.as_str())
            } else {
                a.as_str().to_owned()
            }
        })
        .collect();
    let mut prompt = format!("action ({})", listed.join(", "));
    if !allowed.contains(&default) {
        prompt.push_str(&format!(", enter for {}", default.as_str()));
    }
    prompt.push_str(": ");
    loop {
        let Some(answer) = term.line(&prompt)? else {
            return Ok(None);
        };
        match parse_action_answer(allowed, default, &answer) {
            Ok(a) => return Ok(Some(a)),
            Err(e) => term.say(&format!("  {e}"))?,
        }
    }
}

/// An answer to [`ask_action`].
pub fn parse_action_answer(
    allowed: &[Action],
    default: Action,
    answer: &str,
) -> Result<Action, String> {
    let a = answer.trim().to_ascii_lowercase();
    if a.is_empty() {
        return Ok(default);
    }
    let matches: Vec<Action> = allowed
        .iter()
        .copied()
        .filter(|x| x.as_str().starts_with(&a))
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("'{a}' is not one of the allowed actions")),
        _ => Err(format!("'{a}' is ambiguous")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_forms::{Actions, Command, Status};
    use std::collections::VecDeque;

    fn every_field_type() -> DataForm {
        DataForm::form("Add User")
            .with_instructions("Fill out this form to add a user.")
            .with_form_type("http://jabber.org/protocol/admin")
            .with_field(Field::fixed("Account"))
            .with_field(
                Field::jid_single("accountjid", "The Jabber ID")
                    .required()
                    .with_desc("user@host, on this server"),
            )
            .with_field(Field::text_private("password", "Password").required())
            .with_field(Field::text_private("pin", "PIN").with_value("1234"))
            .with_field(Field::text_single("email", "").with_value("a@example.org"))
            .with_field(Field::text_multi("motd", "Message").with_values(["Hello", "World"]))
            .with_field(Field::jid_multi("admins", "Admins").with_values(["a@x", "b@x"]))
            .with_field(Field::boolean("welcome", "Send welcome").with_value("1"))
            .with_field(
                Field::list_single("state", "Run State", &[("Active", "off"), ("", "on")])
                    .with_value("off"),
            )
            .with_field(
                Field::list_multi(
                    "runlevel",
                    "Run Modes",
                    &[("Single-User", "1"), ("X-Window", "5")],
                )
                .with_values(["5"]),
            )
    }

    #[test]
    fn a_layout_with_every_field_type() {
        let text = layout(&every_field_type());
        let want = "\
Add User
========
Fill out this form to add a user.

  Account
  The Jabber ID * [accountjid]  (a JID)
      user@host, on this server
  Password * [password]  (secret)
  PIN [pin]  (secret)
      default: (hidden)
  email  (text)
      default: a@example.org
  Message [motd]  (lines of text)
      default:
      | Hello
      | World
  Admins [admins]  (JIDs)
      default: a@x, b@x
  Send welcome [welcome]  (yes/no)
      default: yes
  Run State [state]  (one of)
      1) Active [off]
      2) on
      default: Active [off]
  Run Modes [runlevel]  (any of)
      1) Single-User [1]
      2) X-Window [5]
      default: X-Window [5]
";
        assert_eq!(text, want, "\n{text}");
        // The private default never shows.
        assert!(!text.contains("1234"));
    }

    #[test]
    fn a_result_with_single_and_multi_values() {
        let f = DataForm::result("Statistics")
            .with_form_type("urn:x")
            .with_field(Field::fixed("Today"))
            .with_field(Field::text_single("users", "Registered users").with_value("42"))
            .with_field(Field::jid_multi("online", "Online").with_values(["alice@x", "bob@x"]))
            .with_field(Field::boolean("open", "Registration open").with_value("false"))
            .with_field(Field::text_multi("log", "").with_values(["one", "two"]))
            .with_field(Field::text_single("empty", "Nothing"));
        let text = form(&f);
        let want = "\
Statistics
==========

Today
Registered users:  42
Online:            alice@x
                   bob@x
Registration open: no
log:               one
                   two
Nothing:
";
        assert_eq!(text, want, "\n{text}");
    }

    #[test]
    fn a_table_under_the_reported_labels() {
        let f = DataForm::result("Available Services")
            .with_form_type("urn:x")
            .with_reported(vec![
                Field::text_single("service", "Service"),
                Field::boolean("on", "Running"),
                Field::text_single("note", ""),
            ])
            .with_item(&[("service", "httpd"), ("on", "1"), ("note", "web")])
            .with_item(&[("service", "postgresql"), ("on", "0")])
            .with_item(&[("note", "no service"), ("service", "x")]);
        let text = form(&f);
        let want = "\
Available Services
==================

Service     Running  note
----------  -------  ----------
httpd       yes      web
postgresql  no
x                    no service
";
        assert_eq!(text, want, "\n{text}");

        // Without <reported/>, the columns come from the items.
        let t = table(
            None,
            &DataForm::result("")
                .with_item(&[("a", "1"), ("b", "22")])
                .items,
        );
        assert_eq!(t, "a  b\n-  --\n1  22\n");
        // No rows.
        let t = table(Some(&[Field::text_single("jid", "JID")]), &[]);
        assert_eq!(t, "JID\n---\n(no items)\n");
    }

    #[test]
    fn notes_and_actions() {
        let text = notes(&[
            Note::info("created bob@localhost"),
            Note::warn("no e-mail\naddress given"),
            Note::error("failed"),
        ]);
        assert_eq!(
            text,
            "info: created bob@localhost\nwarning: no e-mail\n         address given\nerror: failed\n"
        );
        assert_eq!(
            actions(
                &[Action::Prev, Action::Complete, Action::Cancel],
                Some(Action::Complete)
            ),
            "actions: prev, complete (default), cancel\n"
        );
        assert_eq!(
            actions(&[Action::Next, Action::Cancel], None),
            "actions: next, cancel\n"
        );
    }

    #[test]
    fn whole_stages() {
        let mut c = Command::request("add-user", Action::Execute);
        c.action = None;
        c.sessionid = Some("s".into());
        c.status = Some(Status::Executing);
        c.actions = Some(Actions::new(&[Action::Complete], Action::Complete));
        c.form = Some(DataForm::form("").with_field(Field::text_single("x", "X")));
        c.notes.push(Note::warn("careful"));
        let s = CommandSession::from_reply("localhost", "add-user", c.clone()).unwrap();
        assert_eq!(
            stage(&s),
            "  X [x]  (text)\n\nwarning: careful\n\nactions: complete (default), cancel\n"
        );

        c.status = Some(Status::Completed);
        c.actions = None;
        c.notes = vec![Note::info("done")];
        c.form = None;
        let s = CommandSession::from_reply("localhost", "add-user", c).unwrap();
        assert_eq!(stage(&s), "info: done\n\nstatus: completed\n");
    }

    #[test]
    fn command_lists() {
        let items = vec![
            ("add-user".to_owned(), Some("Add a user".to_owned())),
            ("uptime".to_owned(), None),
            ("ping".to_owned(), Some("Ping".to_owned())),
        ];
        assert_eq!(
            command_list(&items),
            "add-user  Add a user\nuptime\nping      Ping\n"
        );
        assert_eq!(command_list(&[]), "");
    }

    fn given(pairs: &[(&str, &str)]) -> Given {
        let mut g = Given::new();
        for (k, v) in pairs {
            g.entry(k.to_string()).or_default().push(v.to_string());
        }
        g
    }

    #[test]
    fn submissions_from_field_values_and_defaults() {
        let f = every_field_type();
        assert!(needs_input(&f, &given(&[])));
        let g = given(&[
            ("accountjid", "bob@localhost"),
            ("password", "pw"),
            ("welcome", "no"),
            ("admins", "c@x"),
            ("admins", "d@x"),
            ("motd", "a\nb"),
            ("unknown", "ignored"),
        ]);
        assert!(needs_input(&f, &g));
        let sub = fill_from(&f, &g).unwrap();
        assert_eq!(sub.kind, FormType::Submit);
        assert_eq!(sub.value("accountjid"), Some("bob@localhost"));
        assert_eq!(sub.value("welcome"), Some("0"));
        assert_eq!(sub.field("admins").unwrap().values, ["c@x", "d@x"]);
        assert_eq!(sub.field("motd").unwrap().values, ["a", "b"]);
        // Defaults stay, the FORM_TYPE goes back, fixed fields and unknown vars do not.
        assert_eq!(sub.value("pin"), Some("1234"));
        assert_eq!(sub.value("state"), Some("off"));
        assert_eq!(sub.form_type(), Some("http://jabber.org/protocol/admin"));
        assert!(sub.field("unknown").is_none());
        assert!(f.check(&sub).is_ok(), "{:?}", f.check(&sub));

        let err = fill_from(&f, &given(&[("welcome", "maybe")])).unwrap_err();
        assert_eq!(err, "--field welcome: 'maybe' is not yes or no");
        let err = fill_from(&f, &given(&[("email", "a"), ("email", "b")])).unwrap_err();
        assert!(err.contains("given 2 times"), "{err}");

        let all = given(&[
            ("accountjid", "b@x"),
            ("password", "p"),
            ("pin", ""),
            ("email", ""),
            ("motd", ""),
            ("admins", "a@x"),
            ("welcome", "1"),
            ("state", "on"),
            ("runlevel", "1"),
        ]);
        assert!(!needs_input(&f, &all));
    }

    #[test]
    fn answers() {
        let f = Field::list_single("state", "", &[("Active", "off"), ("", "on"), ("", "2")]);
        assert_eq!(parse_option(&f, "on").unwrap(), "on");
        assert_eq!(parse_option(&f, "1").unwrap(), "off");
        // A value wins over a number.
        assert_eq!(parse_option(&f, "2").unwrap(), "2");
        assert_eq!(parse_option(&f, "3").unwrap(), "2");
        assert!(parse_option(&f, "4").is_err());
        assert!(parse_option(&f, "nope").is_err());
        assert_eq!(
            parse_option(&Field::list_single("x", "", &[]), "any").unwrap(),
            "any"
        );
        assert_eq!(parse_bool(" Yes "), Some("1"));
        assert_eq!(parse_bool("n"), Some("0"));
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(split_values(" a@x, b@x,,c@x "), ["a@x", "b@x", "c@x"]);

        let allowed = [Action::Prev, Action::Complete, Action::Cancel];
        assert_eq!(
            parse_action_answer(&allowed, Action::Complete, ""),
            Ok(Action::Complete)
        );
        assert_eq!(
            parse_action_answer(&allowed, Action::Complete, "p"),
            Ok(Action::Prev)
        );
        assert_eq!(
            parse_action_answer(&allowed, Action::Complete, "CANCEL"),
            Ok(Action::Cancel)
        );
        assert!(parse_action_answer(&allowed, Action::Complete, "c").is_err());
        assert!(parse_action_answer(&allowed, Action::Complete, "next").is_err());
    }

    /// Scripted answers; records the prompts and messages.
    struct Script {
        answers: VecDeque<&'static str>,
        secrets: VecDeque<&'static str>,
        shown: Vec<String>,
    }

    impl Script {
        fn new(answers: &[&'static str], secrets: &[&'static str]) -> Script {
            Script {
                answers: answers.iter().copied().collect(),
                secrets: secrets.iter().copied().collect(),
                shown: Vec::new(),
            }
        }
    }

    impl Terminal for Script {
        fn say(&mut self, text: &str) -> io::Result<()> {
            self.shown.push(text.to_owned());
            Ok(())
        }
        fn line(&mut self, prompt: &str) -> io::Result<Option<String>> {
            self.shown.push(prompt.to_owned());
            Ok(self.answers.pop_front().map(str::to_owned))
        }
        fn secret(&mut self, prompt: &str) -> io::Result<Option<String>> {
            self.shown.push(format!("(secret) {prompt}"));
            Ok(self.secrets.pop_front().map(str::to_owned))
        }
    }

    #[test]
    fn asking_for_every_field_type() {
        let f = every_field_type();
        let mut t = Script::new(
            &[
                "",              // accountjid: required, asked again
                "not a jid@",    // invalid, asked again
                "bob@localhost", // ok
                "",              // email: keep default
                "line one",      // motd
                "line two",
                "",
                "c@x, d@x", // admins
                "e@x",
                "",
                "maybe", // welcome: asked again
                "n",
                "2",    // state: by number
                "1, 5", // runlevel: numbers and values
                "",
            ],
            &["", "s3cret", ""], // password (required: asked again), pin keeps default
        );
        let sub = ask_form(&f, &given(&[]), &mut t).unwrap().unwrap();
        assert_eq!(sub.value("accountjid"), Some("bob@localhost"));
        assert_eq!(sub.value("password"), Some("s3cret"));
        assert_eq!(sub.value("pin"), Some("1234"));
        assert_eq!(sub.value("email"), Some("a@example.org"));
        assert_eq!(sub.field("motd").unwrap().values, ["line one", "line two"]);
        assert_eq!(sub.field("admins").unwrap().values, ["c@x", "d@x", "e@x"]);
        assert_eq!(sub.value("welcome"), Some("0"));
        assert_eq!(sub.value("state"), Some("on"));
        assert_eq!(sub.field("runlevel").unwrap().values, ["1", "5"]);
        assert!(f.check(&sub).is_ok());
        assert!(t.answers.is_empty() && t.secrets.is_empty());

        let shown = t.shown.join("\n");
        assert!(shown.contains("The Jabber ID *: "), "{shown}");
        assert!(shown.contains("is required"), "{shown}");
        assert!(shown.contains("not a valid JID"), "{shown}");
        assert!(shown.contains("(secret) Password *: "), "{shown}");
        assert!(
            shown.contains("(secret) PIN (keep the default): "),
            "{shown}"
        );
        assert!(shown.contains("email (default a@example.org): "), "{shown}");
        assert!(
            shown.contains("Send welcome (y/n; default yes): "),
            "{shown}"
        );
        assert!(shown.contains("'maybe' is not yes or no"), "{shown}");
        assert!(shown.contains("Run State (value or number; default Active [off]): "));
        assert!(!shown.contains("1234"));
    }

    #[test]
    fn asking_only_what_was_not_given() {
        let f = DataForm::form("")
            .with_field(Field::text_single("a", "A").required())
            .with_field(Field::boolean("b", "B"));
        // A wrong --field value is reported and asked for.
        let mut t = Script::new(&["x", "yes"], &[]);
        let sub = ask_form(&f, &given(&[("b", "perhaps")]), &mut t)
            .unwrap()
            .unwrap();
        assert_eq!(sub.value("a"), Some("x"));
        assert_eq!(sub.value("b"), Some("1"));
        assert_eq!(t.shown[0], "--field b: 'perhaps' is not yes or no");

        let mut t = Script::new(&[], &[]);
        let sub = ask_form(&f, &given(&[("a", "v"), ("b", "0")]), &mut t)
            .unwrap()
            .unwrap();
        assert_eq!(sub.value("b"), Some("0"));
        assert!(t.shown.is_empty());

        // The end of input ends the questions.
        let mut t = Script::new(&[], &[]);
        assert_eq!(ask_form(&f, &given(&[]), &mut t).unwrap(), None);
    }

    #[test]
    fn asking_for_the_action() {
        let allowed = [Action::Prev, Action::Next, Action::Cancel];
        let mut t = Script::new(&["x", "", "p"], &[]);
        assert_eq!(
            ask_action(&allowed, Action::Next, &mut t).unwrap(),
            Some(Action::Next)
        );
        assert_eq!(t.shown[0], "action (prev, [next], cancel): ");
        assert_eq!(t.shown[1], "  'x' is not one of the allowed actions");
        assert_eq!(
            ask_action(&allowed, Action::Next, &mut t).unwrap(),
            Some(Action::Prev)
        );
        let mut t = Script::new(&[""], &[]);
        assert_eq!(
            ask_action(&allowed, Action::Execute, &mut t).unwrap(),
            Some(Action::Execute)
        );
        assert_eq!(
            t.shown[0],
            "action (prev, next, cancel), enter for execute: "
        );
        let mut t = Script::new(&[], &[]);
        assert_eq!(ask_action(&allowed, Action::Next, &mut t).unwrap(), None);
    }
}
