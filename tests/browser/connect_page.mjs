// Headless Chromium (playwright-core, Debian's /usr/bin/chromium) loads the demo page a wtmesh edge
// serves at https://HOST:PORT/connect/ and runs its window.wtmeshConnect checks against
// /connect/NAME?token=TOKEN on the same edge (tests/peers/browser_connect.sh judges the result).
//   node connect_page.mjs --url https://localhost:PORT/connect/ --hash HEX [--timeout MS] CHECK...
//     --lines LABEL NAME TOKEN STREAMS COUNT   STREAMS bidi streams at once, COUNT lines each, echoed
//     --pings LABEL NAME TOKEN COUNT           COUNT datagrams, their echoes
//     --refused LABEL NAME TOKEN               the session must be refused
//     --stream-refused LABEL NAME TOKEN        the session opens, its stream is reset (the code)
//     --capped LABEL NAME TOKEN N              N connections held, then one more: its reset code
//     --telemetry LABEL NAME TOKEN HOLD_MS     a telemetry report on a uni stream, one too large, then the
//                                              session held HOLD_MS (for a scrape of /metrics meanwhile)
// Prints one JSON object: {browser, status, hasWebTransport, origin, checks: {LABEL: ...}} or
// {harness_error}/{navError}. The caller points HOME at a directory whose NSS db trusts the edge's CA.
import { harness, navigate, opt } from './launch.mjs';

function parseChecks(argv) {
  const checks = [];
  const arity = { '--lines': 5, '--pings': 4, '--refused': 3, '--stream-refused': 3, '--capped': 4, '--telemetry': 4 };
  for (let i = 0; i < argv.length; i++) {
    const n = arity[argv[i]];
    if (!n) continue;
    if (i + n >= argv.length) throw new Error(`${argv[i]} needs ${n} arguments`);
    checks.push({ kind: argv[i].slice(2), args: argv.slice(i + 1, i + 1 + n) });
    i += n;
  }
  return checks;
}

const url = opt('--url', '');
const hash = opt('--hash', '');

await harness('connect_page', Number(opt('--timeout', '120000')), async ({ result, log, open }) => {
  if (!url) throw new Error('--url is required');
  const checks = parseChecks(process.argv.slice(2));
  const page = await open();
  const response = await navigate(page, url, result);
  if (!response) return 1;
  result.status = response.status();
  result.origin = await page.evaluate(() => location.origin);
  result.hasWebTransport = await page.evaluate(() => !!(window.wtmeshConnect && window.wtmeshConnect.hasWebTransport));
  if (!result.hasWebTransport) throw new Error('the page has no WebTransport (or no window.wtmeshConnect)');
  result.checks = {};
  for (const c of checks) {
    const [label, name, token, ...rest] = c.args;
    const t0 = Date.now();
    result.checks[label] = await page.evaluate(async ([kind, name, token, hash, rest]) => {
      const w = window.wtmeshConnect;
      try {
        if (kind === 'lines') return await w.lines(name, token, hash, Number(rest[0]), Number(rest[1]));
        if (kind === 'pings') return await w.pings(name, token, hash, Number(rest[0]), 3000);
        if (kind === 'refused') return await w.refused(name, token, hash);
        if (kind === 'stream-refused') return await w.streamRefused(name, token, hash);
        if (kind === 'capped') return await w.capped(name, token, hash, Number(rest[0]));
        if (kind === 'telemetry') return await w.telemetry(name, token, hash, Number(rest[0]));
        return { error: `unknown check ${kind}` };
      } catch (e) {
        return { error: `${e.name || 'Error'}: ${e.message || e}` };
      }
    }, [c.kind, name, token, hash, rest]);
    log(`${label}: ${c.kind} ${name} in ${Date.now() - t0} ms: ${JSON.stringify(result.checks[label])}`);
  }
  return 0;
});
