//! `rookery-bench`: load an XMPP server on loopback and report what it cost the server.
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rookery_bench::conn::{Mechanism, Target, TlsMode};
use rookery_bench::{Accounts, chat, handshake, idle, login, muc, neerc};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "rookery-bench",
    version,
    about = "Load an XMPP server on loopback: login storms, TLS handshakes, 1:1 chat, idle connections, MUC fan-out"
)]
struct Cli {
    /// The server's c2s address (loopback): its STARTTLS/plaintext port, or its direct TLS
    /// port with --tls direct.
    #[arg(long, default_value = "127.0.0.1:5222")]
    server: SocketAddr,
    /// The XMPP domain.
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// Accounts are PREFIX1 … PREFIXN.
    #[arg(long, default_value = "bench")]
    prefix: String,
    #[arg(long, default_value = "bench-pass")]
    password: String,
    /// How many accounts exist.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// SCRAM-SHA-1, SCRAM-SHA-256 or PLAIN.
    #[arg(long, default_value = "SCRAM-SHA-1")]
    mechanism: String,
    /// none (plaintext), starttls, or direct (XEP-0368). Any server certificate is
    /// accepted (benchmark only); TLS sessions are never resumed.
    #[arg(long, default_value = "none", value_parser = parse_tls)]
    tls: TlsMode,
    /// Spread connections over this many source addresses 127.0.0.1 … (for more than
    /// ~28k connections).
    #[arg(long, default_value_t = 1)]
    sources: u8,
    /// The server's PID, to sample its CPU time and memory from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A name for the server in the report.
    #[arg(long, default_value = "server")]
    label: String,
    /// Also write the report as JSON to this file (`-` for standard output).
    #[arg(long)]
    json: Option<String>,
    /// Seconds to wait for any one server reply.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Log in, bind and close, LOGINS times with CONCURRENCY in flight.
    Login {
        #[arg(long, default_value_t = 1000)]
        logins: usize,
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
    },
    /// Connect, negotiate TLS (with --tls starttls: stream header, <starttls/>, handshake)
    /// and close, HANDSHAKES times with CONCURRENCY in flight: the TLS share of a login.
    Handshake {
        #[arg(long, default_value_t = 1000)]
        handshakes: usize,
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
    },
    /// PAIRS senders each send to a receiver: MESSAGES in all, at RATE msg/s (0: as fast as
    /// WINDOW messages in flight per pair allow).
    Chat {
        #[arg(long, default_value_t = 50)]
        pairs: usize,
        #[arg(long, default_value_t = 0)]
        rate: u64,
        #[arg(long, default_value_t = 100_000)]
        messages: u64,
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// At saturation, the most messages a sender writes at once (those the window
        /// allows when it gets a turn); 1 writes each message by itself.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Seconds to wait for stragglers after the last send.
        #[arg(long, default_value_t = 10)]
        drain: u64,
    },
    /// Hold CONNECTIONS logged-in connections and measure the server's memory per
    /// connection; then, with ACTIVE_PAIRS, let that many more pairs (the accounts after
    /// the idle ones) chat at RATE msg/s for ACTIVE_SECS and report their latency.
    Idle {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// Seconds to wait after the last login before reading the server's memory.
        #[arg(long, default_value_t = 3)]
        settle: u64,
        /// Pairs chatting while the idle connections are held (0: none).
        #[arg(long, default_value_t = 0)]
        active_pairs: usize,
        /// Their total rate, msg/s.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Seconds they chat.
        #[arg(long, default_value_t = 0)]
        active_secs: u64,
        /// Seconds to wait for their stragglers.
        #[arg(long, default_value_t = 10)]
        drain: u64,
    },
    /// OCCUPANTS accounts enter one room (the first creates it, as an instant room, if it
    /// does not exist); SENDERS of them send MESSAGES groupchat messages in all at RATE
    /// msg/s (0: as fast as WINDOW messages in flight per sender allow, a message being in
    /// flight until every occupant has it); every occupant counts what it receives.
    Muc {
        #[arg(long, default_value_t = 50)]
        occupants: usize,
        #[arg(long, default_value_t = 5)]
        senders: usize,
        #[arg(long, default_value_t = 0)]
        rate: u64,
        #[arg(long, default_value_t = 2000)]
        messages: u64,
        #[arg(long, default_value_t = 8)]
        window: usize,
        /// The room: a name on conference.DOMAIN, or room@service.
        #[arg(long, default_value = "bench")]
        room: String,
        /// Entries into the room in flight.
        #[arg(long, default_value_t = 20)]
        join_concurrency: usize,
        /// Seconds to wait for stragglers after the last send.
        #[arg(long, default_value_t = 10)]
        drain: u64,
    },
    /// A contest room (NEERC service): a jury and HALLS halls; BOARD tasks for all halls
    /// and QUERIES board queries; then CHANGES status changes by the halls at RATE/s (0:
    /// WINDOW in flight), each broadcast to every occupant. With --small each hall changes
    /// a task of its own, else one task assigned to every hall.
    Neerc {
        #[arg(long, default_value_t = 100)]
        halls: usize,
        #[arg(long, default_value_t = 0)]
        board: usize,
        #[arg(long, default_value_t = 20)]
        queries: usize,
        #[arg(long, default_value_t = 500)]
        changes: u64,
        #[arg(long, default_value_t = 0)]
        rate: u64,
        #[arg(long, default_value_t = 4)]
        window: usize,
        #[arg(long)]
        small: bool,
        /// The contest room: a name on conference.DOMAIN.
        #[arg(long, default_value = "contest")]
        room: String,
        #[arg(long, default_value_t = 20)]
        join_concurrency: usize,
        #[arg(long, default_value_t = 10)]
        drain: u64,
    },
}

fn parse_tls(s: &str) -> Result<TlsMode, String> {
    TlsMode::parse(s).ok_or_else(|| format!("{s:?}: expected none, starttls or direct"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    // Every connection is a socket: use all the open files this process may have.
    let open_files = rookery_bench::raise_open_files_limit()
        .context("raising the open-file limit to the hard limit")?;
    let mechanism = Mechanism::parse(&cli.mechanism)
        .with_context(|| format!("unknown mechanism {}", cli.mechanism))?;
    let target = Target {
        addr: cli.server,
        domain: cli.domain.clone(),
        sources: (1..=cli.sources.max(1))
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
            .collect(),
        mechanism,
        tls: cli.tls,
        timeout: Duration::from_secs(cli.timeout),
    };
    let accounts = Accounts {
        prefix: cli.prefix.clone(),
        password: cli.password.clone(),
        count: cli.users,
    };
    let pid = cli.server_pid;
    let (name, report, table) = match cli.scenario {
        Scenario::Login {
            logins,
            concurrency,
        } => {
            let r = login::run(&target, &accounts, logins, concurrency, pid).await?;
            let mut t = vec![
                ("logins", r.logins.to_string()),
                ("failures", r.failures.to_string()),
                ("logins/s", format!("{:.0}", r.logins_per_s)),
                ("latency p50/p90/p99/max ms", lat_ms(&r.latency)),
            ];
            if let Some(c) = r.server_cpu_per_login_ms {
                t.push(("server CPU per login", format!("{c:.3} ms")));
            }
            if let Some(tls) = &r.tls {
                t.push(("TLS", tls.clone()));
            }
            if let Some(f) = &r.first_failure {
                t.push(("first failure", f.clone()));
            }
            ("login", serde_json::to_value(&r)?, t)
        }
        Scenario::Handshake {
            handshakes,
            concurrency,
        } => {
            let r = handshake::run(&target, handshakes, concurrency, pid).await?;
            let mut t = vec![
                ("handshakes", r.handshakes.to_string()),
                ("failures", r.failures.to_string()),
                ("handshakes/s", format!("{:.0}", r.handshakes_per_s)),
                ("latency p50/p90/p99/max ms", lat_ms(&r.latency)),
            ];
            if let Some(c) = r.server_cpu_per_handshake_ms {
                t.push(("server CPU per handshake", format!("{c:.3} ms")));
            }
            if let Some(tls) = &r.tls {
                t.push(("TLS", tls.clone()));
            }
            if let Some(f) = &r.first_failure {
                t.push(("first failure", f.clone()));
            }
            ("handshake", serde_json::to_value(&r)?, t)
        }
        Scenario::Chat {
            pairs,
            rate,
            messages,
            window,
            batch,
            drain,
        } => {
            let params = chat::ChatParams {
                pairs,
                rate,
                messages,
                window,
                batch,
                drain: Duration::from_secs(drain),
            };
            let r = chat::run(&target, &accounts, &params, pid).await?;
            let mut t = vec![
                ("pairs", r.pairs.to_string()),
                (
                    "rate",
                    if rate == 0 {
                        format!("saturation (window {window}, up to {batch} per write)")
                    } else {
                        format!("{rate} msg/s")
                    },
                ),
                ("sent", r.sent.to_string()),
                ("delivered", r.delivered.to_string()),
                ("lost", r.lost.to_string()),
                ("delivered/s", format!("{:.0}", r.delivered_per_s)),
                ("latency p50/p90/p99/max ms", lat_ms(&r.latency)),
            ];
            if let Some(l) = &r.send_lag {
                t.push(("sent late p50/p90/p99/max ms", lat_ms(l)));
            }
            if let Some(c) = r.server_cpu_per_message_us {
                t.push(("server CPU per message", format!("{c:.1} µs")));
            }
            t.push((
                "generator CPU",
                format!("{:.0} % of a core", r.generator_cpu_s * 100.0 / r.seconds),
            ));
            ("chat", serde_json::to_value(&r)?, t)
        }
        Scenario::Idle {
            connections,
            concurrency,
            settle,
            active_pairs,
            rate,
            active_secs,
            drain,
        } => {
            // The idle sockets, the active pairs' and a margin for everything else.
            let wanted = (connections + 2 * active_pairs + 64) as u64;
            if wanted > open_files {
                eprintln!(
                    "warning: {connections} idle connections and {active_pairs} active pairs need about {wanted} open files; this process may have {open_files}"
                );
            }
            let params = idle::IdleParams {
                connections,
                concurrency,
                settle: Duration::from_secs(settle),
                active_pairs,
                rate,
                active_secs,
                drain: Duration::from_secs(drain),
            };
            let r = idle::run(&target, &accounts, &params, pid).await?;
            let mut t = vec![
                ("connections", r.connections.to_string()),
                ("login time", format!("{:.1} s", r.login_seconds)),
            ];
            if let (Some(b), Some(a), Some(per), Some(m)) = (
                r.rss_before_kib,
                r.rss_after_kib,
                r.rss_per_connection_kib,
                r.projected_gib_per_million,
            ) {
                t.push(("server RSS before/after", format!("{b} / {a} KiB")));
                t.push(("RSS per idle connection", format!("{per:.1} KiB")));
                t.push(("projected for 1M connections", format!("{m:.1} GiB")));
            }
            if let Some(a) = &r.active {
                t.push(("active pairs", format!("{} at {} msg/s", a.pairs, a.rate)));
                t.push((
                    "active sent/delivered/lost",
                    format!("{} / {} / {}", a.sent, a.delivered, a.lost),
                ));
                t.push(("active latency p50/p90/p99/max ms", lat_ms(&a.latency)));
            }
            ("idle", serde_json::to_value(&r)?, t)
        }
        Scenario::Muc {
            occupants,
            senders,
            rate,
            messages,
            window,
            room,
            join_concurrency,
            drain,
        } => {
            let params = muc::MucParams {
                room,
                occupants,
                senders,
                rate,
                messages,
                window,
                join_concurrency,
                drain: Duration::from_secs(drain),
            };
            let r = muc::run(&target, &accounts, &params, pid).await?;
            let mut t = vec![
                ("room", r.room.clone()),
                (
                    "occupants / senders",
                    format!("{} / {}", r.occupants, r.senders),
                ),
                (
                    "rate",
                    if rate == 0 {
                        format!("saturation (window {window} per sender)")
                    } else {
                        format!("{rate} msg/s")
                    },
                ),
                (
                    "entered",
                    format!(
                        "{:.1} s{}",
                        r.join_seconds,
                        if r.created { " (created the room)" } else { "" }
                    ),
                ),
            ];
            if let Some(c) = r.server_cpu_per_join_ms {
                t.push(("server CPU per entry", format!("{c:.2} ms")));
            }
            t.extend([
                ("sent", r.sent.to_string()),
                ("deliveries expected", r.expected.to_string()),
                ("delivered", r.delivered.to_string()),
                ("lost", r.lost.to_string()),
                ("messages/s", format!("{:.0}", r.messages_per_s)),
                ("deliveries/s", format!("{:.0}", r.deliveries_per_s)),
                ("latency p50/p90/p99/max ms", lat_ms(&r.latency)),
            ]);
            if let (Some(d), Some(m), Some(s)) = (
                r.server_cpu_per_delivery_us,
                r.server_cpu_per_message_us,
                r.server,
            ) {
                t.push(("server CPU per delivery", format!("{d:.2} µs")));
                t.push(("server CPU per message", format!("{m:.0} µs")));
                t.push((
                    "server CPU",
                    format!("{:.0} % of a core", s.cpu_s * 100.0 / r.seconds),
                ));
                t.push((
                    "server RSS before/after",
                    format!("{} / {} KiB", s.rss_before_kib, s.rss_after_kib),
                ));
            }
            t.push((
                "generator CPU",
                format!("{:.0} % of a core", r.generator_cpu_s * 100.0 / r.seconds),
            ));
            ("muc", serde_json::to_value(&r)?, t)
        }
        Scenario::Neerc {
            halls,
            board,
            queries,
            changes,
            rate,
            window,
            small,
            room,
            join_concurrency,
            drain,
        } => {
            let params = neerc::NeercParams {
                room,
                halls,
                board,
                queries,
                changes,
                rate,
                window,
                small,
                join_concurrency,
                drain: Duration::from_secs(drain),
            };
            let r = neerc::run(&target, &accounts, &params, pid).await?;
            let mut t = vec![
                ("room", r.room.clone()),
                (
                    "halls / occupants",
                    format!("{} / {}", r.halls, r.occupants),
                ),
                ("set-up", format!("{:.1} s", r.setup_seconds)),
                (
                    "board",
                    format!(
                        "{} tasks × {} halls, {} KiB",
                        r.board_tasks,
                        r.halls,
                        r.board_bytes / 1024
                    ),
                ),
                ("board query p50/p90/p99/max ms", lat_ms(&r.board)),
                (
                    "statuses per broadcast",
                    r.statuses_per_broadcast.to_string(),
                ),
                (
                    "rate",
                    if rate == 0 {
                        format!("saturation (window {window})")
                    } else {
                        format!("{rate} changes/s, one at a time")
                    },
                ),
                (
                    "changes sent / completed",
                    format!("{} / {}", r.changes, r.completed),
                ),
                ("deliveries lost", r.lost_deliveries.to_string()),
                ("changes/s", format!("{:.1}", r.changes_per_s)),
                ("deliveries/s", format!("{:.0}", r.deliveries_per_s)),
                (
                    "change → last delivery p50/p90/p99/max ms",
                    lat_ms(&r.latency),
                ),
            ];
            if let (Some(c), Some(d), Some(s)) = (
                r.server_cpu_per_change_ms,
                r.server_cpu_per_delivery_us,
                r.server,
            ) {
                t.push(("server CPU per change", format!("{c:.2} ms")));
                t.push(("server CPU per delivery", format!("{d:.2} µs")));
                t.push((
                    "server CPU",
                    format!("{:.0} % of a core", s.cpu_s * 100.0 / r.seconds),
                ));
                t.push((
                    "server RSS before/after",
                    format!("{} / {} KiB", s.rss_before_kib, s.rss_after_kib),
                ));
            }
            t.push((
                "generator CPU",
                format!("{:.0} % of a core", r.generator_cpu_s * 100.0 / r.seconds),
            ));
            ("neerc", serde_json::to_value(&r)?, t)
        }
    };
    let how = match (name, target.tls) {
        ("handshake", m) => format!("TLS: {}", m.name()),
        (_, TlsMode::None) => target.mechanism.name().to_owned(),
        (_, m) => format!("{}, TLS: {}", target.mechanism.name(), m.name()),
    };
    println!("{} — {name} ({how})", cli.label);
    let w = table.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in &table {
        println!("  {k:<w$}  {v}");
    }
    if let Some(path) = cli.json {
        let doc = serde_json::json!({
            "server": cli.label,
            "scenario": name,
            "mechanism": target.mechanism,
            "tls": target.tls,
            "report": report,
        });
        let text = serde_json::to_string_pretty(&doc)?;
        if path == "-" {
            println!("{text}");
        } else {
            std::fs::write(&path, text + "\n").with_context(|| format!("writing {path}"))?;
        }
    }
    Ok(())
}

fn lat_ms(l: &rookery_bench::Latency) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "{:.2} / {:.2} / {:.2} / {:.2}",
        ms(l.p50_us),
        ms(l.p90_us),
        ms(l.p99_us),
        ms(l.max_us)
    )
}
