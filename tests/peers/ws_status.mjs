// Opens one WebSocket (Node's `ws`, real certificate checks with CA_FILE, *.localhost resolved to
// 127.0.0.1) and prints how the handshake ended: "open" (101, then a text echo checked: "echo ok"), or
// "HTTP STATUS" with the WWW-Authenticate value if any. For tests/peers/visitor_auth.sh.
//   node ws_status.mjs URL CA_FILE [AUTHORIZATION]
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { lookup } from './checks.mjs';

const [url, caFile, authorization] = process.argv.slice(2);
const headers = authorization ? { authorization } : {};
const ws = new WebSocket(url, { ca: readFileSync(caFile), lookup, headers, handshakeTimeout: 10000 });
const timer = setTimeout(() => { console.log('timeout'); process.exit(1); }, 15000);
ws.once('unexpected-response', (req, res) => {
  console.log(`HTTP ${res.statusCode}${res.headers['www-authenticate'] ? ' ' + res.headers['www-authenticate'] : ''}`);
  clearTimeout(timer);
  process.exit(0);
});
ws.once('error', (e) => { console.log(`error ${e.message}`); clearTimeout(timer); process.exit(1); });
ws.once('open', () => {
  console.log('open');
  ws.send('visitor');
  ws.once('message', (m) => {
    console.log(m.toString() === 'visitor' ? 'echo ok' : `echo wrong: ${m}`);
    clearTimeout(timer);
    ws.close();
    process.exit(0);
  });
});
