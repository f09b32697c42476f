//! Outgoing server-to-server links: one per (local domain, remote domain), each with a
//! bounded queue and one task that connects, negotiates STARTTLS, authenticates (SASL
//! EXTERNAL with our certificate when the peer offers it, else dialback) and then writes
//! what is queued.
//!
//! A link's life: *connecting* (stanzas queue up), *up* (they are written as they come),
//! then either *closed* (idle, or the peer ended a link with nothing waiting: the next
//! stanza opens a new link) or *failed* (it could not be set up, or it was lost with
//! stanzas waiting): those stanzas bounce `remote-server-not-found` or
//! `remote-server-timeout` with a `<text/>` saying why, and so does every stanza for the
//! pair until the backoff delay has passed; the next attempt after that waits twice as
//! long if it fails again (up to [`MAX_BACKOFF`]).

use super::conn::S2sConn;
use super::{Authentication, NS_DIALBACK, NS_DIALBACK_FEATURE, describe, dialback, resolve, sasl};
use crate::c2s::End;
use crate::error::{Condition, StanzaError, StreamCondition, StreamError};
use crate::ns;
use crate::server::Server;
use crate::xml::ElementExt;
use minidom::Element;
use rookery_xml::StreamEvent;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The first backoff delay after a failure.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// The longest backoff delay.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Most stanzas written in one batch.
const WRITE_BATCH: usize = 64;
/// Longest wait for the peer to take a batch of stanzas.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a remote domain cannot be reached: what its stanzas bounce with.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub condition: Condition,
    pub text: String,
}

impl Failure {
    pub(super) fn not_found(text: impl Into<String>) -> Self {
        Failure {
            condition: Condition::RemoteServerNotFound,
            text: text.into(),
        }
    }

    pub(super) fn timeout(text: impl Into<String>) -> Self {
        Failure {
            condition: Condition::RemoteServerTimeout,
            text: text.into(),
        }
    }

    pub(super) fn error(&self) -> StanzaError {
        StanzaError::new(self.condition, self.text.clone())
    }
}

pub(super) enum Phase {
    Connecting,
    Up,
    /// Refusing stanzas until `until`; `delay` is how long that was.
    Failed {
        until: Instant,
        delay: Duration,
        failure: Failure,
    },
    Closed,
}

struct State {
    queue: VecDeque<Element>,
    phase: Phase,
}

/// Why [`Link::push`] refused a stanza (which it hands back).
pub(super) enum Refused {
    /// The queue is full: the peer is not keeping up.
    Full,
    /// The link failed recently: bounce with this.
    Failed(Failure),
    /// The link is over: open a new one, waiting this long if that one fails.
    Gone(Duration),
}

/// One outgoing link as the manager sees it.
pub(super) struct Link {
    pub local: String,
    pub remote: String,
    state: Mutex<State>,
    ready: Notify,
    capacity: usize,
    /// How long to refuse stanzas if this link fails.
    backoff: Duration,
    /// How the link was authenticated, once it was.
    authentication: OnceLock<Authentication>,
}

impl Link {
    /// A new link; its task is started by the caller.
    pub(super) fn new(local: String, remote: String, capacity: usize, backoff: Duration) -> Self {
        Link {
            local,
            remote,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                phase: Phase::Connecting,
            }),
            ready: Notify::new(),
            capacity: capacity.max(1),
            backoff,
            authentication: OnceLock::new(),
        }
    }

    /// Queue a stanza for the remote domain.
    pub(super) fn push(&self, stanza: Element) -> Result<(), Box<(Refused, Element)>> {
        {
            let mut st = self.state.lock().unwrap();
            match &st.phase {
                Phase::Connecting | Phase::Up => {
                    if st.queue.len() >= self.capacity {
                        return Err(Box::new((Refused::Full, stanza)));
                    }
                    st.queue.push_back(stanza);
                }
                Phase::Failed { until, failure, .. } if Instant::now() < *until => {
                    return Err(Box::new((Refused::Failed(failure.clone()), stanza)));
                }
                Phase::Failed { delay, .. } => {
                    let next = (*delay * 2).min(MAX_BACKOFF);
                    return Err(Box::new((Refused::Gone(next), stanza)));
                }
                Phase::Closed => return Err(Box::new((Refused::Gone(FIRST_BACKOFF), stanza))),
            }
        }
        self.ready.notify_one();
        Ok(())
    }

    fn take(&self, out: &mut Vec<Element>, max: usize) -> usize {
        let mut st = self.state.lock().unwrap();
        let n = st.queue.len().min(max);
        out.extend(st.queue.drain(..n));
        if st.queue.is_empty() && st.queue.capacity() > 64 {
            st.queue = VecDeque::new();
        }
        n
    }

    /// Close the link if nothing waits, at once: a stanza pushed after this opens a new
    /// link (so none is left behind in this one, nor overtaken by later ones).
    fn close_if_idle(&self) -> bool {
        let mut st = self.state.lock().unwrap();
        if st.queue.is_empty() {
            st.phase = Phase::Closed;
            true
        } else {
            false
        }
    }

    /// Whether the link failed and holds nothing but the memory of its backoff.
    pub(super) fn is_failed(&self) -> bool {
        matches!(self.state.lock().unwrap().phase, Phase::Failed { .. })
    }

    pub(super) fn set_phase(&self, phase: Phase) -> Vec<Element> {
        let mut st = self.state.lock().unwrap();
        st.phase = phase;
        std::mem::take(&mut st.queue).into()
    }

    /// Whether the link is authenticated and writing.
    pub(super) fn is_up(&self) -> bool {
        matches!(self.state.lock().unwrap().phase, Phase::Up)
    }

    /// How the link was authenticated, once it was.
    pub(super) fn authentication(&self) -> Option<Authentication> {
        self.authentication.get().copied()
    }
}

/// How an established link ended.
enum Ending {
    Idle,
    Shutdown,
    Lost(String),
}

/// A link's task: set it up, serve it, and clean up after it.
pub(super) async fn run(server: Server, link: Arc<Link>) {
    let limit = Duration::from_secs(server.config().s2s.connect_timeout_secs.max(1));
    let shutdown = server.shutdown_token().clone();
    let attempt = tokio::select! {
        r = tokio::time::timeout(limit, establish(&server, &link)) => r,
        _ = shutdown.cancelled() => {
            link.set_phase(Phase::Closed);
            return forget(&server, &link);
        }
    };
    let mut conn = match attempt {
        Ok(Ok(conn)) => conn,
        Ok(Err(failure)) => return fail(&server, &link, failure, link.backoff).await,
        Err(_) => {
            let failure = Failure::timeout(format!(
                "{} did not answer: no authenticated connection within {} seconds",
                link.remote,
                limit.as_secs()
            ));
            return fail(&server, &link, failure, link.backoff).await;
        }
    };
    {
        let mut st = link.state.lock().unwrap();
        st.phase = Phase::Up;
    }
    link.ready.notify_one();
    tracing::info!(local = %link.local, remote = %link.remote, peer = %conn.peer, "s2s link up");
    let ending = serve(&server, &link, &mut conn).await;
    match ending {
        Ending::Idle => {
            // Closed for new stanzas already: they open a new link meanwhile.
            forget(&server, &link);
            conn.close().await;
            tracing::info!(local = %link.local, remote = %link.remote, "s2s link closed: idle");
        }
        Ending::Shutdown => {
            let e = StreamError::shutdown();
            let _ =
                tokio::time::timeout(WRITE_TIMEOUT, conn.send_stream_error(&link.local, &e)).await;
            let left = link.set_phase(Phase::Closed);
            forget(&server, &link);
            let err = Failure::timeout("the server is shutting down".to_owned()).error();
            for s in left {
                server.bounce(&s, err.clone()).await;
            }
        }
        Ending::Lost(why) => {
            tracing::info!(local = %link.local, remote = %link.remote, reason = %why, "s2s link lost");
            if link.close_if_idle() {
                forget(&server, &link);
            } else {
                // The link was up: its backoff starts again from the first delay.
                let text = format!("the connection to {} was lost: {why}", link.remote);
                fail(&server, &link, Failure::timeout(text), FIRST_BACKOFF).await;
            }
        }
    }
}

/// Remove the link from the manager (unless it was replaced already).
fn forget(server: &Server, link: &Arc<Link>) {
    server.s2s().forget(link);
}

/// The link could not be set up or was lost: bounce what waits, refuse new stanzas for
/// `delay`, then keep the failure around as long again (so that the next attempt's delay
/// doubles) before forgetting the link.
async fn fail(server: &Server, link: &Arc<Link>, failure: Failure, delay: Duration) {
    tracing::info!(local = %link.local, remote = %link.remote, reason = %failure.text, "s2s link failed");
    let until = Instant::now() + delay;
    let waiting = link.set_phase(Phase::Failed {
        until,
        delay,
        failure: failure.clone(),
    });
    let err = failure.error();
    for s in waiting {
        server.bounce(&s, err.clone()).await;
    }
    let shutdown = server.shutdown_token().clone();
    tokio::select! {
        _ = tokio::time::sleep_until(until + delay) => {}
        _ = shutdown.cancelled() => {}
    }
    forget(server, link);
}

/// Connect, negotiate and authenticate: with SASL EXTERNAL when the peer offers it (and
/// we have a certificate to show), else, or when it fails, with dialback.
async fn establish(server: &Server, link: &Link) -> Result<S2sConn, Failure> {
    let (local, remote) = (link.local.as_str(), link.remote.as_str());
    let (mut conn, mut id, features) = open_secured(server, local, remote).await?;
    if sasl::offers_external(&features) && server.s2s().presents_certificate() {
        match sasl::authenticate(&mut conn, local, remote).await? {
            sasl::Outcome::Authenticated => {
                let _ = link.authentication.set(Authentication::SaslExternal);
                tracing::debug!(%local, %remote, "s2s authenticated with SASL EXTERNAL");
                return Ok(conn);
            }
            sasl::Outcome::Refused(why) => {
                tracing::info!(%local, %remote, reason = %why, "s2s SASL EXTERNAL refused; trying dialback");
                // Dialback on the same stream if the peer offered it there (XEP-0178,
                // XEP-0220 §2.3), else on a new one.
                if !features.has_child("dialback", NS_DIALBACK_FEATURE) {
                    conn.close().await;
                    (conn, id, _) = open_secured(server, local, remote).await?;
                }
            }
        }
    }
    dialback_on(server, &mut conn, local, remote, &id).await?;
    let _ = link.authentication.set(Authentication::Dialback);
    Ok(conn)
}

/// Ask `remote` to accept us as `local` with dialback on the stream `id`.
async fn dialback_on(
    server: &Server,
    conn: &mut S2sConn,
    local: &str,
    remote: &str,
    id: &str,
) -> Result<(), Failure> {
    let key = dialback::key(server.s2s().secret(), remote, local, id);
    let request = dialback::element("result", local, remote, None, None, Some(&key));
    conn.send_raw(request.as_bytes())
        .await
        .map_err(|e| Failure::not_found(format!("connection to {remote} failed: {e}")))?;
    loop {
        let e = conn.next_element().await.map_err(|end| {
            Failure::not_found(format!(
                "{remote} ended the stream during dialback: {}",
                describe(&end)
            ))
        })?;
        if e.is("result", NS_DIALBACK) {
            return match e.get_attr("type") {
                Some("valid") => Ok(()),
                Some("invalid") => Err(Failure::not_found(format!(
                    "{remote} did not accept this server's identity (dialback)"
                ))),
                _ => Err(Failure::not_found(format!(
                    "{remote} refused dialback for {local}: {}",
                    error_text(&e)
                ))),
            };
        }
        if e.is("error", ns::STREAMS) {
            return Err(Failure::not_found(format!(
                "{remote} sent a stream error: {}",
                super::stream_error_text(&e)
            )));
        }
    }
}

/// The condition and text of a dialback error.
fn error_text(e: &Element) -> String {
    let Some(err) = e.children().find(|c| c.name() == "error") else {
        return "no reason given".to_owned();
    };
    let condition = err
        .children()
        .find(|c| c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| "error".to_owned());
    match err.children().find(|c| c.name() == "text") {
        Some(t) => format!("{condition} ({})", t.text()),
        None => condition,
    }
}

/// Open a stream from `local` to `remote` and secure it with STARTTLS: the connection on
/// the stream after TLS, and the stream id the peer gave it.
pub(super) async fn open_stream(
    server: &Server,
    local: &str,
    remote: &str,
) -> Result<(S2sConn, String), Failure> {
    let (conn, id, _) = open_secured(server, local, remote).await?;
    Ok((conn, id))
}

/// [`open_stream`], with the features of the secured stream.
async fn open_secured(
    server: &Server,
    local: &str,
    remote: &str,
) -> Result<(S2sConn, String, Element), Failure> {
    let addrs = resolve::addresses(server, remote).await?;
    let mut last_error = None;
    let mut tcp = None;
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(t) => {
                tcp = Some((t, *addr));
                break;
            }
            Err(e) => last_error = Some(format!("{addr}: {e}")),
        }
    }
    let Some((tcp, addr)) = tcp else {
        return Err(Failure::not_found(format!(
            "cannot connect to {remote} ({})",
            last_error.unwrap_or_else(|| "no address".to_owned())
        )));
    };
    let _ = tcp.set_nodelay(true);
    let mut conn = S2sConn::new(server, Box::new(tcp), addr);
    let lost = |end: End| {
        Failure::not_found(format!(
            "{remote} ended the stream during negotiation: {}",
            describe(&end)
        ))
    };
    let io = |e: std::io::Error| Failure::not_found(format!("connection to {remote} failed: {e}"));
    loop {
        conn.send_header(local, Some(remote), None)
            .await
            .map_err(io)?;
        let header = conn.next_header().await.map_err(lost)?;
        if header.default_ns.as_deref() != Some(super::NS_SERVER) {
            return Err(Failure::not_found(format!(
                "{remote} did not open a server-to-server stream"
            )));
        }
        let id = header.id.unwrap_or_default();
        let features = conn.next_element().await.map_err(lost)?;
        if features.is("error", ns::STREAMS) {
            return Err(Failure::not_found(format!(
                "{remote} refused the stream: {}",
                super::stream_error_text(&features)
            )));
        }
        if !features.is("features", ns::STREAMS) {
            return Err(Failure::not_found(format!(
                "{remote} sent <{}/> instead of stream features",
                features.name()
            )));
        }
        if conn.secure {
            return Ok((conn, id, features));
        }
        if !features.has_child("starttls", ns::TLS) {
            return Err(Failure::not_found(format!(
                "{remote} does not offer STARTTLS, which this server requires"
            )));
        }
        conn.send_raw(format!("<starttls xmlns='{}'/>", ns::TLS).as_bytes())
            .await
            .map_err(io)?;
        let answer = conn.next_element().await.map_err(lost)?;
        if !answer.is("proceed", ns::TLS) {
            return Err(Failure::not_found(format!(
                "{remote} refused STARTTLS (<{}/>)",
                answer.name()
            )));
        }
        let config = server.s2s().tls_client();
        conn.connect_tls(config, remote)
            .await
            .map_err(|e| Failure::not_found(format!("TLS with {remote} failed: {e}")))?;
        conn.reset();
    }
}

/// Write what is queued until the link is idle, lost or the server stops.
async fn serve(server: &Server, link: &Link, conn: &mut S2sConn) -> Ending {
    let idle_secs = server.config().s2s.idle_timeout_secs;
    let idle = Duration::from_secs(if idle_secs == 0 {
        365 * 24 * 3600
    } else {
        idle_secs
    });
    let shutdown = server.shutdown_token().cancelled();
    tokio::pin!(shutdown);
    let mut last = Instant::now();
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => return Ending::Shutdown,
            _ = link.ready.notified() => {
                while link.take(&mut batch, WRITE_BATCH) > 0 {
                    // A peer that stops reading must not hold the link (and shutdown)
                    // forever; what could not be written is bounced, not dropped.
                    let why = match tokio::time::timeout(WRITE_TIMEOUT, conn.send_stanzas(&batch)).await {
                        Ok(Ok(())) => {
                            batch.clear();
                            last = Instant::now();
                            continue;
                        }
                        Ok(Err(e)) => format!("write failed: {e}"),
                        Err(_) => format!("{} did not read for {} s", link.remote, WRITE_TIMEOUT.as_secs()),
                    };
                    let err = Failure::timeout(format!("the connection to {} was lost: {why}", link.remote)).error();
                    for s in batch.drain(..) {
                        server.bounce(&s, err.clone()).await;
                    }
                    return Ending::Lost(why);
                }
            }
            ev = conn.next_event() => match ev {
                Ok(Some(StreamEvent::Stanza(e))) if e.is("error", ns::STREAMS) => {
                    return Ending::Lost(super::stream_error_text(&e));
                }
                // Nothing else is expected on a stream we initiated; ignored.
                Ok(Some(StreamEvent::Stanza(_))) => {}
                Ok(Some(StreamEvent::End)) | Ok(None) => {
                    conn.close().await;
                    return Ending::Lost("the peer closed the stream".to_owned());
                }
                Ok(Some(StreamEvent::Header(_))) => {
                    let e = StreamError::new(StreamCondition::NotWellFormed, "a second stream header was sent");
                    conn.send_stream_error(&link.local, &e).await;
                    return Ending::Lost(describe(&End::Stream(e)));
                }
                Err(e) => {
                    conn.send_stream_error(&link.local, &e).await;
                    return Ending::Lost(describe(&End::Stream(e)));
                }
            },
            _ = tokio::time::sleep_until(last + idle) => {
                if link.close_if_idle() {
                    return Ending::Idle;
                }
                last = Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(backoff: Duration) -> Link {
        Link::new("a.test".into(), "b.test".into(), 8, backoff)
    }

    fn message() -> Element {
        crate::xml::el("message", ns::CLIENT)
    }

    fn refusal(l: &Link) -> Refused {
        let Err(refused) = l.push(message()) else {
            panic!("the link took the stanza");
        };
        refused.0
    }

    fn failed(l: &Link, delay: Duration) {
        l.set_phase(Phase::Failed {
            until: Instant::now() + delay,
            delay,
            failure: Failure::timeout("no answer"),
        });
    }

    #[test]
    fn an_idle_link_closes_at_once_and_a_busy_one_does_not() {
        let l = link(FIRST_BACKOFF);
        assert!(l.push(message()).is_ok());
        assert!(!l.close_if_idle(), "a stanza waits");
        let mut out = Vec::new();
        l.take(&mut out, 10);
        assert!(l.close_if_idle());
        // Whatever comes next goes to a new link, never into the closed one's queue.
        assert!(matches!(refusal(&l), Refused::Gone(d) if d == FIRST_BACKOFF));
    }

    #[tokio::test]
    async fn the_next_attempt_waits_twice_the_delay_this_failure_used() {
        let delay = Duration::from_millis(40);
        // A link on a later attempt, failing for as long as its backoff says.
        let l = link(delay);
        failed(&l, delay);
        assert!(l.is_failed());
        assert!(matches!(refusal(&l), Refused::Failed(_)));
        tokio::time::sleep(delay + Duration::from_millis(10)).await;
        assert!(matches!(refusal(&l), Refused::Gone(d) if d == delay * 2));

        // A link that was up and was lost fails for the first delay whatever its own
        // attempts needed, so the next one doubles that, not the old backoff.
        let l = link(Duration::from_secs(64));
        failed(&l, delay);
        tokio::time::sleep(delay + Duration::from_millis(10)).await;
        assert!(matches!(refusal(&l), Refused::Gone(d) if d == delay * 2));
    }
}
