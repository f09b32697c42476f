use crate::*;
use minidom::Element;

fn parse(xml: &str) -> Element {
    xml.parse().unwrap()
}

fn add_user_form() -> DataForm {
    DataForm::form("Adding a user")
        .with_form_type("http://jabber.org/protocol/admin")
        .with_field(Field::jid_single("accountjid", "The Jabber ID for the account").required())
        .with_field(Field::text_private("password", "The password"))
        .with_field(Field::boolean("notify", "Notify"))
        .with_field(Field::list_single(
            "max_items",
            "Maximum",
            &[("25", "25"), ("", "50")],
        ))
        .with_field(Field::jid_multi("others", "Others"))
        .with_field(Field::text_multi("motd", "Message"))
        .with_field(Field::fixed("Fill in the form"))
}

#[test]
fn a_form_survives_a_round_trip_through_xml() {
    let f = add_user_form().with_instructions("Please fill in");
    let back = DataForm::from_element(&f.to_element()).unwrap();
    assert_eq!(back, f);
}

#[test]
fn a_result_table_survives_a_round_trip() {
    let f = DataForm::result("Sessions")
        .with_reported(vec![
            Field::jid_single("jid", "JID"),
            Field::text_single("ip", "IP"),
        ])
        .with_item(&[("jid", "a@b/c"), ("ip", "127.0.0.1")])
        .with_item(&[("jid", "d@b/e"), ("ip", "::1")]);
    let x = f.to_element();
    assert_eq!(x.children().filter(|c| c.name() == "item").count(), 2);
    let back = DataForm::from_element(&x).unwrap();
    assert_eq!(back.items.len(), 2);
    assert_eq!(back.items[1][1].value(), Some("::1"));
    assert_eq!(back.reported.as_ref().unwrap().len(), 2);
}

#[test]
fn a_good_submission_gives_typed_values() {
    let sub = DataForm::submit()
        .set("FORM_TYPE", &["http://jabber.org/protocol/admin"])
        .set("accountjid", &["carol@localhost"])
        .set("password", &["secret"])
        .set("notify", &["1"])
        .set("max_items", &["50"])
        .set("others", &["a@localhost", "b@localhost"])
        .set("motd", &["line one", "line two"])
        .set("unknown", &["ignored"]);
    let v = add_user_form().check(&sub).unwrap();
    assert_eq!(v.jid("accountjid").unwrap().to_string(), "carol@localhost");
    assert_eq!(v.str("password"), Some("secret"));
    assert!(v.bool("notify"));
    assert_eq!(v.str("max_items"), Some("50"));
    assert_eq!(v.jids("others").len(), 2);
    assert_eq!(v.text("motd"), "line one\nline two");
    assert!(!v.0.contains_key("unknown"));
}

#[test]
fn a_missing_required_field_is_named() {
    let sub = DataForm::submit().set("password", &["x"]);
    let e = add_user_form().check(&sub).unwrap_err();
    assert!(e.contains("accountjid") && e.contains("required"), "{e}");
}

#[test]
fn bad_values_are_each_explained() {
    let sub = DataForm::submit()
        .set("accountjid", &["not a@@jid"])
        .set("notify", &["maybe"])
        .set("max_items", &["1000"])
        .set("password", &["a", "b"]);
    let e = add_user_form().check(&sub).unwrap_err();
    assert!(e.contains("not a valid JID"), "{e}");
    assert!(e.contains("true or false"), "{e}");
    assert!(e.contains("not one of the options (25, 50)"), "{e}");
    assert!(e.contains("takes one value"), "{e}");
}

#[test]
fn a_wrong_form_type_is_refused() {
    let sub = DataForm::submit()
        .set("FORM_TYPE", &["urn:other"])
        .set("accountjid", &["a@localhost"]);
    assert!(
        add_user_form()
            .check(&sub)
            .unwrap_err()
            .contains("FORM_TYPE")
    );
    let wrong = DataForm::new(FormType::Result).set("accountjid", &["a@localhost"]);
    assert!(
        add_user_form()
            .check(&wrong)
            .unwrap_err()
            .contains("submit")
    );
}

#[test]
fn omitted_optional_fields_keep_the_offered_value() {
    let layout = DataForm::form("t").with_field(Field::text_single("a", "A").with_value("dflt"));
    let v = layout.check(&DataForm::submit()).unwrap();
    assert_eq!(v.str("a"), Some("dflt"));
}

#[test]
fn parsing_refuses_broken_forms_with_reasons() {
    let no_var =
        parse("<x xmlns='jabber:x:data' type='submit'><field><value>1</value></field></x>");
    assert!(
        DataForm::from_element(&no_var)
            .unwrap_err()
            .0
            .contains("no 'var'")
    );
    let bad_type = parse("<x xmlns='jabber:x:data' type='weird'/>");
    assert!(
        DataForm::from_element(&bad_type)
            .unwrap_err()
            .0
            .contains("weird")
    );
    let two = parse(
        "<x xmlns='jabber:x:data' type='submit'><field var='a' type='text-single'><value>1</value><value>2</value></field></x>",
    );
    assert!(
        DataForm::from_element(&two)
            .unwrap_err()
            .0
            .contains("only one")
    );
    let unknown_type =
        parse("<x xmlns='jabber:x:data' type='form'><field var='a' type='x-custom'/></x>");
    assert_eq!(
        DataForm::from_element(&unknown_type).unwrap().fields[0].kind,
        FieldType::TextSingle
    );
}

#[test]
fn a_command_reply_round_trips() {
    let c = Command {
        node: "http://jabber.org/protocol/admin#add-user".into(),
        sessionid: Some("abc".into()),
        action: None,
        status: Some(Status::Executing),
        lang: Some("en".into()),
        actions: Some(Actions::new(
            &[Action::Prev, Action::Complete],
            Action::Complete,
        )),
        notes: vec![Note::warn("careful")],
        form: Some(add_user_form()),
        other: vec![],
    };
    let back = Command::from_element(&c.to_element()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn command_parsing_tells_a_malformed_action_apart() {
    let e = parse("<command xmlns='http://jabber.org/protocol/commands' node='n' action='jump'/>");
    assert_eq!(
        Command::from_element(&e),
        Err(CommandParseError::MalformedAction("jump".into()))
    );
    let e = parse("<command xmlns='http://jabber.org/protocol/commands'/>");
    assert!(matches!(
        Command::from_element(&e),
        Err(CommandParseError::Invalid(_))
    ));
    let e = parse(
        "<command xmlns='http://jabber.org/protocol/commands' node='n'><note type='warning'>w</note></command>",
    );
    assert_eq!(
        Command::from_element(&e).unwrap().notes[0].kind,
        NoteType::Warn
    );
}

#[test]
fn actions_say_what_execute_means() {
    let a = Actions {
        allowed: vec![Action::Next],
        default: None,
    };
    assert_eq!(a.execute_means(), Action::Next);
    assert!(a.allows(Action::Execute) && a.allows(Action::Cancel));
    assert!(!a.allows(Action::Prev) && !a.allows(Action::Complete));
    let b = Actions {
        allowed: vec![Action::Complete],
        default: None,
    };
    assert!(
        !b.allows(Action::Execute),
        "execute means next, which is not offered"
    );
}
