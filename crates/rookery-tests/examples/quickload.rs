//! A quick measurement against a running `rookery serve` (not the load tool of the
//! benchmarks, which comes later): idle connections and their memory, and 1:1 message
//! throughput with the server's CPU time per message. Loopback only, bounded in count.
//!
//!   quickload prepare DATA_DIR N            create u0..uN-1@localhost (password "pw")
//!   quickload run C2S_ADDR SERVER_PID N MSGS
//!
//! The server must allow plaintext on loopback (`auth.allow_plaintext_on_loopback`).

use rookery_client::{Client, ClientConfig, Security};
use std::time::{Duration, Instant};

fn proc_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// utime + stime of a process, in clock ticks (100 per second on Linux).
fn proc_cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn config(addr: std::net::SocketAddr, user: &str) -> ClientConfig {
    let mut c = ClientConfig::new(addr, &format!("{user}@localhost"), "pw");
    c.security = Security::Plain;
    c.mechanism = Some("SCRAM-SHA-256".into());
    c.timeout = Duration::from_secs(30);
    c
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("prepare") => {
            let dir = std::path::PathBuf::from(&args[2]);
            let n: usize = args[3].parse().unwrap();
            std::fs::create_dir_all(&dir).unwrap();
            let store = rookery_storage::sqlite::SqliteStore::open(&dir.join("rookery.sqlite"))
                .await
                .unwrap();
            let stores = store.into_stores();
            let creds = rookery_server::accounts::credentials("pw", 4096).unwrap();
            for i in 0..n {
                stores
                    .accounts
                    .create_account("localhost", &format!("u{i}"), &creds)
                    .await
                    .unwrap();
            }
            println!("created {n} accounts");
        }
        Some("run") => {
            let addr = args[2].parse().unwrap();
            let pid: u32 = args[3].parse().unwrap();
            let n: usize = args[4].parse().unwrap();
            let msgs: usize = args[5].parse().unwrap();
            run(addr, pid, n, msgs).await;
        }
        _ => eprintln!("usage: quickload prepare DIR N | run ADDR PID N MSGS"),
    }
}

async fn run(addr: std::net::SocketAddr, pid: u32, n: usize, msgs: usize) {
    // Idle authenticated connections.
    let rss0 = proc_rss_kib(pid);
    let cpu0 = proc_cpu_ticks(pid);
    let t0 = Instant::now();
    let mut clients = Vec::with_capacity(n);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 2..n {
        tasks.spawn(async move {
            Client::connect(config(addr, &format!("u{i}")))
                .await
                .unwrap()
        });
        if tasks.len() >= 64 {
            clients.push(tasks.join_next().await.unwrap().unwrap());
        }
    }
    while let Some(c) = tasks.join_next().await {
        clients.push(c.unwrap());
    }
    let logins = clients.len();
    let login_secs = t0.elapsed().as_secs_f64();
    let login_cpu = proc_cpu_ticks(pid) - cpu0;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss1 = proc_rss_kib(pid);
    println!(
        "logins: {logins} in {login_secs:.2} s ({:.0}/s); server CPU per SCRAM login: {:.2} ms",
        logins as f64 / login_secs,
        login_cpu as f64 * 10.0 / logins as f64
    );
    println!(
        "idle connections: {logins}; server RSS {rss0} KiB -> {rss1} KiB; {:.1} KiB per connection",
        (rss1 - rss0) as f64 / logins as f64
    );

    // 1:1 throughput: u0 sends MSGS messages to u1, which counts them.
    let mut sender = Client::connect(config(addr, "u0")).await.unwrap();
    let mut receiver = Client::connect(config(addr, "u1")).await.unwrap();
    receiver.send_presence().await.unwrap();
    receiver.recv().await.unwrap(); // own presence
    let cpu0 = proc_cpu_ticks(pid);
    let t0 = Instant::now();
    let counter = tokio::spawn(async move {
        let mut got = 0;
        while got < msgs {
            let m = receiver.recv().await.unwrap();
            if m.name() == "message" {
                got += 1;
            }
        }
        got
    });
    for i in 0..msgs {
        sender
            .send_message("u1@localhost", &format!("message number {i}"))
            .await
            .unwrap();
    }
    let got = counter.await.unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let cpu = proc_cpu_ticks(pid) - cpu0;
    println!(
        "messages: {got} delivered in {secs:.2} s ({:.0}/s); server CPU per delivered message: {:.1} µs",
        got as f64 / secs,
        cpu as f64 * 10_000.0 / got as f64
    );
    drop(clients);
}
