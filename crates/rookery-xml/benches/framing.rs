//! Inbound framing and outbound serialisation, the per-byte hot paths of every stream.
//!
//! `cargo bench -p rookery-xml --bench framing` (add `-- --quick` for a short run).
//!
//! * `parse_bytes/{1KiB,16KiB}`: a whole client stream (header, 2 000 stanzas, mostly
//!   ~200-byte chat messages with some presence and IQs, then `</stream:stream>`) fed to a
//!   fresh [`StreamParser`] in reads of that size, as a socket would hand them over.
//!   Throughput in bytes.
//! * `parse_stanzas/{1KiB,16KiB}`: the same work, reported per stanza (elements/s; the
//!   time per stanza is the reported time divided by the stanza count printed at start).
//! * `serialize/message`: [`serialize`] of a typical delivered chat message.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rookery_xml::{Element, Limits, StreamEvent, StreamParser, serialize};

const CLIENT_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0' \
     xml:lang='en'>";

/// Stanzas in the benchmark stream.
const STANZAS: usize = 2000;

/// Body texts of varying length and content (escapes included), so that messages are not
/// byte-identical.
const BODIES: [&str; 4] = [
    "Are we still on for lunch tomorrow? I booked the table by the window for half past twelve.",
    "Sure, see you there &amp; don't forget the slides for Thursday's review.",
    "ok",
    "The build is green again; the flaky test was a race in the roster push ordering.",
];

/// One stanza of a busy client's stream: messages with a body, chat states and receipts;
/// every 10th a presence update, every 25th an IQ.
fn stanza(i: usize) -> String {
    if i % 25 == 24 {
        if i % 50 == 49 {
            format!(
                "<iq type='get' id='ping-{i}' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>"
            )
        } else {
            format!("<iq type='get' id='roster-{i}'><query xmlns='jabber:iq:roster'/></iq>")
        }
    } else if i % 10 == 9 {
        format!(
            "<presence id='p-{i}'><show>away</show><status>In a meeting until {h}:30</status>\
             <priority>5</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' \
             node='https://example.net/client' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/></presence>",
            h = 9 + i % 8
        )
    } else {
        format!(
            "<message to='contact{n}@example.net' id='msg-{i:06}' type='chat'><body>{body}</body>\
             <active xmlns='http://jabber.org/protocol/chatstates'/>\
             <request xmlns='urn:xmpp:receipts'/></message>",
            n = i % 37,
            body = BODIES[i % BODIES.len()]
        )
    }
}

/// The whole stream as a client would send it, and its stanza count.
fn client_stream() -> (Vec<u8>, usize) {
    let mut s = String::from(CLIENT_HEADER);
    for i in 0..STANZAS {
        s.push_str(&stanza(i));
        // Some clients send a newline (or whitespace keepalive) between stanzas.
        if i % 4 == 0 {
            s.push('\n');
        }
    }
    s.push_str("</stream:stream>");
    (s.into_bytes(), STANZAS)
}

/// Feed `data` to a fresh parser in reads of `chunk` bytes, taking the events out after
/// each read as the connection does. Returns the stanza count.
fn parse(data: &[u8], chunk: usize) -> usize {
    let mut parser = StreamParser::new(Limits::default());
    let mut events = Vec::with_capacity(64);
    let mut stanzas = 0;
    for piece in data.chunks(chunk) {
        parser.feed(piece, &mut events).expect("well-formed stream");
        for ev in events.drain(..) {
            if let StreamEvent::Stanza(el) = ev {
                black_box(&el);
                stanzas += 1;
            }
        }
    }
    parser.eof().expect("clean end");
    stanzas
}

fn bench_parse(c: &mut Criterion) {
    let (data, count) = client_stream();
    assert_eq!(parse(&data, 1024), count, "every stanza comes out");
    eprintln!(
        "framing: stream of {} bytes, {count} stanzas ({:.0} bytes per stanza on average)",
        data.len(),
        data.len() as f64 / count as f64
    );
    let chunks = [("1KiB", 1024), ("16KiB", 16 * 1024)];

    let mut group = c.benchmark_group("parse_bytes");
    group.throughput(Throughput::Bytes(data.len() as u64));
    for (name, chunk) in chunks {
        group.bench_with_input(BenchmarkId::from_parameter(name), &chunk, |b, &chunk| {
            b.iter(|| parse(black_box(&data), chunk))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("parse_stanzas");
    group.throughput(Throughput::Elements(count as u64));
    for (name, chunk) in chunks {
        group.bench_with_input(BenchmarkId::from_parameter(name), &chunk, |b, &chunk| {
            b.iter(|| parse(black_box(&data), chunk))
        });
    }
    group.finish();
}

fn bench_serialize(c: &mut Criterion) {
    // What the router hands a session's writer: a message with 'from' stamped.
    let xml = "<message xmlns='jabber:client' from='alice@example.org/laptop' \
         to='bob@example.org' id='msg-000042' type='chat' xml:lang='en'>\
         <body>Are we still on for lunch tomorrow? I booked the table &amp; the window.</body>\
         <active xmlns='http://jabber.org/protocol/chatstates'/>\
         <request xmlns='urn:xmpp:receipts'/></message>";
    let el: Element = xml.parse().expect("valid message");
    let out = serialize(&el, "jabber:client");
    eprintln!("framing: serialised message is {} bytes", out.len());

    let mut group = c.benchmark_group("serialize");
    group.throughput(Throughput::Bytes(out.len() as u64));
    group.bench_function("message", |b| {
        b.iter(|| serialize(black_box(&el), "jabber:client"))
    });
    group.finish();
}

criterion_group!(benches, bench_parse, bench_serialize);
criterion_main!(benches);
