// Loads a page through a wtmesh tunnel in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium) until it arrives over HTTP/3, then runs fetches from it. Used by
// tests/peers/http_tunnel_h3.sh.
//   node h3_page.mjs --url https://app.localhost:PORT/ [--loads N] [--pause MS] [--timeout MS]
//                    [--chromium-arg ARG]...
// Certificates are verified for real: the caller points HOME at a directory whose .pki/nssdb
// trusts the edge's CA. Each load is a fresh navigation of the same URL; Chromium moves to HTTP/3
// once an Alt-Svc header told it about the UDP port (or at once with --origin-to-force-quic-on).
// Output: {browser, loads: [{status, protocol, subject}], fetches: {...}} or {harness_error}.
import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const extra = args.flatMap((a, i) => (a === '--chromium-arg' && i + 1 < args.length ? [args[i + 1]] : []));
const url = opt('--url', '');
const loads = Number(opt('--loads', '4'));
const pauseMs = Number(opt('--pause', '300'));
const timeoutMs = Number(opt('--timeout', '60000'));
const log = (s) => process.stderr.write(`[h3_page] ${s}\n`);

let browser;
const result = { loads: [] };
const done = async (code) => {
  console.log(JSON.stringify(result));
  try { if (browser) await browser.close(); } catch { /* already gone */ }
  process.exit(code);
};
const watchdog = setTimeout(() => { result.harness_error = `timed out after ${timeoutMs} ms`; done(2); }, timeoutMs);

try {
  if (!url) throw new Error('--url is required');
  browser = await chromium.launch({
    executablePath: process.env.WTMESH_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', ...extra],
  });
  result.browser = browser.version();
  const page = await browser.newPage();
  page.on('console', (m) => log(`console.${m.type()}: ${m.text()}`));
  for (let i = 0; i < loads; i++) {
    const response = await page.goto(url, { timeout: 20000 });
    const protocol = await page.evaluate(
      () => performance.getEntriesByType('navigation')[0]?.nextHopProtocol ?? null);
    const security = await response.securityDetails();
    result.loads.push({ status: response.status(), protocol, subject: security?.subjectName ?? null,
      issuer: security?.issuer ?? null });
    if (protocol === 'h3') break;
    await new Promise((r) => setTimeout(r, pauseMs));  // Alt-Svc is used by the next connection
  }
  // Fetches from the page: an upload and a download, with the protocol each used.
  result.fetches = await page.evaluate(async () => {
    const out = {};
    const entry = (u) => performance.getEntriesByName(new URL(u, location.href).href).pop()?.nextHopProtocol ?? null;
    const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
    const body = new Uint8Array(3 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + 3) & 0xff;
    const up = await fetch('/upload?from=h3', { method: 'POST', body });
    out.upload = { status: up.status, json: await up.json(), sha256: hex(await crypto.subtle.digest('SHA-256', body)),
      protocol: entry('/upload?from=h3') };
    const down = await fetch('/bytes?n=4000000');
    const got = await down.arrayBuffer();
    out.download = { status: down.status, bytes: got.byteLength, sha256: hex(await crypto.subtle.digest('SHA-256', got)),
      protocol: entry('/bytes?n=4000000') };
    const stats = await (await fetch('/stats')).json();
    out.download.originSha256 = stats.lastSent?.sha256 ?? null;
    return out;
  });
  clearTimeout(watchdog);
  await done(0);
} catch (e) {
  result.harness_error = String(e && e.message || e);
  log(`harness error: ${e && e.stack || e}`);
  clearTimeout(watchdog);
  await done(2);
}
