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

# wstest is single-threaded and the compression cases take minutes: start them in the background, one process
# per role, so that they use the second core while the rest runs.
deflate_cases="12.1.*,12.5.*,13.1.*,13.7.*"
mkdir -p reports
"$py" autobahn/run.py --role server --compression --cases "$deflate_cases" --reports reports/autobahn-deflate-server \
    > reports/autobahn-deflate-server.log 2>&1 &
deflate_server=$!
"$py" autobahn/run.py --role client --compression --cases "$deflate_cases" --reports reports/autobahn-deflate-client \
    > reports/autobahn-deflate-client.log 2>&1 &
deflate_client=$!

step "ruff" "$py" -m ruff check wsstream tests bench autobahn examples
step "mypy --strict" "$py" -m mypy
step "pytest" "$py" -m pytest -q -p no:cacheprovider
step "pytest, pure Python (WSSTREAM_NO_SPEEDUPS=1)" env WSSTREAM_NO_SPEEDUPS=1 \
    "$py" -m pytest -q -p no:cacheprovider tests/core tests/test_connection.py tests/test_client.py tests/test_server.py
for version in 3.10 3.12 3.13; do
    other="$repo/.tools/py$version/bin/python"
    if [ -x "$other" ]; then
        step "pytest on Python $version" "$other" -m pytest -q -p no:cacheprovider \
            tests/core tests/test_connection.py tests/test_client.py tests/test_server.py tests/streams \
            tests/connectors/test_chain.py tests/connectors/test_direct.py
    elif [ -n "${WSSTREAM_REQUIRE_ALL:-}" ] && [ "${WSSTREAM_REQUIRE_ALL}" != 0 ]; then
        echo "=== Python $version: missing (.ci/install-pythons.sh makes it)"; failed+=("python $version")
    fi
done
step "autobahn 1-11, both roles" "$py" autobahn/run.py --role both --reports reports/autobahn

wait_for() {
    local name="$1" pid="$2" log="$3"
    echo "=== $name"
    if wait "$pid"; then
        tail -n 3 "$log"; echo "=== $name: ok"
    else
        tail -n 40 "$log"; echo "=== $name: FAILED"; failed+=("$name")
    fi
}
wait_for "autobahn compression subset, server" "$deflate_server" reports/autobahn-deflate-server.log
wait_for "autobahn compression subset, client" "$deflate_client" reports/autobahn-deflate-client.log

if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all checks passed"
