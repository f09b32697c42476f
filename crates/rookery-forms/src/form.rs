//! XEP-0004 data forms: layout, parsing, serialisation and checking a submission.

use crate::{NS_DATA, ParseError};
use jid::Jid;
use minidom::Element;
use std::collections::BTreeMap;

/// The `type` of an `<x xmlns='jabber:x:data'/>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormType {
    Form,
    Submit,
    Cancel,
    Result,
}

impl FormType {
    pub fn as_str(self) -> &'static str {
        match self {
            FormType::Form => "form",
            FormType::Submit => "submit",
            FormType::Cancel => "cancel",
            FormType::Result => "result",
        }
    }
    pub fn parse(s: &str) -> Option<FormType> {
        Some(match s {
            "form" => FormType::Form,
            "submit" => FormType::Submit,
            "cancel" => FormType::Cancel,
            "result" => FormType::Result,
            _ => return None,
        })
    }
}

/// A field type of XEP-0004 §3.3. Unknown types are read as `text-single`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FieldType {
    Boolean,
    Fixed,
    Hidden,
    JidMulti,
    JidSingle,
    ListMulti,
    ListSingle,
    TextMulti,
    TextPrivate,
    #[default]
    TextSingle,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        use FieldType::*;
        match self {
            Boolean => "boolean",
            Fixed => "fixed",
            Hidden => "hidden",
            JidMulti => "jid-multi",
            JidSingle => "jid-single",
            ListMulti => "list-multi",
            ListSingle => "list-single",
            TextMulti => "text-multi",
            TextPrivate => "text-private",
            TextSingle => "text-single",
        }
    }
    pub fn parse(s: &str) -> FieldType {
        use FieldType::*;
        match s {
            "boolean" => Boolean,
            "fixed" => Fixed,
            "hidden" => Hidden,
            "jid-multi" => JidMulti,
            "jid-single" => JidSingle,
            "list-multi" => ListMulti,
            "list-single" => ListSingle,
            "text-multi" => TextMulti,
            "text-private" => TextPrivate,
            _ => TextSingle,
        }
    }
    /// Whether the field may carry several values.
    pub fn is_multi(self) -> bool {
        matches!(
            self,
            FieldType::JidMulti | FieldType::ListMulti | FieldType::TextMulti | FieldType::Hidden
        )
    }
}

/// One field. Build layouts with the constructors and the `with_*` methods.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Field {
    pub var: Option<String>,
    pub kind: FieldType,
    /// Whether `type` was written out (a submission usually omits it).
    pub explicit_type: bool,
    pub label: Option<String>,
    pub desc: Option<String>,
    pub required: bool,
    pub values: Vec<String>,
    /// `(label, value)` pairs of a list field.
    pub options: Vec<(Option<String>, String)>,
}

impl Field {
    pub fn new(kind: FieldType, var: &str, label: &str) -> Field {
        Field {
            var: Some(var.to_owned()),
            kind,
            explicit_type: true,
            label: (!label.is_empty()).then(|| label.to_owned()),
            ..Field::default()
        }
    }
    pub fn text_single(var: &str, label: &str) -> Field {
        Self::new(FieldType::TextSingle, var, label)
    }
    pub fn text_private(var: &str, label: &str) -> Field {
        Self::new(FieldType::TextPrivate, var, label)
    }
    pub fn text_multi(var: &str, label: &str) -> Field {
        Self::new(FieldType::TextMulti, var, label)
    }
    pub fn jid_single(var: &str, label: &str) -> Field {
        Self::new(FieldType::JidSingle, var, label)
    }
    pub fn jid_multi(var: &str, label: &str) -> Field {
        Self::new(FieldType::JidMulti, var, label)
    }
    pub fn boolean(var: &str, label: &str) -> Field {
        Self::new(FieldType::Boolean, var, label)
    }
    pub fn list_single(var: &str, label: &str, options: &[(&str, &str)]) -> Field {
        let mut f = Self::new(FieldType::ListSingle, var, label);
        f.options = options
            .iter()
            .map(|(l, v)| ((!l.is_empty()).then(|| l.to_string()), v.to_string()))
            .collect();
        f
    }
    pub fn list_multi(var: &str, label: &str, options: &[(&str, &str)]) -> Field {
        let mut f = Self::list_single(var, label, options);
        f.kind = FieldType::ListMulti;
        f
    }
    /// A hidden field with a fixed value, such as `FORM_TYPE`.
    pub fn hidden(var: &str, value: &str) -> Field {
        Self::new(FieldType::Hidden, var, "").with_value(value)
    }
    /// A `fixed` field: a line of text with no `var`.
    pub fn fixed(text: &str) -> Field {
        Field {
            kind: FieldType::Fixed,
            explicit_type: true,
            values: vec![text.to_owned()],
            ..Field::default()
        }
    }
    pub fn required(mut self) -> Field {
        self.required = true;
        self
    }
    pub fn with_desc(mut self, desc: &str) -> Field {
        self.desc = Some(desc.to_owned());
        self
    }
    pub fn with_value(mut self, v: impl Into<String>) -> Field {
        self.values.push(v.into());
        self
    }
    pub fn with_values<I, S>(mut self, vs: I) -> Field
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.values.extend(vs.into_iter().map(Into::into));
        self
    }
    /// The field's first value.
    pub fn value(&self) -> Option<&str> {
        self.values.first().map(String::as_str)
    }
    fn name(&self) -> String {
        match (&self.label, &self.var) {
            (Some(l), Some(v)) => format!("'{l}' ({v})"),
            (None, Some(v)) => format!("'{v}'"),
            (Some(l), None) => format!("'{l}'"),
            (None, None) => "a field".into(),
        }
    }

    pub fn to_element(&self) -> Element {
        let mut e = Element::bare("field", NS_DATA);
        if let Some(v) = &self.var {
            crate::set_attr(&mut e, "var", v.as_str());
        }
        if self.explicit_type {
            crate::set_attr(&mut e, "type", self.kind.as_str());
        }
        if let Some(l) = &self.label {
            crate::set_attr(&mut e, "label", l.as_str());
        }
        if let Some(d) = &self.desc {
            e.append_child(Element::builder("desc", NS_DATA).append(d.as_str()).build());
        }
        if self.required {
            e.append_child(Element::bare("required", NS_DATA));
        }
        for v in &self.values {
            e.append_child(
                Element::builder("value", NS_DATA)
                    .append(v.as_str())
                    .build(),
            );
        }
        for (label, v) in &self.options {
            let mut o = Element::bare("option", NS_DATA);
            if let Some(l) = label {
                crate::set_attr(&mut o, "label", l.as_str());
            }
            o.append_child(
                Element::builder("value", NS_DATA)
                    .append(v.as_str())
                    .build(),
            );
            e.append_child(o);
        }
        e
    }

    pub fn from_element(e: &Element) -> Result<Field, ParseError> {
        let ty = e.attr("type");
        let kind = ty.map(FieldType::parse).unwrap_or_default();
        let var = e.attr("var").map(str::to_owned);
        if var.is_none() && kind != FieldType::Fixed {
            return Err(ParseError(format!(
                "a field of type {} has no 'var'",
                kind.as_str()
            )));
        }
        let mut f = Field {
            var,
            kind,
            explicit_type: ty.is_some(),
            label: e.attr("label").map(str::to_owned),
            ..Field::default()
        };
        for c in e.children().filter(|c| c.ns() == NS_DATA) {
            match c.name() {
                "desc" => f.desc = Some(c.text()),
                "required" => f.required = true,
                "value" => f.values.push(c.text()),
                "option" => {
                    let v = c
                        .get_child("value", NS_DATA)
                        .map(|v| v.text())
                        .ok_or_else(|| {
                            ParseError(format!("an option of field {} has no value", f.name()))
                        })?;
                    f.options.push((c.attr("label").map(str::to_owned), v));
                }
                _ => {}
            }
        }
        if f.values.len() > 1 && !f.kind.is_multi() {
            return Err(ParseError(format!(
                "field {} of type {} has {} values; only one is allowed",
                f.name(),
                f.kind.as_str(),
                f.values.len()
            )));
        }
        Ok(f)
    }
}

/// A data form: a form to fill in, a submission, or a result (optionally a table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataForm {
    pub kind: FormType,
    pub title: Option<String>,
    pub instructions: Vec<String>,
    pub fields: Vec<Field>,
    /// Column headers of a result table (`<reported/>`).
    pub reported: Option<Vec<Field>>,
    /// Rows of a result table (`<item/>`), each a list of fields with values.
    pub items: Vec<Vec<Field>>,
}

impl DataForm {
    pub fn new(kind: FormType) -> DataForm {
        DataForm {
            kind,
            title: None,
            instructions: Vec::new(),
            fields: Vec::new(),
            reported: None,
            items: Vec::new(),
        }
    }
    /// A form to fill in, with a title.
    pub fn form(title: &str) -> DataForm {
        Self::new(FormType::Form).with_title(title)
    }
    /// A result, with a title.
    pub fn result(title: &str) -> DataForm {
        Self::new(FormType::Result).with_title(title)
    }
    /// A submission.
    pub fn submit() -> DataForm {
        Self::new(FormType::Submit)
    }
    pub fn with_title(mut self, t: &str) -> DataForm {
        self.title = (!t.is_empty()).then(|| t.to_owned());
        self
    }
    pub fn with_instructions(mut self, text: &str) -> DataForm {
        self.instructions.push(text.to_owned());
        self
    }
    pub fn with_field(mut self, f: Field) -> DataForm {
        self.fields.push(f);
        self
    }
    /// Add `FORM_TYPE` as a hidden field.
    pub fn with_form_type(self, ns: &str) -> DataForm {
        self.with_field(Field::hidden("FORM_TYPE", ns))
    }
    /// Make this a table: the column headers.
    pub fn with_reported(mut self, columns: Vec<Field>) -> DataForm {
        self.reported = Some(columns);
        self
    }
    /// Add a table row: `(var, value)` pairs.
    pub fn with_item(mut self, row: &[(&str, &str)]) -> DataForm {
        self.items.push(
            row.iter()
                .map(|(var, v)| Field {
                    var: Some(var.to_string()),
                    values: vec![v.to_string()],
                    ..Field::default()
                })
                .collect(),
        );
        self
    }
    /// Set a submission value (replacing any previous one).
    pub fn set(mut self, var: &str, values: &[&str]) -> DataForm {
        let values: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        match self
            .fields
            .iter_mut()
            .find(|f| f.var.as_deref() == Some(var))
        {
            Some(f) => f.values = values,
            None => self.fields.push(Field {
                var: Some(var.to_owned()),
                values,
                ..Field::default()
            }),
        }
        self
    }

    pub fn field(&self, var: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.var.as_deref() == Some(var))
    }
    pub fn field_mut(&mut self, var: &str) -> Option<&mut Field> {
        self.fields
            .iter_mut()
            .find(|f| f.var.as_deref() == Some(var))
    }
    /// The first value of a field.
    pub fn value(&self, var: &str) -> Option<&str> {
        self.field(var).and_then(Field::value)
    }
    /// The `FORM_TYPE` value, if any.
    pub fn form_type(&self) -> Option<&str> {
        self.value("FORM_TYPE")
    }

    /// A submission of this form with its current values (what a client sends back).
    pub fn to_submission(&self) -> DataForm {
        let mut s = DataForm::submit();
        for f in &self.fields {
            if f.var.is_some() && f.kind != FieldType::Fixed {
                s.fields.push(Field {
                    var: f.var.clone(),
                    kind: f.kind,
                    explicit_type: f.explicit_type,
                    values: f.values.clone(),
                    ..Field::default()
                });
            }
        }
        s
    }

    pub fn to_element(&self) -> Element {
        let mut x = Element::bare("x", NS_DATA);
        crate::set_attr(&mut x, "type", self.kind.as_str());
        if let Some(t) = &self.title {
            x.append_child(
                Element::builder("title", NS_DATA)
                    .append(t.as_str())
                    .build(),
            );
        }
        for i in &self.instructions {
            x.append_child(
                Element::builder("instructions", NS_DATA)
                    .append(i.as_str())
                    .build(),
            );
        }
        for f in &self.fields {
            x.append_child(f.to_element());
        }
        if let Some(cols) = &self.reported {
            let mut r = Element::bare("reported", NS_DATA);
            for c in cols {
                r.append_child(c.to_element());
            }
            x.append_child(r);
        }
        for row in &self.items {
            let mut item = Element::bare("item", NS_DATA);
            for f in row {
                item.append_child(f.to_element());
            }
            x.append_child(item);
        }
        x
    }

    pub fn from_element(x: &Element) -> Result<DataForm, ParseError> {
        if !x.is("x", NS_DATA) {
            return Err(ParseError(format!(
                "expected <x xmlns='{NS_DATA}'/>, got <{}/> in '{}'",
                x.name(),
                x.ns()
            )));
        }
        let ty = x
            .attr("type")
            .ok_or_else(|| ParseError("the form has no 'type'".into()))?;
        let kind =
            FormType::parse(ty).ok_or_else(|| ParseError(format!("unknown form type '{ty}'")))?;
        let mut form = DataForm::new(kind);
        for c in x.children().filter(|c| c.ns() == NS_DATA) {
            match c.name() {
                "title" => form.title = Some(c.text()),
                "instructions" => form.instructions.push(c.text()),
                "field" => form.fields.push(Field::from_element(c)?),
                "reported" => {
                    let cols = c
                        .children()
                        .filter(|f| f.is("field", NS_DATA))
                        .map(Field::from_element)
                        .collect::<Result<Vec<_>, _>>()?;
                    form.reported = Some(cols);
                }
                "item" => form.items.push(
                    c.children()
                        .filter(|f| f.is("field", NS_DATA))
                        .map(Field::from_element)
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                _ => {}
            }
        }
        Ok(form)
    }

    /// Check a submission against this layout (XEP-0004 §3.4): unknown fields are ignored,
    /// required fields must carry a value, values must fit the field type (booleans, JIDs,
    /// list options, one value for single fields). Omitted optional fields keep the value
    /// the layout offered. The error message names the field and the problem.
    pub fn check(&self, submitted: &DataForm) -> Result<Values, String> {
        if !matches!(submitted.kind, FormType::Submit | FormType::Cancel) {
            return Err(format!(
                "a submitted form must have type 'submit', not '{}'",
                submitted.kind.as_str()
            ));
        }
        let mut problems = Vec::new();
        let mut values = Values::default();
        for f in &self.fields {
            let Some(var) = &f.var else { continue };
            if f.kind == FieldType::Fixed {
                continue;
            }
            let given = submitted.field(var);
            let raw: Vec<String> = match given {
                Some(g) => g.values.clone(),
                None => f.values.clone(),
            };
            if f.kind == FieldType::Hidden {
                // A hidden field echoes what we sent; FORM_TYPE must match when given.
                if var == "FORM_TYPE"
                    && given.is_some()
                    && raw.first().map(String::as_str) != f.value()
                {
                    problems.push(format!(
                        "FORM_TYPE is '{}', expected '{}'",
                        raw.first().map(String::as_str).unwrap_or(""),
                        f.value().unwrap_or("")
                    ));
                }
                values.0.insert(var.clone(), raw);
                continue;
            }
            let nonempty: Vec<String> = raw
                .iter()
                .filter(|v| !v.trim().is_empty() || f.kind == FieldType::TextMulti)
                .cloned()
                .collect();
            if nonempty.iter().all(|v| v.trim().is_empty()) {
                if f.required {
                    problems.push(format!("{} is required", f.name()));
                }
                values.0.insert(var.clone(), Vec::new());
                continue;
            }
            if nonempty.len() > 1 && !f.kind.is_multi() {
                problems.push(format!(
                    "{} takes one value, {} were given",
                    f.name(),
                    nonempty.len()
                ));
                continue;
            }
            let mut checked = Vec::with_capacity(nonempty.len());
            for v in &nonempty {
                match f.kind {
                    FieldType::Boolean => match v.trim() {
                        "1" | "true" => checked.push("true".to_owned()),
                        "0" | "false" => checked.push("false".to_owned()),
                        other => problems.push(format!(
                            "{} must be true or false (1 or 0), not '{other}'",
                            f.name()
                        )),
                    },
                    FieldType::JidSingle | FieldType::JidMulti => {
                        let t = v.trim();
                        if t.is_empty() {
                            continue;
                        }
                        match Jid::new(t) {
                            Ok(j) => checked.push(j.to_string()),
                            Err(e) => problems
                                .push(format!("{}: '{t}' is not a valid JID ({e})", f.name())),
                        }
                    }
                    FieldType::ListSingle | FieldType::ListMulti => {
                        if f.options.is_empty() || f.options.iter().any(|(_, o)| o == v) {
                            checked.push(v.clone());
                        } else {
                            let allowed: Vec<&str> =
                                f.options.iter().map(|(_, o)| o.as_str()).collect();
                            problems.push(format!(
                                "{}: '{v}' is not one of the options ({})",
                                f.name(),
                                allowed.join(", ")
                            ));
                        }
                    }
                    _ => checked.push(v.clone()),
                }
            }
            values.0.insert(var.clone(), checked);
        }
        if problems.is_empty() {
            Ok(values)
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Checked values of a submission, by field `var`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Values(pub BTreeMap<String, Vec<String>>);

impl Values {
    /// The single value of a field; `None` when empty.
    pub fn str(&self, var: &str) -> Option<&str> {
        self.0
            .get(var)
            .and_then(|v| v.first())
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
    /// All values of a field.
    pub fn list(&self, var: &str) -> &[String] {
        self.0.get(var).map(Vec::as_slice).unwrap_or(&[])
    }
    /// A text-multi field as one text, lines joined with `\n`.
    pub fn text(&self, var: &str) -> String {
        self.list(var).join("\n")
    }
    /// A boolean field (false when absent).
    pub fn bool(&self, var: &str) -> bool {
        self.str(var) == Some("true")
    }
    /// A jid-single field, already checked.
    pub fn jid(&self, var: &str) -> Option<Jid> {
        self.str(var).and_then(|s| Jid::new(s).ok())
    }
    /// A jid-multi field, already checked.
    pub fn jids(&self, var: &str) -> Vec<Jid> {
        self.list(var)
            .iter()
            .filter_map(|s| Jid::new(s).ok())
            .collect()
    }
}
