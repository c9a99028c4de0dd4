#!/usr/bin/env bash
# Install Node.js (when missing) and the Node `ws` peer used by tests/interop/ (ws, bufferutil, utf-8-validate
# from tests/interop/node/package-lock.json into tests/interop/node/node_modules).
# Idempotent: node_modules matching the lock file is left alone. Run as root.
#   usage: .ci/install-node.sh
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$repo/tests/interop/node"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
fi

cd "$dir"
# npm ci writes node_modules/.package-lock.json; when it equals the lock's packages the install is current.
if [ -f node_modules/.package-lock.json ] && node -e "require('ws'); require('bufferutil'); require('utf-8-validate')" 2>/dev/null \
    && node -e '
        const a = require("./package-lock.json").packages, b = require("./node_modules/.package-lock.json").packages;
        for (const k of Object.keys(a)) if (k && (!b[k] || b[k].version !== a[k].version)) process.exit(1);
    ' 2>/dev/null; then
    echo "install-node: node_modules is current"
    exit 0
fi
npm ci --no-audit --no-fund
