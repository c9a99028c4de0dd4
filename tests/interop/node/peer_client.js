'use strict';
// Node `ws` echo/command client for wsstream's interop tests (see peer.js for the behaviour).
// usage: node peer_client.js URL [--subprotocols a,b] [--deflate]
// Connects once, behaves as a peer until the connection closes, then exits (status 0 after any close).
const { WebSocket } = require('ws');
const { attach, options, report, exitWithParent } = require('./peer');

const url = process.argv[2];
const opts = options(process.argv.slice(3));
const ws = new WebSocket(url, opts.subprotocols, {
  maxPayload: 64 * 1024 * 1024,
  perMessageDeflate: opts.deflate,
  handshakeTimeout: 10000,
});
ws.on('open', () => attach(ws, new URL(url).pathname));
ws.on('unexpected-response', (req, res) => {
  report('ERROR', { message: `unexpected response ${res.statusCode}` });
  process.exit(1);
});
ws.on('error', (err) => report('ERROR', { message: String(err && err.message) }));
ws.on('close', () => setImmediate(() => process.exit(0)));
exitWithParent();
