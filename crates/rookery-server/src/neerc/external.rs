//! The contest service as an external XEP-0114 component (`rookery neerc-component`):
//! the same service, in a process of its own, against rookery or any server that accepts
//! components.
//!
//! The process runs a [`Server`] that hosts no domain and listens nowhere: it holds the
//! service's store (its own SQLite file), its configuration, its ad-hoc commands and its
//! router. Its router sends everything for other domains up the component stream (the
//! server's *uplink*, an [`Uplink`]), and what comes down the stream is routed to the
//! service. The MUC rooms are read over XMPP ([`RemoteMuc`]).
//!
//! Requests to the service are handled by a few workers, each sender always by the same
//! one, so one user's requests are answered in order (as over a client stream) while
//! the MUC queries they wait on are answered by the reading loop. Stanzas waiting for the
//! stream stay queued while it reconnects (with backoff): a change made meanwhile is
//! announced once the component is back.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use jid::Jid;
use minidom::Element;
use rookery_config::Config;
use rookery_xml::{Limits, StreamEvent, StreamParser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::{Condition, StanzaError};
use crate::ns;
use crate::router::Route;
use crate::server::Server;
use crate::xml::{ElementExt, el};

use super::NeercService;
use super::remote::RemoteMuc;

/// How the component reaches its server, and what it serves.
#[derive(Clone, Debug)]
pub struct ExternalOptions {
    /// The server's component listener, `host:port`.
    pub server: String,
    /// The component's name (its domain), e.g. `neerc.example.org`.
    pub name: String,
    pub secret: String,
    /// The XMPP domain whose MUC rooms it serves.
    pub host: String,
    /// The MUC service's domain (default `conference.<host>`).
    pub muc: String,
    /// The domain of group JIDs in room affiliations (default `groups.<host>`).
    pub groups: String,
}

/// Stanzas queued for the stream, at most.
const QUEUE: usize = 4096;
/// Workers for requests (each sender always on the same one).
const WORKERS: usize = 8;
/// Requests waiting for one worker, at most; more are answered `resource-constraint`.
const WORKER_QUEUE: usize = 256;
/// How long a query to the server (e.g. a room's affiliation list) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The component's end of the stream, as the process's router sees it: a queue of
/// stanzas to write, and the queries waiting for their answers.
pub struct Uplink {
    name: String,
    queue: mpsc::Sender<Element>,
    pending: Mutex<HashMap<String, oneshot::Sender<Element>>>,
    next_id: AtomicU64,
}

impl Uplink {
    fn new(name: &str) -> (Arc<Uplink>, mpsc::Receiver<Element>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let uplink = Arc::new(Uplink {
            name: name.to_owned(),
            queue: tx,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        });
        (uplink, rx)
    }

    /// Queue a stanza for the server; waits while the queue is full.
    pub async fn send(&self, stanza: Element) {
        let _ = self.queue.send(stanza).await;
    }

    /// Send an IQ of type `ty` with `payload` to `to`, from the component, and wait for
    /// the answer: the result, or the error it carries.
    pub async fn request(
        &self,
        to: &str,
        ty: &str,
        payload: Element,
    ) -> Result<Element, StanzaError> {
        let id = format!("neerc-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id.clone(), tx);
        let iq = el("iq", ns::CLIENT)
            .with_attr("type", ty)
            .with_attr("id", &id)
            .with_attr("from", &self.name)
            .with_attr("to", to)
            .with_child(payload);
        self.send(iq).await;
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, rx).await;
        self.pending.lock().unwrap().remove(&id);
        let reply = match answer {
            Ok(Ok(reply)) => reply,
            _ => {
                return Err(StanzaError::new(
                    Condition::RemoteServerTimeout,
                    format!("{to} did not answer within {REQUEST_TIMEOUT:?}"),
                ));
            }
        };
        if reply.get_attr("type") == Some("error") {
            return Err(error_of(&reply));
        }
        Ok(reply)
    }

    /// An answer to one of our queries, handed to whoever waits for it.
    fn answered(&self, stanza: Element) -> Option<Element> {
        let waiting = stanza
            .get_attr("id")
            .and_then(|id| self.pending.lock().unwrap().remove(id));
        match waiting {
            Some(tx) => {
                let _ = tx.send(stanza);
                None
            }
            None => Some(stanza),
        }
    }
}

#[async_trait]
impl Route for Uplink {
    async fn route(&self, _server: &Server, stanza: Element) {
        self.send(stanza).await;
    }
}

/// The stanza error an error reply carries (condition and text; others are
/// `undefined-condition`).
pub(super) fn error_of(reply: &Element) -> StanzaError {
    let error = reply.get_child("error", ns::CLIENT);
    let condition = error
        .and_then(|e| {
            e.children()
                .find(|c| c.has_ns(ns::STANZA_ERRORS) && c.name() != "text")
        })
        .map(|c| c.name().to_owned())
        .unwrap_or_default();
    let text = error
        .and_then(|e| e.child_text("text", ns::STANZA_ERRORS))
        .unwrap_or_else(|| condition.clone());
    let condition = match condition.as_str() {
        "item-not-found" => Condition::ItemNotFound,
        "forbidden" => Condition::Forbidden,
        "not-allowed" => Condition::NotAllowed,
        "not-authorized" => Condition::NotAuthorized,
        "service-unavailable" => Condition::ServiceUnavailable,
        "remote-server-not-found" => Condition::RemoteServerNotFound,
        "remote-server-timeout" => Condition::RemoteServerTimeout,
        _ => Condition::UndefinedCondition,
    };
    StanzaError::new(condition, text)
}

/// Run the contest service as a component of the server `opts.server` until `shutdown`.
/// `config` gives the data directory (the service's store) and the `[neerc]` settings;
/// its hosts and listeners are ignored.
pub async fn run(opts: ExternalOptions, config: Config, shutdown: CancellationToken) -> Result<()> {
    let mut config = config;
    config.hosts.clear();
    config.components.clear();
    config.listen.c2s = None;
    config.listen.c2s_tls = None;
    config.listen.s2s = None;
    config.listen.component = None;
    let server = Server::open(config).await?;
    let (uplink, mut queue) = Uplink::new(&opts.name);
    server.set_uplink(uplink.clone());
    let muc = RemoteMuc::new(uplink.clone(), &opts.name, &opts.muc, &opts.groups);
    let service = NeercService::new(&server, &opts.name, &opts.host, muc.clone());
    muc.attach(&service);
    server.register_service(&opts.name, service.clone());
    super::commands::register(&server, &service);
    service.start(&server).await;
    // The rooms to enter at once: the default room and those with tasks.
    let mut rooms = vec![server.config().neerc.default_room.clone()];
    rooms.extend(
        server
            .stores()
            .tasks
            .task_rooms(&opts.name)
            .await
            .unwrap_or_default(),
    );
    let workers = spawn_workers(&server);

    let mut backoff = Duration::from_secs(1);
    let mut first = true;
    let mut unsent: Vec<Element> = Vec::new();
    let outcome = loop {
        let attempt = tokio::select! {
            r = connect(&opts) => r,
            _ = shutdown.cancelled() => break Ok(()),
        };
        let (tcp, parser) = match attempt {
            Ok(c) => c,
            Err(Refused::Fatal(e)) if first => break Err(e),
            Err(Refused::Fatal(e) | Refused::Retry(e)) => {
                tracing::warn!(error = %format!("{e:#}"), retry_in = ?backoff, "cannot connect to the server");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => break Ok(()),
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        first = false;
        backoff = Duration::from_secs(1);
        tracing::info!(name = %opts.name, server = %opts.server, "connected as a component");
        let entering = {
            let (muc, rooms) = (muc.clone(), rooms.clone());
            tokio::spawn(async move { muc.connected(&rooms).await })
        };
        let ended = pump(
            &uplink,
            &muc,
            &workers,
            tcp,
            parser,
            &mut queue,
            &mut unsent,
            &shutdown,
        )
        .await;
        entering.abort();
        match ended {
            Ok(()) => break Ok(()),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "the stream to the server ended"),
        }
    };
    server.shutdown().await;
    outcome
}

/// Why a connection attempt failed: for good (a wrong secret or name), or for now.
enum Refused {
    Fatal(anyhow::Error),
    Retry(anyhow::Error),
}

/// Open the stream and do the handshake (XEP-0114 §3).
async fn connect(opts: &ExternalOptions) -> Result<(TcpStream, StreamParser), Refused> {
    let mut tcp = TcpStream::connect(&opts.server)
        .await
        .with_context(|| format!("connecting to {}", opts.server))
        .map_err(Refused::Retry)?;
    let _ = tcp.set_nodelay(true);
    let header = rookery_xml::stream_header(ns::COMPONENT_ACCEPT, &[("to", &opts.name)]);
    tcp.write_all(header.as_bytes())
        .await
        .map_err(|e| Refused::Retry(e.into()))?;
    let mut parser = StreamParser::new(limits());
    let mut events = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut id = None;
    let handshake = tokio::time::timeout(REQUEST_TIMEOUT, async {
        loop {
            for event in events.drain(..) {
                match event {
                    StreamEvent::Header(h) => {
                        let Some(sid) = h.id else {
                            return Err(Refused::Fatal(anyhow::anyhow!(
                                "the server's stream header has no id"
                            )));
                        };
                        let digest = crate::component::handshake_digest(&sid, &opts.secret);
                        id = Some(sid);
                        let hs = format!("<handshake>{digest}</handshake>");
                        tcp.write_all(hs.as_bytes())
                            .await
                            .map_err(|e| Refused::Retry(e.into()))?;
                    }
                    StreamEvent::Stanza(e) if e.name() == "handshake" && id.is_some() => {
                        return Ok(());
                    }
                    StreamEvent::Stanza(e) if e.is("error", ns::STREAMS) => {
                        let condition = e
                            .children()
                            .find(|c| c.name() != "text")
                            .map(|c| c.name().to_owned())
                            .unwrap_or_default();
                        let text = e.child_text("text", ns::STREAM_ERRORS).unwrap_or_default();
                        let err =
                            anyhow::anyhow!("the server refused the component: {condition} {text}");
                        return Err(match condition.as_str() {
                            // Another instance holds the name, or the server is going away.
                            "conflict" | "system-shutdown" | "remote-connection-failed" => {
                                Refused::Retry(err)
                            }
                            _ => Refused::Fatal(err),
                        });
                    }
                    StreamEvent::Stanza(e) => {
                        return Err(Refused::Fatal(anyhow::anyhow!(
                            "unexpected <{}/> during the handshake",
                            e.name()
                        )));
                    }
                    StreamEvent::End => {
                        return Err(Refused::Retry(anyhow::anyhow!(
                            "the server closed the stream during the handshake"
                        )));
                    }
                }
            }
            let n = tcp
                .read(&mut buf)
                .await
                .map_err(|e| Refused::Retry(e.into()))?;
            if n == 0 {
                return Err(Refused::Retry(anyhow::anyhow!(
                    "the server closed the connection during the handshake"
                )));
            }
            parser
                .feed(&buf[..n], &mut events)
                .map_err(|e| Refused::Fatal(anyhow::anyhow!("the server's stream: {e}")))?;
        }
    })
    .await;
    match handshake {
        Ok(Ok(())) => Ok((tcp, parser)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Refused::Retry(anyhow::anyhow!(
            "the server did not answer the handshake within {REQUEST_TIMEOUT:?}"
        ))),
    }
}

fn limits() -> Limits {
    Limits {
        // Affiliation lists and group member lists of big contests.
        max_stanza_bytes: 4 * 1024 * 1024,
        ..Limits::default()
    }
}

/// Workers that route requests to the service; each sender is always on the same one.
fn spawn_workers(server: &Server) -> Vec<mpsc::Sender<Element>> {
    (0..WORKERS)
        .map(|_| {
            let (tx, mut rx) = mpsc::channel::<Element>(WORKER_QUEUE);
            let server = server.clone();
            tokio::spawn(async move {
                while let Some(stanza) = rx.recv().await {
                    server.route(stanza).await;
                }
            });
            tx
        })
        .collect()
}

/// Read and write the stream until it ends (`Ok` only on shutdown).
#[allow(clippy::too_many_arguments)]
async fn pump(
    uplink: &Arc<Uplink>,
    muc: &Arc<RemoteMuc>,
    workers: &[mpsc::Sender<Element>],
    tcp: TcpStream,
    mut parser: StreamParser,
    queue: &mut mpsc::Receiver<Element>,
    unsent: &mut Vec<Element>,
    shutdown: &CancellationToken,
) -> Result<()> {
    let (mut rd, mut wr) = tcp.into_split();
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = Vec::new();
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        if !unsent.is_empty() {
            out.clear();
            for stanza in unsent.iter() {
                rookery_xml::serialize_into(stanza, ns::CLIENT, &mut out);
            }
            wr.write_all(&out).await.context("writing to the server")?;
            unsent.clear();
        }
        tokio::select! {
            n = rd.read(&mut buf) => {
                let n = n.context("reading from the server")?;
                if n == 0 {
                    bail!("the server closed the connection");
                }
                parser.feed(&buf[..n], &mut events).context("the server's stream")?;
                for event in events.drain(..) {
                    match event {
                        StreamEvent::Stanza(e) if e.is("error", ns::STREAMS) => {
                            let text = e.child_text("text", ns::STREAM_ERRORS).unwrap_or_default();
                            let condition = e.children().next().map(|c| c.name().to_owned()).unwrap_or_default();
                            bail!("stream error from the server: {condition} {text}");
                        }
                        StreamEvent::Stanza(mut e) => {
                            crate::component::stream::into_client_ns(&mut e);
                            dispatch(uplink, muc, workers, e).await;
                        }
                        StreamEvent::End => bail!("the server closed the stream"),
                        StreamEvent::Header(_) => bail!("a second stream header"),
                    }
                }
            }
            first = queue.recv() => {
                let Some(first) = first else { return Ok(()) };
                unsent.push(first);
                while unsent.len() < 64 {
                    match queue.try_recv() {
                        Ok(s) => unsent.push(s),
                        Err(_) => break,
                    }
                }
            }
            _ = shutdown.cancelled() => {
                out.clear();
                for presence in muc.leaving() {
                    rookery_xml::serialize_into(&presence, ns::CLIENT, &mut out);
                }
                out.extend_from_slice(b"</stream:stream>");
                let _ = tokio::time::timeout(Duration::from_secs(2), wr.write_all(&out)).await;
                return Ok(());
            }
        }
    }
}

/// One stanza from the server: an answer to our query, a room's presence, or a request
/// for the service (to the sender's worker).
async fn dispatch(
    uplink: &Uplink,
    muc: &Arc<RemoteMuc>,
    workers: &[mpsc::Sender<Element>],
    stanza: Element,
) {
    match stanza.name() {
        "iq" if matches!(stanza.get_attr("type"), Some("result" | "error")) => {
            // Answers to nobody's query are dropped, as the service drops them.
            let _ = uplink.answered(stanza);
        }
        "iq" => {
            let from = stanza
                .get_attr("from")
                .and_then(|f| Jid::new(f).ok())
                .map(|j| j.to_bare());
            let mut h = std::collections::hash_map::DefaultHasher::new();
            from.hash(&mut h);
            let worker = &workers[(h.finish() as usize) % workers.len()];
            // Never wait here: the worker may be waiting for an answer only this loop reads.
            match worker.try_send(stanza) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(stanza)) => {
                    let e = StanzaError::new(
                        Condition::ResourceConstraint,
                        "the contest service is busy; try again in a moment",
                    );
                    uplink.send(e.bounce(&stanza)).await;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    tracing::error!("a request worker is gone");
                }
            }
        }
        "presence" => {
            if let Some((room, newcomer)) = muc.presence(&stanza) {
                // The clock waits for the service's queue, which may wait for this loop.
                let muc = muc.clone();
                tokio::spawn(async move { muc.welcome(&room, newcomer).await });
            }
        }
        // Room subjects and messages to the service are not for it (A.2).
        _ => {}
    }
}
