// What the Chromium harnesses share (tunnel_page.mjs, websocket_page.mjs, wt_echo.mjs): Debian's
// headless chromium (or WTMESH_CHROMIUM) through playwright-core, kept off the (closed) network, and a
// page whose console and errors go to `log`.
import { chromium } from 'playwright-core';

// As root Chromium needs --no-sandbox; the rest keeps it off the network. Not --disable-quic:
// WebTransport runs over QUIC.
// `extra`: more Chromium switches (every `--chromium-arg X` of the command line by default).
export async function launch(log, extra = chromiumArgs()) {
  const browser = await chromium.launch({
    executablePath: process.env.WTMESH_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', ...extra],
  });
  const page = await browser.newPage();
  page.on('console', (m) => log(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log(`page error: ${e}`));
  return { browser, page };
}

// Every value after a `--chromium-arg` in the command line.
export function chromiumArgs() {
  const args = process.argv.slice(2);
  return args.flatMap((a, i) => (a === '--chromium-arg' && i + 1 < args.length ? [args[i + 1]] : []));
}

// The value after `name` in the command line, or `dflt`.
export function opt(name, dflt) {
  const args = process.argv.slice(2);
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
}

// A one-shot harness: runs `body({result, log, open})`, where open() launches Chromium and returns its
// page, then prints `result` as one JSON line and exits with what body returned (0 by default). A
// throw becomes result.harness_error and exit 2, and so does running past `timeoutMs`; the browser
// is closed first.
export async function harness(name, timeoutMs, body) {
  const log = (s) => process.stderr.write(`[${name}] ${s}\n`);
  const result = {};
  let browser;
  const done = async (code) => {
    console.log(JSON.stringify(result));
    try { if (browser) await browser.close(); } catch { /* already gone */ }
    process.exit(code);
  };
  const watchdog = setTimeout(() => { result.harness_error = `timed out after ${timeoutMs} ms`; done(2); }, timeoutMs);
  const open = async () => {
    let page;
    ({ browser, page } = await launch(log));
    result.browser = browser.version();
    return page;
  };
  let code;
  try {
    code = (await body({ result, log, open })) ?? 0;
  } catch (e) {
    result.harness_error = String((e && e.message) || e);
    log(`harness error: ${(e && e.stack) || e}`);
    code = 2;
  }
  clearTimeout(watchdog);
  await done(code);
}

// page.goto(url): the response, or null with result.navError set (the first line of the error).
export async function navigate(page, url, result) {
  try {
    return await page.goto(url, { timeout: 20000 });
  } catch (e) {
    result.navError = String(e.message || e).split('\n')[0];
    return null;
  }
}
