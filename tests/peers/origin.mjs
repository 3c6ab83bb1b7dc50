// The local HTTP service behind `wtmesh http` in tests/peers/http_tunnel*.sh (Node only: python3 is
// not guaranteed on CI). Listens on 127.0.0.1, prints "origin listening on PORT" once ready.
//   node origin.mjs [--port N] [--log FILE]
// Routes:
//   GET  /hello            "hello from the origin\n"
//   GET  /headers          JSON {method, url, httpVersion, remote, headers (raw pairs, as received)}
//   POST /echo             echoes the request body (Content-Length)
//   GET  /sse?n=5&ms=300   text/event-stream, event i carries the origin's send time (Date.now())
//   GET  /sse-gated?id=X   one event now, the second once /sse-release?id=X was asked for
//   GET  /early-hints      103 (link: </style.css>), then 200
//   GET  /trailers         a chunked body, then the trailer x-checksum: abc
//   GET  /chunked?n=5&ms=200  Transfer-Encoding: chunked, one chunk "chunk i t=<ms>\n" every ms
//   GET  /bytes?n=N        N pseudo-random bytes (Content-Length); their SHA-256 is kept for /stats
//   PUT|POST /upload       reads the body, answers JSON {bytes, sha256}
//   GET  /stats            JSON {lastSent: {bytes, sha256}} (after /bytes completed)
//   GET  /                 the page for http_tunnel_chromium.sh (fetch /api, EventSource /sse)
//   GET  /api              JSON {ok: true, forwardedProto, host}
//   GET  /drop             closes the connection without answering
//   GET  /partial          Content-Length 1000, 100 bytes, then closes the connection
//   anything else          404 "origin: not found"
// Each request is appended to --log as "METHOD URL" (to check what reached the origin).
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { sseGated, sseRelease } from './sse_gate.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const port = Number(opt('--port', '0'));
const logFile = opt('--log', '');

// 1 MiB of pseudo-random bytes, repeated for /bytes (generation is not the bottleneck).
const block = crypto.randomBytes(1 << 20);
let lastSent = null;

const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>wtmesh tunnel page</title></head>
<body><h1 id="title">served through the wtmesh tunnel</h1>
<script>
window.result = (async () => {
  const r = { protocol: location.protocol, host: location.host };
  try {
    const res = await fetch('/api?from=page', { cache: 'no-store' });
    r.apiStatus = res.status;
    r.api = await res.json();
  } catch (e) { r.apiError = String(e); }
  try {
    r.sse = await new Promise((resolve, reject) => {
      const got = [];
      const es = new EventSource('/sse?n=3&ms=200');
      const t = setTimeout(() => { es.close(); reject(new Error('SSE timeout, got ' + got.length)); }, 15000);
      es.onmessage = (ev) => {
        got.push(ev.data);
        if (got.length === 3) { clearTimeout(t); es.close(); resolve(got); }
      };
      es.onerror = () => { if (got.length < 3 && es.readyState === EventSource.CLOSED) { clearTimeout(t); reject(new Error('SSE error after ' + got.length)); } };
    });
  } catch (e) { r.sseError = String(e); }
  return r;
})();
</script></body></html>
`;

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://origin');
  if (logFile) fs.appendFileSync(logFile, `${req.method} ${req.url}\n`);
  const q = (k, d) => Number(url.searchParams.get(k) ?? d);
  switch (url.pathname) {
    case '/hello':
      return send(res, 200, 'text/plain', 'hello from the origin\n');
    case '/headers':
      return send(res, 200, 'application/json', JSON.stringify({
        method: req.method, url: req.url, httpVersion: req.httpVersion,
        remote: req.socket.remoteAddress, headers: req.rawHeaders,
      }));
    case '/echo': {
      const parts = [];
      req.on('data', (d) => parts.push(d));
      req.on('end', () => send(res, 200, 'application/octet-stream', Buffer.concat(parts)));
      return;
    }
    case '/sse-gated':
      return sseGated(url, res);
    case '/sse-release':
      return sseRelease(url, res);
    case '/trailers':
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.addTrailers({ 'x-checksum': 'abc' });
      return res.end('with trailers\n');
    case '/early-hints':
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      return send(res, 200, 'text/plain', 'after early hints\n');
    case '/sse':
    case '/chunked': {
      const n = q('n', 5), ms = q('ms', 300);
      const sse = url.pathname === '/sse';
      res.writeHead(200, sse
        ? { 'content-type': 'text/event-stream', 'cache-control': 'no-store' }
        : { 'content-type': 'text/plain' });
      let i = 0;
      const tick = () => {
        const line = sse ? `data: event ${i} t=${Date.now()}\n\n` : `chunk ${i} t=${Date.now()}\n`;
        res.write(line);
        if (++i >= n) return res.end();
        setTimeout(tick, ms);
      };
      tick();
      req.on('close', () => { i = n; });
      return;
    }
    case '/bytes': {
      const total = q('n', 0);
      const hash = crypto.createHash('sha256');
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
      let left = total;
      const pump = () => {
        while (left > 0) {
          const chunk = left >= block.length ? block : block.subarray(0, left);
          left -= chunk.length;
          hash.update(chunk);
          if (!res.write(chunk)) return res.once('drain', pump);
        }
        lastSent = { bytes: total, sha256: hash.digest('hex') };
        res.end();
      };
      res.on('close', () => { left = 0; });
      pump();
      return;
    }
    case '/upload': {
      const hash = crypto.createHash('sha256');
      let bytes = 0;
      req.on('data', (d) => { bytes += d.length; hash.update(d); });
      req.on('end', () => send(res, 200, 'application/json', JSON.stringify({ bytes, sha256: hash.digest('hex') })));
      return;
    }
    case '/stats':
      return send(res, 200, 'application/json', JSON.stringify({ lastSent }));
    case '/':
      return send(res, 200, 'text/html; charset=utf-8', page);
    case '/api':
      return send(res, 200, 'application/json', JSON.stringify({
        ok: true, forwardedProto: req.headers['x-forwarded-proto'] ?? null, host: req.headers.host ?? null,
      }));
    case '/drop':
      return req.socket.destroy();
    case '/partial':
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 1000 });
      res.write('x'.repeat(100));
      return setTimeout(() => req.socket.destroy(), 100);
    default:
      return send(res, 404, 'text/plain', 'origin: not found\n');
  }
});
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1', () => console.log(`origin listening on ${server.address().port}`));
