//! The server value every part shares, and its start and shutdown.

use crate::module::{Module, Registry};
use crate::router::Route;
use crate::sm::SessionManager;
use crate::tls::TlsSetup;
use anyhow::{Context, Result};
use dashmap::DashMap;
use rookery_config::Config;
use rookery_storage::Stores;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

struct Inner {
    config: Config,
    stores: Stores,
    registry: Registry,
    adhoc: crate::adhoc::Adhoc,
    sm: SessionManager,
    services: DashMap<String, Arc<dyn Route>>,
    tls: Option<TlsSetup>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    started: Instant,
    auth_failures: DashMap<IpAddr, (Instant, u32)>,
    /// Administrators: the configured ones plus those added at run time.
    admins: std::sync::RwLock<Vec<String>>,
    /// The administrators of the configuration file (last loaded), who always stay.
    configured_admins: std::sync::RwLock<Vec<String>>,
    /// Set when an administrator asks the server to stop or restart.
    exit: tokio::sync::watch::Sender<Option<Exit>>,
    /// The configuration file the server was started with, for `reload`.
    config_path: std::sync::Mutex<Option<PathBuf>>,
    stamps: crate::stamps::Stamps,
    /// Shared group contacts per user, for rosters and presence.
    groups: crate::modules::groups::Cache,
    /// Who checks passwords (`auth.backend`); see `accounts.rs`.
    auth: crate::accounts::AuthBackend,
    /// Server-to-server federation (`s2s/`).
    s2s: crate::s2s::S2s,
    /// Where stanzas for every domain that is not ours go instead of federation, in a
    /// process that is itself an external component (`neerc/external.rs`).
    uplink: std::sync::OnceLock<Arc<dyn Route>>,
}

/// How an administrator asked the server to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Shutdown,
    Restart,
}

/// A handle on the running server; cheap to clone.
#[derive(Clone)]
pub struct Server(Arc<Inner>);

/// Where a started server listens.
#[derive(Clone, Debug)]
pub struct Listening {
    pub c2s: Option<SocketAddr>,
    pub c2s_tls: Option<SocketAddr>,
    /// External components (XEP-0114); only when some are configured.
    pub component: Option<SocketAddr>,
    /// Server-to-server (federation); `None` when disabled.
    pub s2s: Option<SocketAddr>,
    pub admin_socket: Option<PathBuf>,
}

impl Server {
    /// Build a server over the given stores, with the built-in modules loaded
    /// (minus `modules.disabled`).
    pub fn new(config: Config, stores: Stores) -> Result<Server> {
        // A process that hosts no domain (an external component) needs no certificate.
        let tls = if config.hosts.is_empty() {
            None
        } else {
            Some(crate::tls::setup(&config)?)
        };
        let admins = std::sync::RwLock::new(config.admins.clone());
        let server = Server(Arc::new(Inner {
            admins,
            configured_admins: std::sync::RwLock::new(config.admins.clone()),
            exit: tokio::sync::watch::Sender::new(None),
            config_path: std::sync::Mutex::new(None),
            auth: crate::accounts::AuthBackend::from_config(&config),
            s2s: crate::s2s::S2s::new(&config, tls.as_ref().map(|t| t.certified.clone()))?,
            config,
            stores,
            registry: Registry::default(),
            adhoc: crate::adhoc::Adhoc::default(),
            sm: SessionManager::default(),
            services: DashMap::new(),
            tls,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            started: Instant::now(),
            auth_failures: DashMap::new(),
            stamps: Default::default(),
            groups: Default::default(),
            uplink: std::sync::OnceLock::new(),
        }));
        for module in crate::modules::builtin() {
            server.load_module(module.as_ref());
        }
        Ok(server)
    }

    /// Open the SQLite store in `data_dir` and build the server.
    pub async fn open(config: Config) -> Result<Server> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let db = config.data_dir.join("rookery.sqlite");
        let store = rookery_storage::sqlite::SqliteStore::open(&db)
            .await
            .with_context(|| format!("opening {}", db.display()))?;
        Server::new(config, store.into_stores())
    }

    /// Load one module unless the configuration disables it.
    pub fn load_module(&self, module: &dyn Module) {
        if self
            .0
            .config
            .modules
            .disabled
            .iter()
            .any(|d| d == module.name())
        {
            tracing::info!(module = module.name(), "module disabled by configuration");
            return;
        }
        self.0.registry.load(module, &self.0.config);
    }

    /// Bind the configured listeners and serve until [`Server::shutdown`].
    pub async fn start(&self) -> Result<Listening> {
        let cfg = &self.0.config;
        let mut listening = Listening {
            c2s: None,
            c2s_tls: None,
            component: None,
            s2s: None,
            admin_socket: None,
        };
        if let Some(addr) = cfg.listen.c2s {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding c2s on {addr}"))?;
            listening.c2s = Some(l.local_addr()?);
            self.spawn(crate::c2s::serve(self.clone(), l, false));
        }
        if let Some(addr) = cfg.listen.c2s_tls {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding c2s_tls on {addr}"))?;
            listening.c2s_tls = Some(l.local_addr()?);
            self.spawn(crate::c2s::serve(self.clone(), l, true));
        }
        if let Some(addr) = cfg.listen.component
            && !cfg.components.is_empty()
        {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the component listener on {addr}"))?;
            listening.component = Some(l.local_addr()?);
            self.spawn(crate::component::serve(self.clone(), l));
        }
        if let Some(addr) = cfg.listen.s2s {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding s2s on {addr}"))?;
            listening.s2s = Some(l.local_addr()?);
            self.spawn(crate::s2s::serve(self.clone(), l));
        }
        if let crate::accounts::AuthBackend::External(extauth) = &self.0.auth {
            extauth.start();
            extauth.stop_on(self.shutdown_token().clone());
        }
        let path = cfg.admin_socket_path();
        listening.admin_socket = Some(crate::admin::listen(self.clone(), &path)?);
        self.spawn(self.clone().write_stamps());
        self.registry()
            .fire(self, crate::module::Event::Started)
            .await;
        Ok(listening)
    }

    /// Run a task that shutdown waits for.
    pub fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.0.tracker.spawn(fut);
    }

    /// Run a task that hands every item of `rx` to `each`, in order, until shutdown, and
    /// then what is still queued (so that shutdown need not wait for its senders to go).
    pub(crate) fn spawn_queue<T, F, Fut>(&self, mut rx: tokio::sync::mpsc::Receiver<T>, mut each: F)
    where
        T: Send + 'static,
        F: FnMut(T) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let stop = self.shutdown_token().clone();
        self.spawn(async move {
            loop {
                let item = tokio::select! {
                    biased;
                    item = rx.recv() => item,
                    _ = stop.cancelled() => rx.try_recv().ok(),
                };
                let Some(item) = item else { break };
                each(item).await;
            }
        });
    }

    /// Accept connections on `listener` until shutdown, each handled by `handle` in a task
    /// of its own (`what` names the listener in logs).
    pub(crate) async fn accept_loop<F, Fut>(&self, listener: TcpListener, what: &str, handle: F)
    where
        F: Fn(Server, tokio::net::TcpStream, SocketAddr) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let shutdown = self.shutdown_token().clone();
        loop {
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, listener = what, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shutdown.cancelled() => return,
            };
            let _ = tcp.set_nodelay(true);
            self.spawn(handle(self.clone(), tcp, peer));
        }
    }

    /// End every session with `system-shutdown`, stop the listeners and wait for them.
    pub async fn shutdown(&self) {
        self.0.shutdown.cancel();
        // Bound sessions wait on their own signal, not on the token (a session that binds
        // after this sees the token when it starts).
        for s in self.sm().all() {
            s.close(crate::error::StreamError::shutdown());
        }
        self.0.tracker.close();
        if tokio::time::timeout(Duration::from_secs(10), self.0.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within 10 s");
        }
        // The sessions that just ended noted their last activity.
        self.flush_stamps().await;
        let _ = std::fs::remove_file(self.0.config.admin_socket_path());
    }

    pub(crate) fn stamps(&self) -> &crate::stamps::Stamps {
        &self.0.stamps
    }

    /// The shared group contacts cached for rosters and presence.
    pub fn groups_cache(&self) -> &crate::modules::groups::Cache {
        &self.0.groups
    }

    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.0.shutdown
    }
    pub fn config(&self) -> &Config {
        &self.0.config
    }
    pub fn stores(&self) -> &Stores {
        &self.0.stores
    }
    /// The account backend; account operations go through [`Server::accounts`].
    pub fn auth_backend(&self) -> &crate::accounts::AuthBackend {
        &self.0.auth
    }
    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }
    pub fn adhoc(&self) -> &crate::adhoc::Adhoc {
        &self.0.adhoc
    }
    pub fn sm(&self) -> &SessionManager {
        &self.0.sm
    }
    /// The S2S manager (federation).
    pub fn s2s(&self) -> &crate::s2s::S2s {
        &self.0.s2s
    }
    pub fn tls(&self) -> Option<&TlsSetup> {
        self.0.tls.as_ref()
    }
    pub fn uptime(&self) -> Duration {
        self.0.started.elapsed()
    }

    /// Whether `domain` is one of the hosted domains.
    pub fn serves_host(&self, domain: &str) -> bool {
        self.0.config.hosts.iter().any(|h| h == domain)
    }

    /// Give a service its own domain (ejabberd's `register_local_route`).
    pub fn register_service(&self, domain: &str, route: Arc<dyn Route>) {
        self.0.services.insert(domain.to_owned(), route);
    }
    /// Register a route unless the domain has one already (a component connecting).
    pub fn try_register_service(&self, domain: &str, route: Arc<dyn Route>) -> bool {
        match self.0.services.entry(domain.to_owned()) {
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(v) => {
                v.insert(route);
                true
            }
        }
    }
    pub fn unregister_service(&self, domain: &str) {
        self.0.services.remove(domain);
    }
    pub fn service(&self, domain: &str) -> Option<Arc<dyn Route>> {
        self.0.services.get(domain).map(|r| r.clone())
    }

    /// Send everything for domains that are not ours (nor our services') through `route`
    /// instead of federation: the stream of a process running as an external component.
    pub fn set_uplink(&self, route: Arc<dyn Route>) {
        let _ = self.0.uplink.set(route);
    }
    pub(crate) fn uplink(&self) -> Option<&Arc<dyn Route>> {
        self.0.uplink.get()
    }

    /// Whether `jid` (a bare JID string) is an administrator.
    pub fn is_admin(&self, bare: &str) -> bool {
        self.0.admins.read().unwrap().iter().any(|a| a == bare)
    }

    /// The administrators, sorted.
    pub fn admins(&self) -> Vec<String> {
        let mut v = self.0.admins.read().unwrap().clone();
        v.sort();
        v.dedup();
        v
    }

    /// Replace the administrators (the configured ones always stay).
    pub fn set_admins(&self, mut admins: Vec<String>) {
        admins.extend(self.configured_admins());
        admins.sort();
        admins.dedup();
        *self.0.admins.write().unwrap() = admins;
    }

    /// The administrators listed in the configuration file.
    pub fn configured_admins(&self) -> Vec<String> {
        self.0.configured_admins.read().unwrap().clone()
    }

    /// A reloaded configuration's administrators: those dropped from the file stop being
    /// administrators, new ones start.
    pub fn set_configured_admins(&self, admins: Vec<String>) {
        let old = std::mem::replace(&mut *self.0.configured_admins.write().unwrap(), admins);
        let mut current = self.admins();
        current.retain(|a| !old.contains(a));
        self.set_admins(current);
    }

    /// Ask whoever runs the server to stop it or restart it.
    pub fn request_exit(&self, exit: Exit) {
        self.0.exit.send_replace(Some(exit));
    }

    /// Wait until an administrator asks the server to stop or restart.
    pub async fn exit_requested(&self) -> Exit {
        let mut rx = self.0.exit.subscribe();
        loop {
            if let Some(e) = *rx.borrow_and_update() {
                return e;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Remember the configuration file, for `reload`.
    pub fn set_config_path(&self, path: Option<PathBuf>) {
        *self.0.config_path.lock().unwrap() = path;
    }

    pub fn config_path(&self) -> Option<PathBuf> {
        self.0.config_path.lock().unwrap().clone()
    }

    /// Count a failed authentication from `ip`; true when the address is over its limit.
    pub fn auth_failed(&self, ip: IpAddr) -> bool {
        let limit = self.0.config.limits.auth_failures_per_minute;
        let now = Instant::now();
        let mut e = self.0.auth_failures.entry(ip).or_insert((now, 0));
        if now.duration_since(e.0) > Duration::from_secs(60) {
            *e = (now, 0);
        }
        e.1 += 1;
        e.1 > limit
    }

    /// Whether `ip` may try to authenticate now.
    pub fn auth_allowed(&self, ip: IpAddr) -> bool {
        let limit = self.0.config.limits.auth_failures_per_minute;
        match self.0.auth_failures.get(&ip) {
            Some(e) => e.0.elapsed() > Duration::from_secs(60) || e.1 < limit,
            None => true,
        }
    }
}

impl Server {
    /// Domains of the services with their own route, sorted.
    pub fn service_domains(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.services.iter().map(|e| e.key().clone()).collect();
        v.sort();
        v
    }
}
