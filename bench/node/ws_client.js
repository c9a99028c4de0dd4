'use strict';
// Peer: Node `ws` client running one workload of bench/impls/common.py against an echo server.
// Usage: node ws_client.js W1,W2 PORT SECONDS SERVER_PID ; prints one JSON result line per workload.
// Every loop ends at a deadline, and the whole process at a hard timeout, so nothing can hang.
const fs = require('fs');
const WebSocket = require('ws');

const WORKLOADS = {
  rr32: { size: 32, window: 1, connections: 1, unit: 'rt/s' },
  stream64: { size: 64, window: 100, connections: 1, unit: 'msg/s' },
  msg16k: { size: 16384, window: 16, connections: 1, unit: 'MB/s' },
  msg1m: { size: 1 << 20, window: 4, connections: 1, unit: 'MB/s' },
  conc200: { size: 32, window: 1, connections: 200, unit: 'rt/s' },
  handshake: { size: 0, window: 0, connections: 32, unit: 'hs/s' },
  idle2000: { size: 0, window: 0, connections: 2000, unit: 'KiB/conn' },
};
const DIAL_CONCURRENCY = 50;
const [names, portArg, secondsArg, pidArg] = process.argv.slice(2);
const url = `ws://127.0.0.1:${portArg}/`;
const seconds = Number(secondsArg);
const serverPid = Number(pidArg || 0);
const workloads = names.split(',');
let w = null; // the workload running now
setTimeout(() => { console.error('hard timeout'); process.exit(2); }, (seconds * 4 + 60) * 1000 * workloads.length).unref();

const now = () => Number(process.hrtime.bigint()) / 1e9;
/** CPU ns used so far by every thread of pid (Linux schedstat). */
function cpuNs(pid) {
  let total = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try { total += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]); } catch {}
  }
  return total;
}
function rss(pid) {
  return Number(fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096;
}
function meter() {
  const s0 = serverPid ? cpuNs(serverPid) : 0;
  const c0 = cpuNs(process.pid);
  return (n) => ({
    server_cpu_us: serverPid ? (cpuNs(serverPid) - s0) / Math.max(n, 1) / 1e3 : 0,
    client_cpu_us: (cpuNs(process.pid) - c0) / Math.max(n, 1) / 1e3,
  });
}
function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 24 });
    ws.binaryType = 'nodebuffer';
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}
async function dial(n) {
  const out = [];
  for (let i = 0; i < n; i += DIAL_CONCURRENCY) {
    const batch = [];
    for (let j = 0; j < Math.min(DIAL_CONCURRENCY, n - i); j++) batch.push(open());
    out.push(...(await Promise.all(batch)));
  }
  return out;
}
/** Keep `window` echoes in flight on ws for `secs`, then drain: resolves [messages, bytes, elapsed]. */
function pump(ws, data, window, secs) {
  return new Promise((resolve, reject) => {
    const start = now();
    const deadline = start + secs;
    let inFlight = window, messages = 0, bytes = 0;
    const onMessage = (m) => {
      messages++;
      bytes += m.length;
      if (now() < deadline) { ws.send(data); return; }
      if (--inFlight === 0) {
        ws.off('message', onMessage);
        ws.off('close', onClose);
        resolve([messages, bytes, now() - start]);
      }
    };
    const onClose = () => reject(new Error('closed during pump'));
    ws.on('message', onMessage);
    ws.on('close', onClose);
    for (let i = 0; i < window; i++) ws.send(data);
  });
}
async function throughput() {
  const data = Buffer.alloc(w.size);
  for (let i = 0; i < w.size; i++) data[i] = i & 0xff;
  const conns = await dial(w.connections);
  await Promise.all(conns.map((ws) => pump(ws, data, w.window, Math.min(0.25, seconds * 0.2))));
  const m = meter();
  const runs = await Promise.all(conns.map((ws) => pump(ws, data, w.window, seconds)));
  const messages = runs.reduce((a, r) => a + r[0], 0);
  const bytes = runs.reduce((a, r) => a + r[1], 0);
  const elapsed = Math.max(...runs.map((r) => r[2]));
  const value = w.unit === 'MB/s' ? bytes / elapsed / 1e6 : messages / elapsed;
  return { value, unit: w.unit, messages, elapsed, ...m(messages) };
}
async function handshakes() {
  const m = meter();
  const start = now();
  const deadline = start + seconds;
  const dialer = async () => {
    let done = 0;
    while (now() < deadline) {
      const ws = await open();
      await new Promise((resolve) => { ws.once('close', resolve); ws.close(1000); });
      done++;
    }
    return done;
  };
  const counts = await Promise.all(Array.from({ length: w.connections }, dialer));
  const n = counts.reduce((a, b) => a + b, 0);
  const elapsed = now() - start;
  return { value: n / elapsed, unit: w.unit, handshakes: n, elapsed, ...m(n) };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function settle(pid) {
  let last = rss(pid);
  for (let i = 0; i < 20; i++) {
    await sleep(100);
    const cur = rss(pid);
    if (cur === last) break;
    last = cur;
  }
  return last;
}
async function idle() {
  await dial(DIAL_CONCURRENCY);
  const s0 = await settle(serverPid), c0 = rss(process.pid);
  await dial(w.connections);
  const s1 = await settle(serverPid), c1 = rss(process.pid);
  const n = w.connections;
  const server_kib = (s1 - s0) / n / 1024;
  return { value: server_kib, unit: w.unit, server_kib, client_kib: (c1 - c0) / n / 1024 };
}
async function main() {
  for (const name of workloads) {
    w = WORKLOADS[name];
    const run = name === 'handshake' ? handshakes : name === 'idle2000' ? idle : throughput;
    let r;
    try {
      r = await run();
    } catch (e) {
      r = { error: String(e).slice(0, 300) };
    }
    process.stdout.write(JSON.stringify({ workload: name, ...r }) + '\n');
  }
}
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
