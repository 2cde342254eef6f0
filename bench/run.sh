#!/usr/bin/env bash
# One run, one table: P-256 verifications per second per core (OpenSSL, the p256 crate, the
# fixed-key verifier single and batched), this machine's HTTP ceiling, end-to-end ingest over HTTP with durable commit on
# SQLite, PostgreSQL and Citus (throughput, p50/p99, peak RSS, and p99 at half the maximum rate),
# and report latency over 10 million postbacks on SQLite and PostgreSQL, and over 1 million on
# PostgreSQL and Citus side by side.
#
#   bench/run.sh                 everything
#   bench/run.sh --no-reports    skip the report benchmark (its first run builds 10M postbacks)
#
# Environment: COUNT (postbacks per ingest run, default 30000), CONCURRENCY (requests in flight,
# default 64), SKAN_BENCH_POSTGRES_URL (server URL, default postgres://postgres@127.0.0.1:5432;
# the database skan_bench is dropped and created; report data sets are kept in skan_reports_*),
# SKAN_BENCH_CITUS_URL (a Citus coordinator, default: the kit's cluster on 127.0.0.1:5441 when it
# answers; the schema skan_bench is dropped and created, report data is kept in skan_reports_1m),
# SKAN_BENCH_POSTBACKS (report size).
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-30000}
CONCURRENCY=${CONCURRENCY:-64}
PG_SERVER=${SKAN_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
CITUS=${SKAN_BENCH_CITUS_URL:-postgres://postgres@127.0.0.1:5441/postgres?sslmode=disable}
psql "$CITUS" -qAtc 'SELECT citus_version()' > /dev/null 2>&1 || CITUS=""
REPORTS=1
[[ "${1:-}" == "--no-reports" ]] && REPORTS=0
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT

echo "building (release)..." >&2
cargo build --release --locked --quiet
cargo bench --locked --quiet --no-run --bench http_ceiling 2> /dev/null
BIN=target/release/skan-receiver

# --- signature verification, one core -------------------------------------------------------
openssl_rate=$(taskset -c 0 openssl speed -seconds 3 ecdsap256 2>/dev/null \
    | awk '/nistp256/ {print int($NF)}')
taskset -c 0 cargo bench --locked --quiet --bench ecdsa > "$OUT/ecdsa.txt"
value() { sed -n "s/^$1=//p" "$OUT/ecdsa.txt"; }

# --- skan-receiver verify over a file of VERIFY_LINES signed postbacks (every version), all cores
VERIFY_LINES=${VERIFY_LINES:-1000000}
"$BIN" loadgen --keys testdata/keys --count "$VERIFY_LINES" --write "$OUT/verify.ndjson" 2> /dev/null
verify_started=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$OUT/verify.rss" "$BIN" verify --keys testdata/keys "$OUT/verify.ndjson" > /dev/null || true
verify_seconds=$(jq -rn "$(date +%s.%N) - $verify_started")
rm -f "$OUT/verify.ndjson"

# --- end-to-end ingest -------------------------------------------------------------------------
port=18080
wait_ready() {
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$port/readyz" > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "the receiver did not become ready" >&2
    return 1
}

# ingest NAME DATABASE_URL: max rate run, then a run at half that rate; fills $OUT/NAME.*
ingest() {
    local name=$1 url=$2
    port=$((port + 1))
    "$BIN" serve --keys testdata/keys --database-url "$url" --listen "127.0.0.1:$port" \
        --no-dispatch --rate-limit-per-ip 0 > "$OUT/$name.log" 2>&1 &
    local pid=$!
    wait_ready
    "$BIN" loadgen --url "http://127.0.0.1:$port" --keys testdata/keys --count "$COUNT" \
        --concurrency "$CONCURRENCY" --seed 1 > "$OUT/$name.max.json" 2> /dev/null || true
    curl -fsS "http://127.0.0.1:$port/metrics" > "$OUT/$name.metrics" 2> /dev/null || true
    local max half
    max=$(jq -r '.postbacks_per_second' "$OUT/$name.max.json")
    half=$(jq -rn "$max / 2")
    "$BIN" loadgen --url "http://127.0.0.1:$port" --keys testdata/keys --count "$((COUNT / 2))" \
        --concurrency "$CONCURRENCY" --rate "$half" --seed 2 > "$OUT/$name.half.json" 2> /dev/null || true
    curl -fsS "http://127.0.0.1:$port/metrics" > "$OUT/$name.half.metrics" 2> /dev/null || true
    awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status" > "$OUT/$name.rss"
    kill -TERM "$pid"
    wait "$pid" 2> /dev/null || true
}

# batches NAME DATABASE_URL: forwarded batches of 500 on /v1/postbacks, as fast as possible.
batches() {
    local name=$1 url=$2 key
    port=$((port + 1))
    key=$("$BIN" keys create --role ingest --name bench --database-url "$url" 2> /dev/null | tail -1)
    "$BIN" serve --keys testdata/keys --database-url "$url" --listen "127.0.0.1:$port" \
        --no-dispatch --rate-limit-per-ip 0 > "$OUT/$name.log" 2>&1 &
    local pid=$!
    wait_ready
    "$BIN" loadgen --url "http://127.0.0.1:$port" --keys testdata/keys --count "$((COUNT * 2))" \
        --concurrency 4 --api-key "$key" --batch 500 --seed 3 > "$OUT/$name.max.json" 2> /dev/null || true
    cp "$OUT/$name.max.json" "$OUT/$name.half.json"
    awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status" > "$OUT/$name.rss"
    kill -TERM "$pid"
    wait "$pid" 2> /dev/null || true
}

# ceiling: the same load against a server that reads each body and answers 200 (benches/
# http_ceiling.rs), single postbacks and batches: what HTTP alone allows on this machine.
ceiling() {
    port=$((port + 1))
    cargo bench --locked --quiet --bench http_ceiling -- "127.0.0.1:$port" > "$OUT/ceiling.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 600); do
        grep -q 'ceiling server on' "$OUT/ceiling.log" 2> /dev/null && break
        sleep 0.1
    done
    "$BIN" loadgen --url "http://127.0.0.1:$port" --keys testdata/keys --count "$COUNT" \
        --concurrency "$CONCURRENCY" --seed 1 > "$OUT/ceiling.max.json" 2> /dev/null || true
    "$BIN" loadgen --url "http://127.0.0.1:$port" --keys testdata/keys --count "$((COUNT * 2))" \
        --concurrency 4 --api-key unused --batch 500 --seed 3 > "$OUT/ceiling-batch.max.json" 2> /dev/null || true
    pkill -TERM -P "$pid" 2> /dev/null || true
    kill -TERM "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
}

rm -f "$OUT/bench.db" "$OUT/batches.db"
ceiling
ingest sqlite "sqlite://$OUT/bench.db"
batches sqlite-batch "sqlite://$OUT/batches.db"
psql "$PG_SERVER/postgres" -qc "DROP DATABASE IF EXISTS skan_bench" > /dev/null
psql "$PG_SERVER/postgres" -qc "CREATE DATABASE skan_bench" > /dev/null
ingest postgres "$PG_SERVER/skan_bench"
# On Citus each receiver uses a schema of the coordinator's database (the cluster's workers are
# registered there), with the tables distributed by the migrations.
in_schema() { echo "$CITUS&options=-c%20search_path%3D$1"; }
if [[ -n $CITUS ]]; then
    psql "$CITUS" -qc "DROP SCHEMA IF EXISTS skan_bench CASCADE" -c "CREATE SCHEMA skan_bench" > /dev/null
    ingest citus "$(in_schema skan_bench)"
fi

# --- report latency ----------------------------------------------------------------------------
if [[ $REPORTS == 1 ]]; then
    cargo bench --locked --quiet --bench reports > "$OUT/reports.txt" 2>&1 || true
    # PostgreSQL at full size; PostgreSQL and Citus at a million, side by side. Data sets are
    # built on the first run and kept.
    for db in skan_reports_10m skan_reports_1m; do
        psql "$PG_SERVER/postgres" -qAtc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
            || psql "$PG_SERVER/postgres" -qc "CREATE DATABASE $db" > /dev/null
    done
    SKAN_BENCH_DATABASE_URL="$PG_SERVER/skan_reports_10m" \
        cargo bench --locked --quiet --bench reports >> "$OUT/reports.txt" 2>&1 || true
    SKAN_BENCH_DATABASE_URL="$PG_SERVER/skan_reports_1m" SKAN_BENCH_POSTBACKS=1000000 \
        cargo bench --locked --quiet --bench reports >> "$OUT/reports.txt" 2>&1 || true
    if [[ -n $CITUS ]]; then
        psql "$CITUS" -qc "CREATE SCHEMA IF NOT EXISTS skan_reports_1m" > /dev/null
        SKAN_BENCH_DATABASE_URL="$(in_schema skan_reports_1m)" SKAN_BENCH_POSTBACKS=1000000 \
            cargo bench --locked --quiet --bench reports >> "$OUT/reports.txt" 2>&1 || true
    fi
fi

# --- the table -------------------------------------------------------------------------------
ratio() { jq -rn "($1) / ($2) * 100 | round / 100"; }
single=$(value fixed_single_per_s)
printf '\nP-256 signature verification, one core (verifications/s)\n'
printf '  %-34s %10s %10s\n' "verifier" "per second" "x OpenSSL"
printf '  %-34s %10s %10s\n' "OpenSSL $(openssl version | cut -d' ' -f2) (openssl speed)" "$openssl_rate" "1.00"
for key in p256_generic_per_s:"p256 crate, generic" fixed_single_per_s:"fixed-key, single" \
           fixed_batched_per_s:"fixed-key, batches of 64"; do
    rate=$(value "${key%%:*}")
    printf '  %-34s %10s %10s\n' "${key#*:}" "$rate" "$(ratio "$rate" "$openssl_rate")"
done
printf '  %-34s %10s\n' "tables (generator + one key)" "$(( $(value table_bytes) / 1024 )) KiB, built in $(value table_build_ms) ms"
printf '  %-34s %10s\n' "P-192: p192 crate, generic" "$(value p192_generic_per_s)"
printf '  %-34s %10s\n' "P-192: fixed-key, single" "$(value p192_fixed_single_per_s)"
cores=$(nproc)
verify_rate=$(jq -rn "$VERIFY_LINES / $verify_seconds | floor")
printf '\nskan-receiver verify, %s postbacks of every version, %s cores\n' "$VERIFY_LINES" "$cores"
printf '  %s postbacks/s, %s of the batched rate x cores, peak RSS %s MiB\n' "$verify_rate" \
    "$(ratio "$verify_rate" "$(value fixed_batched_per_s) * $cores")" "$(( $(cat "$OUT/verify.rss") / 1024 ))"

printf '\nEnd-to-end ingest over HTTP, durable commit, %s postbacks, concurrency %s\n' "$COUNT" "$CONCURRENCY"
printf '  %-12s %12s %8s %8s %14s %14s %11s %9s %10s\n' "backend" "postbacks/s" "p50 ms" "p99 ms" "p99 @ half ms" "x 2×OpenSSL" "x ceiling" "RSS MiB" "failures"
rate_of() { jq -r .postbacks_per_second "$1" 2> /dev/null || echo 0; }
for name in ceiling sqlite postgres citus ceiling-batch sqlite-batch; do
    j="$OUT/$name.max.json"
    [[ -f $j ]] || continue
    ceiling_json="$OUT/ceiling.max.json"
    [[ $name == *batch ]] && ceiling_json="$OUT/ceiling-batch.max.json"
    half="-"
    [[ -f $OUT/$name.half.json ]] && half=$(printf '%.2f' "$(jq -r .latency_ms.p99 "$OUT/$name.half.json")")
    [[ $name == sqlite-batch ]] && half="-"
    rss="-"
    [[ -f $OUT/$name.rss ]] && rss=$(cat "$OUT/$name.rss")
    printf '  %-12s %12.0f %8.2f %8.2f %14s %14s %11s %9s %10s\n' "$name" \
        "$(rate_of "$j")" "$(jq -r .latency_ms.p50 "$j")" \
        "$(jq -r .latency_ms.p99 "$j")" "$half" \
        "$(ratio "$(rate_of "$j")" "2 * $openssl_rate")" \
        "$(ratio "$(rate_of "$j")" "$(rate_of "$ceiling_json")")" \
        "$rss" "$(jq -r '[.failures[]] | add // 0' "$j")"
done
printf '  (ceiling, ceiling-batch: the same load against a server that only reads bodies and answers\n'
printf '   200, benches/http_ceiling.rs; x ceiling: share of it)\n'
printf '  (single postbacks on Apple'"'"'s path; sqlite-batch: batches of 500 on /v1/postbacks at\n'
printf '   concurrency 4, latency per batch; signed with the test keys, --verifier fast; citus: a\n'
printf '   coordinator and two workers sharing these 2 cores with the load generator and the\n'
printf '   receiver, so its figures are only directional)\n'

# Mean milliseconds per commit group in each phase of the postback transaction, from the
# receiver's skan_record_phase_seconds after its maximum-rate run.
printf '\nWhere the writer'"'"'s time goes at the maximum rate (mean ms per commit group)\n'
for name in sqlite postgres citus; do
    m="$OUT/$name.metrics"
    [[ -s $m ]] || continue
    awk -v name="$name" -v seconds="$(jq -r .seconds "$OUT/$name.max.json")" '
        /^skan_commit_duration_seconds_sum\{operation="record"\}/ { busy = $NF }
        /^skan_record_phase_seconds_sum/ { split($0, a, "\""); sum[a[2]] = $NF }
        /^skan_record_phase_seconds_count/ { split($0, a, "\""); count[a[2]] = $NF }
        /^skan_commit_group_items_sum\{operation="record"\}/ { items = $NF }
        /^skan_commit_group_items_count\{operation="record"\}/ { groups = $NF }
        END {
            line = sprintf("  %-10s %5.1f postbacks/group", name, groups ? items / groups : 0)
            split("begin postbacks counts outbox commit", order, " ")
            for (i = 1; i <= 5; i++) {
                p = order[i]
                line = line sprintf("  %s %.2f", p, count[p] ? sum[p] / count[p] * 1000 : 0)
            }
            # Writers at work, summed: 1.00 is one writer busy all the time.
            print line sprintf("  writers busy %.2f", seconds > 0 ? busy / seconds : 0)
        }' "$m"
done

# The verification stage (src/ingest/verify_stage.rs): how many items a batch took at the
# maximum rate, and how long a postback waited for its batch to start during the half-rate run
# (the difference of the two runs' skan_verify_wait_seconds).
printf '\nVerification stage: items per batch at the maximum rate, wait for the batch at half rate\n'
for name in sqlite postgres citus; do
    [[ -s $OUT/$name.metrics && -s $OUT/$name.half.metrics ]] || continue
    stat() { awk -v m="$1" '$1 == m { print $NF }' "$2"; }
    items=$(stat skan_verify_batch_items_sum "$OUT/$name.metrics")
    batches=$(stat skan_verify_batch_items_count "$OUT/$name.metrics")
    wait_max=$(stat skan_verify_wait_seconds_sum "$OUT/$name.metrics")
    jobs_max=$(stat skan_verify_wait_seconds_count "$OUT/$name.metrics")
    wait_half=$(stat skan_verify_wait_seconds_sum "$OUT/$name.half.metrics")
    jobs_half=$(stat skan_verify_wait_seconds_count "$OUT/$name.half.metrics")
    printf '  %-10s %5.1f items per batch  mean wait at half rate %.0f µs\n' "$name" \
        "$(jq -rn "${items:-0} / ([${batches:-0}, 1] | max)")" \
        "$(jq -rn "(${wait_half:-0} - ${wait_max:-0}) / ([${jobs_half:-0} - ${jobs_max:-0}, 1] | max) * 1e6")"
done

if [[ $REPORTS == 1 ]]; then
    grep -v '^\(  built\|built\|1000 signed\)' "$OUT/reports.txt" | sed -n '/^report latency/,$p' | sed 's/^/  /'
fi
