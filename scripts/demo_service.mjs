// The demo web service behind `scripts/demo.sh`: a small local app that the agent exposes through the
// edge. It shows what the tunnel carries: the request as the service sees it (method, path, the
// X-Forwarded-* / Forwarded headers the edge adds), a JSON API, a POST echo, and a server-sent event
// stream that arrives tick by tick, and a WebSocket echo at /ws (no dependency: text and binary frames
// come back as sent, pings get pongs, a close is answered with the same code and reason).
//
//   node scripts/demo_service.mjs [--port N] [--host H]    (port 0 picks a free one)
// Prints "demo service listening on http://HOST:PORT/" once it listens.
import crypto from 'node:crypto';
import http from 'node:http';

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const escape = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

function page(req) {
  const shown = ['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'user-agent'];
  const rows = shown
    .map((h) => `<tr><th>${h}</th><td>${escape(req.headers[h] ?? '(absent)')}</td></tr>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wtmesh demo service</title>
<style>body{font:15px system-ui,sans-serif;margin:2em;max-width:48em}th{text-align:left;padding-right:1em}
code{background:#eee;padding:0 .3em}#ticks{font-family:monospace}</style></head>
<body>
<h1>Hello from your local service</h1>
<p>This page is served by <code>scripts/demo_service.mjs</code> on 127.0.0.1 and reached you through
the wtmesh edge and agent (public HTTPS &rarr; edge &rarr; WebTransport over HTTP/3 &rarr; agent &rarr; here).</p>
<h2>The request, as the service saw it</h2>
<table>
<tr><th>method</th><td>${escape(req.method)}</td></tr>
<tr><th>path</th><td>${escape(req.url)}</td></tr>
${rows}
</table>
<h2>Server-sent events through the tunnel</h2>
<p id="ticks">connecting&hellip;</p>
<script>
const ticks = document.getElementById('ticks');
const es = new EventSource('/events?n=100');
es.onmessage = (e) => { ticks.textContent = 'tick ' + e.data + ' at ' + new Date().toLocaleTimeString(); };
es.onerror = () => { ticks.textContent += ' (stream ended)'; es.close(); };
</script>
<p>Also: <a href="/api/time">/api/time</a> (JSON), <code>POST /echo</code> (echoes the body),
<code>/events?n=5</code> (five events, one a second).</p>
</body></html>
`;
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (req.method === 'GET' && url.pathname === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page(req));
  } else if (req.method === 'GET' && url.pathname === '/api/time') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ now: new Date().toISOString(), via: req.headers['x-forwarded-host'] ?? null }) + '\n');
  } else if (req.method === 'POST' && url.pathname === '/echo') {
    res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' });
    req.pipe(res);
  } else if (req.method === 'GET' && url.pathname === '/events') {
    const n = Math.min(Math.max(parseInt(url.searchParams.get('n') ?? '5', 10) || 5, 1), 1000);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    let i = 0;
    const tick = () => {
      i += 1;
      res.write(`data: ${i}\n\n`);
      if (i >= n) {
        clearInterval(timer);
        res.end();
      }
    };
    const timer = setInterval(tick, 1000);
    tick();
    req.on('close', () => clearInterval(timer));
  } else if (url.pathname === '/favicon.ico') {
    res.writeHead(204);
    res.end();
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found in the demo service\n');
  }
});

// WebSocket echo at /ws (RFC 6455), frame by frame; the client's frames are masked, ours are not.
server.on('upgrade', (req, socket, head) => {
  const key = req.headers['sec-websocket-key'];
  if (!req.url.startsWith('/ws') || !key || String(req.headers.upgrade).toLowerCase() !== 'websocket') {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  const accept = crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  const send = (first, payload) => {
    const n = payload.length;
    let hdr;
    if (n < 126) {
      hdr = Buffer.from([first, n]);
    } else if (n < 65536) {
      hdr = Buffer.from([first, 126, n >> 8, n & 255]);
    } else {
      hdr = Buffer.alloc(10);
      hdr[0] = first;
      hdr[1] = 127;
      hdr.writeBigUInt64BE(BigInt(n), 2);
    }
    socket.write(Buffer.concat([hdr, payload]));
  };
  let buf = Buffer.from(head);
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const first = buf[0];
      const opcode = first & 15;
      const masked = (buf[1] & 128) !== 0;
      let n = buf[1] & 127;
      let at = 2;
      if (n === 126) {
        if (buf.length < 4) return;
        n = buf.readUInt16BE(2);
        at = 4;
      } else if (n === 127) {
        if (buf.length < 10) return;
        n = Number(buf.readBigUInt64BE(2));
        at = 10;
      }
      if (n > 16 << 20) return void socket.destroy();
      const mask = at;
      if (masked) at += 4;
      if (buf.length < at + n) return;
      const payload = Buffer.from(buf.subarray(at, at + n));
      if (masked) for (let i = 0; i < n; i++) payload[i] ^= buf[mask + (i & 3)];
      buf = buf.subarray(at + n);
      if (opcode === 8) {
        send(0x88, payload);  // close: the same code and reason back, then our FIN
        return void socket.end();
      }
      if (opcode === 9) send(0x8a, payload);  // ping -> pong
      else if (opcode !== 10) send(first & 0x8f, payload);  // text/binary/continuation, FIN bit kept
    }
  });
  socket.on('error', () => {});
});

server.listen(Number(arg('--port', '0')), arg('--host', '127.0.0.1'), () => {
  const { address, port } = server.address();
  console.log(`demo service listening on http://${address}:${port}/`);
});
