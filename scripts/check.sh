#!/usr/bin/env bash
# The whole test job: lint, types, the test suite (with and without the C accelerator), the other supported
# Pythons, and the Autobahn suite in both roles. This is the README's test command and what CI runs.
# Tools that are missing locally make their tests skip; with WSSTREAM_REQUIRE_ALL=1 (CI) they fail instead.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
py="$repo/.venv/bin/python"
failed=()

step() {
    local name="$1"; shift
    local start=$SECONDS
    echo "=== $name"
    if "$@"; then
        echo "=== $name: ok ($((SECONDS - start)) s)"
    else
        echo "=== $name: FAILED ($((SECONDS - start)) s)"
        failed+=("$name")
    fi
}

step "ruff" "$py" -m ruff check wsstream tests bench autobahn examples
step "mypy --strict" "$py" -m mypy
step "pytest" "$py" -m pytest -q -p no:cacheprovider
step "pytest, pure Python (WSSTREAM_NO_SPEEDUPS=1)" env WSSTREAM_NO_SPEEDUPS=1 \
    "$py" -m pytest -q -p no:cacheprovider tests/core tests/test_connection.py tests/test_client.py tests/test_server.py
for version in 3.10 3.12 3.13; do
    other="$repo/.tools/py$version/bin/python"
    if [ -x "$other" ]; then
        step "pytest on Python $version" "$other" -m pytest -q -p no:cacheprovider \
            tests/core tests/test_connection.py tests/test_client.py tests/test_server.py tests/streams
    elif [ -n "${WSSTREAM_REQUIRE_ALL:-}" ] && [ "${WSSTREAM_REQUIRE_ALL}" != 0 ]; then
        echo "=== Python $version: missing (.ci/install-pythons.sh makes it)"; failed+=("python $version")
    fi
done
step "autobahn 1-11, both roles" "$py" autobahn/run.py --role both --reports reports/autobahn
step "autobahn compression subset, both roles" "$py" autobahn/run.py --role both --compression \
    --cases "12.1.*,12.5.*,13.1.*,13.7.*" --reports reports/autobahn-deflate

if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all checks passed"
