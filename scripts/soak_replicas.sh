#!/usr/bin/env bash
# The multi-replica soak: 3 `chatd-server` replicas on one PostgreSQL schema, 1 000 chats ×
# 3 turns against a zero-delay mock provider, one replica SIGKILLed and restarted every
# 5 s; then the throughput of 3 replicas and of 1 on the same database. It prints a table:
# completed turns, lost / duplicated / wrong answers (goal 0/0/0), recovery time p50/p99
# after each kill, relay lag p50/p99 (the replicas' chat_relay_lag_seconds), turns per
# second. The test is `replicas::soak_three_replicas_with_kills` in
# server-example/tests/it/replicas.rs, ignored in the normal run.
#
# PostgreSQL only: set CHATD_TEST_DATABASE_URL, e.g.
#   CHATD_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test scripts/soak_replicas.sh
# The replicas are debug builds (what `cargo test` builds); the machine's load is printed
# before and after, since the numbers depend on it.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${CHATD_TEST_DATABASE_URL:?set CHATD_TEST_DATABASE_URL to a PostgreSQL database, e.g. postgres://postgres@127.0.0.1:5432/test}"
export CHATD_TEST_DATABASE_URL

# Build first (the test binary and chatd-server), so the load printed below is the soak's
# and not the compiler's.
cargo test -p server-example --test it --no-run

echo "load before: $(uptime)"
status=0
cargo test -p server-example --test it -- --ignored --nocapture --exact \
    replicas::soak_three_replicas_with_kills || status=$?
echo "load after: $(uptime)"
exit "$status"
