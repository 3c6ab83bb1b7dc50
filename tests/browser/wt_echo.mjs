// Drives Debian's headless Chromium (playwright-core, never a downloaded browser) through the checks in
// wt_echo.html and prints one JSON object on stdout. Judging the result is up to the caller
// (tests/peers/chromium_webtransport.sh); this exits 0 when the checks ran, 2 when the harness itself failed.
//
// Usage: node wt_echo.mjs [--page-port N] [--timeout MS] CHECK...
//   --echo NAME URL HASH      full echo check (bidi, uni, datagram, close 4242)
//   --relay NAME URL HASH     the same through a relayed session, plus 4 MiB bidi, close 4243
//   --closed NAME URL HASH    the session must end with a close capsule (its code and reason)
//   --refused NAME URL HASH   wt.ready must reject
//   --allowed NAME URL HASH   wt.ready must resolve, then close
//   --probe                   only load the page and report whether WebTransport exists
// HASH is the hex SHA-256 of the edge's leaf certificate ("-" for none).
// Env: WTMESH_CHROMIUM (default /usr/bin/chromium).
import { launch } from './launch.mjs';
import { servePages } from './serve.mjs';

const log = (...a) => console.error('[wt_echo]', ...a);

function parseArgs(argv) {
  const out = { pagePort: 0, timeoutMs: 150000, checks: [], probe: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const need = (n) => {
      if (i + n >= argv.length) throw new Error(`${a} needs ${n} arguments`);
      const v = argv.slice(i + 1, i + 1 + n);
      i += n;
      return v;
    };
    if (a === '--page-port') out.pagePort = Number(need(1)[0]);
    else if (a === '--timeout') out.timeoutMs = Number(need(1)[0]);
    else if (a === '--probe') out.probe = true;
    else if (a === '--echo' || a === '--relay' || a === '--closed' || a === '--refused' || a === '--allowed') {
      const [name, url, hash] = need(3);
      out.checks.push({ kind: a.slice(2), name, url, hash: hash === '-' ? '' : hash });
    } else throw new Error(`unknown argument: ${a}`);
  }
  return out;
}

let browser;
let server;
async function shutdown(code) {
  try { if (browser) await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 5000))]); } catch {}
  try { if (server) server.close(); } catch {}
  process.exit(code);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const result = { checks: {} };
  const watchdog = setTimeout(() => {
    log(`harness timed out after ${opts.timeoutMs} ms; partial result follows`);
    result.harness_error = `timed out after ${opts.timeoutMs} ms`;
    console.log(JSON.stringify(result));
    shutdown(2);
  }, opts.timeoutMs);

  ({ server } = await servePages({ host: '127.0.0.1', port: opts.pagePort }));
  const pageUrl = `http://localhost:${server.address().port}/`;
  result.page = pageUrl;

  let page;
  ({ browser, page } = await launch(log));
  result.browser = browser.version();
  await page.goto(pageUrl, { timeout: 15000 });
  result.hasWebTransport = await page.evaluate(() => window.wtmesh && window.wtmesh.hasWebTransport);
  result.secureContext = await page.evaluate(() => window.isSecureContext);
  if (!opts.probe && !result.hasWebTransport) throw new Error('the page has no WebTransport');

  const fn = { echo: 'echo', relay: 'relayEcho', closed: 'expectClosed', refused: 'expectRefused', allowed: 'openClose' };
  for (const c of opts.checks) {
    log(`${c.name}: ${c.kind} ${c.url}`);
    const t0 = Date.now();
    result.checks[c.name] = await page.evaluate(
      ([f, url, hash]) => window.wtmesh[f](url, hash), [fn[c.kind], c.url, c.hash]);
    log(`${c.name}: done in ${Date.now() - t0} ms: ${JSON.stringify(result.checks[c.name])}`);
  }
  clearTimeout(watchdog);
  console.log(JSON.stringify(result));
  await shutdown(0);
}

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { log(`got ${sig}`); shutdown(3); });
main().catch((e) => {
  log(`harness error: ${e && e.stack || e}`);
  console.log(JSON.stringify({ harness_error: String(e && e.message || e) }));
  shutdown(2);
});
