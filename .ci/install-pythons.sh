#!/usr/bin/env bash
# Create a virtual environment with wsstream (C accelerator built) and its test dependencies for every other
# supported CPython found under pyenv: .tools/py3.10, .tools/py3.12, .tools/py3.13. Idempotent. Run as root.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
for version in 3.10 3.12 3.13; do
    python="$(ls -d "$root"/versions/"$version".*/bin/python"$version" 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -z "$python" ]; then
        echo "install-pythons: no CPython $version under $root" >&2
        continue
    fi
    venv="$repo/.tools/py$version"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q -U pip
    "$venv/bin/python" -m pip install -q -e "$repo[test]"
done
