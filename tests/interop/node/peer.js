'use strict';
// The behaviour shared by the Node `ws` peers of wsstream's interop tests (peer_server.js, peer_client.js).
//
// A peer echoes every data message as received (text as text, binary as binary) and obeys text commands that
// start with "!" followed by JSON, so one Python test drives the same scenario whichever side the peer is on:
//   {"op":"fragments","parts":[base64...],"binary":bool}  send one message split into these frames
//   {"op":"ping","data":"x"}                              send a ping; on its pong send text "!pong x"
//   {"op":"close","code":4000,"reason":"r"}               start the closing handshake
//   {"op":"info"}                                          send "!info {protocol, extensions, path}"
// It reports on stdout, one line each: "OPEN {json}" and "CLOSE {"code":..,"reason":..}".

/** Print one event line for the Python side. */
function report(kind, payload) {
  process.stdout.write(`${kind} ${JSON.stringify(payload)}\n`);
}

/** Wire the echo and command behaviour onto an open ws.WebSocket; path is the request path (server side). */
function attach(ws, path) {
  const pendingPongs = new Set();
  report('OPEN', { protocol: ws.protocol, extensions: ws.extensions, path });

  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.length > 0 && data[0] === 0x21 /* "!" */) {
      command(ws, JSON.parse(data.toString('utf8', 1)), path, pendingPongs);
      return;
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on('pong', (data) => {
    const text = data.toString('utf8');
    if (pendingPongs.delete(text)) ws.send(`!pong ${text}`);
  });
  ws.on('close', (code, reason) => report('CLOSE', { code, reason: reason.toString('utf8') }));
  ws.on('error', (err) => report('ERROR', { message: String(err && err.message) }));
}

/** Carry out one "!{json}" command. */
function command(ws, cmd, path, pendingPongs) {
  switch (cmd.op) {
    case 'fragments': {
      const parts = cmd.parts.map((p) => Buffer.from(p, 'base64'));
      parts.forEach((part, i) => ws.send(part, { binary: !!cmd.binary, fin: i === parts.length - 1 }));
      break;
    }
    case 'ping':
      pendingPongs.add(cmd.data);
      ws.ping(Buffer.from(cmd.data, 'utf8'));
      break;
    case 'close':
      ws.close(cmd.code, cmd.reason);
      break;
    case 'info':
      ws.send(`!info ${JSON.stringify({ protocol: ws.protocol, extensions: ws.extensions, path })}`);
      break;
    default:
      ws.send(`!error unknown op ${cmd.op}`);
  }
}

/** Parse "--name value" and "--flag" options after the positional argument. */
function options(argv) {
  const out = { subprotocols: [], deflate: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--subprotocols') out.subprotocols = argv[++i].split(',').filter(Boolean);
    else if (argv[i] === '--deflate') out.deflate = true;
    else throw new Error(`unknown option ${argv[i]}`);
  }
  return out;
}

/** Exit when the Python side goes away (stdin closes), so no peer outlives its test. */
function exitWithParent() {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

module.exports = { attach, options, report, exitWithParent };
