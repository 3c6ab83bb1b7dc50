// Headless Chromium (playwright-core, Debian's /usr/bin/chromium) passes the browser check of a
// `wtmesh http --challenge` tunnel (edge/visitor_challenge.h) and uses the site it opens. Prints one
// JSON object: {browser, documents: [{path, status}], first: {status, title}, final: {url, status, title, heading}, ms, cookie,
// scriptSeesCookie, fetch: {status, text}, ws: {...}} or {navError} / {harness_error}.
// Used by tests/peers/visitor_challenge.sh.
//   node challenge_page.mjs --url https://app.localhost:PORT/path [--fetch /api] [--ws wss://...]
//                           [--timeout MS]
// The caller points HOME at a directory whose .pki/nssdb trusts the edge's CA (no --ignore-* flags).
import { harness, navigate, opt } from './launch.mjs';

const url = opt('--url', '');
const fetchPath = opt('--fetch', '');
const wsUrl = opt('--ws', '');

await harness('challenge_page', Number(opt('--timeout', '60000')), async ({ result, open }) => {
  if (!url) throw new Error('--url is required');
  const page = await open();
  // Every document the tab loads, redirects included: the check page, the answer (303), the site.
  result.documents = [];
  page.on('response', (r) => {
    if (r.request().resourceType() === 'document') {
      result.documents.push({ path: new URL(r.url()).pathname, status: r.status() });
    }
  });
  const started = Date.now();
  const response = await navigate(page, url, result);
  if (!response) return 1;
  result.first = { status: response.status(), title: await page.title().catch(() => '') };
  // The page's script works, then navigates (303 with the cookie, then the site).
  await page.waitForFunction(() => document.readyState === 'complete' && document.title !== 'Checking your browser',
    null, { timeout: 30000 });
  result.ms = Date.now() - started;
  result.final = await page.evaluate(() => ({
    url: location.href,
    status: performance.getEntriesByType('navigation')[0]?.responseStatus ?? null,
    title: document.title,
    heading: document.querySelector('h1')?.textContent ?? null,
  }));
  const cookies = await page.context().cookies();
  result.cookie = cookies.find((c) => c.name === '__Host-wtmesh_pass') ?? null;
  if (result.cookie) result.cookie.value = `${result.cookie.value.length} bytes`;
  result.scriptSeesCookie = await page.evaluate(() => document.cookie.includes('wtmesh_pass'));
  if (fetchPath) {
    result.fetch = await page.evaluate(async (p) => {
      const r = await fetch(p, { cache: 'no-store' });
      return { status: r.status, text: (await r.text()).slice(0, 4000) };
    }, fetchPath).catch((e) => ({ error: String(e.message || e).split('\n')[0] }));
  }
  if (wsUrl) {
    result.ws = await page.evaluate(async (target) => {
      const ws = new WebSocket(target, ['chat']);
      await new Promise((res, rej) => { ws.onopen = res; ws.onerror = () => rej(new Error('WebSocket error before open')); });
      const next = () => new Promise((res) => { ws.onmessage = (e) => res(e.data); });
      ws.send('hello through the check');
      const text = await next();
      ws.close(1000);
      return { open: true, text };
    }, wsUrl).catch((e) => ({ error: String(e.message || e).split('\n')[0] }));
  }
  return 0;
});
