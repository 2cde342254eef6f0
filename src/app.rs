//! Wiring: settings in, a running service out.
//!
//! [`App::build`] connects the store, loads keys, starts the group committer and assembles the
//! router; [`App::run`] serves until the shutdown future resolves, then stops accepting, lets
//! in-flight requests finish (their commits included), drains the committer and closes the
//! database.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::clock::Clock;
use crate::config::{Settings, VerifierKind};
use crate::dispatch::{DispatchSettings, Dispatcher, HttpSender};
use crate::http::{self, AppState};
use crate::ingest::{CommitConfig, Ingestor, commit};
use crate::schema_versions::SchemaVersions;
use crate::skan::KeySet;
use crate::store::{self, Backend, ConnectOptions, Store};
use crate::{apple_keys, telemetry};

/// A built, not yet running service.
#[derive(Debug)]
pub struct App {
    state: AppState,
    router: axum::Router,
    commit_task: tokio::task::JoinHandle<()>,
    settings: Arc<Settings>,
}

/// Build the dispatcher `settings` describe (the API and the CLI manage destinations through it
/// even where it does not send).
///
/// # Errors
/// When the HTTP client cannot be built.
pub fn build_dispatcher(
    settings: &Settings,
    store: Arc<dyn Store>,
    schemas: Arc<SchemaVersions>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<Dispatcher>> {
    let sender = HttpSender::new(settings.allow_private_destinations)
        .context("building the HTTP client for deliveries")?;
    Ok(Arc::new(Dispatcher::new(
        store,
        schemas,
        Arc::new(sender),
        clock,
        DispatchSettings {
            poll_interval: settings.dispatch_poll,
            allow_private: settings.allow_private_destinations,
            secret_keys: settings.secret_keys.clone(),
            console_url: settings.public_url.clone(),
            ..DispatchSettings::default()
        },
    )))
}

/// The trusted keys, prepared for the configured verifier and cache; logs what the tables cost.
fn load_keys(settings: &Settings) -> anyhow::Result<KeySet> {
    let keys = apple_keys::load(settings.keys.as_deref()).context("loading the trusted key set")?;
    let started = std::time::Instant::now();
    let mut keys = settings.verifier.apply(keys);
    if settings.verifier == VerifierKind::Fast {
        tracing::info!(
            keys = keys.keys().len(),
            table_bytes = keys.table_bytes(),
            build_ms = started.elapsed().as_millis(),
            "fixed-key verification tables built"
        );
    }
    if settings.signature_cache > 0 {
        keys = keys.with_signature_cache(settings.signature_cache);
    }
    Ok(keys)
}

impl App {
    /// Connect, migrate and assemble everything `settings` describe.
    ///
    /// # Errors
    /// When the database, the key set or the settings cannot be used; the message says which.
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let keys = Arc::new(load_keys(&settings)?);
        let store = store::connect(
            &settings.database_url,
            &ConnectOptions {
                max_connections: settings.db_max_connections,
                ..ConnectOptions::default()
            },
        )
        .await
        .with_context(|| {
            format!("opening the database {}", store::redact_url(&settings.database_url))
        })?;
        let max_concurrent = match store.backend() {
            Backend::Sqlite => 1,
            // Every commit group adds to the same few counter rows (an app's day and network),
            // so concurrent groups mostly wait for each other's row locks until the holder
            // commits. Side by side on one server, two writers took more postbacks than eight
            // (1,459-1,681/s against 1,155-1,348/s) with a third of the p99 at that rate, and a
            // lower p99 at a fixed 700-750/s (median 22 against 33 ms); one writer was no better.
            Backend::Postgres => (settings.db_max_connections as usize / 2).clamp(1, 2),
        };
        let (committer, commit_task) = commit::spawn(
            Arc::clone(&store),
            CommitConfig {
                max_items: settings.commit_max_items,
                max_wait: settings.commit_max_wait,
                max_concurrent,
            },
        );
        let schemas = Arc::new(SchemaVersions::new(store.clone(), Arc::clone(&clock)));
        let dispatcher = build_dispatcher(
            &settings,
            Arc::clone(&store),
            Arc::clone(&schemas),
            Arc::clone(&clock),
        )?;
        let ingestor = Arc::new(
            Ingestor::new(keys, committer, Arc::clone(&clock), settings.max_postback_bytes)
                .waking(Arc::clone(&dispatcher)),
        );
        let serve_metrics_here = settings.metrics_listen.is_none();
        let (routes, openapi) = http::routes(&settings, serve_metrics_here);
        let openapi = openapi.to_pretty_json().context("rendering the OpenAPI document")?;
        let settings = Arc::new(settings);
        apply_configured_schemas(&schemas, &settings.file.schemas).await?;
        if settings.secret_keys.is_configured() {
            let resealed = dispatcher
                .seal_stored_secrets()
                .await
                .context("sealing destination secrets under the first secrets key")?;
            tracing::info!(destinations = resealed, "destination secrets sealed at rest");
        } else {
            tracing::warn!(
                "destination signing secrets are stored in plaintext: give --secrets-key-file \
                 (or SKAN_SECRETS_KEY) with a 32-byte key in base64 to seal them"
            );
        }
        dispatcher
            .apply_configured(&settings.file.destinations)
            .await
            .context("applying the destinations in the settings file")?;
        let state = AppState {
            clock: Arc::clone(&clock),
            schemas,
            dispatcher,
            auth: Arc::new(Authenticator::new(store.clone(), settings.auth_cache)),
            store,
            ingestor,
            settings: Arc::clone(&settings),
            metrics: if serve_metrics_here { telemetry::metrics_handle() } else { None },
            openapi: Arc::new(openapi),
        };
        let router = http::router(routes, state.clone());
        Ok(Self { state, router, commit_task, settings })
    }

    /// The complete router, for driving the service without a socket.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// The database.
    #[must_use]
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.state.store)
    }

    /// The ingest pipeline (the `import` command drives it directly).
    #[must_use]
    pub fn ingestor(&self) -> Arc<crate::ingest::Ingestor> {
        Arc::clone(&self.state.ingestor)
    }

    /// Serve on `listener` until `shutdown` resolves, then shut down gracefully.
    ///
    /// # Errors
    /// When the server fails or the metrics listener cannot be bound.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self { state, router, commit_task, settings } = self;
        let token = tokio_util::sync::CancellationToken::new();
        let metrics_server = match (settings.metrics_listen, telemetry::metrics_handle()) {
            (Some(addr), Some(handle)) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the metrics listener {addr}"))?;
                let token = token.clone();
                Some(tokio::spawn(async move {
                    let _ = axum::serve(listener, http::metrics_router(handle))
                        .with_graceful_shutdown(token.cancelled_owned())
                        .await;
                }))
            }
            _ => None,
        };
        let quality_task = settings.quality_interval.map(|every| {
            let holder = format!("{}-{}", std::process::id(), rand::random::<u64>());
            tokio::spawn(crate::quality::run_schedule(
                Arc::clone(&state.store),
                (*state.schemas).clone(),
                Arc::clone(&state.clock),
                holder,
                every,
                crate::domain::quality::DetectionRules::default(),
            ))
        });
        let sealing_task = settings.rollup_seal_interval.map(|every| {
            let holder = format!("{}-{}", std::process::id(), rand::random::<u64>());
            tokio::spawn(crate::report::sealing::run_schedule(
                Arc::clone(&state.store),
                Arc::clone(&state.clock),
                holder,
                every,
            ))
        });
        let dispatch_token = tokio_util::sync::CancellationToken::new();
        let dispatch_task = settings
            .dispatch_enabled
            .then(|| tokio::spawn(Arc::clone(&state.dispatcher).run(dispatch_token.clone())));
        let shutdown_token = token.clone();
        tokio::spawn(async move {
            shutdown.await;
            shutdown_token.cancel();
        });
        let addr = listener.local_addr().ok();
        tracing::info!(?addr, database = %store::redact_url(&settings.database_url), "serving");
        http::server::serve(listener, router, settings.header_timeout, token.clone()).await;
        token.cancel();
        tracing::info!("no longer accepting requests; draining");
        let store = Arc::clone(&state.store);
        drop(state);
        if tokio::time::timeout(settings.shutdown_grace, commit_task).await.is_err() {
            tracing::warn!("commit queue did not drain within the grace period");
        }
        // Deliveries in flight finish (each is bounded by its timeout); unfinished ones are
        // claimed again after their lease runs out.
        dispatch_token.cancel();
        if let Some(task) = dispatch_task
            && tokio::time::timeout(settings.shutdown_grace, task).await.is_err()
        {
            tracing::warn!("deliveries in flight did not finish within the grace period");
        }
        for task in [quality_task, sealing_task].into_iter().flatten() {
            task.abort();
        }
        if let Some(task) = metrics_server {
            let _ = task.await;
        }
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Apply the schemas listed in the settings file, each as a new version only when it differs
/// from the app's latest one. A schema with errors stops start-up.
async fn apply_configured_schemas(
    schemas: &SchemaVersions,
    configured: &[crate::config::FileSchema],
) -> anyhow::Result<()> {
    for entry in configured {
        let text = std::fs::read_to_string(&entry.file)
            .with_context(|| format!("reading schema file {}", entry.file.display()))?;
        let schema: crate::schema::Schema = serde_json::from_str(&text).with_context(|| {
            format!("schema file {} is not a schema document", entry.file.display())
        })?;
        match schemas
            .apply_if_changed(
                entry.app_id,
                schema,
                entry.effective_from,
                "config",
                entry.note.clone(),
            )
            .await
        {
            Ok(Some(applied)) => tracing::info!(
                app_id = entry.app_id,
                version = applied.version.version,
                "applied schema from settings"
            ),
            Ok(None) => {}
            Err(crate::schema_versions::SchemaError::Invalid(report)) => anyhow::bail!(
                "schema file {} has errors: {}",
                entry.file.display(),
                serde_json::to_string(&report.errors).unwrap_or_default()
            ),
            Err(err) => return Err(err).context("applying configured schemas"),
        }
    }
    Ok(())
}

/// Resolve on Ctrl+C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
