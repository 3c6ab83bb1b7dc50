// Headless Chromium (playwright-core, Debian's /usr/bin/chromium) opens a WebSocket through a wtmesh
// edge from a page of the same origin, so that the socket can ride the page's HTTP/2 or HTTP/3
// connection (Chromium uses RFC 8441 / RFC 9220 only on an existing connection whose SETTINGS
// enabled extended CONNECT; RFC 9220 only with --enable-features=EnableWebsocketsOverHttp3).
// Prints one JSON object: {browser, status, protocolHttp, ws: {...}} or {navError} / {harness_error}.
// Used by tests/peers/websocket_h2_chromium.sh and websocket_h3_chromium.sh.
//   node websocket_page.mjs --url https://app.localhost:PORT/ --ws wss://app.localhost:PORT/path [--timeout MS]
//                           [--subprotocol NAME|none] [--chromium-arg ARG]...
// The caller points HOME at a directory whose .pki/nssdb trusts the edge's CA (no --ignore-* flags).
import { harness, navigate, opt } from './launch.mjs';

const url = opt('--url', '');
const wsUrl = opt('--ws', '');
const subprotocol = opt('--subprotocol', 'chat');  // "none": ask for none (a service that picks none)

await harness('websocket_page', Number(opt('--timeout', '60000')), async ({ result, open }) => {
  if (!url || !wsUrl) throw new Error('--url and --ws are required');
  const page = await open();
  const response = await navigate(page, url, result);
  if (!response) return 1;
  result.status = response.status();
  result.protocolHttp = await page.evaluate(
    () => performance.getEntriesByType('navigation')[0]?.nextHopProtocol ?? null);
  result.ws = await page.evaluate(async ([target, sub]) => {
    const r = {};
    const ws = new WebSocket(target, sub === 'none' ? [] : [sub]);
    ws.binaryType = 'arraybuffer';
    await new Promise((res, rej) => {
      ws.onopen = res;
      ws.onerror = () => rej(new Error('WebSocket error before open'));
    });
    r.protocol = ws.protocol;
    r.extensions = ws.extensions;
    const next = () => new Promise((res) => { ws.onmessage = (e) => res(e.data); });
    ws.send('hello from chromium ✓');
    r.text = await next();
    const bin = new Uint8Array(300000).map((_, i) => (i * 7 + (i >> 8)) & 255);
    ws.send(bin);
    const got = new Uint8Array(await next());
    r.binaryOk = got.length === bin.length && got.every((v, i) => v === bin[i]);
    const closed = new Promise((res) => { ws.onclose = (e) => res({ code: e.code, reason: e.reason, wasClean: e.wasClean }); });
    ws.close(4001, 'client says bye');
    r.close = await closed;
    return r;
  }, [wsUrl, subprotocol]).catch((e) => ({ error: String(e.message || e).split('\n')[0] }));
  return 0;
});
