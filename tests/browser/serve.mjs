// Tiny static HTTP server for the browser pages in this folder (wt_echo.html at "/").
// http://localhost is a secure context, so WebTransport is available to the page.
// Used by wt_echo.mjs (imported) and by scripts/demo.sh (run: node serve.mjs [--port N] [--host H]).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const pages = new Map([
  ['/', 'wt_echo.html'],
  ['/wt_echo.html', 'wt_echo.html'],
]);

// Starts the server; resolves with { server, port } once it listens. port 0 picks a free port.
export function servePages({ host = '127.0.0.1', port = 0 } = {}) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return;
    }
    const file = pages.get(url.pathname);
    if (req.method !== 'GET' || !file) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    fs.readFile(path.join(here, file), (err, body) => {
      if (err) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(body);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve({ server, port: server.address().port }));
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
  };
  const { port } = await servePages({ host: opt('--host', '127.0.0.1'), port: Number(opt('--port', '0')) });
  console.log(`wtmesh pages on http://localhost:${port}/`);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
}
