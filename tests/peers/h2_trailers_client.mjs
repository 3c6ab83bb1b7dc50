// An HTTP/2 client on Node's http2 that sends request trailers (waitForTrailers + sendTrailers), for
// tests/peers/trailers_1xx.sh. Prints the response body (the origin's JSON) on stdout.
//   node h2_trailers_client.mjs URL CA_FILE BODY TRAILER_NAME TRAILER_VALUE
import http2 from 'node:http2';
import fs from 'node:fs';

const [url, caFile, body, name, value] = process.argv.slice(2);
const u = new URL(url);
const session = http2.connect(`https://127.0.0.1:${u.port}`, {
  ca: fs.readFileSync(caFile),
  servername: u.hostname,
});
const timer = setTimeout(() => {
  console.error('timed out');
  process.exit(2);
}, 20000);
session.on('error', (e) => {
  console.error(`session error: ${e.message}`);
  process.exit(1);
});
const req = session.request(
  { ':method': 'POST', ':path': u.pathname, ':authority': u.host, 'content-type': 'text/plain' },
  { waitForTrailers: true },
);
req.on('wantTrailers', () => req.sendTrailers({ [name]: value }));
let out = '';
req.setEncoding('utf8');
req.on('data', (d) => { out += d; });
req.on('end', () => {
  clearTimeout(timer);
  process.stdout.write(`${out}\n`);
  session.close();
});
req.on('error', (e) => {
  console.error(`stream error: ${e.message}`);
  process.exit(1);
});
req.end(body);
