#!/usr/bin/env bash
# Install the real proxy servers the connector tests run against (tests/connectors/).
# Idempotent: a package already present is left alone. Run as root.
#   usage: .ci/install-proxies.sh [VENV]     (VENV defaults to .venv)
# Debian: tinyproxy (HTTP CONNECT), squid (HTTP/HTTPS CONNECT), dante-server (SOCKS4/5), microsocks (SOCKS5),
# openssl (hashes the squid test password).
# PyPI (into VENV): tiny-proxy (the only server here speaking SOCKS4a), anyio (its listener), python-socks>=3.
set -euo pipefail

venv="${1:-.venv}"
debs=(tinyproxy squid dante-server microsocks openssl)

missing=()
for pkg in "${debs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# apt may start squid, tinyproxy and danted as services on a systemd machine; the tests use their own ports and
# configs, but stop the services so they hold no port and no CPU.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    for svc in squid tinyproxy danted; do
        systemctl stop "$svc" >/dev/null 2>&1 || true
    done
fi

"$venv/bin/python" -m pip install -q "tiny-proxy>=0.2" "anyio>=4" "python-socks[asyncio]>=3.0"
