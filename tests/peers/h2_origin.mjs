// A local service on Node's built-in http2 / https modules, for the upstream-version peers
// (tests/peers/upstream_*.sh). Listens on 127.0.0.1, prints "origin listening on PORT" once ready.
//   node h2_origin.mjs --mode h2c|tls|tls-h1 [--cert FILE --key FILE] [--no-connect]
//     h2c     http2.createServer (HTTP/2 prior knowledge, no TLS)
//     tls     http2.createSecureServer, ALPN h2 and http/1.1 (allowHTTP1)
//     tls-h1  https.createServer: ALPN offers only http/1.1
// Extended CONNECT (RFC 8441) is enabled on the HTTP/2 modes.
// Routes:
//   GET  /hello           "hello from the h2 origin\n"
//   GET  /proto           JSON {httpVersion, alpn, authority, te}
//   POST /echo            echoes the request body
//   GET  /bytes?n=N       N pseudo-random bytes; their SHA-256 is kept for /stats
//   GET  /stats           JSON {connections, sessions, lastSent: {bytes, sha256}}
//   GET  /slow?ms=M       answers after M ms (to hold streams open)
//   GET  /trailers        a body, then the trailer grpc-status: 0
//   GET  /sse-gated?id=X  one SSE event now, the second once /sse-release?id=X was asked for
//   GET  /early-hints     103 (link: </style.css>), then 200
//   CONNECT :protocol websocket   200, then a WebSocket echo (RFC 8441; messages, ping, close)
import http2 from 'node:http2';
import https from 'node:https';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { sseGated, sseRelease } from './sse_gate.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const mode = opt('--mode', 'h2c');
const block = crypto.randomBytes(1 << 20);
let lastSent = null;
let connections = 0;
let sessions = 0;

function handle(req, res) {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/hello') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    return res.end('hello from the h2 origin\n');
  }
  if (url.pathname === '/proto') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({
      httpVersion: req.httpVersion,
      alpn: req.socket.alpnProtocol ?? null,
      authority: req.headers[':authority'] ?? req.headers.host,
      te: req.headers.te ?? null,
      connection: req.headers.connection ?? null,
    }));
  }
  if (url.pathname === '/echo') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    req.pipe(res);
    return;
  }
  if (url.pathname === '/bytes') {
    const n = Number(url.searchParams.get('n') ?? '0');
    const hash = crypto.createHash('sha256');
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(n) });
    let left = n;
    const pump = () => {
      while (left > 0) {
        const piece = block.subarray(0, Math.min(left, block.length));
        left -= piece.length;
        hash.update(piece);
        if (!res.write(piece)) return res.once('drain', pump);
      }
      lastSent = { bytes: n, sha256: hash.digest('hex') };
      res.end();
    };
    return pump();
  }
  if (url.pathname === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ connections, sessions, lastSent }));
  }
  if (url.pathname === '/slow') {
    const ms = Number(url.searchParams.get('ms') ?? '200');
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('slow\n');
    }, ms);
    return;
  }
  if (url.pathname === '/sse-gated') return sseGated(url, res);
  if (url.pathname === '/sse-release') return sseRelease(url, res);
  if (url.pathname === '/early-hints') {
    res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
    res.writeHead(200, { 'content-type': 'text/plain' });
    return res.end('after early hints\n');
  }
  if (url.pathname === '/trailers') {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'grpc-status' });
    res.addTrailers({ 'grpc-status': '0' });
    return res.end('with trailers\n');
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('h2 origin: not found\n');
}

function onStream(stream, headers) {
  // Extended CONNECT: a tunnel of raw bytes, echoed.
  if (headers[':method'] === 'CONNECT') {
    if (headers[':protocol'] !== 'websocket') {
      stream.respond({ ':status': 400 });
      return stream.end();
    }
    stream.respond({ ':status': 200 });
    wsEcho(stream);
  }
}

// A WebSocket echo on an extended CONNECT stream (RFC 8441): client frames are masked; each message
// frame comes back unmasked with its opcode and FIN bit, a ping as a pong, a close as a close, then the end.
function wsEcho(stream) {
  let buf = Buffer.alloc(0);
  const frame = (opcode, payload) => {
    const n = payload.length;
    const head = n < 126 ? Buffer.from([0x80 | opcode, n])
      : n < 65536 ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 255])
      : Buffer.concat([Buffer.from([0x80 | opcode, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; })()]);
    return Buffer.concat([head, payload]);
  };
  stream.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const fin = buf[0] & 0x80;  // a fragmented message (Chromium splits big ones) keeps its fragments
      const opcode = buf[0] & 15;
      let len = buf[1] & 127;
      let off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      const masked = (buf[1] & 128) !== 0;
      const mask = masked ? buf.subarray(off, off + 4) : null;
      if (masked) off += 4;
      if (buf.length < off + len) return;
      const payload = Buffer.from(buf.subarray(off, off + len));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
      buf = buf.subarray(off + len);
      if (opcode === 8) { stream.end(frame(8, payload)); return; }
      if (opcode === 9) { stream.write(frame(10, payload)); continue; }
      if (opcode === 10) continue;
      stream.write(Buffer.concat([Buffer.from([fin | opcode]), frame(opcode, payload).subarray(1)]));
    }
  });
  stream.on('error', () => {});
}

let server;
if (mode === 'h2c') {
  server = http2.createServer({ settings: { enableConnectProtocol: !args.includes('--no-connect') } }, handle);
} else if (mode === 'tls') {
  server = http2.createSecureServer({
    cert: fs.readFileSync(opt('--cert')),
    key: fs.readFileSync(opt('--key')),
    allowHTTP1: true,
    settings: { enableConnectProtocol: true },
  }, handle);
} else if (mode === 'tls-h1') {
  server = https.createServer({
    cert: fs.readFileSync(opt('--cert')),
    key: fs.readFileSync(opt('--key')),
    ALPNProtocols: ['http/1.1'],
  }, handle);
} else {
  throw new Error(`unknown --mode ${mode}`);
}
if (mode !== 'tls-h1') {
  server.on('session', () => { sessions += 1; });
  // Extended CONNECT streams bypass the compatibility API (its request/response objects stall the
  // stream's data); everything else goes to it as before.
  const compat = server.listeners('stream');
  server.removeAllListeners('stream');
  server.on('stream', (stream, headers, ...rest) => {
    if (headers[':method'] === 'CONNECT') return onStream(stream, headers);
    for (const l of compat) l.call(server, stream, headers, ...rest);
  });
}
server.on('connection', () => { connections += 1; });
server.listen(0, '127.0.0.1', () => {
  console.log(`origin listening on ${server.address().port}`);
});
