#!/usr/bin/env bash
# Run web-push-testing (npm), installed into build/ on first use, as a Web Push
# service on 127.0.0.1 (tests/fakes/web_push_testing.js picks the port and prints it).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=build/web-push-testing
version=1.2.2
if [ ! -f "$prefix/node_modules/web-push-testing/package.json" ]; then
  npm install --silent --no-audit --no-fund --prefix "$prefix" "web-push-testing@$version" >/dev/null
fi
NODE_PATH="$PWD/$prefix/node_modules" exec node tests/fakes/web_push_testing.js "$@"
