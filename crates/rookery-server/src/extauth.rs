//! External authentication: ejabberd's extauth protocol, the account backend
//! of `auth.backend = "external"`.
//!
//! A program (`auth.extauth_program`) runs as a child process and answers one request at
//! a time. The framing is Erlang's `{packet, 2}`: a request is a 2-byte big-endian length
//! and that many bytes of UTF-8 text, `op:User:Server[:Password]`; an answer is the length
//! `2` and a 2-byte big-endian result, `1` for yes/done and anything else for no/failed.
//! The password is the last field and may contain `:`; user and server never do (nodeprep
//! forbids it, and [`Request::encode`] refuses them).
//!
//! [`ExtAuth`] runs a pool of `auth.extauth_pool_size` copies, each driven by its own task
//! that takes requests from one shared queue, so a request goes to whichever copy is
//! free. A copy that does not answer within `auth.extauth_timeout_secs` is killed; one
//! that exits, cannot be started, or answers garbage is replaced. Each replacement waits a
//! little longer while the failures go on ([`restart_delay`]), and while no copy is
//! running requests fail at once with [`ExtAuthError::Unavailable`], so logins fail cleanly
//! (SASL `temporary-auth-failure`) instead of piling up.

use std::collections::HashMap;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Longest request text the 2-byte length can announce.
pub const MAX_REQUEST: usize = u16::MAX as usize;

/// How long an `isuser` answer is reused: yes for a while, no only briefly (the program may
/// learn of a new account from elsewhere).
const KNOWN_USER_TTL: Duration = Duration::from_secs(60);
const UNKNOWN_USER_TTL: Duration = Duration::from_secs(5);
/// Cached `isuser` answers kept at most; the cache is emptied when it grows past this.
const CACHE_LIMIT: usize = 10_000;
/// Requests waiting for a free copy, at most.
const QUEUE: usize = 1024;

/// Why a request got no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExtAuthError {
    /// The request cannot be framed: it is longer than 65535 bytes.
    #[error("the request is {0} bytes long; the protocol allows at most 65535")]
    TooLong(usize),
    /// A user or server name that contains `:` or is empty.
    #[error("{0:?} cannot be sent to the authentication program")]
    BadName(String),
    /// No copy of the program is running, or it failed during the request.
    #[error("the authentication program is unavailable: {0}")]
    Unavailable(String),
    /// The program did not answer in time (it is being restarted).
    #[error("the authentication program did not answer within {0} s")]
    Timeout(u64),
}

/// One request of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `auth:User:Server:Password` — is the password right?
    Auth {
        user: &'a str,
        server: &'a str,
        password: &'a str,
    },
    /// `isuser:User:Server` — does the account exist?
    IsUser { user: &'a str, server: &'a str },
    /// `setpass:User:Server:Password` — set the password.
    SetPass {
        user: &'a str,
        server: &'a str,
        password: &'a str,
    },
    /// `tryregister:User:Server:Password` — create the account.
    TryRegister {
        user: &'a str,
        server: &'a str,
        password: &'a str,
    },
    /// `removeuser:User:Server` — delete the account.
    RemoveUser { user: &'a str, server: &'a str },
    /// `removeuser3:User:Server:Password` — delete the account if the password is right.
    RemoveUser3 {
        user: &'a str,
        server: &'a str,
        password: &'a str,
    },
}

impl<'a> Request<'a> {
    /// The operation's name on the wire.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Auth { .. } => "auth",
            Request::IsUser { .. } => "isuser",
            Request::SetPass { .. } => "setpass",
            Request::TryRegister { .. } => "tryregister",
            Request::RemoveUser { .. } => "removeuser",
            Request::RemoveUser3 { .. } => "removeuser3",
        }
    }

    fn fields(&self) -> (&'a str, &'a str, Option<&'a str>) {
        match *self {
            Request::Auth {
                user,
                server,
                password,
            }
            | Request::SetPass {
                user,
                server,
                password,
            }
            | Request::TryRegister {
                user,
                server,
                password,
            }
            | Request::RemoveUser3 {
                user,
                server,
                password,
            } => (user, server, Some(password)),
            Request::IsUser { user, server } | Request::RemoveUser { user, server } => {
                (user, server, None)
            }
        }
    }

    /// What the request is about, for logs: the operation and the account, never the
    /// password.
    pub fn describe(&self) -> String {
        let (user, server, _) = self.fields();
        format!("{} {user}@{server}", self.op())
    }

    /// The framed request: the 2-byte big-endian length, then the text.
    pub fn encode(&self) -> Result<Vec<u8>, ExtAuthError> {
        let (user, server, password) = self.fields();
        for name in [user, server] {
            if name.is_empty() || name.contains(':') {
                return Err(ExtAuthError::BadName(name.to_owned()));
            }
        }
        let mut text = format!("{}:{user}:{server}", self.op());
        if let Some(password) = password {
            text.push(':');
            text.push_str(password);
        }
        frame(text.as_bytes())
    }
}

/// `text` with its 2-byte big-endian length in front.
pub fn frame(text: &[u8]) -> Result<Vec<u8>, ExtAuthError> {
    let len = u16::try_from(text.len()).map_err(|_| ExtAuthError::TooLong(text.len()))?;
    let mut out = Vec::with_capacity(2 + text.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text);
    Ok(out)
}

/// The result in an answer: `Ok(true)` for 1, `Ok(false)` for any other value, and an
/// error when the announced length is not 2 (the stream can no longer be trusted).
pub fn decode_answer(answer: [u8; 4]) -> std::io::Result<bool> {
    let len = u16::from_be_bytes([answer[0], answer[1]]);
    if len != 2 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("answered with length {len}; the protocol's answers have length 2"),
        ));
    }
    Ok(u16::from_be_bytes([answer[2], answer[3]]) == 1)
}

/// Send one framed request and read its answer.
pub async fn exchange<R, W>(reader: &mut R, writer: &mut W, request: &[u8]) -> std::io::Result<bool>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    writer.write_all(request).await?;
    writer.flush().await?;
    let mut answer = [0u8; 4];
    reader.read_exact(&mut answer).await?;
    decode_answer(answer)
}

/// How long to wait before starting a copy again after `failures` failures in a row:
/// 100 ms, doubling up to 30 s.
pub fn restart_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    Duration::from_millis(100u64 << exp).min(Duration::from_secs(30))
}

/// A request waiting for a copy of the program.
struct Job {
    frame: Vec<u8>,
    what: String,
    reply: oneshot::Sender<Result<bool, ExtAuthError>>,
}

/// What the pool's tasks share.
struct Shared {
    program: Vec<String>,
    timeout: Duration,
    size: usize,
    /// Copies running or starting, not waiting out a restart delay.
    available: AtomicUsize,
    /// Ends every task (and so every copy): the pool was dropped or the server stops.
    stop: CancellationToken,
}

/// A pool of copies of the external authentication program. Cheap to share behind an
/// `Arc`; dropping it stops the copies.
pub struct ExtAuth {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Job>,
    /// The queue's other end, until [`ExtAuth::start`] hands it to the tasks.
    jobs: Mutex<Option<mpsc::Receiver<Job>>>,
    started: AtomicBool,
    /// `isuser` answers: (server, user) → (when asked, answer).
    known: Mutex<HashMap<(String, String), (Instant, bool)>>,
    /// Bumped by every change to an account: an answer asked for before a change is not
    /// remembered (it may say the account exists after it was removed).
    changes: std::sync::atomic::AtomicU64,
    /// `isuser` requests in the pool at once: one copy fewer than the pool, so that
    /// lookups (which remote servers can cause, for any name) never hold every copy and
    /// logins always find one.
    lookups: tokio::sync::Semaphore,
}

impl std::fmt::Debug for ExtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtAuth")
            .field("program", &self.shared.program)
            .field("size", &self.shared.size)
            .field("timeout", &self.shared.timeout)
            .finish()
    }
}

impl Drop for ExtAuth {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

impl ExtAuth {
    /// A pool of `size` copies of `program` (the program, then its arguments), each given
    /// `timeout` per request. Nothing runs until [`ExtAuth::start`] or the first request.
    pub fn new(program: Vec<String>, size: usize, timeout: Duration) -> ExtAuth {
        let size = size.max(1);
        let (queue, jobs) = mpsc::channel(QUEUE);
        ExtAuth {
            shared: Arc::new(Shared {
                program,
                timeout,
                size,
                available: AtomicUsize::new(size),
                stop: CancellationToken::new(),
            }),
            queue,
            jobs: Mutex::new(Some(jobs)),
            started: AtomicBool::new(false),
            known: Mutex::new(HashMap::new()),
            changes: std::sync::atomic::AtomicU64::new(0),
            lookups: tokio::sync::Semaphore::new(size.saturating_sub(1).max(1)),
        }
    }

    /// The pool `[auth]` describes.
    pub fn from_config(auth: &rookery_config::Auth) -> ExtAuth {
        ExtAuth::new(
            auth.extauth_program.clone(),
            auth.extauth_pool_size,
            Duration::from_secs(auth.extauth_timeout_secs),
        )
    }

    /// Start the copies (once; later calls do nothing). Needs a Tokio runtime.
    pub fn start(&self) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(jobs) = self.jobs.lock().unwrap().take() else {
            return;
        };
        let jobs = Arc::new(tokio::sync::Mutex::new(jobs));
        for copy in 0..self.shared.size {
            tokio::spawn(run_copy(copy, self.shared.clone(), jobs.clone()));
        }
    }

    /// Stop the copies when `token` is cancelled (the server shuts down), not only when
    /// the pool is dropped.
    pub fn stop_on(&self, token: CancellationToken) {
        let stop = self.shared.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = token.cancelled() => stop.cancel(),
                _ = stop.cancelled() => {}
            }
        });
    }

    /// `auth`: whether the password is right. A yes also says that the user exists.
    pub async fn auth(
        &self,
        user: &str,
        server: &str,
        password: &str,
    ) -> Result<bool, ExtAuthError> {
        let asked = self.generation();
        let ok = self
            .call(Request::Auth {
                user,
                server,
                password,
            })
            .await?;
        if ok {
            self.remember(user, server, true, asked);
        }
        Ok(ok)
    }

    /// `isuser`: whether the account exists. Answers are reused for a short while.
    pub async fn is_user(&self, user: &str, server: &str) -> Result<bool, ExtAuthError> {
        let key = (server.to_owned(), user.to_owned());
        if let Some(&(when, known)) = self.known.lock().unwrap().get(&key) {
            let ttl = if known {
                KNOWN_USER_TTL
            } else {
                UNKNOWN_USER_TTL
            };
            if when.elapsed() < ttl {
                return Ok(known);
            }
        }
        let _turn = self.lookups.acquire().await;
        let asked = self.generation();
        let known = self.call(Request::IsUser { user, server }).await?;
        self.remember(user, server, known, asked);
        Ok(known)
    }

    /// `setpass`: set the password.
    pub async fn set_pass(
        &self,
        user: &str,
        server: &str,
        password: &str,
    ) -> Result<bool, ExtAuthError> {
        self.forget(user, server);
        self.call(Request::SetPass {
            user,
            server,
            password,
        })
        .await
    }

    /// `tryregister`: create the account.
    pub async fn try_register(
        &self,
        user: &str,
        server: &str,
        password: &str,
    ) -> Result<bool, ExtAuthError> {
        self.forget(user, server);
        let done = self
            .call(Request::TryRegister {
                user,
                server,
                password,
            })
            .await;
        self.forget(user, server);
        done
    }

    /// `removeuser`: delete the account.
    pub async fn remove_user(&self, user: &str, server: &str) -> Result<bool, ExtAuthError> {
        self.forget(user, server);
        let done = self.call(Request::RemoveUser { user, server }).await;
        self.forget(user, server);
        done
    }

    /// `removeuser3`: delete the account if the password is right.
    pub async fn remove_user3(
        &self,
        user: &str,
        server: &str,
        password: &str,
    ) -> Result<bool, ExtAuthError> {
        self.forget(user, server);
        let done = self
            .call(Request::RemoveUser3 {
                user,
                server,
                password,
            })
            .await;
        self.forget(user, server);
        done
    }

    fn generation(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Keep an answer asked for at generation `asked`, unless an account changed since.
    fn remember(&self, user: &str, server: &str, known: bool, asked: u64) {
        let mut cache = self.known.lock().unwrap();
        if self.generation() != asked {
            return;
        }
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(
            (server.to_owned(), user.to_owned()),
            (Instant::now(), known),
        );
    }

    fn forget(&self, user: &str, server: &str) {
        let mut cache = self.known.lock().unwrap();
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        cache.remove(&(server.to_owned(), user.to_owned()));
    }

    /// Send one request to a free copy and wait for its answer.
    pub async fn call(&self, request: Request<'_>) -> Result<bool, ExtAuthError> {
        let frame = request.encode()?;
        self.start();
        if self.shared.stop.is_cancelled() {
            return Err(ExtAuthError::Unavailable("the server is stopping".into()));
        }
        if self.shared.available.load(Ordering::SeqCst) == 0 {
            return Err(ExtAuthError::Unavailable(
                "it failed and is being restarted".into(),
            ));
        }
        let (reply, answer) = oneshot::channel();
        let what = request.describe();
        let job = Job {
            frame,
            what: what.clone(),
            reply,
        };
        // Queueing behind busy copies plus one exchange; a copy that hangs is killed after
        // its own timeout, so this only bounds a long queue.
        let limit = self.shared.timeout * 2 + Duration::from_secs(1);
        let wait = async {
            self.queue
                .send(job)
                .await
                .map_err(|_| ExtAuthError::Unavailable("the pool has stopped".into()))?;
            answer
                .await
                .map_err(|_| ExtAuthError::Unavailable("the pool has stopped".into()))?
        };
        match tokio::time::timeout(limit, wait).await {
            Ok(result) => {
                tracing::debug!(request = %what, ?result, "external authentication");
                result
            }
            Err(_) => {
                tracing::warn!(request = %what, "no copy of the authentication program was free in time");
                Err(ExtAuthError::Timeout(limit.as_secs()))
            }
        }
    }
}

/// A running copy of the program.
struct Copy {
    child: Child,
    /// Kept from the start: the child forgets it once it has exited.
    pid: Option<u32>,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl Copy {
    fn spawn(program: &[String]) -> std::io::Result<Copy> {
        let Some((name, args)) = program.split_first() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "auth.extauth_program is empty",
            ));
        };
        let mut child = Command::new(name)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // The program's complaints go where the server's own do.
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("the program's pipes are missing"));
        };
        Ok(Copy {
            pid: child.id(),
            child,
            stdin,
            stdout,
        })
    }

    /// Kill the copy (if it still runs) and collect its exit status.
    async fn end(mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = self.child.start_kill();
        tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }
}

/// Why a copy stopped serving.
enum Ended {
    /// The pool stops.
    Stopped,
    /// It exited while waiting for a request.
    Exited,
    /// A request failed: what it was and why.
    Failed(String, String),
    /// A request got no answer in time.
    TimedOut(String),
}

/// One copy's life: start the program, serve requests, and start it again after a failure.
async fn run_copy(
    copy: usize,
    shared: Arc<Shared>,
    jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
) {
    let program = shared.program.join(" ");
    let mut failures = 0u32;
    loop {
        if shared.stop.is_cancelled() {
            return;
        }
        let mut proc = match Copy::spawn(&shared.program) {
            Ok(p) => p,
            Err(e) => {
                failures += 1;
                tracing::error!(%program, copy, error = %e, failures, restart_in = ?restart_delay(failures), "cannot start the external authentication program");
                if !pause(&shared, &jobs, failures).await {
                    return;
                }
                continue;
            }
        };
        tracing::info!(%program, copy, pid = ?proc.pid, "external authentication program started");
        let ended = serve(&shared, &jobs, &mut proc, &mut failures).await;
        let pid = proc.pid;
        let status = proc.end().await;
        let status = status.map_or_else(|| "unknown".to_owned(), |s| s.to_string());
        failures += 1;
        match ended {
            Ended::Stopped => return,
            Ended::Exited => {
                tracing::error!(%program, copy, ?pid, %status, failures, restart_in = ?restart_delay(failures), "the external authentication program exited; restarting it");
            }
            Ended::Failed(what, why) => {
                tracing::error!(%program, copy, ?pid, %status, request = %what, error = %why, failures, restart_in = ?restart_delay(failures), "the external authentication program failed; restarting it");
            }
            Ended::TimedOut(what) => {
                tracing::error!(%program, copy, ?pid, request = %what, timeout_secs = shared.timeout.as_secs(), failures, restart_in = ?restart_delay(failures), "the external authentication program did not answer in time; killed, restarting it");
            }
        }
        if !pause(&shared, &jobs, failures).await {
            return;
        }
    }
}

/// Serve requests with a running copy until it fails or the pool stops.
async fn serve(
    shared: &Shared,
    jobs: &tokio::sync::Mutex<mpsc::Receiver<Job>>,
    proc: &mut Copy,
    failures: &mut u32,
) -> Ended {
    loop {
        let job = tokio::select! {
            _ = shared.stop.cancelled() => return Ended::Stopped,
            _ = proc.child.wait() => return Ended::Exited,
            job = async { jobs.lock().await.recv().await } => match job {
                Some(job) => job,
                None => return Ended::Stopped,
            },
        };
        if job.reply.is_closed() {
            // Its caller gave up while it waited.
            continue;
        }
        let answer = tokio::time::timeout(
            shared.timeout,
            exchange(&mut proc.stdout, &mut proc.stdin, &job.frame),
        )
        .await;
        match answer {
            Ok(Ok(answer)) => {
                *failures = 0;
                let _ = job.reply.send(Ok(answer));
            }
            Ok(Err(e)) => {
                let why = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    "it closed its output (exited?)".to_owned()
                } else {
                    e.to_string()
                };
                let _ = job.reply.send(Err(ExtAuthError::Unavailable(why.clone())));
                return Ended::Failed(job.what, why);
            }
            Err(_) => {
                let _ = job
                    .reply
                    .send(Err(ExtAuthError::Timeout(shared.timeout.as_secs())));
                return Ended::TimedOut(job.what);
            }
        }
    }
}

/// Wait out the restart delay, counted as unavailable meanwhile; false when the pool
/// stops first. The last copy to fail also fails the requests still queued, which would
/// otherwise wait for the restart.
async fn pause(
    shared: &Shared,
    jobs: &tokio::sync::Mutex<mpsc::Receiver<Job>>,
    failures: u32,
) -> bool {
    if shared.available.fetch_sub(1, Ordering::SeqCst) == 1
        && let Ok(mut queue) = jobs.try_lock()
    {
        while let Ok(job) = queue.try_recv() {
            let why = "it failed and is being restarted".to_owned();
            let _ = job.reply.send(Err(ExtAuthError::Unavailable(why)));
        }
    }
    let go_on = tokio::select! {
        _ = tokio::time::sleep(restart_delay(failures)) => true,
        _ = shared.stop.cancelled() => false,
    };
    shared.available.fetch_add(1, Ordering::SeqCst);
    go_on
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_framed_with_a_big_endian_length() {
        let r = Request::Auth {
            user: "alice",
            server: "localhost",
            password: "a:b:c",
        };
        let framed = r.encode().unwrap();
        let text = b"auth:alice:localhost:a:b:c";
        assert_eq!(&framed[..2], &(text.len() as u16).to_be_bytes());
        assert_eq!(&framed[2..], text);
        assert_eq!(r.describe(), "auth alice@localhost", "no password in logs");

        let cases: [(Request<'_>, &str); 5] = [
            (
                Request::IsUser {
                    user: "bob",
                    server: "example.test",
                },
                "isuser:bob:example.test",
            ),
            (
                Request::SetPass {
                    user: "bob",
                    server: "h",
                    password: "",
                },
                "setpass:bob:h:",
            ),
            (
                Request::TryRegister {
                    user: "bob",
                    server: "h",
                    password: "p w",
                },
                "tryregister:bob:h:p w",
            ),
            (
                Request::RemoveUser {
                    user: "bob",
                    server: "h",
                },
                "removeuser:bob:h",
            ),
            (
                Request::RemoveUser3 {
                    user: "bob",
                    server: "h",
                    password: "x:",
                },
                "removeuser3:bob:h:x:",
            ),
        ];
        for (request, text) in cases {
            assert_eq!(request.encode().unwrap()[2..], *text.as_bytes());
        }
    }

    #[test]
    fn lengths_are_unsigned_up_to_65535() {
        // 0x8000 and more would be negative as a signed short.
        let long = vec![b'x'; 40_000];
        let framed = frame(&long).unwrap();
        assert_eq!(&framed[..2], &[0x9c, 0x40]);
        assert_eq!(frame(&vec![0; MAX_REQUEST]).unwrap()[..2], [0xff, 0xff]);
        assert_eq!(
            frame(&vec![0; MAX_REQUEST + 1]),
            Err(ExtAuthError::TooLong(MAX_REQUEST + 1))
        );
        let password = "p".repeat(MAX_REQUEST);
        let r = Request::Auth {
            user: "alice",
            server: "localhost",
            password: &password,
        };
        assert!(matches!(r.encode(), Err(ExtAuthError::TooLong(_))));
    }

    #[test]
    fn names_with_colons_are_refused() {
        for (user, server) in [("a:b", "h"), ("a", "h:5222"), ("", "h")] {
            let r = Request::IsUser { user, server };
            assert!(matches!(r.encode(), Err(ExtAuthError::BadName(_))), "{r:?}");
        }
    }

    #[test]
    fn answers_are_length_two_then_the_result() {
        assert!(decode_answer([0, 2, 0, 1]).unwrap());
        assert!(!decode_answer([0, 2, 0, 0]).unwrap());
        assert!(!decode_answer([0, 2, 0, 2]).unwrap(), "only 1 is success");
        assert!(!decode_answer([0, 2, 1, 1]).unwrap(), "257 is not 1");
        assert!(decode_answer([0, 3, 0, 1]).is_err());
        assert!(
            decode_answer([2, 0, 1, 0]).is_err(),
            "little-endian is wrong"
        );
    }

    #[test]
    fn restarts_back_off_up_to_thirty_seconds() {
        assert_eq!(restart_delay(1), Duration::from_millis(100));
        assert_eq!(restart_delay(2), Duration::from_millis(200));
        assert_eq!(restart_delay(5), Duration::from_millis(1600));
        assert_eq!(restart_delay(12), Duration::from_secs(30));
        assert_eq!(restart_delay(u32::MAX), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn an_exchange_writes_the_request_and_reads_the_answer() {
        let (mut server_side, mut program_side) = tokio::io::duplex(1024);
        let program = tokio::spawn(async move {
            let mut len = [0u8; 2];
            program_side.read_exact(&mut len).await.unwrap();
            let mut text = vec![0; u16::from_be_bytes(len) as usize];
            program_side.read_exact(&mut text).await.unwrap();
            program_side.write_all(&[0, 2, 0, 1]).await.unwrap();
            String::from_utf8(text).unwrap()
        });
        let request = Request::IsUser {
            user: "alice",
            server: "localhost",
        }
        .encode()
        .unwrap();
        let (mut r, mut w) = tokio::io::split(&mut server_side);
        assert!(exchange(&mut r, &mut w, &request).await.unwrap());
        assert_eq!(program.await.unwrap(), "isuser:alice:localhost");
    }

    #[tokio::test]
    async fn an_answer_cut_short_is_an_error() {
        let (mut server_side, mut program_side) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let _ = program_side.read(&mut buf).await;
            program_side.write_all(&[0, 2, 0]).await.unwrap();
            // Dropping the pipe ends the answer after three bytes.
        });
        let request = frame(b"isuser:a:b").unwrap();
        let (mut r, mut w) = tokio::io::split(&mut server_side);
        let err = exchange(&mut r, &mut w, &request).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    /// A program that takes 5 s over each `isuser` and answers `auth` at once.
    const SLOW_LOOKUPS: &str = r#"
import struct, sys, time
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    n = inp.read(2)
    if len(n) < 2:
        break
    request = inp.read(struct.unpack('>H', n)[0]).decode()
    if request.startswith('isuser:'):
        time.sleep(5)
    out.write(struct.pack('>HH', 2, 1))
    out.flush()
"#;

    #[tokio::test]
    async fn lookups_never_take_every_copy_so_logins_go_through() {
        let pool = Arc::new(ExtAuth::new(
            vec!["/usr/bin/python3".into(), "-c".into(), SLOW_LOOKUPS.into()],
            2,
            Duration::from_secs(10),
        ));
        pool.start();
        // A remote server asks about many unknown users at once.
        for i in 0..4 {
            let pool = pool.clone();
            tokio::spawn(async move { pool.is_user(&format!("nobody{i}"), "localhost").await });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let ok = pool.auth("alice", "localhost", "secret").await.unwrap();
        assert!(ok);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "a login waited {:?} behind lookups",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_unavailable_not_a_hang() {
        let pool = ExtAuth::new(
            vec!["/nonexistent/rookery-extauth".into()],
            2,
            Duration::from_secs(1),
        );
        let started = Instant::now();
        for _ in 0..3 {
            match pool.is_user("alice", "localhost").await {
                Err(ExtAuthError::Unavailable(_)) => {}
                other => panic!("expected unavailable, got {other:?}"),
            }
        }
        assert!(started.elapsed() < Duration::from_millis(500));
    }
}
