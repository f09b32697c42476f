use super::*;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' xml:lang='en'>";

fn parse_all(data: &[u8], chunk: usize) -> Result<Vec<StreamEvent>, FramingError> {
    let mut p = StreamParser::new(Limits::default());
    let mut out = Vec::new();
    for c in data.chunks(chunk.max(1)) {
        p.feed(c, &mut out)?;
    }
    Ok(out)
}

fn describe(events: &[StreamEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            StreamEvent::Header(h) => format!("header {h:?}"),
            StreamEvent::Stanza(s) => String::from_utf8(serialize(s, "jabber:client")).unwrap(),
            StreamEvent::End => "end".into(),
        })
        .collect()
}

#[test]
fn a_stream_yields_header_stanzas_and_end() {
    let doc = format!(
        "{HEADER}  <message to='bob@localhost'><body>hi</body></message>\n <presence/></stream:stream>"
    );
    let ev = parse_all(doc.as_bytes(), 4096).unwrap();
    assert_eq!(ev.len(), 4);
    let StreamEvent::Header(h) = &ev[0] else {
        panic!()
    };
    assert_eq!(h.ns, NS_STREAMS);
    assert_eq!(h.name, "stream");
    assert_eq!(h.default_ns.as_deref(), Some("jabber:client"));
    assert_eq!(h.to.as_deref(), Some("localhost"));
    assert_eq!(h.version.as_deref(), Some("1.0"));
    assert_eq!(h.lang.as_deref(), Some("en"));
    let StreamEvent::Stanza(m) = &ev[1] else {
        panic!()
    };
    assert!(m.is("message", "jabber:client"));
    assert_eq!(m.get_child("body", "jabber:client").unwrap().text(), "hi");
    assert!(matches!(ev[3], StreamEvent::End));
}

#[test]
fn every_split_point_gives_the_same_events() {
    let doc = format!(
        "{HEADER}<message to='bob@localhost' type='chat'><body>Привет ☃ 😀 &amp; &lt;x&gt;</body><x xmlns='urn:example'>t</x></message> <iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq></stream:stream>"
    );
    let whole = describe(&parse_all(doc.as_bytes(), doc.len()).unwrap());
    assert_eq!(describe(&parse_all(doc.as_bytes(), 1).unwrap()), whole);
    let bytes = doc.as_bytes();
    for split in 1..bytes.len() {
        let mut p = StreamParser::new(Limits::default());
        let mut out = Vec::new();
        p.feed(&bytes[..split], &mut out).unwrap();
        p.feed(&bytes[split..], &mut out).unwrap();
        assert_eq!(describe(&out), whole, "split at {split}");
    }
}

#[test]
fn whitespace_keepalives_are_ignored_and_text_between_stanzas_is_not() {
    let doc = format!("{HEADER} \n\t <presence/> ");
    assert_eq!(parse_all(doc.as_bytes(), 3).unwrap().len(), 2);
    let doc = format!("{HEADER}hello");
    assert!(matches!(
        parse_all(doc.as_bytes(), 100),
        Err(FramingError::NotWellFormed(_))
    ));
}

#[test]
fn an_oversize_stanza_is_refused_before_it_completes() {
    let limits = Limits {
        max_stanza_bytes: 16 * 1024,
        ..Limits::default()
    };
    let mut p = StreamParser::new(limits);
    let mut out = Vec::new();
    p.feed(HEADER.as_bytes(), &mut out).unwrap();
    p.feed(b"<message><body>", &mut out).unwrap();
    let chunk = vec![b'a'; 1024];
    let mut refused = false;
    for _ in 0..64 {
        if let Err(e) = p.feed(&chunk, &mut out) {
            assert!(matches!(e, FramingError::PolicyViolation(_)));
            refused = true;
            break;
        }
    }
    assert!(refused, "a never-ending stanza is cut off");
    assert!(p.feed(b"x", &mut out).is_err(), "the parser stays failed");
}

#[test]
fn a_large_stanza_under_the_limit_is_fine() {
    let body = "x".repeat(200_000);
    let doc = format!("{HEADER}<message><body>{body}</body></message>");
    let ev = parse_all(doc.as_bytes(), 4096).unwrap();
    let StreamEvent::Stanza(m) = &ev[1] else {
        panic!()
    };
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text().len(),
        200_000
    );
}

#[test]
fn deep_nesting_and_many_attributes_are_refused() {
    let doc = format!("{HEADER}<message>{}", "<a>".repeat(40));
    assert!(matches!(
        parse_all(doc.as_bytes(), 7),
        Err(FramingError::PolicyViolation(_))
    ));
    let attrs: String = (0..100).map(|i| format!(" a{i}='v'")).collect();
    let doc = format!("{HEADER}<message{attrs}/>");
    assert!(matches!(
        parse_all(doc.as_bytes(), 50),
        Err(FramingError::PolicyViolation(_))
    ));
}

#[test]
fn dangerous_and_broken_xml_is_not_well_formed() {
    for bad in [
        "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>".to_owned(),
        format!("{HEADER}<message><body>&foo;</body></message>"),
        format!("{HEADER}<?pi data?>"),
        format!("{HEADER}<a:b/>"),
        format!("{HEADER}<message a='1' a='2'/>"),
        format!("{HEADER}<message></presence>"),
    ] {
        assert!(
            matches!(parse_all(bad.as_bytes(), 5), Err(FramingError::NotWellFormed(_))),
            "{bad}"
        );
    }
    let mut bytes = HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(b"<message><body>\xff\xfe</body></message>");
    assert!(matches!(
        parse_all(&bytes, 5),
        Err(FramingError::NotWellFormed(_))
    ));
}

#[test]
fn eof_inside_a_stanza_is_an_error_but_not_between_stanzas() {
    let mut p = StreamParser::new(Limits::default());
    let mut out = Vec::new();
    p.feed(format!("{HEADER}<presence/>").as_bytes(), &mut out)
        .unwrap();
    assert!(p.eof().is_ok());
    p.feed(b"<message>", &mut out).unwrap();
    assert!(p.eof().is_err());
}

#[test]
fn reset_starts_a_new_stream() {
    let mut p = StreamParser::new(Limits::default());
    let mut out = Vec::new();
    p.feed(HEADER.as_bytes(), &mut out).unwrap();
    p.reset();
    p.feed(format!("{HEADER}<presence/>").as_bytes(), &mut out)
        .unwrap();
    assert_eq!(out.len(), 3);
}

#[test]
fn serialisation_escapes_and_round_trips() {
    let doc = format!(
        "{HEADER}<message to='a&amp;b@x' id='&quot;&apos;'><body>1 &lt; 2 &amp;&amp; 3 &gt; 2</body><query xmlns='jabber:iq:roster'><item jid='x@y'/></query></message>"
    );
    let ev = parse_all(doc.as_bytes(), 64).unwrap();
    let StreamEvent::Stanza(m) = &ev[1] else {
        panic!()
    };
    let out = String::from_utf8(serialize(m, "jabber:client")).unwrap();
    assert_eq!(
        out,
        "<message id='&quot;&apos;' to='a&amp;b@x'><body>1 &lt; 2 &amp;&amp; 3 &gt; 2</body><query xmlns='jabber:iq:roster'><item jid='x@y'/></query></message>"
    );
    let again = parse_all(format!("{HEADER}{out}").as_bytes(), 10).unwrap();
    let StreamEvent::Stanza(m2) = &again[1] else {
        panic!()
    };
    assert_eq!(m, m2);
    // Stored on its own, the namespace is written out.
    assert!(
        String::from_utf8(serialize(m, ""))
            .unwrap()
            .starts_with("<message xmlns='jabber:client'")
    );
}

#[test]
fn the_header_we_send_is_escaped() {
    let h = stream_header("jabber:client", &[("id", "a'b"), ("from", "localhost")]);
    assert_eq!(
        h,
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='a&apos;b' from='localhost'>"
    );
}
