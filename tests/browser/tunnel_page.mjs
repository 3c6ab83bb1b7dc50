// Loads a page served through a wtmesh HTTP tunnel in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium) and prints one JSON object with what the page saw. Used by
// tests/peers/http_tunnel_chromium.sh.
//   node tunnel_page.mjs --url https://app.localhost:PORT/ [--timeout MS] [--expect-cert-error]
// Certificates are verified by Chromium for real: the caller points HOME at a directory whose
// .pki/nssdb trusts the edge's CA (or, with --expect-cert-error, at one that does not, and the
// navigation must fail). No --ignore-certificate-errors of any kind.
// Output: {browser, status, protocolHttp, security: {...}, page: window.result, ...} or {navError}.
import { launch } from './launch.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const url = opt('--url', '');
const timeoutMs = Number(opt('--timeout', '60000'));
const expectCertError = args.includes('--expect-cert-error');
const log = (s) => process.stderr.write(`[tunnel_page] ${s}\n`);

let browser;
const result = {};
const done = async (code) => {
  console.log(JSON.stringify(result));
  try { if (browser) await browser.close(); } catch { /* already gone */ }
  process.exit(code);
};
const watchdog = setTimeout(() => { result.harness_error = `timed out after ${timeoutMs} ms`; done(2); }, timeoutMs);

try {
  if (!url) throw new Error('--url is required');
  let page;
  ({ browser, page } = await launch(log));
  result.browser = browser.version();
  let response;
  try {
    response = await page.goto(url, { timeout: 20000 });
  } catch (e) {
    result.navError = String(e.message || e).split('\n')[0];
    clearTimeout(watchdog);
    await done(expectCertError ? 0 : 1);
  }
  result.status = response.status();
  result.url = page.url();
  result.security = await response.securityDetails();
  result.title = await page.title();
  result.heading = await page.textContent('#title');
  result.protocolHttp = await page.evaluate(
    () => performance.getEntriesByType('navigation')[0]?.nextHopProtocol ?? null);
  result.page = await page.evaluate(() => window.result);
  clearTimeout(watchdog);
  await done(0);
} catch (e) {
  result.harness_error = String(e && e.message || e);
  log(`harness error: ${e && e.stack || e}`);
  clearTimeout(watchdog);
  await done(2);
}
