#!/usr/bin/env bash
# The engine soak of issue 13, item 0: 5 000 turns at 50 concurrent chats with default
# engine settings, asserting that no chat is left stuck (the test is
# `engine::soak_5000_turns_at_50_concurrent_chats_leave_no_chat_stuck` in chatd-core/tests/it/engine.rs,
# ignored in the normal test run because it takes tens of seconds per backend).
#
# It always runs on SQLite; with CHATD_TEST_DATABASE_URL set (for example
# postgres://postgres@127.0.0.1:5432/test) it runs on PostgreSQL too. The machine's load
# is printed before and after, since the numbers depend on it. Record results in
# docs/soak.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build first, so the load printed below is the soak's and not the compiler's.
cargo test -p chatd-core --test it --no-run

echo "load before: $(uptime)"
status=0
cargo test -p chatd-core --test it -- --ignored --nocapture \
    engine::soak_5000_turns_at_50_concurrent_chats_leave_no_chat_stuck || status=$?
echo "load after: $(uptime)"
exit "$status"
