// Loads a page served through a wtmesh HTTP tunnel in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium) and prints one JSON object with what the page saw. Used by
// tests/peers/http_tunnel_chromium.sh.
//   node tunnel_page.mjs --url https://app.localhost:PORT/ [--timeout MS] [--expect-cert-error]
// Certificates are verified by Chromium for real: the caller points HOME at a directory whose
// .pki/nssdb trusts the edge's CA (or, with --expect-cert-error, at one that does not, and the
// navigation must fail). No --ignore-certificate-errors of any kind.
// Output: {browser, status, protocolHttp, security: {...}, page: window.result, ...} or {navError}.
import { harness, navigate, opt } from './launch.mjs';

const url = opt('--url', '');
const expectCertError = process.argv.includes('--expect-cert-error');

await harness('tunnel_page', Number(opt('--timeout', '60000')), async ({ result, open }) => {
  if (!url) throw new Error('--url is required');
  const page = await open();
  const response = await navigate(page, url, result);
  if (!response) return expectCertError ? 0 : 1;
  result.status = response.status();
  result.url = page.url();
  result.security = await response.securityDetails();
  result.title = await page.title();
  result.heading = await page.textContent('#title');
  result.protocolHttp = await page.evaluate(
    () => performance.getEntriesByType('navigation')[0]?.nextHopProtocol ?? null);
  result.page = await page.evaluate(() => window.result);
  return 0;
});
