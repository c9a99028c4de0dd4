'use strict';
// A Node `ws` peer that speaks through createWebSocketStream, for tests/streams/test_streams_node.py.
//
//   node stream_peer.js server SIZE        listen on 127.0.0.1:0, print {"port": N}, take one connection
//   node stream_peer.js client SIZE URL    connect to URL
//
// On the connection it writes SIZE random bytes in random-sized writes (honouring back-pressure) while hashing
// what it reads; once SIZE bytes went each way it prints {"sent": sha256, "received": sha256, "bytes": n} and
// ends its stream (ws closes with 1000). Exits 0 after the close, 1 on any error.

const crypto = require('crypto');
const { once } = require('events');
const { WebSocket, WebSocketServer, createWebSocketStream } = require('ws');

const [role, sizeArg, url] = process.argv.slice(2);
const size = Number(sizeArg);

function fail(err) {
  process.stderr.write(`stream_peer: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
}

async function run(ws) {
  const duplex = createWebSocketStream(ws);
  duplex.on('error', fail);
  const received = crypto.createHash('sha256');
  let receivedBytes = 0;
  const allReceived = new Promise((resolve) => {
    duplex.on('data', (chunk) => {
      received.update(chunk);
      receivedBytes += chunk.length;
      if (receivedBytes >= size) resolve();
    });
  });
  const data = crypto.randomBytes(size);
  const sent = crypto.createHash('sha256').update(data).digest('hex');
  let pos = 0;
  while (pos < size) {
    const step = 1 + crypto.randomInt(Math.min(1 << 20, size - pos));
    if (!duplex.write(data.subarray(pos, pos + step))) await once(duplex, 'drain');
    pos += step;
  }
  await allReceived;
  process.stdout.write(JSON.stringify({ sent, received: received.digest('hex'), bytes: receivedBytes }) + '\n');
  duplex.end();
  await once(ws, 'close');
}

if (role === 'server') {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 }, () => {
    process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
  });
  server.once('connection', (ws) => {
    run(ws).then(() => server.close(() => process.exit(0)), fail);
  });
} else if (role === 'client') {
  const ws = new WebSocket(url);
  ws.once('open', () => run(ws).then(() => process.exit(0), fail));
  ws.once('error', fail);
} else {
  fail(`unknown role ${role}`);
}
