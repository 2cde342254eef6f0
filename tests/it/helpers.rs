//! Shared test fixtures: the vector files and key sets in `testdata/`.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;
use skan_receiver::skan::{KeySet, PostbackSigner};

/// One vector as stored in `testdata/apple-published.json` and `testdata/vectors/own.json`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Vector {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) source: Option<String>,
    pub(crate) postback: Value,
    pub(crate) verifies: bool,
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) expect: Option<Value>,
}

impl Vector {
    pub(crate) fn label(&self) -> String {
        self.name.clone().or_else(|| self.source.clone()).unwrap_or_default()
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.postback).unwrap()
    }
}

pub(crate) fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn load(relative: &str) -> Vec<Vector> {
    let text = std::fs::read_to_string(repo_path(relative)).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub(crate) static APPLE_VECTORS: LazyLock<Vec<Vector>> =
    LazyLock::new(|| load("testdata/apple-published.json"));
pub(crate) static OWN_VECTORS: LazyLock<Vec<Vector>> =
    LazyLock::new(|| load("testdata/vectors/own.json"));

pub(crate) static APPLE_KEYS: LazyLock<KeySet> =
    LazyLock::new(|| skan_receiver::apple_keys::load(None).unwrap());
pub(crate) static TEST_KEYS: LazyLock<KeySet> =
    LazyLock::new(|| skan_receiver::apple_keys::load(Some(&repo_path("testdata/keys"))).unwrap());

/// Every vector with the key set it must verify under.
pub(crate) fn all_vectors() -> Vec<(Vector, &'static KeySet)> {
    let apple = APPLE_VECTORS.iter().cloned().map(|v| (v, &*APPLE_KEYS));
    let own = OWN_VECTORS.iter().cloned().map(|v| (v, &*TEST_KEYS));
    apple.chain(own).collect()
}

/// A signer holding the private halves of the test keys.
pub(crate) fn test_signer() -> PostbackSigner {
    let read =
        |name: &str| std::fs::read_to_string(repo_path(&format!("testdata/keys/{name}"))).unwrap();
    PostbackSigner::from_pkcs8_pem(
        Some(&read("test-p256.key.pem")),
        Some(&read("test-p192.key.pem")),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Databases and running services.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use skan_receiver::app::App;
use skan_receiver::clock::{ManualClock, SystemClock};
use skan_receiver::config::Settings;
use skan_receiver::store::{self, ConnectOptions, NewApiKey, Role, Store};
use tokio::sync::OnceCell;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
    /// A Citus coordinator (distributed PostgreSQL); each test gets a schema of its own.
    Citus,
}

/// The backends to run on: SQLite always; PostgreSQL when `TEST_POSTGRES_URL` is set; Citus
/// when `TEST_CITUS_URL` is set. With `SKAN_TEST_REQUIRE_POSTGRES=1` or
/// `SKAN_TEST_REQUIRE_CITUS=1` (CI) a missing server fails the test instead.
pub(crate) fn backends() -> Vec<Backend> {
    let mut backends = vec![Backend::Sqlite];
    for (backend, url, require) in [
        (Backend::Postgres, "TEST_POSTGRES_URL", "SKAN_TEST_REQUIRE_POSTGRES"),
        (Backend::Citus, "TEST_CITUS_URL", "SKAN_TEST_REQUIRE_CITUS"),
    ] {
        if std::env::var_os(url).is_some() {
            backends.push(backend);
        } else {
            assert!(std::env::var_os(require).is_none(), "{require} is set but {url} is not");
            eprintln!("skipped: the {backend:?} part of this test (set {url} to run it)");
        }
    }
    backends
}

/// A fresh, empty database: a temporary SQLite file or a new PostgreSQL database.
pub(crate) struct TestDb {
    pub(crate) url: String,
    pub(crate) backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

static PG_COUNTER: AtomicU32 = AtomicU32::new(0);
static PG_CLEANED: OnceCell<()> = OnceCell::const_new();
static CITUS_CLEANED: OnceCell<()> = OnceCell::const_new();

fn citus_url() -> String {
    std::env::var("TEST_CITUS_URL").expect("TEST_CITUS_URL")
}

async fn citus_pool() -> sqlx::PgPool {
    sqlx::PgPool::connect(&citus_url())
        .await
        .unwrap_or_else(|e| panic!("Citus at TEST_CITUS_URL is unreachable: {e}"))
}

fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").expect("TEST_POSTGRES_URL")
}

async fn admin_pool() -> sqlx::PgPool {
    sqlx::PgPool::connect(&admin_url())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at TEST_POSTGRES_URL is unreachable: {e}"))
}

/// Drop what earlier test runs left: every name `list` gives that starts with `skan_test_`.
async fn drop_stale(admin: &sqlx::PgPool, list: &str, drop: impl Fn(&str) -> String) {
    let names: Vec<(String,)> =
        sqlx::query_as(sqlx::AssertSqlSafe(list.to_owned())).fetch_all(admin).await.unwrap();
    for (name,) in names.iter().filter(|(n,)| n.starts_with("skan_test_")) {
        let _ = sqlx::query(sqlx::AssertSqlSafe(drop(name))).execute(admin).await;
    }
}

impl TestDb {
    pub(crate) async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                Self { url, backend, _dir: Some(dir), pg_name: None }
            }
            Backend::Postgres => {
                let admin = admin_pool().await;
                // Leftovers of earlier runs (a panicking test does not clean up).
                PG_CLEANED
                    .get_or_init(|| {
                        drop_stale(&admin, "SELECT datname FROM pg_database", |n| {
                            format!("DROP DATABASE IF EXISTS \"{n}\" WITH (FORCE)")
                        })
                    })
                    .await;
                let name = format!(
                    "skan_test_{}_{}",
                    std::process::id(),
                    PG_COUNTER.fetch_add(1, Ordering::Relaxed)
                );
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
                let base = admin_url();
                let root = base.rsplit_once('/').map_or(base.as_str(), |(root, _)| root);
                Self { url: format!("{root}/{name}"), backend, _dir: None, pg_name: Some(name) }
            }
            Backend::Citus => {
                // A schema per test in the coordinator's database: a new database would need
                // the workers registered in it first. Four shards per table keep the many small
                // test schemas quick to create.
                let admin = citus_pool().await;
                CITUS_CLEANED
                    .get_or_init(|| {
                        drop_stale(&admin, "SELECT nspname FROM pg_namespace", |n| {
                            format!("DROP SCHEMA IF EXISTS \"{n}\" CASCADE")
                        })
                    })
                    .await;
                let name = format!(
                    "skan_test_{}_{}",
                    std::process::id(),
                    PG_COUNTER.fetch_add(1, Ordering::Relaxed)
                );
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
                let base = citus_url();
                let join = if base.contains('?') { '&' } else { '?' };
                let url = format!(
                    "{base}{join}options=-c%20search_path%3D{name}%20-c%20citus.shard_count%3D4"
                );
                Self { url, backend, _dir: None, pg_name: None }
            }
        }
    }

    /// Connect a store of our own to the database.
    pub(crate) async fn store(&self) -> Arc<dyn Store> {
        store::connect(&self.url, &ConnectOptions::default()).await.unwrap()
    }

    /// Drop the database (PostgreSQL); simulates the database going away under a running service.
    pub(crate) async fn destroy(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let admin = admin_pool().await;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&admin)
            .await
            .unwrap();
            admin.close().await;
        }
    }
}

/// A running service on a loopback port.
pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) store: Arc<dyn Store>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Start the service on `db` with default settings (Apple's embedded keys).
    pub(crate) async fn spawn(db: &TestDb) -> Self {
        Self::spawn_with(db, |_| {}).await
    }

    /// Start the service on `db`, adjusting the settings first.
    pub(crate) async fn spawn_with(db: &TestDb, adjust: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_full(db, Arc::new(SystemClock), adjust).await
    }

    /// Start the service on `db` with the test keys and a clock the test controls.
    pub(crate) async fn spawn_with_clock(db: &TestDb, clock: Arc<ManualClock>) -> Self {
        Self::spawn_full(db, clock, |s| s.keys = Some(repo_path("testdata/keys"))).await
    }

    pub(crate) async fn spawn_full(
        db: &TestDb,
        clock: Arc<dyn skan_receiver::clock::Clock>,
        adjust: impl FnOnce(&mut Settings),
    ) -> Self {
        let mut settings = Settings::with_database(&db.url);
        settings.auth_cache = std::time::Duration::ZERO;
        // Tests send from one address far faster than a device would; those about the limit
        // set it themselves.
        settings.rate_limit_per_ip = 0;
        adjust(&mut settings);
        let app = App::build(settings, clock).await.unwrap();
        let store = app.store();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run(listener, async {
            let _ = stop.await;
        }));
        Self {
            base,
            client: skan_receiver::dispatch::sender::client_builder().build().expect("HTTP client"),
            store,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Create an API key with `role` directly in the database and return its secret.
    pub(crate) async fn key(&self, role: Role) -> String {
        let key = skan_receiver::auth::generate_key().unwrap();
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("{}-{}", role.as_str(), N.fetch_add(1, Ordering::Relaxed));
        self.store
            .create_api_key(&NewApiKey {
                name,
                role,
                key_hash: key.hash,
                key_prefix: key.prefix,
                created_at_ms: 0,
                allowed_networks: Vec::new(),
            })
            .await
            .unwrap();
        key.secret
    }

    /// POST a body to one of Apple's well-known paths.
    pub(crate) async fn post_apple(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url("/.well-known/skadnetwork/report-attribution/"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// POST to `/v1/postbacks` with a key and content type.
    pub(crate) async fn post_network(
        &self,
        key: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/v1/postbacks"))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// GET with a key, returning status and JSON body.
    pub(crate) async fn get_json(&self, key: &str, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).bearer_auth(key).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Stop gracefully: stop accepting, finish in-flight work, close the database.
    pub(crate) async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Kill the service without any shutdown work, as a crash would.
    pub(crate) fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Every backend, each with a fresh database.
pub(crate) async fn each_backend() -> Vec<TestDb> {
    let mut dbs = Vec::new();
    for backend in backends() {
        dbs.push(TestDb::new(backend).await);
    }
    dbs
}

/// What a generated SKAdNetwork 4.0 postback says.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) app_id: u64,
    pub(crate) network: &'static str,
    pub(crate) tx: String,
    pub(crate) window: u8,
    pub(crate) value: skan_receiver::skan::ConversionValue,
    pub(crate) did_win: bool,
    pub(crate) redownload: bool,
    pub(crate) source: &'static str,
}

impl Spec {
    pub(crate) fn new(app_id: u64, tx: &str) -> Self {
        Self {
            app_id,
            network: "fixture.skadnetwork",
            tx: tx.to_owned(),
            window: 0,
            value: skan_receiver::skan::ConversionValue::None,
            did_win: true,
            redownload: false,
            source: "1234",
        }
    }

    pub(crate) fn fine(mut self, v: u8) -> Self {
        self.value = skan_receiver::skan::ConversionValue::Fine(v);
        self
    }

    pub(crate) fn coarse(mut self, window: u8, c: skan_receiver::skan::CoarseValue) -> Self {
        self.window = window;
        self.value = skan_receiver::skan::ConversionValue::Coarse(c);
        self.source = "34";
        self
    }

    /// The signed postback's bytes (test P-256 key).
    pub(crate) fn bytes(&self) -> Vec<u8> {
        use skan_receiver::skan::*;
        let mut skan = SkanPostback {
            version: Version::Known(SkanVersion::V4_0),
            has_version_key: true,
            ad_network_id: self.network.to_owned(),
            campaign_id: None,
            source_identifier: SourceIdentifier::new(self.source),
            app_id: self.app_id,
            transaction_id: self.tx.clone(),
            redownload: Some(self.redownload),
            source_app: None,
            fidelity_type: Some(FidelityType::StoreKitRendered),
            did_win: Some(self.did_win),
            conversion_value: self.value,
            postback_sequence_index: Some(self.window),
            country_code: None,
            attribution_signature: None,
            extra: Vec::new(),
        };
        test_signer().sign_skan(&mut skan).unwrap();
        Postback::from_skan(skan).raw().to_vec()
    }
}

/// The rows `sql` reads from the test database itself, past the store.
pub(crate) async fn rows_of<T>(db: &TestDb, sql: &'static str) -> Vec<T>
where
    T: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query_as(sql).fetch_all(&pool).await.unwrap()
        }
        _ => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query_as(sql).fetch_all(&pool).await.unwrap()
        }
    }
}
