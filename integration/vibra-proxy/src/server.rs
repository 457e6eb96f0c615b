//! The Pingora side (feature `pingora`): the [`ProxyHttp`] implementation whose
//! `upstream_peer` asks the [`Router`], the health-check background service, and [`run`], the
//! whole `vibra-proxy` process.
//!
//! Must never decide anything itself: every routing decision is [`Router::route`].

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::prelude::{HttpPeer, Opt};
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{Server, ShutdownWatch};
use pingora_core::services::background::{BackgroundService, background_service};
use pingora_core::{Error, ErrorType, Result};
use pingora_load_balancing::health_check::TcpHealthCheck;
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::{Backend, Backends, LoadBalancer, discovery};
use pingora_proxy::{ProxyHttp, Session, http_proxy_service};

use crate::{Active, Args, ProxyError, Router};

/// Connect timeout of a health check: below the shortest period, so a check never overlaps
/// the next.
const HEALTH_CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

/// The proxy: back end `s` of the command line is `peers[s]`.
///
/// ```no_run
/// use std::sync::Arc;
/// use vibra_proxy::{Policy, Router, server::VibraProxy};
/// let router = Arc::new(Router::new(1, 1, vibra_hash::HashKind::Fast, Policy::UrlHash)?);
/// let proxy = VibraProxy::new(router, vec!["127.0.0.1:9001".parse().unwrap()]);
/// # Ok::<(), vibra_proxy::ProxyError>(())
/// ```
#[derive(Debug)]
pub struct VibraProxy {
    router: Arc<Router>,
    peers: Vec<SocketAddr>,
}

impl VibraProxy {
    /// A proxy routing with `router` over `peers` (one per router server, in order).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibra_proxy::{Policy, Router, server::VibraProxy};
    /// let router = Arc::new(Router::new(2, 1, vibra_hash::HashKind::Fast, Policy::LeastConn)?);
    /// let peers = vec!["127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap()];
    /// let _proxy = VibraProxy::new(router, peers);
    /// # Ok::<(), vibra_proxy::ProxyError>(())
    /// ```
    pub fn new(router: Arc<Router>, peers: Vec<SocketAddr>) -> Self {
        VibraProxy { router, peers }
    }
}

/// Per-request state: the request's place in its server's active count, held from
/// `upstream_peer` until the request ends (dropped with the context on every path).
///
/// ```
/// let state = vibra_proxy::server::RequestState::default(); // what `new_ctx` returns
/// # let _ = state;
/// ```
#[derive(Debug, Default)]
pub struct RequestState {
    active: Option<Active>,
}

#[async_trait]
impl ProxyHttp for VibraProxy {
    type CTX = RequestState;

    fn new_ctx(&self) -> RequestState {
        RequestState::default()
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestState,
    ) -> Result<Box<HttpPeer>> {
        // A retry gives back the failed attempt's count before choosing again.
        ctx.active = None;
        let active = self
            .router
            .route(session.req_header().raw_path())
            .map_err(|e| Error::explain(ErrorType::HTTPStatus(503), e.to_string()))?;
        let peer = HttpPeer::new(self.peers[active.server() as usize], false, String::new());
        ctx.active = Some(active);
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestState,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Failure accounting (SPEC 11): a back end that refuses a connection is down until
        // its next successful health check; the request is retried on the URL's next server.
        if let Some(active) = ctx.active.take() {
            self.router.set_up(active.server(), false);
        }
        e.set_retry(true);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        _ctx: &mut RequestState,
        client_reused: bool,
    ) -> Box<Error> {
        // Pingora's default policy, plus one case: a request that could not even be written
        // to a reused keep-alive connection (the back end closed it, e.g. it just died) never
        // reached the back end, so an idempotent one is retried, which routes it again.
        let mut e = e.more_context(format!("Peer: {peer}"));
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else if client_reused && e.etype() == &ErrorType::WriteError {
            e.set_retry(true);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestState) {
        if let Some(e) = e {
            let target = String::from_utf8_lossy(session.req_header().raw_path());
            log_error(&format!("{target}: {e}"));
        }
        ctx.active = None;
    }
}

/// Health checks: Pingora's TCP check over every back end each period, one failure marks a
/// server down and one success up, written into the router's health view.
struct HealthCheck {
    router: Arc<Router>,
    backends: Backends,
    /// Back end `s` of the command line.
    order: Vec<Backend>,
    period: Duration,
}

impl HealthCheck {
    fn new(router: Arc<Router>, peers: &[SocketAddr], period: Duration) -> Result<Self> {
        let order = peers
            .iter()
            .map(|a| Backend::new(&a.to_string()))
            .collect::<Result<Vec<_>>>()?;
        let set: BTreeSet<Backend> = order.iter().cloned().collect();
        let mut backends = Backends::new(discovery::Static::new(set));
        let mut check = TcpHealthCheck::new();
        check.peer_template.options.connection_timeout = Some(HEALTH_CONNECT_TIMEOUT);
        check.consecutive_failure = 1;
        check.consecutive_success = 1;
        backends.set_health_check(check);
        Ok(HealthCheck {
            router,
            backends,
            order,
            period,
        })
    }

    async fn check_once(&self) {
        self.backends.run_health_check(true).await;
        for (s, b) in self.order.iter().enumerate() {
            self.router.set_up(s as u32, self.backends.ready(b));
        }
    }
}

#[async_trait]
impl BackgroundService for HealthCheck {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if let Err(e) = self.backends.update(|_| {}).await {
            log_error(&format!("health checks disabled: back end list: {e}"));
            return;
        }
        let mut tick = tokio::time::interval(self.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.check_once().await,
                _ = shutdown.changed() => return,
            }
        }
    }
}

fn log_error(message: &str) {
    eprintln!("vibra-proxy: {message}");
}

/// Runs `vibra-proxy` in the foreground until SIGTERM (graceful, 1 s grace) or SIGINT (fast).
///
/// # Errors
/// Bad arguments ([`Args::router`], [`Args::backend_addrs`]) before anything starts; a
/// listen address Pingora cannot bind makes the process exit non-zero from inside Pingora.
///
/// ```no_run
/// use clap::Parser;
/// let args = vibra_proxy::Args::parse();
/// vibra_proxy::server::run(&args)?;
/// # Ok::<(), vibra_proxy::ProxyError>(())
/// ```
pub fn run(args: &Args) -> Result<(), ProxyError> {
    let router = Arc::new(args.router()?);
    let peers = args.backend_addrs()?;
    let health =
        HealthCheck::new(Arc::clone(&router), &peers, args.health_interval()).map_err(|e| {
            ProxyError::BadBackend {
                backend: args.backends.join(" "),
                reason: e.to_string(),
            }
        })?;

    let mut server = server(args);
    let mut proxy = http_proxy_service(
        &server.configuration,
        VibraProxy::new(Arc::clone(&router), peers),
    );
    proxy.add_tcp(&args.listen);
    server.add_service(proxy);
    server.add_service(background_service("vibra health checks", health));
    server.run_forever()
}

/// The Pingora server both proxies run in: `--threads` workers, SIGTERM with no grace period
/// and a 1 s limit.
fn server(args: &Args) -> Server {
    let conf = ServerConf {
        threads: usize::try_from(args.threads).unwrap_or(1),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None::<Opt>, conf);
    server.bootstrap();
    server
}

/// Pingora's own round-robin proxy (`LoadBalancer<RoundRobin>` with its TCP health check every
/// `--health-interval-ms`), in the same server set-up as [`run`]: the baseline of the overhead
/// benchmark (`benches/overhead.rs`). `--policy`, `--replication` and `--hash` are ignored.
///
/// # Errors
/// A BACKEND Pingora cannot parse.
///
/// ```no_run
/// use clap::Parser;
/// vibra_proxy::server::run_round_robin_baseline(&vibra_proxy::Args::parse())?;
/// # Ok::<(), vibra_proxy::ProxyError>(())
/// ```
pub fn run_round_robin_baseline(args: &Args) -> Result<(), ProxyError> {
    let peers = args.backend_addrs()?;
    let mut upstreams =
        LoadBalancer::<RoundRobin>::try_from_iter(peers.iter().copied()).map_err(|e| {
            ProxyError::BadBackend {
                backend: args.backends.join(" "),
                reason: e.to_string(),
            }
        })?;
    let mut check = TcpHealthCheck::new();
    check.peer_template.options.connection_timeout = Some(HEALTH_CONNECT_TIMEOUT);
    upstreams.set_health_check(check);
    upstreams.health_check_frequency = Some(args.health_interval());
    let background = background_service("round-robin health checks", upstreams);
    let upstreams = background.task();

    let mut server = server(args);
    let mut proxy = http_proxy_service(&server.configuration, PingoraRoundRobin(upstreams));
    proxy.add_tcp(&args.listen);
    server.add_service(proxy);
    server.add_service(background);
    server.run_forever()
}

/// Pingora's documented load-balancer pattern: `select` in `upstream_peer`, nothing else.
struct PingoraRoundRobin(Arc<LoadBalancer<RoundRobin>>);

#[async_trait]
impl ProxyHttp for PingoraRoundRobin {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let upstream = self
            .0
            .select(b"", 256)
            .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(503), "no back end up"))?;
        Ok(Box::new(HttpPeer::new(upstream, false, String::new())))
    }
}
