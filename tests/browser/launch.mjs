// What the Chromium harnesses share (tunnel_page.mjs, websocket_page.mjs, wt_echo.mjs): Debian's
// headless chromium (or WTMESH_CHROMIUM) through playwright-core, kept off the (closed) network, and a
// page whose console and errors go to `log`.
import { chromium } from 'playwright-core';

// As root Chromium needs --no-sandbox; the rest keeps it off the network. Not --disable-quic:
// WebTransport runs over QUIC.
export async function launch(log) {
  const browser = await chromium.launch({
    executablePath: process.env.WTMESH_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  page.on('console', (m) => log(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log(`page error: ${e}`));
  return { browser, page };
}
