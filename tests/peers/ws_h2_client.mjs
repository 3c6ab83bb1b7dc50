// The public WebSocket client of tests/peers/websocket_h2.sh: WebSocket over HTTP/2 (RFC 8441) with
// Node's built-in http2 client (extended CONNECT on one connection) and the `ws` package's Sender and
// Receiver for the frames (masked, as a client's must be), against a wtmesh edge with its CA (real
// verification; *.localhost resolved to 127.0.0.1 here). Prints one "ok NAME" or "not ok NAME: why"
// line per check; exits 1 when one failed.
//   node ws_h2_client.mjs URL CA_FILE [quick]      e.g. https://app.localhost:8443/chat
// The first socket goes to URL's path, the others to /mux-N and /server-closes (full run only).
// quick: only the handshake, text and binary echo and a clean close (any echo service: the demo's /ws).
// idle: against an edge run with --http-idle-timeout 1 --websocket-idle-timeout 4: a socket quiet for
// 2.5 s still echoes (the connection carries a WebSocket), one quiet for longer than 4 s is closed,
// and a connection without one is closed after about 1 s.
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Receiver, Sender } from 'ws';
import { check, lookup, run, timeout } from './checks.mjs';

const [url, caFile, mode] = process.argv.slice(2);
const { origin, pathname, search } = new URL(url);
const ca = readFileSync(caFile);

// An extended CONNECT on `session`; resolves to a small WebSocket over the stream, or rejects with the
// status the edge answered instead of 200.
function open(session, path, { protocol, proto = 'websocket' } = {}) {
  const headers = { ':method': 'CONNECT', ':protocol': proto, ':path': path, 'sec-websocket-version': '13' };
  if (protocol) headers['sec-websocket-protocol'] = protocol;
  const stream = session.request(headers, { endStream: false });
  return new Promise((resolve, reject) => {
    stream.once('error', reject);
    stream.once('response', (h) => {
      if (h[':status'] !== 200) {
        let body = '';
        stream.on('data', (c) => (body += c));
        stream.on('end', () => reject(Object.assign(new Error(`HTTP ${h[':status']}`), { status: h[':status'], body })));
        return;
      }
      resolve(wrap(stream, h));
    });
  });
}

function wrap(stream, headers) {
  const receiver = new Receiver({ isServer: false, maxPayload: 8 << 20 });
  const sender = new Sender(stream);
  const queue = [];
  const waiters = [];
  let closeSent = false;
  const ws = {
    stream,
    headers,
    send: (data, binary) => sender.send(data, { binary, fin: true, mask: true, compress: false }),
    ping: (data) => sender.ping(data, true),
    close: (code, reason) => {
      if (closeSent) return;
      closeSent = true;
      sender.close(code, reason, true, () => stream.end());  // our direction ends after the close frame
    },
    next: () =>
      Promise.race([
        new Promise((res) => (queue.length ? res(queue.shift()) : waiters.push(res))),
        timeout(15000, 'a message'),
      ]),
  };
  ws.pong = new Promise((res) => receiver.on('pong', res));
  ws.closed = new Promise((res) => {
    receiver.on('conclude', (code, reason) => {
      ws.close(code === 1005 ? undefined : code, reason.toString());  // the closing handshake's answer
      stream.once('close', () => res({ code, reason: reason.toString(), at: Date.now(), rst: stream.rstCode }));
    });
  });
  stream.on('data', (c) => receiver.write(c));
  receiver.on('message', (data, isBinary) => {
    const m = { data, isBinary, at: Date.now() };
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  });
  receiver.on('ping', (data) => sender.pong(data, true));
  receiver.on('error', (e) => console.log(`not ok the frames from the edge parse: ${e.message}`));
  return ws;
}

async function echo(ws, name, payload, binary) {
  ws.send(payload, binary);
  const m = await ws.next();
  const same = binary ? Buffer.compare(m.data, payload) === 0 : m.data.toString() === payload;
  check(`${name} echoed byte-exact`, same && m.isBinary === binary, `got ${m.data.length} bytes, binary=${m.isBinary}`);
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
const connect = () => http2.connect(origin, { ca, lookup });
// Resolves to the ms until `session` closes (the edge closed the connection), or null after `ms`.
const closesWithin = (session, ms) => {
  const t0 = Date.now();
  return Promise.race([new Promise((res) => session.once('close', () => res(Date.now() - t0))), sleep(ms).then(() => null)]);
};

async function idle() {
  const session = connect();
  session.on('error', () => {});  // the edge closing it is what is checked
  const ws = await open(session, pathname + search);
  await sleep(2500);
  await echo(ws, 'a WebSocket quiet for 2.5 s (longer than --http-idle-timeout 1)', 'still here', false);
  const closed = await closesWithin(session, 8000);
  check(`a WebSocket quiet for longer than --websocket-idle-timeout 4 is closed (after ${closed} ms)`,
    closed !== null && closed >= 3500, `${closed} ms`);
  const plain = connect();
  plain.on('error', () => {});
  await new Promise((res) => plain.once('remoteSettings', res));
  const plainClosed = await closesWithin(plain, 4000);
  check(`a connection without a WebSocket is closed after --http-idle-timeout 1 (after ${plainClosed} ms)`,
    plainClosed !== null && plainClosed < 3000, `${plainClosed} ms`);
}

async function main() {
  if (mode === 'idle') return idle();
  const session = connect();
  session.on('error', (e) => console.log(`not ok the HTTP/2 connection: ${e.message}`));
  const settings = await Promise.race([new Promise((res) => session.once('remoteSettings', res)), timeout(10000, 'SETTINGS')]);
  check('the edge advertises SETTINGS_ENABLE_CONNECT_PROTOCOL', settings.enableConnectProtocol === true,
    JSON.stringify(settings));
  check('the connection is HTTP/2 over TLS (ALPN h2)', session.alpnProtocol === 'h2', session.alpnProtocol);

  const ws = await open(session, pathname + search, { protocol: mode === 'quick' ? undefined : 'chat' });
  check('the extended CONNECT is answered 200 (101 through the tunnel)', ws.headers[':status'] === 200);
  check('no Sec-WebSocket-Accept reaches an HTTP/2 client', ws.headers['sec-websocket-accept'] === undefined);
  await echo(ws, 'a text message (UTF-8)', 'héllo wörld ✓ over HTTP/2', false);
  await echo(ws, 'a binary message (1000 random bytes)', randomBytes(1000), true);
  if (mode !== 'quick') {
    check('Sec-WebSocket-Protocol: the service chose "chat"', ws.headers['sec-websocket-protocol'] === 'chat',
      `got "${ws.headers['sec-websocket-protocol']}"`);
    await echo(ws, 'an empty binary message', Buffer.alloc(0), true);
    await echo(ws, 'a 1 MiB binary message', randomBytes(1 << 20), true);
    await echo(ws, 'a 256 KiB text message', 'x'.repeat(256 * 1024), false);

    const payload = Buffer.from('are you there');
    ws.ping(payload);
    const got = await Promise.race([ws.pong, timeout(5000, 'pong')]);
    check('ping answered by a pong with the same payload', Buffer.compare(got, payload) === 0, `got "${got}"`);

    const n = 50;
    ws.send(`stream ${n}`, false);
    const msgs = [];
    for (let i = 0; i < n; i++) msgs.push(await ws.next());
    const parsed = msgs.map((m) => JSON.parse(m.data.toString()));
    check(`${n} streamed messages arrive in order`, parsed.every((p, i) => p.i === i));
    check('streamed: the first message arrives before the last is sent (not buffered)', msgs[0].at < parsed[n - 1].sent);

    // Several WebSockets multiplexed on this one HTTP/2 connection.
    const many = await Promise.all(Array.from({ length: 10 }, (_, i) => open(session, `/mux-${i}`)));
    await Promise.all(many.map((s, i) => echo(s, `multiplexed socket ${i}`, randomBytes(50_000 + i), true)));
    const ids = new Set(many.map((s) => s.stream.id));
    check('10 WebSockets ran as 10 streams of one connection', ids.size === 10 && many.every((s) => s.stream.session === session));
    for (const s of many) s.close(1000, '');
    const ends = await Promise.all(many.map((s) => Promise.race([s.closed, timeout(10000, 'multiplexed close')])));
    check('each multiplexed socket closes cleanly (1000, NO_ERROR)', ends.every((e) => e.code === 1000 && e.rst === 0),
      JSON.stringify(ends.map((e) => [e.code, e.rst])));

    // The service closes first.
    const other = await open(session, '/server-closes');
    other.send('close me', false);
    const sc = await Promise.race([other.closed, timeout(10000, 'server close')]);
    check('a server close (4002 + reason) reaches the client', sc.code === 4002 && sc.reason === 'server says bye',
      `got ${sc.code} "${sc.reason}"`);

    // Another protocol is refused with a clear answer; the connection goes on.
    const refused = await open(session, '/x', { proto: 'connect-udp' }).then(() => null, (e) => e);
    check('an extended CONNECT for another protocol gets 501', refused && refused.status === 501,
      refused ? `${refused.status} ${refused.body}` : 'it was accepted');
  }

  // The client closes first: the code and reason reach the service (its log) and come back.
  const started = Date.now();
  ws.close(4001, 'client says bye');
  const c = await Promise.race([ws.closed, timeout(10000, 'client close')]);
  check('a client close (4001 + reason) is echoed back', c.code === 4001 && c.reason === 'client says bye',
    `got ${c.code} "${c.reason}"`);
  check(`the stream ends cleanly and promptly (${c.at - started} ms, RST code ${c.rst})`,
    c.at - started < 3000 && c.rst === 0, `${c.at - started} ms, rst ${c.rst}`);
  session.close();
}

run(main);
