'use strict';
// Node `ws` echo/command server for wsstream's interop tests (see peer.js for the behaviour).
// usage: node peer_server.js PORT [--subprotocols a,b] [--deflate]     PORT 0 picks a free port.
// Prints "READY <port>" once listening on 127.0.0.1.
const { WebSocketServer } = require('ws');
const { attach, options, exitWithParent } = require('./peer');

const port = Number(process.argv[2]);
const opts = options(process.argv.slice(3));
const server = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload: 64 * 1024 * 1024,
  perMessageDeflate: opts.deflate,
  // Pick the first of our protocols the client offered; none offered or none shared: no subprotocol.
  handleProtocols: (offered) => opts.subprotocols.find((p) => offered.has(p)) || false,
});
server.on('listening', () => process.stdout.write(`READY ${server.address().port}\n`));
server.on('connection', (ws, req) => attach(ws, req.url));
exitWithParent();
