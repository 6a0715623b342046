#!/usr/bin/env bash
# Rebuilds the chat page's bundle (server-example/web/dist/: hashed script and stylesheet,
# index.html, their .br and .gz variants, and the manifest.rs the server embeds). Commit the result: the test command
# fails when the committed bundle differs from a fresh build (docs/web.md).
set -euo pipefail
cd "$(dirname "$0")/../server-example/web"
if [ ! -d node_modules/esbuild ]; then
  npm ci --no-audit --no-fund
fi
npx --no-install tsc --noEmit -p .
node build.mjs
