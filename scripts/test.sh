#!/usr/bin/env bash
# The project's single test command (README.md "Testing"). CI runs it through .ci/run.
# Every step must pass; the first failure stops the run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Fixtures live in ../shared beside the checkout; tests also honour CHATD_FIXTURES.
if [ -z "${CHATD_FIXTURES:-}" ]; then
  for candidate in ../shared/fixtures /work/shared/fixtures; do
    if [ -d "$candidate" ]; then
      CHATD_FIXTURES="$(cd "$candidate" && pwd)"
      export CHATD_FIXTURES
      break
    fi
  done
fi
if [ -z "${CHATD_FIXTURES:-}" ] || [ ! -d "$CHATD_FIXTURES" ]; then
  echo "error: fixtures not found; set CHATD_FIXTURES to shared/fixtures" >&2
  exit 1
fi

step "rustfmt"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

# npm packages (pinned by lockfiles) that tests need, installed on first use.
if [ ! -d chatprovider/tests/aimock/node_modules/@copilotkit/aimock ]; then
  (cd chatprovider/tests/aimock && npm ci --no-audit --no-fund)
fi

step "TypeScript bindings type-check"
if [ ! -d bindings/node_modules/typescript ]; then
  (cd bindings && npm ci --no-audit --no-fund)
fi
(cd bindings && npx --no-install tsc --noEmit -p .)

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "tests"
cargo test --workspace --locked
