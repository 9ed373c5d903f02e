#!/usr/bin/env bash
# Run the buf CLI from the npm package @bufbuild/buf, installed into build/.
set -euo pipefail
prefix=build/buf
version=1.75.0
if [ ! -x "$prefix/node_modules/.bin/buf" ]; then
  npm install --silent --no-audit --no-fund --prefix "$prefix" "@bufbuild/buf@$version" >/dev/null
fi
exec "$prefix/node_modules/.bin/buf" "$@"
