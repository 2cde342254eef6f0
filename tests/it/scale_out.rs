//! Running on a distributed database: the tables really are distributed on Citus, one app's report
//! reads one shard, two receivers share one database under concurrent load, and every statement
//! that locks or changes a distributed table names its distribution column.

use std::sync::Arc;

use serde_json::Value;
use skan_receiver::clock::ManualClock;
use skan_receiver::store::Role;

use crate::helpers::{Backend, Spec, TestApp, TestDb, backends};

/// The distribution column of every distributed table; the others are reference tables on Citus.
const DISTRIBUTED: [(&str, &str); 12] = [
    ("postbacks", "app_id"),
    ("receipts", "app_id"),
    ("schema_versions", "app_id"),
    ("aggregates", "app_id"),
    ("report_cube", "app_id"),
    ("report_totals", "app_id"),
    ("report_rollup", "app_id"),
    ("report_rollup_sealed", "app_id"),
    ("destination_state", "destination_id"),
    ("deliveries", "destination_id"),
    ("delivery_attempts", "destination_id"),
    // Listed so the statement check below knows it; not a table of its own.
    ("report_rollup_state", ""),
];

const REFERENCE: [&str; 4] = ["destinations", "api_keys", "report_rollup_state", "storage_probe"];

#[tokio::test]
async fn on_citus_the_tables_are_distributed_and_one_apps_report_reads_one_shard() {
    if !backends().contains(&Backend::Citus) {
        return;
    }
    let db = TestDb::new(Backend::Citus).await;
    let _store = db.store().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let placed: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT c.relname::text, p.partmethod::text, \
                column_to_column_name(p.logicalrelid, p.partkey), p.colocationid::bigint \
         FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let find = |table: &str| placed.iter().find(|(name, ..)| name == table);
    let app_group = find("postbacks").map(|t| t.3);
    let destination_group = find("destination_state").map(|t| t.3);
    for (table, column) in DISTRIBUTED.iter().filter(|(_, c)| !c.is_empty()) {
        let (_, method, key, group) =
            find(table).unwrap_or_else(|| panic!("{table} is not distributed: {placed:?}"));
        assert_eq!(method, "h", "{table} is hash-distributed");
        assert_eq!(key.as_deref(), Some(*column), "{table} is distributed by {column}");
        let expected = if *column == "app_id" { app_group } else { destination_group };
        assert_eq!(Some(*group), expected, "{table} is co-located with the other {column} tables");
    }
    for table in REFERENCE {
        let (_, method, ..) =
            find(table).unwrap_or_else(|| panic!("{table} is not a reference table: {placed:?}"));
        assert_eq!(method, "n", "{table} is a reference table");
    }
    // What one app's report reads, each planned as a single task on one shard.
    for read in [
        "SELECT day, ad_network_id, counts FROM report_rollup WHERE app_id = 7 \
         AND date_kind = 'arrival' AND family = 'source' AND span = 64 AND day >= 0 AND day <= 640",
        "SELECT packed FROM report_rollup_sealed WHERE app_id = 7 AND date_kind = 'arrival' \
         AND span = 56 AND day >= 0 AND day <= 640 AND family = 'source'",
        "SELECT day, SUM(postbacks) FROM report_cube WHERE app_id = 7 AND date_kind = 'arrival' \
         AND day >= 0 AND day <= 90 GROUP BY day",
        "SELECT day, SUM(valid) FROM report_totals WHERE app_id = 7 AND date_kind = 'install' \
         AND day >= 0 AND day <= 90 GROUP BY day",
        "SELECT ad_network_id, SUM(postbacks) FROM aggregates WHERE app_id = 7 \
         AND arrival_day >= 0 AND arrival_day <= 90 GROUP BY ad_network_id",
        "SELECT version, document FROM schema_versions WHERE app_id = 7 ORDER BY version",
    ] {
        let plan: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN {read}")))
            .fetch_all(&pool)
            .await
            .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|(line,)| line).collect();
        assert!(
            plan.iter().any(|line| line.contains("Task Count: 1")),
            "{read}\n{}",
            plan.join("\n")
        );
    }
    pool.close().await;
}

#[tokio::test]
async fn two_receivers_on_one_database_take_concurrent_load_without_loss_or_double_counts() {
    for backend in backends().into_iter().filter(|b| *b != Backend::Sqlite) {
        let db = TestDb::new(backend).await;
        let clock = Arc::new(ManualClock::new("2026-11-10T12:00:00Z".parse().unwrap()));
        let first = TestApp::spawn_with_clock(&db, Arc::clone(&clock)).await;
        let second = TestApp::spawn_with_clock(&db, Arc::clone(&clock)).await;
        // Three apps (three shards' worth of rows on Citus), 40 postbacks each; every postback is
        // sent to both receivers at once, so half of the 240 requests race a copy.
        let specs: Vec<(u64, Vec<u8>)> = (0..120u64)
            .map(|i| {
                let app = 900 + i % 3;
                (app, Spec::new(app, &format!("load-{i}")).fine((i % 64) as u8).bytes())
            })
            .collect();
        let sends = specs.iter().flat_map(|(_, body)| {
            [first.post_apple(body.clone()), second.post_apple(body.clone())]
        });
        let responses = futures_util::future::join_all(sends).await;
        let mut accepted = 0;
        let mut duplicates = 0;
        for response in responses {
            assert_eq!(response.status(), 200, "{backend:?}");
            let body: Value = response.json().await.unwrap();
            match body["result"].as_str() {
                Some("accepted") => accepted += 1,
                Some("duplicate") => duplicates += 1,
                other => panic!("{backend:?}: {other:?} {body}"),
            }
        }
        assert_eq!((accepted, duplicates), (120, 120), "{backend:?}: each postback stored once");
        let viewer = first.key(Role::Viewer).await;
        for app in 900..903 {
            let path = format!(
                "/v1/reports?app_id={app}&from=2026-11-01&to=2026-11-30&group_by=fine_value"
            );
            for receiver in [&first, &second] {
                let (status, report) = receiver.get_json(&viewer, &path).await;
                assert_eq!(status, 200, "{report}");
                assert_eq!(report["totals"]["postbacks"], 40, "{backend:?} app {app}");
                let rows = report["rows"].as_array().unwrap();
                let counted: i64 = rows.iter().map(|r| r["postbacks"].as_i64().unwrap()).sum();
                assert_eq!(counted, 40, "{backend:?} app {app}: no value counted twice");
            }
        }
        first.stop().await;
        second.stop().await;
    }
}

/// Statement text from `start` to the point where it is sent (`.execute(`, `.fetch`), which is
/// where every builder in the store ends a statement, or to the end of a constant (`";`).
fn statement_from(source: &str, start: usize) -> &str {
    let rest = &source[start..];
    let end =
        [".execute(", ".fetch_one(", ".fetch_all(", ".fetch_optional(", "build_query_as", "\";"]
            .iter()
            .filter_map(|end| rest.find(end))
            .min()
            .unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn every_statement_that_locks_or_changes_a_distributed_table_names_its_distribution_column() {
    // On Citus a statement without an equality on the distribution column runs on every shard,
    // and a multi-shard UPDATE or DELETE locks whole shards against every other one.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
    // The one exception: filling the rollup the first time the service starts on an old
    // database (it empties the table, under the lock that keeps every writer out).
    let allowed = ["DELETE FROM report_rollup\"", "DELETE FROM report_rollup_sealed\""];
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        for (table, column) in DISTRIBUTED.iter().filter(|(_, c)| !c.is_empty()) {
            for verb in [format!("UPDATE {table} "), format!("DELETE FROM {table}")] {
                for (at, _) in source.match_indices(verb.as_str()) {
                    let statement = statement_from(&source, at);
                    if allowed.iter().any(|a| source[at..].starts_with(a)) {
                        continue;
                    }
                    let needle = format!("{column} = ");
                    assert!(
                        statement.contains(&needle),
                        "{}: `{}` does not name {column}",
                        path.display(),
                        statement.trim()
                    );
                    checked += 1;
                }
            }
        }
        // Row locks: every `LOCK_ROW` / `SKIP_LOCKED` statement names a distribution column
        // (or reads a reference table, which Citus locks as a whole).
        for marker in ["DB::LOCK_ROW", "DB::SKIP_LOCKED"] {
            for (at, _) in source.match_indices(marker) {
                let before = &source[..at];
                let start = before.rfind("QueryBuilder::").unwrap_or(0);
                let statement = &source[start..at];
                let reference = REFERENCE.iter().any(|t| statement.contains(&format!("FROM {t}")));
                assert!(
                    reference
                        || statement.contains("app_id = ")
                        || statement.contains("destination_id = "),
                    "{}: a locking read does not name its distribution column: {}",
                    path.display(),
                    statement.trim()
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 12, "the check found the store's statements ({checked})");
}

/// Apply the migrations before the distribution keys (up to 0010) to `url`, then run `sql`.
async fn migrate_to_0010_and_run(url: &str, backend: Backend, sql: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let dialect = if backend == Backend::Sqlite { "sqlite" } else { "postgres" };
    let source = crate::helpers::repo_path(&format!("migrations/{dialect}"));
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < "0011" {
            std::fs::copy(&path, dir.path().join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    if backend == Backend::Sqlite {
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true)).await.unwrap();
        migrator.run(&pool).await.unwrap();
        for statement in sql {
            sqlx::query(sqlx::AssertSqlSafe(*statement)).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        migrator.run(&pool).await.unwrap();
        for statement in sql {
            sqlx::query(sqlx::AssertSqlSafe(*statement)).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
}

#[tokio::test]
async fn an_existing_database_is_upgraded_in_place_with_nothing_lost() {
    for backend in backends() {
        let db = TestDb::new(backend).await;
        // A postback with a receipt, a rejected item's receipt, a destination in a failure run with
        // a spent token bucket, a delivery and its attempt: rows as the schema before 0011 held them.
        migrate_to_0010_and_run(&db.url, backend, &[
            "INSERT INTO postbacks (identity_key, dedup_key, protocol, ad_network_id, app_id, \
             transaction_id, conversion_window, did_win, outcome, development, values_channel, \
             first_received_at) VALUES ('k1', 'k1', 'skadnetwork', 'n.skadnetwork', 42, 't1', 0, \
             TRUE, 'valid', FALSE, 'apple', 1000)",
            "INSERT INTO receipts (postback_id, received_at, channel, result, raw) \
             SELECT id, 1000, 'apple', 'accepted', 'x' FROM postbacks",
            "INSERT INTO receipts (postback_id, received_at, channel, result, raw) \
             VALUES (NULL, 1001, 'network', 'rejected', 'y')",
            "INSERT INTO destinations (name, enabled, config, created_at, updated_at, \
             failing_since, tokens_milli, tokens_at) \
             VALUES ('partner', TRUE, '{}', 1, 1, 777, 1500, 900)",
            "INSERT INTO deliveries (destination_id, postback_id, state, next_attempt_at, \
             created_at, updated_at) SELECT d.id, p.id, 'dead', 5, 5, 5 FROM destinations d, postbacks p",
            "INSERT INTO delivery_attempts (delivery_id, attempt, trigger, started_at, duration_ms, \
             url) SELECT id, 1, 'schedule', 6, 7, 'https://partner.example/pb' FROM deliveries",
        ])
        .await;

        // The service's own connect applies 0011 and later.
        let store = db.store().await;
        let postback = store
            .list_postbacks(&skan_receiver::store::PostbackQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .remove(0);
        assert_eq!(postback.app_id, 42);
        let receipts = store.receipts_in_app(42, postback.id).await.unwrap();
        assert_eq!(receipts.len(), 1, "{backend:?}: the receipt moved under its app");
        let destination = store.list_destinations().await.unwrap().remove(0);
        assert_eq!(destination.failing_since_ms, Some(777), "{backend:?}: the failure run kept");
        let deliveries = store
            .list_deliveries(&skan_receiver::store::DeliveryQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].state, "dead");
        let attempts = store.delivery_attempts(deliveries[0].id).await.unwrap();
        assert_eq!(attempts.len(), 1, "{backend:?}: the attempt kept its delivery");
        assert_eq!(store.pending_migrations().await.unwrap(), 0);
        store.close().await;
    }
}
