//! Settings: command-line flags, `SKAN_*` environment variables and a TOML file, resolved into
//! one [`Settings`] value at start-up.
//!
//! Precedence, highest first: flag or environment variable, then `--config FILE`, then the
//! built-in default. An unknown key in the file is an error, so a typo never silently falls back
//! to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The database URL used when none is configured: a file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://skan-receiver.db";

/// Where the database is, shared by every command that touches it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://PATH` (created if missing) or `postgres://USER@HOST/DB`.
    /// Default: `sqlite://skan-receiver.db` in the working directory. Many receivers may share
    /// one PostgreSQL database; on Citus, point every receiver at the coordinator (migrations
    /// and DDL go through it), with `citus` in `shared_preload_libraries` and
    /// `max_prepared_transactions` above 0 on every node.
    #[arg(long, env = "SKAN_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// TOML settings file (see the README for its keys).
    #[arg(long, env = "SKAN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Flags of `serve` (each also readable from its `SKAN_*` variable).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Database and settings file.
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Address for the HTTP API. Default: 127.0.0.1:8080.
    #[arg(long, env = "SKAN_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Serve Prometheus metrics on this separate address instead of `/metrics` on the API.
    #[arg(long, env = "SKAN_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Directory with a `keys.toml` manifest to trust instead of Apple's embedded keys.
    #[arg(long, env = "SKAN_KEYS", value_name = "DIR")]
    pub keys: Option<PathBuf>,
    /// Largest single postback body, in bytes. Default: 65536.
    #[arg(long, env = "SKAN_MAX_POSTBACK_BYTES", value_name = "BYTES")]
    pub max_postback_bytes: Option<usize>,
    /// Largest batch body on /v1/postbacks, in bytes. Default: 16777216.
    #[arg(long, env = "SKAN_MAX_BATCH_BYTES", value_name = "BYTES")]
    pub max_batch_bytes: Option<usize>,
    /// Most postbacks in one batch request. Default: 10000.
    #[arg(long, env = "SKAN_MAX_BATCH_ITEMS", value_name = "N")]
    pub max_batch_items: Option<usize>,
    /// Most postbacks committed in one database transaction. Default: 1000.
    #[arg(long, env = "SKAN_COMMIT_MAX_ITEMS", value_name = "N")]
    pub commit_max_items: Option<usize>,
    /// How long a commit group may wait for more postbacks before writing, in milliseconds.
    /// Default: 0 (write as soon as the previous group is done; groups form under load).
    #[arg(long, env = "SKAN_COMMIT_MAX_WAIT_MS", value_name = "MS")]
    pub commit_max_wait_ms: Option<u64>,
    /// Largest database connection pool. Default: 8 (SQLite, which adds one connection for
    /// every write), 16 (PostgreSQL).
    #[arg(long, env = "SKAN_DB_MAX_CONNECTIONS", value_name = "N")]
    pub db_max_connections: Option<u32>,
    /// How long a looked-up API key is kept in memory, in seconds (revocations are still checked
    /// every second). Default: 30.
    #[arg(long, env = "SKAN_AUTH_CACHE_SECS", value_name = "SECS")]
    pub auth_cache_secs: Option<u64>,
    /// How long shutdown waits for in-flight work, in seconds. Default: 30.
    #[arg(long, env = "SKAN_SHUTDOWN_GRACE_SECS", value_name = "SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Log format: `pretty` or `json`. Default: pretty.
    #[arg(long, env = "SKAN_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Signature verifier: `fast` (precomputed tables for each P-256 key) or `generic` (the
    /// `p256` crate's). Default: fast.
    #[arg(long, env = "SKAN_VERIFIER", value_name = "KIND")]
    pub verifier: Option<VerifierKind>,
    /// Verification answers remembered so duplicate signatures are not checked again; 0 turns
    /// the cache off. Default: 100000.
    #[arg(long, env = "SKAN_SIGNATURE_CACHE", value_name = "N")]
    pub signature_cache: Option<usize>,
    /// Do not forward postbacks from this receiver (deliveries still queue; another receiver on
    /// the same database sends them).
    #[arg(long, env = "SKAN_NO_DISPATCH", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_dispatch: bool,
    /// Let destinations reach loopback, private and link-local addresses (refused by default).
    #[arg(long, env = "SKAN_ALLOW_PRIVATE_DESTINATIONS", value_parser = clap::builder::FalseyValueParser::new())]
    pub allow_private_destinations: bool,
    /// How often idle dispatch workers look for due deliveries, in milliseconds. Default: 1000.
    #[arg(long, env = "SKAN_DISPATCH_POLL_MS", value_name = "MS")]
    pub dispatch_poll_ms: Option<u64>,
    /// Close a connection that has not sent a request's complete headers within this many
    /// seconds. Default: 10.
    #[arg(long, env = "SKAN_HEADER_TIMEOUT_SECS", value_name = "SECS")]
    pub header_timeout_secs: Option<u64>,
    /// Look for data-quality anomalies every this many seconds (one receiver at a time, by a
    /// lease in the database); 0 turns the schedule off. Default: 900.
    #[arg(long, env = "SKAN_QUALITY_INTERVAL_SECS", value_name = "SECS")]
    pub quality_interval_secs: Option<u64>,
    /// Fold the report rollup's ended blocks into one value each every this many seconds (one
    /// receiver at a time, by a lease in the database); 0 turns it off. Default: 600.
    #[arg(long, env = "SKAN_ROLLUP_SEAL_INTERVAL_SECS", value_name = "SECS")]
    pub rollup_seal_interval_secs: Option<u64>,
    /// Where people reach this service (`https://skan.example.com`), for the console links in
    /// alerts. Default: `http://` and the listen address.
    #[arg(long, env = "SKAN_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Requests per second each client address may make on Apple's open paths (0: no limit).
    /// Default: 50.
    #[arg(long, env = "SKAN_RATE_LIMIT_PER_IP", value_name = "N")]
    pub rate_limit_per_ip: Option<u32>,
    /// Requests a client address may make at once after a quiet spell on Apple's paths.
    /// Default: 200.
    #[arg(long, env = "SKAN_RATE_LIMIT_BURST", value_name = "N")]
    pub rate_limit_burst: Option<u32>,
    /// Proxies (CIDRs) whose `X-Forwarded-For` names the client; without one, the client is the
    /// connection's peer. Repeat for more.
    #[arg(
        long = "trusted-proxy",
        env = "SKAN_TRUSTED_PROXIES",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// File with the key(s) destination signing secrets are sealed with at rest: base64 of 32
    /// bytes per line, the first sealing, the others only opening (rotation). `SKAN_SECRETS_KEY`
    /// may hold the same text instead. Without either, secrets are stored in plaintext.
    #[arg(long, env = "SKAN_SECRETS_KEY_FILE", value_name = "FILE")]
    pub secrets_key_file: Option<PathBuf>,
}

/// Which signature verifier checks P-256 signatures. Both give the same answer on every input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum VerifierKind {
    /// Fixed-key tables built at start-up: several times faster.
    #[default]
    Fast,
    /// The `p256` crate's general verifier.
    Generic,
}

impl VerifierKind {
    /// Prepare `keys` for this verifier.
    #[must_use]
    pub fn apply(self, keys: crate::skan::KeySet) -> crate::skan::KeySet {
        match self {
            Self::Fast => keys.with_fixed_key_tables(),
            Self::Generic => keys,
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The TOML settings file; every key is optional and mirrors a flag.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See `--listen`.
    pub listen: Option<SocketAddr>,
    /// See `--database-url`.
    pub database_url: Option<String>,
    /// See `--metrics-listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// See `--keys` (relative paths are relative to the file).
    pub keys: Option<PathBuf>,
    /// See `--log-format`.
    pub log_format: Option<LogFormat>,
    /// See `--verifier`.
    pub verifier: Option<VerifierKind>,
    /// See `--signature-cache`.
    pub signature_cache: Option<usize>,
    /// Size and count limits.
    #[serde(default)]
    pub limits: FileLimits,
    /// Group commit.
    #[serde(default)]
    pub commit: FileCommit,
    /// Database pool.
    #[serde(default)]
    pub database: FileDatabase,
    /// API authentication.
    #[serde(default)]
    pub auth: FileAuth,
    /// Shutdown.
    #[serde(default)]
    pub shutdown: FileShutdown,
    /// Conversion-value schemas applied at start-up (as a new version when they differ from the
    /// app's latest).
    #[serde(default)]
    pub schemas: Vec<FileSchema>,
    /// The dispatcher.
    #[serde(default)]
    pub dispatch: FileDispatch,
    /// Destinations created or updated (by name) at start-up; same fields as the API document.
    #[serde(default)]
    pub destinations: Vec<crate::dispatch::DestinationConfig>,
}

/// `[dispatch]` in the settings file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDispatch {
    /// `false` is `--no-dispatch`.
    pub enabled: Option<bool>,
    /// See `--allow-private-destinations`.
    pub allow_private_destinations: Option<bool>,
    /// See `--dispatch-poll-ms`.
    pub poll_interval_ms: Option<u64>,
}

/// `[[schemas]]` in the settings file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSchema {
    /// App Store ID of the app.
    pub app_id: i64,
    /// Schema document (JSON); relative paths are relative to the settings file.
    pub file: PathBuf,
    /// When it takes effect; default: when first applied.
    #[serde(default)]
    pub effective_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Note stored with the version.
    #[serde(default)]
    pub note: Option<String>,
}

/// `[limits]` in the settings file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    /// See `--max-postback-bytes`.
    pub max_postback_bytes: Option<usize>,
    /// See `--max-batch-bytes`.
    pub max_batch_bytes: Option<usize>,
    /// See `--max-batch-items`.
    pub max_batch_items: Option<usize>,
}

/// `[commit]` in the settings file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCommit {
    /// See `--commit-max-items`.
    pub max_items: Option<usize>,
    /// See `--commit-max-wait-ms`.
    pub max_wait_ms: Option<u64>,
}

/// `[database]` in the settings file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDatabase {
    /// See `--db-max-connections`.
    pub max_connections: Option<u32>,
}

/// `[auth]` in the settings file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAuth {
    /// See `--auth-cache-secs`.
    pub cache_secs: Option<u64>,
}

/// `[shutdown]` in the settings file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileShutdown {
    /// See `--shutdown-grace-secs`.
    pub grace_secs: Option<u64>,
}

/// Why settings could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The settings file could not be read.
    #[error("cannot read settings file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The settings file is not valid.
    #[error("settings file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: toml::de::Error,
    },
    /// A value is out of its range.
    #[error("{setting}: {message}")]
    Invalid {
        /// The setting's flag name.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Fully resolved settings of the service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// API listen address.
    pub listen: SocketAddr,
    /// Database URL.
    pub database_url: String,
    /// Separate metrics listen address.
    pub metrics_listen: Option<SocketAddr>,
    /// Key directory (embedded Apple keys when `None`).
    pub keys: Option<PathBuf>,
    /// Largest single postback.
    pub max_postback_bytes: usize,
    /// Largest batch body.
    pub max_batch_bytes: usize,
    /// Most items per batch.
    pub max_batch_items: usize,
    /// Most items per commit transaction.
    pub commit_max_items: usize,
    /// Longest a commit group waits to fill.
    pub commit_max_wait: Duration,
    /// Pool size.
    pub db_max_connections: u32,
    /// API key cache lifetime.
    pub auth_cache: Duration,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// Signature verifier.
    pub verifier: VerifierKind,
    /// Remembered verification answers (0: none).
    pub signature_cache: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// Whether this receiver sends deliveries.
    pub dispatch_enabled: bool,
    /// Destinations may reach private addresses.
    pub allow_private_destinations: bool,
    /// Idle poll interval of the dispatcher.
    pub dispatch_poll: Duration,
    /// Keys sealing destination secrets at rest (none: plaintext).
    pub secret_keys: crate::dispatch::sealing::SecretKeys,
    /// How long a connection may take to send a request's headers.
    pub header_timeout: Duration,
    /// How often anomalies are looked for (`None`: never on a schedule).
    pub quality_interval: Option<Duration>,
    /// How often ended rollup blocks are sealed (`None`: never).
    pub rollup_seal_interval: Option<Duration>,
    /// Where people reach this service, for links in alerts.
    pub public_url: String,
    /// Requests per second per client address on Apple's paths (0: unlimited).
    pub rate_limit_per_ip: u32,
    /// Burst per client address on Apple's paths.
    pub rate_limit_burst: u32,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The parsed settings file, for sections other modules read (schemas, destinations).
    pub file: FileConfig,
}

/// Read a settings file, or the empty configuration when there is none.
///
/// # Errors
/// [`SettingsError`] when the file cannot be read or parsed.
pub fn load_file(path: Option<&Path>) -> Result<FileConfig, SettingsError> {
    let Some(path) = path else { return Ok(FileConfig::default()) };
    let text = std::fs::read_to_string(path)
        .map_err(|source| SettingsError::Read { path: path.to_owned(), source })?;
    let mut file: FileConfig = toml::from_str(&text)
        .map_err(|source| SettingsError::Parse { path: path.to_owned(), source })?;
    if let Some(dir) = path.parent() {
        if let Some(keys) = file.keys.as_mut()
            && keys.is_relative()
        {
            *keys = dir.join(&*keys);
        }
        for schema in &mut file.schemas {
            if schema.file.is_relative() {
                schema.file = dir.join(&schema.file);
            }
        }
    }
    Ok(file)
}

impl DatabaseArgs {
    /// The database URL: flag or variable, else the settings file, else the default.
    ///
    /// # Errors
    /// [`SettingsError`] when the settings file cannot be read.
    pub fn resolve_url(&self) -> Result<String, SettingsError> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        let file = load_file(self.config.as_deref())?;
        Ok(file.database_url.unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()))
    }
}

/// `--public-url` checked, else the listen address (what a reader on this machine can open).
fn public_url(given: Option<&str>, listen: Option<SocketAddr>) -> Result<String, SettingsError> {
    match given {
        Some(text) => match url::Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Ok(text.trim_end_matches('/').to_owned())
            }
            _ => Err(SettingsError::Invalid {
                setting: "--public-url",
                message: format!("{text:?} is not an http:// or https:// URL with a host"),
            }),
        },
        None => Ok(format!(
            "http://{}",
            listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)))
        )),
    }
}

/// The secrets keys from `--secrets-key-file`, else `SKAN_SECRETS_KEY`, else none.
fn secret_keys(file: Option<&Path>) -> Result<crate::dispatch::sealing::SecretKeys, SettingsError> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|source| SettingsError::Read { path: path.to_owned(), source })?,
        None => std::env::var("SKAN_SECRETS_KEY").unwrap_or_default(),
    };
    crate::dispatch::sealing::SecretKeys::parse(&text).map_err(|e| SettingsError::Invalid {
        setting: "--secrets-key-file",
        message: e.to_string(),
    })
}

impl Settings {
    /// Resolve flags, variables, file and defaults.
    ///
    /// # Errors
    /// [`SettingsError`] for an unreadable file or an out-of-range value.
    pub fn resolve(args: &ServeArgs) -> Result<Self, SettingsError> {
        let file = load_file(args.db.config.as_deref())?;
        let database_url = args
            .db
            .database_url
            .clone()
            .or_else(|| file.database_url.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let is_postgres = !database_url.starts_with("sqlite:");
        let settings = Self {
            listen: args.listen.or(file.listen).unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            metrics_listen: args.metrics_listen.or(file.metrics_listen),
            keys: args.keys.clone().or_else(|| file.keys.clone()),
            max_postback_bytes: args
                .max_postback_bytes
                .or(file.limits.max_postback_bytes)
                .unwrap_or(64 * 1024),
            max_batch_bytes: args
                .max_batch_bytes
                .or(file.limits.max_batch_bytes)
                .unwrap_or(16 * 1024 * 1024),
            max_batch_items: args.max_batch_items.or(file.limits.max_batch_items).unwrap_or(10_000),
            commit_max_items: args.commit_max_items.or(file.commit.max_items).unwrap_or(1000),
            commit_max_wait: Duration::from_millis(
                args.commit_max_wait_ms.or(file.commit.max_wait_ms).unwrap_or(0),
            ),
            db_max_connections: args
                .db_max_connections
                .or(file.database.max_connections)
                .unwrap_or(if is_postgres { 16 } else { 8 }),
            auth_cache: Duration::from_secs(
                args.auth_cache_secs.or(file.auth.cache_secs).unwrap_or(30),
            ),
            shutdown_grace: Duration::from_secs(
                args.shutdown_grace_secs.or(file.shutdown.grace_secs).unwrap_or(30),
            ),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            verifier: args.verifier.or(file.verifier).unwrap_or_default(),
            signature_cache: args.signature_cache.or(file.signature_cache).unwrap_or(100_000),
            dispatch_enabled: !args.no_dispatch && file.dispatch.enabled.unwrap_or(true),
            allow_private_destinations: args.allow_private_destinations
                || file.dispatch.allow_private_destinations.unwrap_or(false),
            dispatch_poll: Duration::from_millis(
                args.dispatch_poll_ms.or(file.dispatch.poll_interval_ms).unwrap_or(1000),
            ),
            secret_keys: secret_keys(args.secrets_key_file.as_deref())?,
            header_timeout: Duration::from_secs(args.header_timeout_secs.unwrap_or(10).max(1)),
            public_url: public_url(args.public_url.as_deref(), args.listen.or(file.listen))?,
            quality_interval: match args.quality_interval_secs.unwrap_or(900) {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            rollup_seal_interval: match args.rollup_seal_interval_secs.unwrap_or(600) {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            rate_limit_per_ip: args.rate_limit_per_ip.unwrap_or(50),
            rate_limit_burst: args.rate_limit_burst.unwrap_or(200).max(1),
            trusted_proxies: args.trusted_proxies.clone(),
            database_url,
            file,
        };
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let positive = |setting: &'static str, value: usize| {
            if value == 0 {
                Err(SettingsError::Invalid { setting, message: "must be at least 1".to_owned() })
            } else {
                Ok(())
            }
        };
        positive("--max-postback-bytes", self.max_postback_bytes)?;
        positive("--max-batch-items", self.max_batch_items)?;
        positive("--commit-max-items", self.commit_max_items)?;
        positive("--db-max-connections", self.db_max_connections as usize)?;
        if !(10..=60_000).contains(&self.dispatch_poll.as_millis()) {
            return Err(SettingsError::Invalid {
                setting: "--dispatch-poll-ms",
                message: "must be 10-60000 milliseconds".to_owned(),
            });
        }
        if self.max_batch_bytes < self.max_postback_bytes {
            return Err(SettingsError::Invalid {
                setting: "--max-batch-bytes",
                message: "must be at least --max-postback-bytes".to_owned(),
            });
        }
        Ok(())
    }

    /// Settings for tests and embedding: defaults everywhere, with the given database.
    #[must_use]
    pub fn with_database(database_url: &str) -> Self {
        let args = ServeArgs {
            db: DatabaseArgs { database_url: Some(database_url.to_owned()), config: None },
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..ServeArgs::default()
        };
        Self::resolve(&args).unwrap_or_else(|err| unreachable!("defaults are valid: {err}"))
    }
}
