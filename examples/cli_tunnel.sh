#!/bin/sh
# A TCP service through a WebSocket tunnel, both ends on loopback:
#   HTTP client -> wsstream --tcp-listen -> WebSocket -> wsstream -l --forward -> python -m http.server
#   sh examples/cli_tunnel.sh        (WSSTREAM="wsstream" to use the installed command)
set -eu
WSSTREAM=${WSSTREAM:-"python3 -m wsstream"}
PYTHON=${PYTHON:-python3}
dir=$(mktemp -d)
pids=""
trap 'kill $pids 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
echo "hello through the tunnel" > "$dir/index.txt"

wait_port() {  # wait_port LOGFILE SCHEME -> the port named in "listening on SCHEME://127.0.0.1:PORT"
    for _ in $(seq 100); do
        port=$(sed -n "s|.*listening on $2://127.0.0.1:\([0-9]*\).*|\1|p" "$1")
        [ -n "$port" ] && { echo "$port"; return; }
        sleep 0.1
    done
    cat "$1" >&2
    exit 1
}

# The service: a static HTTP server on a free port.
http_port=$($PYTHON -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$PYTHON -m http.server --bind 127.0.0.1 --directory "$dir" "$http_port" >/dev/null 2>&1 &
pids="$pids $!"

# websockify end: each WebSocket becomes a TCP connection to the service.
$WSSTREAM -l 127.0.0.1:0 --forward "127.0.0.1:$http_port" 2>"$dir/forward.log" &
pids="$pids $!"
ws_port=$(wait_port "$dir/forward.log" ws)

# Client end: each TCP connection becomes a WebSocket to the forwarder.
$WSSTREAM --no-proxy --tcp-listen 127.0.0.1:0 "ws://127.0.0.1:$ws_port/" 2>"$dir/tcp.log" &
pids="$pids $!"
tcp_port=$(wait_port "$dir/tcp.log" tcp)

$PYTHON - "$tcp_port" <<'PY'
import sys, time, urllib.request
for attempt in range(50):  # http.server may still be starting: the tunnel then closes at once
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/index.txt", timeout=10) as response:
            print(response.read().decode(), end="")
            break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the service never answered through the tunnel")
PY
