// The public WebSocket client of tests/peers/websocket_h1.sh: Node's `ws` against a wtmesh edge, with
// the edge's CA (real verification; *.localhost resolved to 127.0.0.1 here, SNI and Host as given).
// Prints one "ok NAME" or "not ok NAME: why" line per check; exits 1 when one failed.
//   node ws_client.mjs URL CA_FILE [quick]
// quick: only open, text and binary echo, and a clean close (the plain-HTTP listener).
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { check, lookup, run, timeout } from './checks.mjs';

const [url, caFile, mode] = process.argv.slice(2);
const ca = readFileSync(caFile);

function open(protocols) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { ca, lookup, handshakeTimeout: 10000, maxPayload: 8 << 20 });
    const queue = [];
    const waiters = [];
    ws.on('message', (data, isBinary) => {
      const m = { data, isBinary, at: Date.now() };
      const w = waiters.shift();
      if (w) w(m);
      else queue.push(m);
    });
    ws.next = () =>
      Promise.race([
        new Promise((res) => (queue.length ? res(queue.shift()) : waiters.push(res))),
        timeout(15000, 'a message'),
      ]);
    ws.closed = new Promise((res) => ws.once('close', (code, reason) => res({ code, reason: reason.toString(), at: Date.now() })));
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode} instead of 101`)));
  });
}

async function echo(ws, name, payload, binary) {
  ws.send(payload, { binary });
  const m = await ws.next();
  const same = binary ? Buffer.compare(m.data, payload) === 0 : m.data.toString() === payload;
  check(`${name} echoed byte-exact`, same && m.isBinary === binary, `got ${m.data.length} bytes, binary=${m.isBinary}`);
}

async function main() {
  const ws = await open(mode === 'quick' ? [] : ['chat']);  // quick: any echo service (scripts/demo_service.mjs)
  check('the handshake completes (101 through the tunnel)', ws.readyState === WebSocket.OPEN);
  await echo(ws, 'a text message (UTF-8)', 'héllo wörld ✓ through the tunnel', false);
  await echo(ws, 'a binary message (1000 random bytes)', randomBytes(1000), true);
  if (mode !== 'quick') {
    check('Sec-WebSocket-Protocol: the server chose "chat"', ws.protocol === 'chat', `got "${ws.protocol}"`);
    check('Sec-WebSocket-Extensions: permessage-deflate negotiated', ws.extensions.includes('permessage-deflate'), `got "${ws.extensions}"`);
    await echo(ws, 'an empty binary message', Buffer.alloc(0), true);
    await echo(ws, 'a 1 MiB binary message', randomBytes(1 << 20), true);
    await echo(ws, 'a 256 KiB text message', 'x'.repeat(256 * 1024), false);

    const payload = Buffer.from('are you there');
    const pong = new Promise((res) => ws.once('pong', res));
    ws.ping(payload);
    const got = await Promise.race([pong, timeout(5000, 'pong')]);
    check('ping answered by a pong with the same payload', Buffer.compare(got, payload) === 0, `got "${got}"`);

    const n = 100;
    ws.send(`stream ${n}`);
    const msgs = [];
    for (let i = 0; i < n; i++) msgs.push(await ws.next());
    const parsed = msgs.map((m) => JSON.parse(m.data.toString()));
    check(`${n} streamed messages arrive in order`, parsed.every((p, i) => p.i === i), JSON.stringify(parsed.slice(0, 3)));
    const lastSent = parsed[n - 1].sent;
    check('streamed: the first message arrives before the last is sent (not buffered)', msgs[0].at < lastSent,
      `first arrived ${msgs[0].at}, last sent ${lastSent}`);
    const worst = Math.max(...msgs.map((m, i) => m.at - parsed[i].sent));
    check(`streamed: each message arrives within 500 ms of its send (worst ${worst} ms)`, worst < 500, `${worst} ms`);

    // Many sockets at once, each its own connection.
    const many = await Promise.all(Array.from({ length: 20 }, () => open([])));
    await Promise.all(many.map((s, i) => echo(s, `parallel socket ${i}`, `socket ${i}`, false)));
    for (const s of many) s.close(1000);
    await Promise.all(many.map((s) => s.closed));

    // The server closes first.
    const other = await open([]);
    other.send('close me');
    const sc = await Promise.race([other.closed, timeout(10000, 'server close')]);
    check('a server close (4002 + reason) reaches the client', sc.code === 4002 && sc.reason === 'server says bye',
      `got ${sc.code} "${sc.reason}"`);
  }

  // The client closes first: the code and reason reach the server (its log) and come back.
  const started = Date.now();
  ws.close(4001, 'client says bye');
  const c = await Promise.race([ws.closed, timeout(10000, 'client close')]);
  check('a client close (4001 + reason) is echoed back', c.code === 4001 && c.reason === 'client says bye',
    `got ${c.code} "${c.reason}"`);
  check(`the closing handshake ends the connection promptly (${c.at - started} ms)`, c.at - started < 3000,
    `${c.at - started} ms`);
}

run(main);
