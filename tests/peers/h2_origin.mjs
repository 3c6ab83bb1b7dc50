// A local service on Node's built-in http2 / https modules, for the upstream-version peers
// (tests/peers/upstream_*.sh). Listens on 127.0.0.1, prints "origin listening on PORT" once ready.
//   node h2_origin.mjs --mode h2c|tls|tls-h1 [--cert FILE --key FILE]
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
//   CONNECT :protocol websocket   200, then echoes the stream's bytes (a WebSocket echo without framing)
import http2 from 'node:http2';
import https from 'node:https';
import crypto from 'node:crypto';
import fs from 'node:fs';

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
  if (req.method === 'CONNECT') return;  // onStream answers it
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
    stream.pipe(stream);
  }
}

let server;
if (mode === 'h2c') {
  server = http2.createServer({ settings: { enableConnectProtocol: true } }, handle);
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
  // CONNECT streams get no request handler call in compat mode when handled here first.
  server.prependListener('stream', onStream);
}
server.on('connection', () => { connections += 1; });
server.listen(0, '127.0.0.1', () => {
  console.log(`origin listening on ${server.address().port}`);
});
