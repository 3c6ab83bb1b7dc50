// Headless Chromium (playwright-core, Debian's /usr/bin/chromium) opens a WebSocket through a wtmesh
// edge from a page of the same origin, so that the socket can ride the page's HTTP/2 connection
// (Chromium uses RFC 8441 only on an existing h2 connection whose SETTINGS enabled extended CONNECT).
// Prints one JSON object: {browser, status, protocolHttp, ws: {...}} or {navError} / {harness_error}.
// Used by tests/peers/websocket_h2_chromium.sh.
//   node websocket_page.mjs --url https://app.localhost:PORT/ --ws wss://app.localhost:PORT/path [--timeout MS]
// The caller points HOME at a directory whose .pki/nssdb trusts the edge's CA (no --ignore-* flags).
import { launch } from './launch.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const url = opt('--url', '');
const wsUrl = opt('--ws', '');
const timeoutMs = Number(opt('--timeout', '60000'));
const log = (s) => process.stderr.write(`[websocket_page] ${s}\n`);

let browser;
const result = {};
const done = async (code) => {
  console.log(JSON.stringify(result));
  try { if (browser) await browser.close(); } catch { /* already gone */ }
  process.exit(code);
};
const watchdog = setTimeout(() => { result.harness_error = `timed out after ${timeoutMs} ms`; done(2); }, timeoutMs);

try {
  if (!url || !wsUrl) throw new Error('--url and --ws are required');
  let page;
  ({ browser, page } = await launch(log));
  result.browser = browser.version();
  let response;
  try {
    response = await page.goto(url, { timeout: 20000 });
  } catch (e) {
    result.navError = String(e.message || e).split('\n')[0];
    clearTimeout(watchdog);
    await done(1);
  }
  result.status = response.status();
  result.protocolHttp = await page.evaluate(
    () => performance.getEntriesByType('navigation')[0]?.nextHopProtocol ?? null);
  result.ws = await page.evaluate(async (target) => {
    const r = {};
    const ws = new WebSocket(target, ['chat']);
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
  }, wsUrl).catch((e) => ({ error: String(e.message || e).split('\n')[0] }));
  clearTimeout(watchdog);
  await done(0);
} catch (e) {
  result.harness_error = String(e && e.message || e);
  log(`harness error: ${e && e.stack || e}`);
  clearTimeout(watchdog);
  await done(2);
}
