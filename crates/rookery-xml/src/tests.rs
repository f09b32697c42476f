//! Conversations a server has with its peers, byte by byte.

use super::*;
use minidom::rxml::Namespace;

/// What a client sends first.
const CLIENT_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0' \
     xml:lang='en'>";

fn parser() -> StreamParser {
    StreamParser::new(Limits::default())
}

/// Feed `data` in pieces of `chunk` bytes to a fresh parser.
fn parse_in_chunks(
    limits: Limits,
    data: &[u8],
    chunk: usize,
) -> Result<Vec<StreamEvent>, FramingError> {
    let mut p = StreamParser::new(limits);
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        p.feed(piece, &mut out)?;
    }
    Ok(out)
}

fn parse(data: &[u8]) -> Result<Vec<StreamEvent>, FramingError> {
    parse_in_chunks(Limits::default(), data, data.len())
}

/// The stanzas of a client stream carrying `stanzas` after the header.
fn stanzas_of(stanzas: &str) -> Vec<Element> {
    parse(format!("{CLIENT_HEADER}{stanzas}").as_bytes())
        .unwrap()
        .into_iter()
        .filter_map(|ev| match ev {
            StreamEvent::Stanza(el) => Some(el),
            _ => None,
        })
        .collect()
}

fn stanza(text: &str) -> Element {
    let mut all = stanzas_of(text);
    assert_eq!(all.len(), 1, "{text}");
    all.remove(0)
}

fn not_well_formed(result: Result<Vec<StreamEvent>, FramingError>) -> String {
    match result {
        Err(FramingError::NotWellFormed(msg)) => msg,
        other => panic!("expected not-well-formed, got {other:?}"),
    }
}

fn policy_violation(result: Result<Vec<StreamEvent>, FramingError>) -> String {
    match result {
        Err(FramingError::PolicyViolation(msg)) => msg,
        other => panic!("expected policy-violation, got {other:?}"),
    }
}

fn text(el: &Element) -> String {
    String::from_utf8(serialize(el, "jabber:client")).unwrap()
}

#[test]
fn a_client_opens_a_stream_sends_stanzas_and_closes_it() {
    let mut p = parser();
    let mut events = Vec::new();

    p.feed(CLIENT_HEADER.as_bytes(), &mut events).unwrap();
    let [StreamEvent::Header(header)] = &events[..] else {
        panic!("the header is reported as soon as its start tag is complete: {events:?}");
    };
    assert_eq!(
        *header,
        StreamHeader {
            ns: NS_STREAMS.into(),
            name: "stream".into(),
            default_ns: Some("jabber:client".into()),
            to: Some("example.org".into()),
            from: None,
            id: None,
            version: Some("1.0".into()),
            lang: Some("en".into()),
        }
    );

    events.clear();
    p.feed(
        b"<message to='juliet@example.org' type='chat' xml:lang='fr' id='m1'>\
          <body>Bonjour</body><active xmlns='http://jabber.org/protocol/chatstates'/>\
          </message><presence/>",
        &mut events,
    )
    .unwrap();
    let [StreamEvent::Stanza(message), StreamEvent::Stanza(presence)] = &events[..] else {
        panic!("two stanzas: {events:?}");
    };
    assert!(message.is("message", "jabber:client"));
    assert_eq!(message.attr("to"), Some("juliet@example.org"));
    assert_eq!(message.attr("type"), Some("chat"));
    assert_eq!(xml_lang(message), Some("fr"));
    assert_eq!(
        message.get_child("body", "jabber:client").unwrap().text(),
        "Bonjour"
    );
    assert!(message.has_child("active", "http://jabber.org/protocol/chatstates"));
    assert!(presence.is("presence", "jabber:client"));

    events.clear();
    p.feed(b"</stream:stream>", &mut events).unwrap();
    assert_eq!(events, [StreamEvent::End]);
    assert_eq!(p.eof(), Ok(()));
}

#[test]
fn a_server_stream_and_its_stream_level_elements_keep_their_namespaces() {
    let events = parse(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          from='a.example' id='s2s-1'>\
          <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>\
          </stream:features>\
          <db:result xmlns:db='jabber:server:dialback' from='a.example' to='b.example'>key</db:result>\
          <stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    )
    .unwrap();
    let StreamEvent::Header(header) = &events[0] else {
        panic!()
    };
    assert_eq!(header.default_ns.as_deref(), Some("jabber:server"));
    assert_eq!(header.from.as_deref(), Some("a.example"));
    assert_eq!(header.id.as_deref(), Some("s2s-1"));
    assert_eq!(header.lang, None);

    let StreamEvent::Stanza(features) = &events[1] else {
        panic!()
    };
    assert!(features.is("features", NS_STREAMS));
    let starttls = features
        .get_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
        .unwrap();
    assert!(starttls.has_child("required", "urn:ietf:params:xml:ns:xmpp-tls"));

    let StreamEvent::Stanza(result) = &events[2] else {
        panic!()
    };
    assert!(result.is("result", "jabber:server:dialback"));
    assert_eq!(result.text(), "key");

    let StreamEvent::Stanza(error) = &events[3] else {
        panic!()
    };
    assert!(error.is("error", NS_STREAMS));
}

#[test]
fn whitespace_keepalives_between_stanzas_are_ignored() {
    let mut p = parser();
    let mut events = Vec::new();
    p.feed(CLIENT_HEADER.as_bytes(), &mut events).unwrap();
    for keepalive in [" ", "\n", "\r\n", "\t \t", "\r", "\n", "<presence/>", "\r"] {
        p.feed(keepalive.as_bytes(), &mut events).unwrap();
    }
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        p.eof(),
        Ok(()),
        "the connection may close after a keepalive"
    );

    // Even a lone carriage return, which rxml holds back in case a line feed follows.
    for keepalive in [" ", "\r", "\r\n", " \t\r"] {
        let mut p = parser();
        p.feed(
            format!("{CLIENT_HEADER}<presence/>{keepalive}").as_bytes(),
            &mut events,
        )
        .unwrap();
        assert_eq!(p.eof(), Ok(()), "{keepalive:?}");
    }
}

#[test]
fn text_between_stanzas_is_not_well_formed() {
    let msg = not_well_formed(parse(
        format!("{CLIENT_HEADER}<presence/> hello").as_bytes(),
    ));
    assert!(msg.contains("text between stanzas"), "{msg}");
    let msg = not_well_formed(parse(format!("{CLIENT_HEADER}&amp;").as_bytes()));
    assert!(msg.contains("text between stanzas"), "{msg}");
}

#[test]
fn every_split_point_gives_the_same_events() {
    let doc = format!(
        "{CLIENT_HEADER}<message to='bob@example.org' type='chat' xml:lang='ru'>\
         <body>Привет ☃ 😀 &amp; &lt;x&gt; &#x1F600;</body>\
         <x xmlns='urn:example' a='&apos;q&quot;'>t<![CDATA[<raw>]]></x></message> \n\
         <iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq></stream:stream>"
    );
    let bytes = doc.as_bytes();
    let whole = parse(bytes).unwrap();
    assert_eq!(whole.len(), 4);

    for split in 1..bytes.len() {
        let mut p = parser();
        let mut events = Vec::new();
        p.feed(&bytes[..split], &mut events).unwrap();
        p.feed(&bytes[split..], &mut events).unwrap();
        assert_eq!(events, whole, "split at byte {split}");
    }
    for chunk in [1, 2, 3, 5, 7, 64] {
        let events = parse_in_chunks(Limits::default(), bytes, chunk).unwrap();
        assert_eq!(events, whole, "chunks of {chunk} bytes");
    }
}

#[test]
fn multi_byte_characters_survive_arriving_one_byte_at_a_time() {
    let doc =
        format!("{CLIENT_HEADER}<message to='ж@example.org'><body>Привет ☃ 😀</body></message>");
    let whole = parse(doc.as_bytes()).unwrap();
    assert_eq!(
        parse_in_chunks(Limits::default(), doc.as_bytes(), 1).unwrap(),
        whole
    );

    let StreamEvent::Stanza(message) = &whole[1] else {
        panic!()
    };
    let body = message.get_child("body", "jabber:client").unwrap();
    assert_eq!(body.text(), "Привет ☃ 😀");
    assert_eq!(body.nodes().count(), 1, "pieces of text are joined");
    assert_eq!(message.attr("to"), Some("ж@example.org"));
}

#[test]
fn a_large_body_arriving_in_pieces_is_one_text_node() {
    // 250 000 bytes, three-byte characters included: under the default 256 KiB limit.
    let body = "ab€".repeat(50_000);
    let doc = format!("{CLIENT_HEADER}<message><body>{body}</body></message>");
    for chunk in [1000, 4096, doc.len()] {
        let events = parse_in_chunks(Limits::default(), doc.as_bytes(), chunk).unwrap();
        let StreamEvent::Stanza(message) = &events[1] else {
            panic!()
        };
        let el = message.get_child("body", "jabber:client").unwrap();
        assert_eq!(el.nodes().count(), 1);
        assert_eq!(el.text(), body);
    }
}

#[test]
fn an_endless_stanza_is_cut_off_before_it_completes() {
    let limits = Limits {
        max_stanza_bytes: 16 * 1024,
        ..Limits::default()
    };
    let mut p = StreamParser::new(limits);
    let mut events = Vec::new();
    p.feed(CLIENT_HEADER.as_bytes(), &mut events).unwrap();
    p.feed(b"<message><body>", &mut events).unwrap();

    let kilobyte = [b'a'; 1024];
    let mut sent = 15;
    let error = loop {
        match p.feed(&kilobyte, &mut events) {
            Ok(()) => sent += kilobyte.len(),
            Err(e) => break e,
        }
        assert!(sent < 64 * 1024, "never cut off");
    };
    assert!(
        matches!(error, FramingError::PolicyViolation(_)),
        "{error:?}"
    );
    assert!(
        sent <= limits.max_stanza_bytes,
        "cut off after {sent} bytes"
    );
    assert_eq!(events.len(), 1, "only the header");

    // Poisoned: the same error again, whatever comes next.
    assert_eq!(
        p.feed(b"</body></message>", &mut events),
        Err(error.clone())
    );
    assert_eq!(p.eof(), Err(error));
}

#[test]
fn an_endless_start_tag_is_cut_off_too() {
    let limits = Limits {
        max_stanza_bytes: 4096,
        ..Limits::default()
    };
    // One huge attribute value, and many long attributes.
    let huge_value = format!("{CLIENT_HEADER}<message to='{}", "x".repeat(100_000));
    let msg = policy_violation(parse_in_chunks(limits, huge_value.as_bytes(), 1024));
    assert!(msg.contains("4096"), "{msg}");
    let long_attrs: String = (0..60)
        .map(|i| format!(" a{i}='{}'", "y".repeat(200)))
        .collect();
    let doc = format!("{CLIENT_HEADER}<message{long_attrs}");
    policy_violation(parse_in_chunks(limits, doc.as_bytes(), 1024));

    // Under the default limits a single value is held to MAX_TOKEN_BYTES.
    let doc = format!(
        "{CLIENT_HEADER}<message to='{}'/>",
        "x".repeat(MAX_TOKEN_BYTES + 1)
    );
    policy_violation(parse_in_chunks(Limits::default(), doc.as_bytes(), 1024));
}

#[test]
fn a_stanza_of_exactly_the_limit_is_accepted() {
    let frame = "<message><body></body></message>";
    let limits = Limits {
        max_stanza_bytes: 1000,
        ..Limits::default()
    };
    let fits = format!(
        "{CLIENT_HEADER}<message><body>{}</body></message>",
        "z".repeat(1000 - frame.len())
    );
    assert_eq!(
        parse_in_chunks(limits, fits.as_bytes(), 10).unwrap().len(),
        2
    );
    let too_big = format!(
        "{CLIENT_HEADER}<message><body>{}</body></message>",
        "z".repeat(1001 - frame.len())
    );
    policy_violation(parse_in_chunks(limits, too_big.as_bytes(), 10));
    // Whitespace between stanzas does not count towards the next one.
    let spaced = format!(
        "{CLIENT_HEADER}{}{}",
        " ".repeat(5000),
        &fits[CLIENT_HEADER.len()..]
    );
    assert_eq!(
        parse_in_chunks(limits, spaced.as_bytes(), 10)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn an_overlong_stream_header_is_refused() {
    let doc = format!(
        "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='{}",
        "x".repeat(MAX_TOKEN_BYTES - 10)
    );
    let doc = format!("{doc}' from='{}'>", "y".repeat(MAX_TOKEN_BYTES - 10));
    let msg = policy_violation(parse_in_chunks(Limits::default(), doc.as_bytes(), 512));
    assert!(msg.contains("header"), "{msg}");
}

#[test]
fn nesting_deeper_than_the_limit_is_refused() {
    let limits = Limits::default();
    let nest = |depth: usize| {
        format!(
            "{CLIENT_HEADER}<message>{}{}</message>",
            "<a>".repeat(depth - 1),
            "</a>".repeat(depth - 1)
        )
    };
    assert_eq!(
        parse_in_chunks(limits, nest(32).as_bytes(), 7)
            .unwrap()
            .len(),
        2
    );
    let msg = policy_violation(parse_in_chunks(limits, nest(33).as_bytes(), 7));
    assert!(msg.contains("32"), "{msg}");
    // Refused while still opening, without waiting for the end tags.
    let open_only = format!("{CLIENT_HEADER}<message>{}", "<a>".repeat(1000));
    policy_violation(parse_in_chunks(limits, open_only.as_bytes(), 100));
}

#[test]
fn too_many_attributes_are_refused() {
    let attrs = |n: usize| (0..n).map(|i| format!(" a{i}='v'")).collect::<String>();
    let fits = format!("{CLIENT_HEADER}<message{}/>", attrs(64));
    assert_eq!(
        stanzas_of(&fits[CLIENT_HEADER.len()..])[0].attrs().len(),
        64
    );
    let msg = policy_violation(parse(
        format!("{CLIENT_HEADER}<message{}/>", attrs(65)).as_bytes(),
    ));
    assert!(msg.contains("64 attributes"), "{msg}");
    // Namespace declarations count too.
    let decls: String = (0..65).map(|i| format!(" xmlns:p{i}='urn:p{i}'")).collect();
    policy_violation(parse(
        format!("{CLIENT_HEADER}<message{decls}/>").as_bytes(),
    ));
}

#[test]
fn a_doctype_is_refused() {
    let msg = not_well_formed(parse(
        b"<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY lol 'lol'>]>\
          <stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
    ));
    assert!(msg.contains("DOCTYPE"), "{msg}");
    let msg = not_well_formed(parse(
        format!("{CLIENT_HEADER}<!DOCTYPE x><presence/>").as_bytes(),
    ));
    assert!(msg.contains("DOCTYPE"), "{msg}");
}

#[test]
fn an_undeclared_entity_is_refused() {
    let msg = not_well_formed(parse(
        format!("{CLIENT_HEADER}<message><body>&foo;</body></message>").as_bytes(),
    ));
    assert!(msg.contains("entity"), "{msg}");
    let msg = not_well_formed(parse(
        format!("{CLIENT_HEADER}<message to='&lol;'/>").as_bytes(),
    ));
    assert!(msg.contains("entity"), "{msg}");
}

#[test]
fn a_processing_instruction_is_refused() {
    let msg = not_well_formed(parse(
        format!("{CLIENT_HEADER}<?xml-stylesheet href='x'?><presence/>").as_bytes(),
    ));
    assert!(msg.contains("processing instruction"), "{msg}");
    let msg = not_well_formed(parse(
        format!("{CLIENT_HEADER}<message><?pi?></message>").as_bytes(),
    ));
    assert!(msg.contains("processing instruction"), "{msg}");
}

#[test]
fn comments_are_refused() {
    let msg = not_well_formed(parse(
        format!("{CLIENT_HEADER}<!-- hi --><presence/>").as_bytes(),
    ));
    assert!(msg.contains("comments"), "{msg}");
}

#[test]
fn an_unbound_prefix_is_refused() {
    let msg = not_well_formed(parse(format!("{CLIENT_HEADER}<a:b/>").as_bytes()));
    assert!(msg.contains("'a'"), "{msg}");
    let msg = not_well_formed(parse(
        format!("{CLIENT_HEADER}<message foo:bar='1'/>").as_bytes(),
    ));
    assert!(msg.contains("'foo'"), "{msg}");
    // A prefix declared on a sibling is not in scope.
    let msg = not_well_formed(parse(
        format!("{CLIENT_HEADER}<iq><x xmlns:p='urn:p'/><p:y/></iq>").as_bytes(),
    ));
    assert!(msg.contains("'p'"), "{msg}");
    // The stream header itself can be wrong.
    not_well_formed(parse(b"<stream:stream xmlns='jabber:client'>"));
}

#[test]
fn prefixes_resolve_where_declared_and_may_be_declared_after_use() {
    let iq = stanza(
        "<iq type='set' xmlns:r='jabber:iq:roster'><r:query r:ver='1' xml:lang='de'>\
         <r:item jid='a@b' xmlns:r='urn:shadow'/></r:query></iq>",
    );
    let query = iq.get_child("query", "jabber:iq:roster").unwrap();
    assert_eq!(
        query.attr_ns(&Namespace::from("jabber:iq:roster"), "ver"),
        Some("1")
    );
    assert_eq!(xml_lang(query), Some("de"));
    assert!(query.has_child("item", "urn:shadow"));

    let late = stanza("<p:presence xmlns:p='jabber:client' p:x='1' xmlns:q='urn:q' q:y='2'/>");
    assert!(late.is("presence", "jabber:client"));
    assert_eq!(late.attr_ns(&Namespace::from("urn:q"), "y"), Some("2"));

    // Undeclaring the default namespace.
    let iq = stanza("<iq><x xmlns=''><y/></x></iq>");
    let x = iq.get_child("x", "").unwrap();
    assert!(x.has_child("y", ""));
}

#[test]
fn duplicate_attributes_are_refused() {
    for stanza in [
        "<message to='a' to='b'/>",
        "<message xmlns:p='urn:x' xmlns:q='urn:x' p:a='1' q:a='2'/>",
        "<message xmlns:p='urn:x' xmlns:p='urn:y'/>",
        "<message xmlns='jabber:client' xmlns='jabber:client'/>",
        "<message xml:lang='en' xml:lang='de'/>",
    ] {
        let msg = not_well_formed(parse(format!("{CLIENT_HEADER}{stanza}").as_bytes()));
        assert!(msg.contains("twice"), "{stanza}: {msg}");
    }
}

#[test]
fn invalid_utf8_is_refused() {
    let mut bytes = CLIENT_HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(b"<message><body>\xff\xfe</body></message>");
    let msg = not_well_formed(parse_in_chunks(Limits::default(), &bytes, 5));
    assert!(msg.contains("UTF-8"), "{msg}");
    let mut bytes = CLIENT_HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(b"<message to='\xc3\x28'/>");
    not_well_formed(parse_in_chunks(Limits::default(), &bytes, 1));
}

#[test]
fn other_broken_xml_is_refused() {
    for bad in [
        "<message></presence>",
        "<message><body></message>",
        "<message/></stream:stream><presence/>",
        "<message to=unquoted/>",
        "<message>\u{1}</message>",
        "<xmlns:foo/>",
    ] {
        not_well_formed(parse(format!("{CLIENT_HEADER}{bad}").as_bytes()));
    }
}

#[test]
fn eof_is_fine_between_stanzas_but_not_inside_one() {
    let mut p = parser();
    let mut events = Vec::new();
    assert_eq!(p.eof(), Ok(()), "nothing sent at all");
    p.feed(
        format!("{CLIENT_HEADER}<presence/> ").as_bytes(),
        &mut events,
    )
    .unwrap();
    assert_eq!(p.eof(), Ok(()));

    for partial in ["<message>", "<mess", "<message to='a", "<message><body>hi"] {
        let mut p = parser();
        p.feed(format!("{CLIENT_HEADER}{partial}").as_bytes(), &mut events)
            .unwrap();
        assert!(
            matches!(p.eof(), Err(FramingError::NotWellFormed(_))),
            "{partial}"
        );
    }

    let mut p = parser();
    p.feed(b"<?xml version='1.0'?><stream:str", &mut events)
        .unwrap();
    assert!(p.eof().is_err(), "the header was cut off");
}

#[test]
fn reset_starts_a_fresh_stream_after_starttls() {
    let mut p = parser();
    let mut events = Vec::new();
    p.feed(
        format!("{CLIENT_HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").as_bytes(),
        &mut events,
    )
    .unwrap();
    assert_eq!(events.len(), 2);

    // TLS is negotiated; the client starts over with a new XML declaration.
    p.reset();
    events.clear();
    p.feed(
        format!("{CLIENT_HEADER}<presence/>").as_bytes(),
        &mut events,
    )
    .unwrap();
    assert!(matches!(
        &events[..],
        [StreamEvent::Header(_), StreamEvent::Stanza(_)]
    ));

    // Reset also forgets an error.
    p.feed(b"<a:b/>", &mut events).unwrap_err();
    p.reset();
    events.clear();
    p.feed(CLIENT_HEADER.as_bytes(), &mut events).unwrap();
    assert_eq!(events.len(), 1);
}

#[test]
fn serialised_stanzas_parse_back_equal() {
    let original = stanza(
        "<message to='a&amp;b@example.org' id='&quot;1&apos;' type='chat' xml:lang='en'>\
         <body>1 &lt; 2 &amp;&amp; 3 &gt; 2, \"quoted\" 'too' ]]&gt; tab\there\nnewline\r\n</body>\
         <html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>\
         <p style='x'>Привет ☃ 😀</p></body></html>\
         <x xmlns='urn:x' xmlns:y='urn:y' y:attr='v' plain=' sp&#9;&#10;&#13;'><empty xmlns=''/></x>\
         </message>",
    );
    let wire = serialize(&original, "jabber:client");
    let again = stanza(std::str::from_utf8(&wire).unwrap());
    assert_eq!(again, original, "{}", String::from_utf8_lossy(&wire));

    // Serialised standalone, the namespace is spelled out, and it still parses back.
    let standalone = String::from_utf8(serialize(&original, "")).unwrap();
    assert!(
        standalone.starts_with("<message xmlns='jabber:client'"),
        "{standalone}"
    );
    assert_eq!(stanza(&standalone), original);
}

#[test]
fn serialisation_escapes_markup_characters() {
    let mut message = Element::builder("message", "jabber:client")
        .attr("to".try_into().unwrap(), "<&>\"'")
        .append(
            Element::builder("body", "jabber:client")
                .append("<&>\"'")
                .build(),
        )
        .build();
    assert_eq!(
        text(&message),
        "<message to='&lt;&amp;&gt;&quot;&apos;'><body>&lt;&amp;&gt;\"'</body></message>"
    );

    // Characters XML cannot carry become U+FFFD; those it can are kept.
    message.append_child(
        Element::builder("x", "urn:x")
            .attr("a".try_into().unwrap(), "t\tn\nr\r\u{0}")
            .append("t\tn\nr\r\u{1b}\u{fffe}\u{ffff}\u{ff21}")
            .build(),
    );
    let wire = text(&message);
    assert!(
        wire.contains("<x xmlns='urn:x' a='t&#9;n&#10;r&#13;\u{fffd}'>t\tn\nr&#13;\u{fffd}\u{fffd}\u{fffd}\u{ff21}</x>"),
        "{wire}"
    );
    let back = stanza(&wire);
    assert_eq!(
        back.get_child("x", "urn:x").unwrap().attr("a"),
        Some("t\tn\nr\r\u{fffd}")
    );
}

#[test]
fn a_namespaced_child_is_written_with_its_xmlns() {
    let iq = stanza(
        "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'><item jid='a@b'/></query></iq>",
    );
    assert_eq!(
        text(&iq),
        "<iq id='r1' type='get'><query xmlns='jabber:iq:roster'><item jid='a@b'/></query></iq>"
    );
    // On a server-to-server stream, the stanza itself needs its namespace declared.
    assert_eq!(
        String::from_utf8(serialize(&iq, "jabber:server")).unwrap(),
        "<iq xmlns='jabber:client' id='r1' type='get'><query xmlns='jabber:iq:roster'><item jid='a@b'/></query></iq>"
    );
    // Back to the outer namespace needs a declaration again.
    let nested = stanza("<message><x xmlns='urn:x'><y xmlns='jabber:client'/></x></message>");
    assert_eq!(
        text(&nested),
        "<message><x xmlns='urn:x'><y xmlns='jabber:client'/></x></message>"
    );
}

#[test]
fn stream_elements_are_written_with_the_stream_prefix() {
    let features = Element::builder("features", NS_STREAMS)
        .append(
            Element::builder("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
                .append(Element::bare("required", "urn:ietf:params:xml:ns:xmpp-tls"))
                .build(),
        )
        .build();
    let wire = text(&features);
    assert_eq!(
        wire,
        "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>"
    );
    assert_eq!(stanza(&wire), features);
}

#[test]
fn an_xmlns_set_by_hand_as_an_attribute_is_not_written_twice() {
    let iq = Element::builder("iq", "jabber:client")
        .attr("xmlns".try_into().unwrap(), "jabber:client")
        .append(
            Element::builder("ping", "urn:xmpp:ping")
                .attr("xmlns".try_into().unwrap(), "urn:xmpp:ping")
                .build(),
        )
        .build();
    assert_eq!(text(&iq), "<iq><ping xmlns='urn:xmpp:ping'/></iq>");
}

#[test]
fn the_stream_header_we_send_is_escaped_and_parses() {
    let header = stream_header(
        "jabber:client",
        &[
            ("id", "a'b<"),
            ("from", "example.org"),
            ("version", "1.0"),
            ("xml:lang", "en"),
        ],
    );
    assert_eq!(
        header,
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' id='a&apos;b&lt;' from='example.org' \
         version='1.0' xml:lang='en'>"
    );
    let events = parse(header.as_bytes()).unwrap();
    assert_eq!(
        events,
        [StreamEvent::Header(StreamHeader {
            ns: NS_STREAMS.into(),
            name: "stream".into(),
            default_ns: Some("jabber:client".into()),
            to: None,
            from: Some("example.org".into()),
            id: Some("a'b<".into()),
            version: Some("1.0".into()),
            lang: Some("en".into()),
        })]
    );
}

#[test]
fn events_completed_before_an_error_are_still_delivered() {
    let mut p = parser();
    let mut events = Vec::new();
    let result = p.feed(
        format!("{CLIENT_HEADER}<presence/><message/>junk").as_bytes(),
        &mut events,
    );
    assert!(matches!(result, Err(FramingError::NotWellFormed(_))));
    assert_eq!(events.len(), 3);
}

#[test]
fn cdata_sections_carry_markup_characters_and_near_misses_of_their_end() {
    let message = stanza(
        "<message><body>x<![CDATA[<b>&amp; ]] ]> ] ]]]]></body>\
         <x xmlns='urn:x'><![CDATA[]]]]><![CDATA[>]]></x><y xmlns='urn:y'><![CDATA[]]></y></message>",
    );
    let body = message.get_child("body", "jabber:client").unwrap();
    assert_eq!(body.text(), "x<b>&amp; ]] ]> ] ]]");
    assert_eq!(
        body.nodes().count(),
        1,
        "text and CDATA join into one text node"
    );
    // The usual way to carry `]]>`: split it over two sections.
    assert_eq!(message.get_child("x", "urn:x").unwrap().text(), "]]>");
    assert_eq!(message.get_child("y", "urn:y").unwrap().nodes().count(), 0);

    // In text, `]]` and `]>` are fine but `]]>` is not.
    assert_eq!(stanza("<message><body>a]]b]>c</body></message>").text(), "");
    let msg = not_well_formed(parse(
        format!("{CLIENT_HEADER}<message><body>a]]>b</body></message>").as_bytes(),
    ));
    assert!(msg.contains("]]>"), "{msg}");
    // A CDATA section is text, so it has no place between stanzas.
    not_well_formed(parse(format!("{CLIENT_HEADER}<![CDATA[ ]]>").as_bytes()));
    not_well_formed(parse(
        format!("{CLIENT_HEADER}<message><![CDAT[x]]></message>").as_bytes(),
    ));
}

#[test]
fn attribute_values_may_hold_markup_characters_other_than_lt() {
    let message = stanza("<message to='a>b' id=\"x>y/>'\" type='/>'><body>ok</body></message>");
    assert_eq!(message.attr("to"), Some("a>b"));
    assert_eq!(message.attr("id"), Some("x>y/>'"));
    assert_eq!(message.attr("type"), Some("/>"));
    assert_eq!(
        message.get_child("body", "jabber:client").unwrap().text(),
        "ok"
    );

    let msg = not_well_formed(parse(
        format!("{CLIENT_HEADER}<message to='a<b'/>").as_bytes(),
    ));
    assert!(msg.contains('<'), "{msg}");
}

#[test]
fn every_split_point_of_a_stream_with_cdata_gives_the_same_events() {
    let doc = format!(
        "{CLIENT_HEADER}<message a='>]]>' b=\"'\"><body>one<![CDATA[ <two/> ]] ]]]]>three\
         <![CDATA[]]><![CDATA[]]]></body></message>\r\n<presence/>\
         <iq type='get' id='q'><![CDATA[&lt;]]>&lt;</iq ></stream:stream>"
    );
    let bytes = doc.as_bytes();
    let whole = parse(bytes).unwrap();
    assert_eq!(whole.len(), 5, "{whole:?}");
    let StreamEvent::Stanza(message) = &whole[1] else {
        panic!()
    };
    assert_eq!(message.attr("a"), Some(">]]>"));
    let body = message.get_child("body", "jabber:client").unwrap();
    assert_eq!(body.text(), "one <two/> ]] ]]three]");
    let StreamEvent::Stanza(iq) = &whole[3] else {
        panic!()
    };
    assert_eq!(iq.text(), "&lt;<");

    for split in 1..bytes.len() {
        let mut p = parser();
        let mut events = Vec::new();
        p.feed(&bytes[..split], &mut events).unwrap();
        p.feed(&bytes[split..], &mut events).unwrap();
        assert_eq!(events, whole, "split at byte {split}");
        assert_eq!(p.eof(), Ok(()), "split at byte {split}");
    }
    for chunk in [1, 2, 3, 4, 9] {
        assert_eq!(
            parse_in_chunks(Limits::default(), bytes, chunk).unwrap(),
            whole,
            "chunks of {chunk} bytes"
        );
    }
}

#[test]
fn line_endings_are_normalised_as_xml_says() {
    let doc = format!(
        "{CLIENT_HEADER}<message a='1\r\n2\r3\n4\t5 &#13;&#10;&#9;' b='end\r'>\
         <body>a\r\nb\rc\n\r\n<![CDATA[d\r\ne\r]]>&#13;f\r</body></message>"
    );
    for chunk in [1, 2, doc.len()] {
        let events = parse_in_chunks(Limits::default(), doc.as_bytes(), chunk).unwrap();
        let StreamEvent::Stanza(message) = &events[1] else {
            panic!()
        };
        // In attribute values a literal line end or tab becomes a space; references stay.
        assert_eq!(message.attr("a"), Some("1 2 3 4 5 \r\n\t"));
        assert_eq!(message.attr("b"), Some("end "));
        // In text, CRLF and a lone CR become LF; `&#13;` stays a CR.
        let body = message.get_child("body", "jabber:client").unwrap();
        assert_eq!(body.text(), "a\nb\nc\n\nd\ne\n\rf\n", "chunks of {chunk}");
    }
}

#[test]
fn an_xml_declaration_is_allowed_only_at_the_very_start() {
    for late in [
        format!("{CLIENT_HEADER}<?xml version='1.0'?>"),
        format!("{CLIENT_HEADER}<presence/><?xml version='1.0'?>"),
        format!(
            "<?xml version='1.0'?><?xml version='1.0'?>{}",
            &CLIENT_HEADER[21..]
        ),
        format!(" {CLIENT_HEADER}"),
    ] {
        not_well_formed(parse(late.as_bytes()));
    }
    // Whitespace may follow the declaration, but nothing may precede it or the header.
    assert!(
        parse(format!("<?xml version='1.0'?>\r\n {}", &CLIENT_HEADER[21..]).as_bytes()).is_ok()
    );
    not_well_formed(parse(format!("\n{}", &CLIENT_HEADER[21..]).as_bytes()));
    // What the declaration may say.
    for decl in [
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
        "<?xml version='1.0' encoding='utf-8' standalone='yes' ?>",
    ] {
        assert!(
            parse(format!("{decl}{}", &CLIENT_HEADER[21..]).as_bytes()).is_ok(),
            "{decl}"
        );
    }
    for decl in [
        "<?xml version='1.1'?>",
        "<?xml encoding='UTF-8'?>",
        "<?xml version='1.0' encoding='ISO-8859-1'?>",
        "<?xml version='1.0' standalone='no'?>",
        "<?xml version='1.0' foo='bar'?>",
        "<?xml?>",
        "<?xml-stylesheet href='x'?>",
    ] {
        not_well_formed(parse(format!("{decl}{}", &CLIENT_HEADER[21..]).as_bytes()));
    }
}

#[test]
fn a_large_stanza_arriving_one_byte_at_a_time_is_parsed_once_complete() {
    // 16 KiB of body, fed a byte per call: linear work overall, so this stays quick even in
    // a debug build.
    let body = "0123456789abcdef".repeat(1024);
    let doc = format!("{CLIENT_HEADER}<message><body>{body}</body></message><presence/>");
    let mut p = parser();
    let mut events = Vec::new();
    for byte in doc.as_bytes() {
        p.feed(std::slice::from_ref(byte), &mut events).unwrap();
    }
    assert_eq!(events.len(), 3);
    let StreamEvent::Stanza(message) = &events[1] else {
        panic!()
    };
    assert_eq!(
        message.get_child("body", "jabber:client").unwrap().text(),
        body
    );
    assert_eq!(p.eof(), Ok(()));
    // The buffer the stanza was gathered in has been given back.
    assert!(p.buffer_capacity() <= 8 * 1024, "{}", p.buffer_capacity());
}

#[test]
fn broken_start_tags_are_refused_before_they_complete() {
    for broken in [
        "<message to=unquoted",
        "<message to='a'from='b'",
        "<message to 'a'",
        "<message / ",
        "<message <",
        "<message to='a' 1a='b'",
    ] {
        let mut p = parser();
        let mut events = Vec::new();
        p.feed(CLIENT_HEADER.as_bytes(), &mut events).unwrap();
        assert!(
            matches!(
                p.feed(broken.as_bytes(), &mut events),
                Err(FramingError::NotWellFormed(_))
            ),
            "{broken}"
        );
    }
    // Too many attributes are refused as they arrive, too.
    let attrs: String = (0..65).map(|i| format!(" a{i}='v'")).collect();
    let mut p = parser();
    let mut events = Vec::new();
    p.feed(CLIENT_HEADER.as_bytes(), &mut events).unwrap();
    let msg = match p.feed(format!("<message{attrs}").as_bytes(), &mut events) {
        Err(FramingError::PolicyViolation(msg)) => msg,
        other => panic!("{other:?}"),
    };
    assert!(msg.contains("64 attributes"), "{msg}");
}

#[test]
fn eof_right_after_a_stanza_with_cdata_is_fine() {
    for tail in [
        "<message><body><![CDATA[x]]></body></message>",
        "<message ><body >x</body ></message >",
        "<message><body>]</body></message>",
    ] {
        let mut p = parser();
        let mut events = Vec::new();
        p.feed(format!("{CLIENT_HEADER}{tail}").as_bytes(), &mut events)
            .unwrap();
        assert_eq!(events.len(), 2, "{tail}");
        assert_eq!(p.eof(), Ok(()), "{tail}");
    }
}

#[test]
fn invalid_characters_are_refused_wherever_they_are() {
    for bad in [
        "<message><body>\u{0}</body></message>",
        "<message><body><![CDATA[\u{1b}]]></body></message>",
        "<message to='\u{8}'/>",
        "<message><body>\u{fffe}</body></message>",
        "<message><body>&#1;</body></message>",
        "<message><body>&#xFFFF;</body></message>",
        "<message><body>&#xD800;</body></message>",
        "<message><body>&#x110000;</body></message>",
        "<message to='&#0;'/>",
        "<message><body>&#;</body></message>",
        "<message><body>&#x;</body></message>",
        "<message><body>&amp</body></message>",
        "<message><body>a & b</body></message>",
    ] {
        not_well_formed(parse(format!("{CLIENT_HEADER}{bad}").as_bytes()));
    }
    // Characters XML allows, however unusual.
    let message =
        stanza("<message><body>&#x9;&#xA;&#xD;\u{7f}\u{85}&#xFFFD;&#x10FFFF;</body></message>");
    assert_eq!(
        message.get_child("body", "jabber:client").unwrap().text(),
        "\t\n\r\u{7f}\u{85}\u{fffd}\u{10ffff}"
    );
}

#[test]
fn reserved_namespace_declarations_are_refused() {
    for bad in [
        "<message xmlns:p=''/>",
        "<message xmlns:xmlns='urn:x'/>",
        "<message xmlns:xml='urn:x'/>",
        "<message xmlns:p='http://www.w3.org/XML/1998/namespace'/>",
        "<message xmlns='http://www.w3.org/XML/1998/namespace'/>",
        "<message a:b:c='1'/>",
        "<a:b:c/>",
        "<message :a='1'/>",
    ] {
        not_well_formed(parse(format!("{CLIENT_HEADER}{bad}").as_bytes()));
    }
    // Binding `xml` to its own namespace is allowed, and changes nothing.
    let message =
        stanza("<message xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'/>");
    assert_eq!(xml_lang(&message), Some("en"));
}

#[test]
fn a_self_closed_stream_header_ends_the_stream_at_once() {
    let events =
        parse(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='x'/> \n")
            .unwrap();
    assert!(
        matches!(&events[..], [StreamEvent::Header(h), StreamEvent::End] if h.to.as_deref() == Some("x"))
    );
    not_well_formed(parse(
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/><presence/>",
    ));
}
