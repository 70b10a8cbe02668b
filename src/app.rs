//! The composition root: `serve` builds the shared state (`state::AppState`), wires the HTTP
//! listener, migrations and background loops together and shuts them down gracefully. Nothing
//! but the command line imports it.

use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::Compress;
use actix_web::{web, App, HttpServer};
use tokio_util::sync::CancellationToken;

use crate::broker::{BrokerConfig, Brokers};
use crate::settings::Settings;
use crate::state::{AppState, Roles};
use crate::storage::Stores;

pub fn broker_config(settings: &Settings) -> BrokerConfig {
    BrokerConfig {
        cache_url: settings.redis_url("cache"),
        work_url: settings.redis_url("work"),
        streams_url: settings.redis_url("streams"),
        pool_size: settings.redis.pool_size,
        namespace: settings.redis.namespace.clone(),
        stream_maxlen: settings.redis.stream_maxlen,
    }
}

/// Connects the stores and brokers, logging one line with the mode of each.
pub async fn connect(settings: &Settings) -> Result<(Stores, Brokers), String> {
    let stores = Stores::connect(settings).await.map_err(|e| e.to_string())?;
    let brokers = Brokers::connect(&broker_config(settings))
        .await
        .map_err(|e| e.to_string())?;
    let mut modes: Vec<String> = crate::storage::DbName::ALL
        .iter()
        .map(|n| format!("{}: {}", n.as_str(), stores.get(*n).describe()))
        .collect();
    modes.extend(
        brokers
            .describe()
            .into_iter()
            .map(|(role, d)| format!("{role}: {d}")),
    );
    tracing::info!("stores: {}", modes.join(", "));
    Ok((stores, brokers))
}

/// A running server: its address and the means to stop it (used by `serve` and by tests).
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub state: web::Data<AppState>,
    handle: actix_web::dev::ServerHandle,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, stops background loops.
    pub async fn stop(self) -> Result<(), String> {
        self.shutdown.cancel();
        self.handle.stop(true).await;
        self.task.await.map_err(|e| e.to_string())?
    }

    /// Waits until the server ends by itself (a signal or a fatal error).
    pub async fn wait(self) -> Result<(), String> {
        self.task.await.map_err(|e| e.to_string())?
    }
}

/// Starts the HTTP listener at once (so `/api/ready` answers 503 during migrations), then
/// migrates (or checks) the databases and marks the state ready.
pub async fn start(
    settings: Arc<Settings>,
    roles: Roles,
    stores: Stores,
    brokers: Brokers,
) -> Result<Running, String> {
    let state = web::Data::new(AppState::new(settings.clone(), stores, brokers, roles));
    let tls = match settings.tls_files() {
        Some((cert, key)) => Some(crate::tls::server_config(&cert, &key)?),
        None => None,
    };
    let app_state = state.clone();
    // CORS only when some other origin may call the API (the app host, `server.cors_origins`).
    let cors = settings.app_host().is_some() || !settings.server.cors_origins.trim().is_empty();
    let access = settings.log.access;
    let mut server = HttpServer::new(move || {
        let state = app_state.clone();
        App::new()
            .wrap(actix_web::middleware::Condition::new(
                cors,
                actix_web::middleware::from_fn(crate::router::cors),
            ))
            // Inside compression: the bytes logged are the answer's, before gzip.
            .wrap(actix_web::middleware::Condition::new(
                access,
                actix_web::middleware::from_fn(crate::telemetry::access::access_log),
            ))
            .wrap(Compress::default())
            .configure(move |c| crate::router::configure(c, &state))
    })
    .on_connect(no_delay)
    .disable_signals()
    .shutdown_timeout(settings.server.shutdown_timeout_seconds);
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    let bind = settings.server.bind.as_str();
    let server = match tls {
        Some(config) => server.bind_rustls_0_23(bind, config),
        None => server.bind(bind),
    }
    .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| format!("cannot listen on {bind}"))?;
    let server = server.run();
    let handle = server.handle();
    let shutdown = CancellationToken::new();
    tracing::info!(%addr, tls = settings.tls_files().is_some(), "listening");

    let task_state = state.clone();
    let task_handle = handle.clone();
    let task_shutdown = shutdown.clone();
    let task = tokio::spawn(async move {
        let http = tokio::spawn(server);
        let prepared = prepare(&task_state).await;
        let mut loops = Vec::new();
        match &prepared {
            Ok(()) => {
                loops = start_services(task_state.clone().into_inner(), task_shutdown.clone())
            }
            Err(e) => {
                tracing::error!(error = %e, "start-up failed; stopping");
                task_handle.stop(true).await;
            }
        }
        let served = http
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string());
        task_shutdown.cancel();
        for l in loops {
            let _ = l.await;
        }
        prepared.and(served)
    });
    Ok(Running {
        addr,
        state,
        handle,
        shutdown,
        task,
    })
}

/// Turns Nagle's algorithm off on an accepted connection. A response can leave in more than one
/// write (a compressed body is streamed in chunks); with Nagle on, the second write waits for
/// the client's delayed ACK of the first, about 40 ms, on a kept-alive connection (measured:
/// 29% of gzip'd `POST /flows/filter` answers took 46 ms instead of 4 ms).
fn no_delay(conn: &dyn std::any::Any, _: &mut actix_web::dev::Extensions) {
    let tcp = match conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        Some(tcp) => Some(tcp),
        None => conn
            .downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>>()
            .map(|tls| tls.get_ref().0),
    };
    match tcp.map(|t| t.set_nodelay(true)) {
        Some(Ok(())) => {}
        Some(Err(e)) => tracing::debug!(error = %e, "TCP_NODELAY not set"),
        // Once per connection: debug, not a warning that floods the log.
        None => tracing::debug!("unknown connection type: TCP_NODELAY not set"),
    }
}

/// Starts the background loops this process's roles ask for.
fn start_services(
    state: Arc<AppState>,
    token: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    use crate::service::{spawn, Service};
    let mut list: Vec<Arc<dyn Service>> = Vec::new();
    if state.roles.events {
        let consumer = format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple());
        list.push(Arc::new(crate::events::relay::Relay::new(state.clone())));
        list.push(Arc::new(crate::events::persister::Persister {
            state: state.clone(),
            consumer: consumer.clone(),
            size: Default::default(),
        }));
        list.push(Arc::new(crate::events::recorder::Recorder {
            state: state.clone(),
            consumer: consumer.clone(),
            size: Default::default(),
        }));
        list.push(Arc::new(crate::events::automations::triggers::Triggers {
            state: state.clone(),
            consumer,
            size: Default::default(),
        }));
    }
    if state.roles.api {
        use crate::events::stream_out::{Distributor, GROUP_PREFIX};
        let group = format!(
            "{GROUP_PREFIX}{}-{}",
            hostname(),
            uuid::Uuid::new_v4().simple()
        );
        list.push(Arc::new(Distributor::new(state.clone(), group)));
    }
    if state.roles.services {
        list.push(Arc::new(crate::services::repossessor::Repossessor {
            state: state.clone(),
        }));
        list.push(Arc::new(
            crate::services::pause_expirations::PauseExpirations {
                state: state.clone(),
            },
        ));
        list.push(Arc::new(crate::services::scheduler::Scheduler {
            state: state.clone(),
            recent: false,
        }));
        list.push(Arc::new(crate::services::scheduler::Scheduler {
            state: state.clone(),
            recent: true,
        }));
        list.push(Arc::new(crate::services::late_runs::LateRuns {
            state: state.clone(),
        }));
        list.push(Arc::new(crate::services::foreman::Foreman {
            state: state.clone(),
        }));
        list.push(Arc::new(
            crate::services::cancellation::CancellationCleanup {
                state: state.clone(),
            },
        ));
        list.push(Arc::new(
            crate::services::workspace_deletion::WorkspaceDeletion {
                state: state.clone(),
            },
        ));
        list.push(Arc::new(crate::services::event_retention::EventRetention {
            state: state.clone(),
        }));
        list.push(Arc::new(crate::events::automations::proactive::Proactive {
            state: state.clone(),
        }));
        list.push(Arc::new(crate::api::automation_actions::Executor::new(
            state.clone(),
            format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple()),
        )));
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    list.push(Arc::new(crate::services::heap_trim::HeapTrim {
        state: state.clone(),
    }));
    list.into_iter()
        .filter_map(|s| spawn(s, token.clone()))
        .collect()
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "orrery".into())
}

async fn prepare(state: &AppState) -> Result<(), String> {
    if state.settings.database.migrate_on_start {
        let applied = state.stores.migrate().await.map_err(|e| e.to_string())?;
        tracing::info!(applied, "migrations done");
    } else {
        let pending = state
            .stores
            .pending_migrations()
            .await
            .map_err(|e| e.to_string())?;
        if pending > 0 {
            return Err(format!("{pending} migration(s) pending and database.migrate_on_start is false: run `orrery migrate` first"));
        }
    }
    state.mark_migrated();
    if state.settings.auth.required() {
        let mut c = state
            .stores
            .nebula
            .read()
            .await
            .map_err(|e| e.to_string())?;
        let users = crate::storage::identities::count_users(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        if users == 0 {
            tracing::warn!(
                "auth.mode is \"required\" and there is no user yet: create the first owner with \
                 `orrery user add EMAIL --account-role owner`, then a key with \
                 `orrery api-key create --user EMAIL --name NAME`"
            );
        }
    }
    Ok(())
}

/// `orrery serve`: runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn serve(settings: Settings, roles: Roles) -> Result<(), String> {
    let settings = Arc::new(settings);
    let (stores, brokers) = connect(&settings).await?;
    let running = start(settings, roles, stores, brokers).await?;
    let handle = running.handle.clone();
    let shutdown = running.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received; finishing in-flight requests");
        shutdown.cancel();
        handle.stop(true).await;
    });
    let result = running.wait().await;
    // Give background loops a moment to observe the cancellation before the runtime ends.
    tokio::time::sleep(Duration::from_millis(50)).await;
    tracing::info!("stopped");
    result
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
