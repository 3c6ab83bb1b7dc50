// The demo web service behind `scripts/demo.sh`: a small local app that the agent exposes through the
// edge. It shows what the tunnel carries: the request as the service sees it (method, path, the
// X-Forwarded-* / Forwarded headers the edge adds), a JSON API, a POST echo, and a server-sent event
// stream that arrives tick by tick.
//
//   node scripts/demo_service.mjs [--port N] [--host H]    (port 0 picks a free one)
// Prints "demo service listening on http://HOST:PORT/" once it listens.
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

server.listen(Number(arg('--port', '0')), arg('--host', '127.0.0.1'), () => {
  const { address, port } = server.address();
  console.log(`demo service listening on http://${address}:${port}/`);
});
