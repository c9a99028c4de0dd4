#!/bin/sh
# websocketd style: serve a line-oriented command over WebSocket, then ask it one question with the client.
#   sh examples/cli_exec_service.sh        (WSSTREAM="wsstream" to use the installed command)
set -eu
WSSTREAM=${WSSTREAM:-"python3 -m wsstream"}
log=$(mktemp)
# One `sh` per connection: each received message is a line on its stdin, each line it prints is a message.
$WSSTREAM -l 127.0.0.1:0 --exec sh -c 'while read -r line; do echo "you said: $line"; done' 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null; rm -f "$log"' EXIT INT TERM

# Port 0 picks a free port; the listener names it on stderr.
port=""
for _ in $(seq 100); do
    port=$(sed -n 's|.*listening on ws://127.0.0.1:\([0-9]*\)/.*|\1|p' "$log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { cat "$log" >&2; exit 1; }

# --oneshot: print the first reply, then close (stdin EOF alone would race the reply).
printf 'hello\n' | $WSSTREAM --oneshot --no-proxy "ws://127.0.0.1:$port/"
