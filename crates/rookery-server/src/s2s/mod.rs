//! Server-to-server federation: the S2S manager of seed 002 §3.4 (RFC 6120 server
//! streams, STARTTLS, SASL EXTERNAL as XEP-0178 says, XEP-0220 dialback with XEP-0185
//! keys).
//!
//! The router hands every stanza for a domain that is neither hosted here nor a service
//! to [`route`]. The manager keeps one outgoing [`outgoing::Link`] per (our domain, their
//! domain) pair, as the stanza's `from` and `to` name them: a bounded queue and a task that
//! finds the peer ([`resolve`]: `[s2s.hosts]`, DNS SRV, then the domain on port 5269),
//! connects, negotiates STARTTLS, proves our identity (SASL EXTERNAL with our certificate
//! when the peer offers it, else dialback) and writes. Stanzas
//! queue while the link is set up; when it cannot be they bounce with
//! `remote-server-not-found` or `remote-server-timeout`.
//!
//! [`incoming`] serves `[listen] s2s`: peers authenticate with SASL EXTERNAL when their
//! certificate validates for their domain ([`tls`]: the system's CAs and `[s2s] ca_file`),
//! or with dialback (we verify their keys with their authoritative server), and each
//! stanza must come from a verified pair.
//!
//! Federation is off when `[listen] s2s = false`: peers could not verify us.

mod conn;
mod dialback;
mod incoming;
mod outgoing;
mod resolve;
mod sasl;
mod srv;
mod tls;

pub(crate) use incoming::serve;

use crate::c2s::End;
use crate::error::{Condition, StanzaError};
use crate::server::Server;
use crate::xml::ElementExt;
use dashmap::DashMap;
use jid::Jid;
use minidom::Element;
use outgoing::{Link, Refused};
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use std::sync::{Arc, OnceLock};

/// The default namespace of server-to-server streams.
pub const NS_SERVER: &str = "jabber:server";
/// Dialback elements (`db:` in our headers).
pub const NS_DIALBACK: &str = "jabber:server:dialback";
/// The dialback stream feature (XEP-0220 §2.3).
pub const NS_DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";

/// Most outgoing links at once (each remote domain we talk to, per local domain).
const MAX_LINKS: usize = 10_000;

/// How an outgoing link proved our identity to the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authentication {
    /// XEP-0220 dialback: the peer asked our authoritative server.
    Dialback,
    /// SASL EXTERNAL (XEP-0178): the peer took our TLS client certificate.
    SaslExternal,
}

/// The S2S manager: outgoing links, the static host map, the dialback secret and TLS.
pub struct S2s {
    links: DashMap<(String, String), Arc<Link>>,
    /// `[s2s.hosts]`, plus addresses set at run time.
    hosts: DashMap<String, String>,
    /// The secret dialback keys are made from; new at every start.
    secret: [u8; 32],
    accept_self_signed: bool,
    /// Our certificate and key, presented to peers both ways.
    ours: Option<Arc<CertifiedKey>>,
    /// `[s2s] ca_file`'s certificates.
    extra_cas: Vec<CertificateDer<'static>>,
    /// The CAs we trust for peers; read on first use (the system's take a while).
    trust: OnceLock<Arc<tls::Trust>>,
    /// Made on first use.
    tls_client: OnceLock<Arc<rustls::ClientConfig>>,
    tls_server: Option<Arc<rustls::ServerConfig>>,
}

impl S2s {
    /// The manager; `ours` is the server's certificate and key (`[tls]` or generated).
    /// Fails when `[s2s] ca_file` holds no readable certificate.
    pub fn new(
        config: &rookery_config::Config,
        ours: Option<Arc<CertifiedKey>>,
    ) -> anyhow::Result<Self> {
        let hosts = DashMap::new();
        for (domain, addr) in &config.s2s.hosts {
            hosts.insert(domain.clone(), addr.clone());
        }
        let extra_cas = match &config.s2s.ca_file {
            Some(path) => tls::read_ca_file(path)?,
            None => Vec::new(),
        };
        Ok(S2s {
            links: DashMap::new(),
            hosts,
            secret: rand::random(),
            accept_self_signed: config.s2s.accept_self_signed,
            tls_server: ours.clone().map(tls::server_config),
            ours,
            extra_cas,
            trust: OnceLock::new(),
            tls_client: OnceLock::new(),
        })
    }

    /// Reach `domain` at `addr` (`host:port`) instead of looking it up in DNS, as
    /// `[s2s.hosts]` does (for addresses known only once a peer is started).
    pub fn set_static_host(&self, domain: &str, addr: &str) {
        self.hosts.insert(domain.to_lowercase(), addr.to_owned());
    }

    /// The static address of `domain`, if it has one.
    pub fn static_host(&self, domain: &str) -> Option<String> {
        self.hosts.get(domain).map(|a| a.clone())
    }

    /// The remote domains with an authenticated outgoing link from `local`.
    pub fn connected(&self, local: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .links
            .iter()
            .filter(|e| e.key().0 == local && e.value().is_up())
            .map(|e| e.key().1.clone())
            .collect();
        v.sort();
        v
    }

    /// How the outgoing link from `local` to `remote` was authenticated, while it is up.
    pub fn authenticated_by(&self, local: &str, remote: &str) -> Option<Authentication> {
        let link = self.links.get(&(local.to_owned(), remote.to_owned()))?;
        if link.is_up() {
            link.authentication()
        } else {
            None
        }
    }

    fn secret(&self) -> &[u8] {
        &self.secret
    }

    fn trust(&self) -> &tls::Trust {
        self.trust
            .get_or_init(|| Arc::new(tls::Trust::load(&self.extra_cas)))
    }

    fn tls_client(&self) -> Arc<rustls::ClientConfig> {
        self.tls_client
            .get_or_init(|| {
                let verify_with = (!self.accept_self_signed).then(|| self.trust());
                tls::client_config(verify_with, self.ours.clone())
            })
            .clone()
    }

    /// The server side of STARTTLS, when we have a certificate.
    fn tls_server(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls_server.clone()
    }

    /// Whether we present a certificate to the servers we connect to.
    fn presents_certificate(&self) -> bool {
        self.ours.is_some()
    }

    /// Whether the certificate chain a peer presented authenticates `domain` (SASL
    /// EXTERNAL); the error says why not. `accept_self_signed` plays no part.
    fn check_certificate(&self, chain: &[CertificateDer<'_>], domain: &str) -> Result<(), String> {
        if chain.is_empty() {
            return Err("no certificate was presented".to_owned());
        }
        self.trust().check(chain, domain)
    }

    /// At the cap of links: make room by forgetting one that failed (it holds no
    /// stanzas, only its backoff), so that unreachable domains, which anyone can name,
    /// cannot keep the table full. `false` if every link is in use.
    fn evict_failed(&self) -> bool {
        let failed = self
            .links
            .iter()
            .find(|e| e.value().is_failed())
            .map(|e| e.key().clone());
        match failed {
            Some(key) => {
                tracing::debug!(remote = %key.1, "forgetting a failed s2s link to make room");
                self.links.remove(&key);
                true
            }
            None => false,
        }
    }

    /// Remove `link` from the table, unless another link replaced it already.
    fn forget(&self, link: &Arc<Link>) {
        let key = (link.local.clone(), link.remote.clone());
        self.links.remove_if(&key, |_, l| Arc::ptr_eq(l, link));
    }
}

/// Send a stanza to the remote domain `domain` (the router's last resort).
pub async fn route(server: &Server, domain: &str, stanza: Element) {
    if server.config().listen.s2s.is_none() {
        let err = StanzaError::new(
            Condition::RemoteServerNotFound,
            format!("this server does not federate; {domain} is not reachable from here"),
        );
        return server.bounce(&stanza, err).await;
    }
    let local = match stanza.get_attr("from").map(Jid::new) {
        Some(Ok(from)) => from.domain().to_string(),
        _ => {
            tracing::debug!(%domain, "dropping a stanza without a valid 'from' for a remote domain");
            return;
        }
    };
    if !server.serves_host(&local) && server.service(&local).is_none() {
        tracing::warn!(from = %local, to = %domain, "dropping a stanza for a remote domain from a domain not ours");
        return;
    }
    let s2s = server.s2s();
    let key = (local, domain.to_owned());
    let mut stanza = stanza;
    let mut backoff = outgoing::FIRST_BACKOFF;
    // A link found over is replaced at most once; a second one is as new as it gets.
    for _ in 0..2 {
        if !s2s.links.contains_key(&key) && s2s.links.len() >= MAX_LINKS && !s2s.evict_failed() {
            let err = StanzaError::new(
                Condition::ResourceConstraint,
                "this server is connected to too many remote servers; try again later",
            );
            return server.bounce(&stanza, err).await;
        }
        let link = s2s
            .links
            .entry(key.clone())
            .or_insert_with(|| {
                let queue = server.config().limits.outbound_queue;
                let link = Arc::new(Link::new(key.0.clone(), key.1.clone(), queue, backoff));
                server.spawn(outgoing::run(server.clone(), link.clone()));
                link
            })
            .clone();
        let Err(refused) = link.push(stanza) else {
            return;
        };
        match *refused {
            (Refused::Full, s) => {
                let err = StanzaError::new(
                    Condition::RemoteServerTimeout,
                    format!("too many stanzas are waiting for {domain}; it is not keeping up"),
                );
                return server.bounce(&s, err).await;
            }
            (Refused::Failed(f), s) => return server.bounce(&s, f.error()).await,
            (Refused::Gone(next), s) => {
                s2s.forget(&link);
                backoff = next;
                stanza = s;
            }
        }
    }
    tracing::warn!(%domain, "no usable link to a remote domain after a retry");
    let err = StanzaError::new(
        Condition::RemoteServerTimeout,
        format!("the connection to {domain} is being replaced; try again"),
    );
    server.bounce(&stanza, err).await;
}

/// How a stream ended, for logs and bounce texts.
fn describe(end: &End) -> String {
    match end {
        End::Closed => "the stream was closed".to_owned(),
        End::Io(e) => format!("connection error: {e}"),
        End::Stream(e) => format!("stream error {}: {}", e.condition.as_str(), e.text),
    }
}

/// The condition and text of a `<stream:error/>` a peer sent.
fn stream_error_text(e: &Element) -> String {
    let condition = e
        .children()
        .find(|c| c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| "undefined-condition".to_owned());
    match e.children().find(|c| c.name() == "text") {
        Some(t) => format!("{condition} ({})", t.text()),
        None => condition,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outgoing::{Failure, Phase};
    use std::time::Duration;

    #[test]
    fn at_the_cap_a_failed_link_makes_room_and_a_live_one_does_not() {
        let s2s = S2s::new(&rookery_config::Config::default(), None).unwrap();
        let add = |remote: &str| {
            let link = Arc::new(Link::new(
                "a.test".into(),
                remote.into(),
                8,
                outgoing::FIRST_BACKOFF,
            ));
            s2s.links
                .insert(("a.test".into(), remote.into()), link.clone());
            link
        };
        add("up.test");
        assert!(!s2s.evict_failed(), "a link in use is never forgotten");
        let failed = add("unreachable.test");
        failed.set_phase(Phase::Failed {
            until: tokio::time::Instant::now() + Duration::from_secs(60),
            delay: Duration::from_secs(60),
            failure: Failure::not_found("no such domain"),
        });
        assert!(s2s.evict_failed());
        assert_eq!(s2s.links.len(), 1);
        assert!(s2s.links.contains_key(&("a.test".into(), "up.test".into())));
    }
}
