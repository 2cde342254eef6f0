//! Report latency over an app with 10 million stored postbacks.
//!
//! Builds (once, cached in `target/bench-data/`) 400 days of postbacks for one app from the load
//! generator's factory, shaped like a large advertiser: 8 networks of skewed size, 300 campaigns
//! each (4-digit source identifiers), every version, three windows, four tiers, skewed
//! conversion values. To build 10 million in minutes the bulk
//! postbacks are not signed; each goes through the real parser and the ingest path's flattening
//! to its aggregate key, and the aggregates are loaded through the store's bulk path. A sample of
//! 1,000 signed postbacks from the same factory is run through the ingest preparation first and
//! must verify. The rollup's ended blocks are sealed, as the service does on a schedule. Then the
//! standard report shapes over the last 90 days are timed.
//!
//! Run: `cargo bench --bench reports`. `SKAN_BENCH_POSTBACKS` (default 10000000) sets the size,
//! `SKAN_BENCH_DATABASE_URL` another database (e.g. PostgreSQL; it must be empty or built by this
//! benchmark), `SKAN_BENCH_RUNS` the timed runs per shape (default 5, after one warm-up),
//! `SKAN_BENCH_SHAPES` a comma-separated list of words: only shapes whose name holds one run,
//! `SKAN_BENCH_SEAL=0` leaves the rollup's blocks unsealed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use skan_receiver::clock::ManualClock;
use skan_receiver::ingest::{aggregate_key_of, prepare_item};
use skan_receiver::loadgen::{FactoryConfig, PostbackFactory};
use skan_receiver::report::{self, ReportQuery};
use skan_receiver::schema_versions::SchemaVersions;
use skan_receiver::skan::{Outcome, Postback, Verification};
use skan_receiver::store::{self, AggregateRow, Channel, ConnectOptions, IngestItem, Store};

const APP: u64 = 1_500_000_001;
const DAYS: i64 = 400;
const SCHEMA: &str = include_str!("../testdata/schemas/bit-packed.json");

fn config(sign: bool) -> FactoryConfig {
    FactoryConfig {
        app_ids: vec![APP],
        ad_networks: (1..=8).map(|i| format!("network{i}.skadnetwork")).collect(),
        duplicate_ratio: 0.0,
        campaigns_per_network: 300,
        sign,
    }
}

fn keys_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/keys")
}

fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 11, 1).unwrap_or_default()
}

async fn build(store: &dyn Store, postbacks: u64) {
    // The factory's postbacks are genuine: a signed sample verifies through the ingest path.
    let keys = skan_receiver::apple_keys::load(Some(&keys_dir())).expect("test keys");
    let mut signed = PostbackFactory::from_key_dir(&keys_dir(), 99, config(true)).expect("factory");
    for _ in 0..1000 {
        let item =
            prepare_item(&keys, 65536, signed.next_postback().into(), Channel::Apple, None, 0);
        assert!(
            matches!(&item, IngestItem::Checked { postback, .. } if postback.reason_code.is_none()),
            "{item:?}"
        );
    }
    println!("1000 signed sample postbacks verified through the ingest path");

    let started = Instant::now();
    let mut factory =
        PostbackFactory::from_key_dir(&keys_dir(), 7, config(false)).expect("factory");
    let valid =
        Verification { outcome: Outcome::Valid, key: Some("bulk".to_owned()), development: false };
    let per_day = postbacks / DAYS as u64;
    let mut rows_total = 0usize;
    for day in 0..DAYS {
        let start =
            (first_day() + Duration::days(day)).and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let mut counts: HashMap<_, i64> = HashMap::new();
        for i in 0..per_day {
            let bytes = factory.next_postback();
            let Ok(postback) = Postback::parse(bytes) else { continue };
            let at = start + Duration::milliseconds((i * 86_400_000 / per_day) as i64);
            if let Ok(key) = aggregate_key_of(&postback, &valid, at.timestamp_millis()) {
                *counts.entry(key).or_insert(0) += 1;
            }
        }
        let rows: Vec<AggregateRow> = counts
            .into_iter()
            .map(|(key, postbacks)| AggregateRow { key, postbacks, unsigned_mismatch: 0 })
            .collect();
        rows_total += rows.len();
        store.add_aggregates(&rows).await.expect("bulk load");
        if day % 30 == 29 {
            println!(
                "  built {} days, {rows_total} aggregate rows, {:.0}s",
                day + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "built {} postbacks in {rows_total} aggregate rows in {:.0}s",
        per_day * DAYS as u64,
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    let postbacks: u64 = std::env::var("SKAN_BENCH_POSTBACKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let url = std::env::var("SKAN_BENCH_DATABASE_URL").unwrap_or_else(|_| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
        let _ = std::fs::create_dir_all(&dir);
        format!("sqlite://{}", dir.join(format!("reports-{postbacks}.db")).display())
    });
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let store: Arc<dyn Store> = store::connect(&url, &ConnectOptions::default()).await.expect("database");
        let now: DateTime<Utc> = (first_day() + Duration::days(DAYS)).and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let schemas = SchemaVersions::new(store.clone(), Arc::new(ManualClock::new(now)));
        if !store.app_exists(APP as i64).await.expect("query") {
            // The schema is in place before the traffic, as for an advertiser already running.
            let schema = serde_json::from_str(SCHEMA).expect("schema");
            let from = first_day().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
            schemas.apply(APP as i64, schema, Some(from), "bench", None).await.expect("schema");
            build(store.as_ref(), postbacks).await;
        }
        // The steady state the service keeps: every block that ended before today sealed
        // (`SKAN_BENCH_SEAL=0` leaves them open, to compare).
        let seal = std::env::var("SKAN_BENCH_SEAL").map_or(true, |v| v != "0");
        let started = Instant::now();
        let today = skan_receiver::skan::day_number(now.date_naive());
        let sealed = if seal {
            store.seal_rollup(today).await.expect("seal")
        } else {
            store::SealSummary::default()
        };
        println!(
            "sealed {} blocks of {} rollup rows in {:.0}s, the longest block's transaction {} ms",
            sealed.blocks,
            sealed.rows,
            started.elapsed().as_secs_f64(),
            sealed.longest.as_millis()
        );
        if url.starts_with("postgres") {
            // The steady state autovacuum keeps: rollup appends leave dead row versions, and
            // plans need statistics (a server with autovacuum off, as in CI, has neither).
            let started = Instant::now();
            let pool = sqlx::PgPool::connect(&url).await.expect("database");
            sqlx::query("VACUUM ANALYZE").execute(&pool).await.expect("vacuum");
            println!("VACUUM ANALYZE in {:.0}s", started.elapsed().as_secs_f64());
        }
        let to = first_day() + Duration::days(DAYS - 2);
        let from = to - Duration::days(89);
        let shapes: &[(&str, &str)] = &[
            ("totals", ""),
            ("by day", "&group_by=day"),
            ("by network", "&group_by=ad_network_id"),
            ("by network x campaign", "&group_by=ad_network_id,source_identifier"),
            ("by campaign (2 digits)", "&group_by=source_identifier&digits=2"),
            ("one campaign by day", "&group_by=day&source_identifier=1997"),
            ("by campaign x fine value", "&group_by=source_identifier,fine_value"),
            ("by week x network (arrival)", "&group_by=week,ad_network_id&date_type=arrival"),
            ("by install day", "&group_by=day&date_type=install"),
            ("by window x coarse value", "&group_by=window,coarse_value"),
            ("fine value histogram", "&group_by=fine_value&window=0"),
            ("by event", "&group_by=event"),
            ("by tier x window", "&group_by=tier,window"),
            ("by version", "&group_by=version"),
            ("by fidelity", "&group_by=fidelity"),
            ("by campaign x version", "&group_by=source_identifier,version"),
            ("by week x campaign", "&group_by=week,source_identifier"),
            ("by day x campaign", "&group_by=day,source_identifier"),
            ("by month x campaign", "&group_by=month,source_identifier"),
        ];
        let long: &[(&str, &str)] = &[
            ("400 d totals", ""),
            ("400 d by network x campaign", "&group_by=ad_network_id,source_identifier"),
            ("400 d by campaign x fine value", "&group_by=source_identifier,fine_value"),
            ("400 d by week x network", "&group_by=week,ad_network_id"),
        ];
        let runs: usize =
            std::env::var("SKAN_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
        let citus = is_citus(&url).await;
        let backend = match (url.starts_with("postgres"), citus) {
            (false, _) => "SQLite",
            (true, false) => "PostgreSQL",
            (true, true) => "Citus (coordinator + 2 workers on this machine)",
        };
        println!("\nreport latency, {backend}, app with {postbacks} postbacks, 90 days {from}..{to}:");
        println!(
            "  {:<32} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9}",
            "shape", "median ms", "min ms", "max ms", "rows", "db rows", "db ms", "rust ms"
        );
        let history = schemas.history(APP as i64).await.expect("history");
        let only: Vec<String> = std::env::var("SKAN_BENCH_SHAPES")
            .map(|v| v.split(',').map(str::trim).filter(|w| !w.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        let long_from = to - Duration::days(399);
        for (range, name, extra) in shapes
            .iter()
            .map(|(n, e)| ((from, to), n, e))
            .chain(long.iter().map(|(n, e)| ((long_from, to), n, e)))
            .filter(|(_, name, _)| only.is_empty() || only.iter().any(|w| name.contains(w.as_str())))
        {
            let text = format!("app_id={APP}&from={}&to={}{extra}", range.0, range.1);
            let pairs: Vec<(String, String)> =
                form_urlencoded::parse(text.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
            let query = ReportQuery::parse(&pairs).expect("query");
            let mut times = Vec::new();
            let mut rows = 0;
            for _ in 0..=runs {
                let started = Instant::now();
                let out = report::run(store.as_ref(), &schemas, &query).await.expect("report");
                times.push(started.elapsed().as_secs_f64() * 1000.0);
                rows = out.rows.len();
            }
            times.remove(0); // warm-up
            times.sort_by(f64::total_cmp);
            // Where the time goes: the database read and the decoding and measuring in Rust.
            let started = Instant::now();
            let db_rows = store.report_rows(&report::selection(&query, &history)).await.expect("rows");
            let (source, db_count) = match &db_rows {
                store::ReportData::Rows(rows) => ("rows", rows.len()),
                store::ReportData::Totals(rows) => ("totals", rows.len()),
                store::ReportData::Cells(groups) => {
                    ("cells", groups.iter().map(|g| g.cells.len()).sum())
                }
            };
            let db_ms = started.elapsed().as_secs_f64() * 1000.0;
            let started = Instant::now();
            let _ = report::assemble(&query, &history, &db_rows);
            let rust_ms = started.elapsed().as_secs_f64() * 1000.0;
            println!(
                "  {name:<32} {:>9.1} {:>9.1} {:>9.1} {rows:>7} {db_count:>9} {db_ms:>9.1} {rust_ms:>9.1}  {source}",
                times[times.len() / 2],
                times[0],
                times[times.len() - 1],
            );
        }
        if let Some(bytes) = storage_bytes(&url).await {
            println!(
                "\nstorage: {:.0} MB in all, {:.1} MB per million postbacks",
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / (postbacks as f64 / 1e6)
            );
        }
    });
}

/// The database's size on disk: the SQLite file (with its WAL), or PostgreSQL's database size.
async fn storage_bytes(url: &str) -> Option<u64> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        let main = std::fs::metadata(path).ok()?.len();
        let wal = std::fs::metadata(format!("{path}-wal")).map(|m| m.len()).unwrap_or(0);
        return Some(main + wal);
    }
    let pool = sqlx::PgPool::connect(url).await.ok()?;
    // On Citus the rows live in the workers' shards: sum the distributed tables of this schema.
    let query = if is_citus(url).await {
        "SELECT CAST(SUM(citus_total_relation_size(p.logicalrelid)) AS BIGINT) \
         FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()"
    } else {
        "SELECT pg_database_size(current_database())"
    };
    let (bytes,): (i64,) = sqlx::query_as(query).fetch_one(&pool).await.ok()?;
    u64::try_from(bytes).ok()
}

async fn is_citus(url: &str) -> bool {
    if !url.starts_with("postgres") {
        return false;
    }
    let Ok(pool) = sqlx::PgPool::connect(url).await else { return false };
    sqlx::query_as::<_, (String,)>("SELECT extname::text FROM pg_extension WHERE extname = 'citus'")
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten()
        .is_some()
}
