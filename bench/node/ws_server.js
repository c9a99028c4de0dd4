'use strict';
// Peer: Node `ws` echo server (bufferutil loaded by ws when installed), permessage-deflate disabled.
// Prints {"port": N} once listening; echoes every message back with its type; exits on SIGTERM/SIGINT.
const { WebSocketServer } = require('ws');

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, backlog: 1024 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => {
  process.stdout.write(JSON.stringify({ port: wss.address().port, bufferutil: hasBufferutil() }) + '\n');
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

/** True when ws found the native bufferutil module (what this benchmark is meant to measure). */
function hasBufferutil() {
  try {
    require.resolve('bufferutil');
    return !process.env.WS_NO_BUFFER_UTIL;
  } catch {
    return false;
  }
}
