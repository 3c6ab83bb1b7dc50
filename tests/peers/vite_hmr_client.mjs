// The public side of tests/peers/websocket_vite.sh: what a browser's /@vite/client does, through the
// tunnel: GET the client script (its HMR token), open the HMR WebSocket (subprotocol vite-hmr), see
// "connected", edit a module under ROOT and see the "update" (or "full-reload") message arrive.
// Prints "ok NAME" / "not ok NAME: why" lines; exits 1 when one failed.
//   node vite_hmr_client.mjs BASE_URL CA_FILE ROOT
import { appendFileSync, readFileSync } from 'node:fs';
import https from 'node:https';
import WebSocket from 'ws';
import { check, lookup, run } from './checks.mjs';

const [base, caFile, root] = process.argv.slice(2);
const ca = readFileSync(caFile);
const get = (path) =>
  new Promise((resolve, reject) => {
    https
      .get(new URL(path, base), { ca, lookup }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      })
      .on('error', reject);
  });

async function main() {
  const page = await get('/');
  check('the dev server page comes through the tunnel', page.status === 200 && page.body.includes('/@vite/client'),
    `status ${page.status}`);
  const client = await get('/@vite/client');
  const token = /wsToken\s*=\s*"([^"]+)"/.exec(client.body)?.[1];
  check('the HMR client script names its token', client.status === 200 && !!token, `status ${client.status}`);
  const url = new URL(base);
  url.protocol = 'wss:';
  url.searchParams.set('token', token ?? '');
  const ws = new WebSocket(url, 'vite-hmr', { ca, lookup, handshakeTimeout: 10000 });
  const messages = [];
  let wake = () => {};
  ws.on('message', (d) => {
    messages.push(JSON.parse(d.toString()));
    wake();
  });
  const waitFor = (pred, ms) =>
    new Promise((resolve) => {
      const t = setTimeout(() => resolve(undefined), ms);
      const test = () => {
        const m = messages.find(pred);
        if (m) {
          clearTimeout(t);
          resolve(m);
        }
      };
      wake = test;
      test();
    });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode} instead of 101`)));
  });
  check('the HMR WebSocket opens with subprotocol vite-hmr', ws.protocol === 'vite-hmr', `got "${ws.protocol}"`);
  const connected = await waitFor((m) => m.type === 'connected', 10000);
  check('Vite says "connected" through the tunnel', !!connected, JSON.stringify(messages));
  // The page imported main.js; a browser would have fetched it, so the module graph knows it.
  await get('/main.js');
  appendFileSync(`${root}/main.js`, `\nexport const edited = ${Date.now()};\n`);
  const update = await waitFor((m) => m.type === 'update' || m.type === 'full-reload', 10000);
  check('editing main.js pushes an HMR update through the tunnel', !!update, JSON.stringify(messages));
  ws.close(1000);
}

run(main);
