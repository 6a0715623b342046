#!/usr/bin/env bash
# The project's single test command (README.md "Testing"). CI runs it through .ci/run.
# Every step must pass; the first failure stops the run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step prints the seconds elapsed since the start, so a slow CI run can be attributed.
step() { printf '\n==> %s (at %ss)\n' "$*" "$SECONDS"; }

step "rustfmt"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

# npm packages (pinned by lockfiles) that tests need, installed on first use.
if [ ! -d chatprovider/tests/aimock/node_modules/@copilotkit/aimock ]; then
  (cd chatprovider/tests/aimock && npm ci --no-audit --no-fund)
fi
if [ ! -d chatd-test-support/mcp-everything/node_modules/@modelcontextprotocol/server-everything ]; then
  (cd chatd-test-support/mcp-everything && npm ci --no-audit --no-fund)
fi
if [ ! -d server-example/tests/aibridge-sdk/node_modules/openai ]; then
  (cd server-example/tests/aibridge-sdk && npm ci --no-audit --no-fund)
fi

step "TypeScript bindings type-check"
if [ ! -d bindings/node_modules/typescript ]; then
  (cd bindings && npm ci --no-audit --no-fund)
fi
(cd bindings && npx --no-install tsc --noEmit -p .)

step "web page: type-check, bundle drift, unit tests"
if [ ! -d server-example/web/node_modules/esbuild ]; then
  (cd server-example/web && npm ci --no-audit --no-fund)
fi
(cd server-example/web && npx --no-install tsc --noEmit -p . && node build.mjs --check && node tests/unit.mjs)

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "tests"
cargo test --workspace --locked

# The chat page in headless Chromium against a real server (docs/web.md). Without Chromium
# it is installed from Debian's packages when possible (root with apt-get); otherwise the
# browser tests alone skip with a message, unless CHATD_REQUIRE_BROWSER=1 (.ci/run).
step "web page: browser tests"
if [ ! -x /usr/bin/chromium ] && [ -z "${CHATD_CHROMIUM:-}" ] \
  && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq chromium) \
    || echo "chromium could not be installed from Debian's packages"
fi
# `cargo test --workspace` above already built chatd-server for the server's integration
# tests (CARGO_BIN_EXE_chatd-server); `cargo build` would build it again with the binary's
# own, smaller feature set (dev-dependency features are not unified into it), ~80 s on CI.
target_dir="${CARGO_TARGET_DIR:-target}"
if [ ! -x "$target_dir/debug/chatd-server" ]; then
  cargo build -p server-example --bin chatd-server --locked
fi
(cd server-example/web && node tests/browser.mjs)

# Seconds per cargo-fuzz target when the nightly toolchain and cargo-fuzz are present
# (docs/fuzzing.md); scripts/fuzz.sh prints why it skips otherwise.
FUZZ_SMOKE_SECONDS="${FUZZ_SMOKE_SECONDS:-5}"
step "fuzz smoke (${FUZZ_SMOKE_SECONDS}s per target)"
# A fixed seed: the smoke run is a regression check, not a search, so it must not fail CI
# by chance on one run and pass on the next; the long runs (docs/fuzzing.md) search.
bash scripts/fuzz.sh --seconds "$FUZZ_SMOKE_SECONDS" --sanitizer none --seed "${FUZZ_SMOKE_SEED:-20261206}"
step "done"
