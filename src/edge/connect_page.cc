#include "edge/connect_page.h"

namespace wtmesh::edge {
namespace {

constexpr std::string_view kPage = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wtmesh connect</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; max-width: 60em; }
  input { font: inherit; } #name { width: 12em; } #token, #hash { width: 24em; }
  pre { background: #f4f4f4; padding: .8em; min-height: 4em; max-height: 20em; overflow: auto; white-space: pre-wrap; }
  #line { width: 100%; font-family: monospace; }
  .err { color: #a00; }
</style>
</head>
<body>
<h1>wtmesh: reach a mesh name from the browser</h1>
<form id="form">
  <label>name <input id="name" placeholder="echo" required></label>
  <label>token <input id="token" type="password" placeholder="wtmesh token --connect NAME" required></label>
  <label>certificate hash <input id="hash" placeholder="hex SHA-256 (optional)"></label>
  <button>connect</button>
</form>
<p id="status">Not connected. The fragment <code>#name=NAME&amp;token=TOKEN&amp;hash=HEX</code> fills the form.</p>
<h2>Terminal: one TCP connection (a bidi stream)</h2>
<pre id="term"></pre>
<input id="line" placeholder="type a line, Enter sends it" disabled>
<h2>Datagram ping: one UDP packet each</h2>
<button id="ping" disabled>ping</button>
<pre id="pings"></pre>
<script>
'use strict';
(() => {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const $ = (id) => document.getElementById(id);

  function hexToBytes(hex) {
    hex = String(hex).trim().toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error('the certificate hash is not 64 hex digits');
    const out = new Uint8Array(32);
    for (let i = 0; i < 32; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }
  function describe(e) {
    if (!e) return String(e);
    let s = `${e.name || 'Error'}: ${e.message || e}`;
    if (e.streamErrorCode !== undefined && e.streamErrorCode !== null) s += ` (stream error code ${e.streamErrorCode})`;
    return s;
  }
  // Stream reset codes of the edge: 0x10 + the refusal (docs/protocol.md §8).
  const refusals = { 0x11: 'not in token scope', 0x12: 'unknown name', 0x13: 'offline', 0x14: 'limit',
    0x15: 'unreachable', 0x16: 'invalid', 3: 'the connection was reset' };
  function withTimeout(p, ms, what) {
    let t;
    return Promise.race([p, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: no answer within ${ms} ms`)), ms); })])
      .finally(() => clearTimeout(t));
  }
  function sessionUrl(name, token) {
    return `https://${location.host}/connect/${encodeURIComponent(name)}?token=${encodeURIComponent(token)}`;
  }
  async function open(name, token, hash) {
    const opts = hash ? { serverCertificateHashes: [{ algorithm: 'sha-256', value: hexToBytes(hash) }] } : {};
    const wt = new WebTransport(sessionUrl(name, token), opts);
    wt.closed.catch(() => {});
    await withTimeout(wt.ready, 15000, 'session');
    return wt;
  }
  async function readAll(readable, limit) {
    const reader = readable.getReader();
    let text = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return text;
      text += dec.decode(value, { stream: true });
      if (text.length > limit) throw new Error(`more than ${limit} bytes`);
    }
  }

  // --- for tests (tests/peers/browser_connect.sh) and the buttons ---
  // `streams` bidi streams at once, each sends `lines` lines then FIN and reads to the end.
  async function lines(name, token, hash, streams, count) {
    const wt = await open(name, token, hash);
    try {
      const one = async (i) => {
        const s = await wt.createBidirectionalStream();
        const w = s.writable.getWriter();
        let sent = '';
        for (let j = 0; j < count; j++) {
          const l = `stream ${i} line ${j} ${'x'.repeat(j % 50)}\n`;
          sent += l;
          await w.write(enc.encode(l));
        }
        await w.close();
        const got = await withTimeout(readAll(s.readable, 1 << 20), 20000, `stream ${i}`);
        return { sent: sent.length, got: got.length, exact: got === sent };
      };
      const results = await Promise.all(Array.from({ length: streams }, (_, i) => one(i)));
      return { ok: results.every((r) => r.exact), results };
    } finally {
      wt.close({ closeCode: 0, reason: 'done' });
    }
  }
  // Sends `count` datagrams "ping i" and collects what comes back within `waitMs`.
  async function pings(name, token, hash, count, waitMs) {
    const wt = await open(name, token, hash);
    try {
      const answers = [];
      const reader = wt.datagrams.readable.getReader();
      const reading = (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          answers.push(dec.decode(value));
        }
      })().catch(() => {});
      const w = wt.datagrams.writable.getWriter();
      const want = [];
      for (let i = 0; i < count; i++) {
        const p = `ping ${i}`;
        want.push(p);
        await w.write(enc.encode(p));
        await new Promise((r) => setTimeout(r, 20));
        if (answers.length === count) break;
      }
      const until = Date.now() + waitMs;
      while (answers.length < count && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      reader.cancel().catch(() => {});
      void reading;
      const got = new Set(answers);
      return { sent: count, answered: answers.length, exact: want.filter((p) => got.has(p)).length, answers: answers.slice(0, 5) };
    } finally {
      wt.close({ closeCode: 0, reason: 'done' });
    }
  }
  // The session must be refused.
  async function refused(name, token, hash) {
    try {
      const wt = await open(name, token, hash);
      wt.close();
      return { refused: false };
    } catch (e) {
      return { refused: true, error: describe(e) };
    }
  }
  // The session opens; its first stream must be reset: the code and what it means.
  async function streamRefused(name, token, hash) {
    const wt = await open(name, token, hash);
    try {
      const s = await wt.createBidirectionalStream();
      const w = s.writable.getWriter();
      w.write(enc.encode('hello\n')).catch(() => {});
      try {
        await withTimeout(readAll(s.readable, 1 << 16), 10000, 'stream');
        return { reset: false };
      } catch (e) {
        return { reset: true, code: e.streamErrorCode ?? null, meaning: refusals[e.streamErrorCode] || '?', error: describe(e) };
      }
    } finally {
      wt.close({ closeCode: 0, reason: 'done' });
    }
  }
  // Holds `n` connections (a line echoed on each), then opens one more: its reset code, if any.
  async function capped(name, token, hash, n) {
    const wt = await open(name, token, hash);
    try {
      const held = [];
      for (let i = 0; i < n; i++) {
        const s = await wt.createBidirectionalStream();
        const w = s.writable.getWriter();
        await w.write(enc.encode(`hold ${i}\n`));
        const { value } = await withTimeout(s.readable.getReader().read(), 10000, `stream ${i}`);
        if (dec.decode(value) !== `hold ${i}\n`) throw new Error(`stream ${i}: no echo`);
        held.push(w);
      }
      const extra = await wt.createBidirectionalStream();
      extra.writable.getWriter().write(enc.encode('one more\n')).catch(() => {});
      try {
        await withTimeout(readAll(extra.readable, 1 << 16), 10000, 'the extra stream');
        return { held: held.length, reset: false };
      } catch (e) {
        return { held: held.length, reset: true, code: e.streamErrorCode ?? null, meaning: refusals[e.streamErrorCode] || '?' };
      }
    } finally {
      wt.close({ closeCode: 0, reason: 'done' });
    }
  }
  // --- telemetry (docs/protocol.md §8, "Telemetry"): a report in the agents' encoding (§2.2), each on a uni stream
  // of its own, since this session's datagrams are UDP packets to NAME.
  function varint(n) {
    n = Math.max(0, Math.floor(n));
    if (n < 0x40) return [n];
    if (n < 0x4000) return [0x40 | (n >> 8), n & 0xff];
    if (n < 0x40000000) return [0x80 | (n >>> 24), (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
    let b = BigInt(Math.min(n, Number.MAX_SAFE_INTEGER));
    const out = [];
    for (let i = 0; i < 8; i++) { out.unshift(Number(b & 0xffn)); b >>= 8n; }
    out[0] |= 0xc0;
    return out;
  }
  const pageVersion = 'wtmesh-connect-page/1';
  // r: { rttUs, sent, received, streams, dropped, uptime, version } (any may be missing).
  function encodeReport(r) {
    const out = varint(1);
    const entry = (key, bytes) => out.push(...varint(key), ...varint(bytes.length), ...bytes);
    const nums = [[1, r.rttUs], [2, r.sent], [3, r.received], [4, r.streams], [5, r.dropped], [6, r.uptime]];
    for (const [key, v] of nums) if (v !== undefined && v !== null) entry(key, varint(v));
    if (r.version) entry(7, Array.from(enc.encode(r.version.replace(/[^\x20-\x7e]/g, '?').slice(0, 64))));
    return new Uint8Array(out);
  }
  async function sendReport(wt, bytes) {
    const s = await wt.createUnidirectionalStream();
    const w = s.getWriter();
    await w.write(bytes);
    await w.close();
  }
  // The transport's smoothed RTT where the browser tells it (WebTransport.getStats), else `fallback`.
  async function rttMicros(wt, fallback) {
    try {
      const st = typeof wt.getStats === 'function' ? await wt.getStats() : null;
      if (st && typeof st.smoothedRtt === 'number' && st.smoothedRtt > 0) return Math.round(st.smoothedRtt * 1000);
    } catch (e) { /* not supported: the pings' RTT */ }
    return fallback;
  }
  // Sends one report with these counters, then one too large (the edge refuses it), then holds the
  // session `holdMs` so that the report can be seen in /metrics.
  // One datagram's round trip through NAME's UDP service, in microseconds (null without an answer).
  async function pingMicros(wt) {
    const reader = wt.datagrams.readable.getReader();
    const writer = wt.datagrams.writable.getWriter();
    const t0 = performance.now();
    try {
      await writer.write(enc.encode('rtt probe'));
      const { value } = await withTimeout(reader.read(), 3000, 'the probe');
      return value ? Math.max(1, Math.round((performance.now() - t0) * 1000)) : null;
    } catch (e) {
      return null;
    } finally {
      try { reader.releaseLock(); writer.releaseLock(); } catch (e) { /* a read still pending */ }
    }
  }
  async function telemetry(name, token, hash, holdMs) {
    const wt = await open(name, token, hash);
    try {
      const rttUs = await rttMicros(wt, await pingMicros(wt));
      const report = { rttUs, sent: 1234, received: 5678, streams: 1, dropped: 2, uptime: 7, version: pageVersion };
      await sendReport(wt, encodeReport(report));
      let refusedBig = null;
      try {
        await sendReport(wt, new Uint8Array(1500).fill(7));
        refusedBig = false;
      } catch (e) {
        refusedBig = true;
      }
      await new Promise((r) => setTimeout(r, holdMs));
      return { sent: true, rttUs, refusedBig };
    } finally {
      wt.close({ closeCode: 0, reason: 'done' });
    }
  }
  window.wtmeshConnect = { hasWebTransport: typeof WebTransport === 'function', lines, pings, refused, streamRefused,
    capped, telemetry, encodeReport };

  // --- the interactive page ---
  let session = null, writer = null, dgrams = null, pingNo = 0, reporter = null;
  const sentAt = new Map();
  const started = performance.now();
  const counts = { sent: 0, received: 0, pings: 0, answered: 0, rttUs: null };
  const show = (el, text, err) => {
    const line = document.createElement('span');
    if (err) line.className = 'err';
    line.textContent = text;
    el.append(line);
    el.scrollTop = el.scrollHeight;
  };
  async function connect() {
    const name = $('name').value.trim(), token = $('token').value.trim(), hash = $('hash').value.trim();
    if (session) session.close();
    $('status').textContent = `connecting to ${name} ...`;
    try {
      session = await open(name, token, hash);
    } catch (e) {
      $('status').textContent = `refused: ${describe(e)} (the edge's log says why)`;
      return;
    }
    const wt = session;
    $('status').textContent = `connected to ${name}`;
    // Every 5 s while the session lives: what this page sent and got, its RTT, its pings unanswered.
    clearInterval(reporter);
    reporter = setInterval(async () => {
      if (wt !== session) return;
      const report = { rttUs: await rttMicros(wt, counts.rttUs), sent: counts.sent, received: counts.received,
        streams: writer ? 1 : 0, dropped: Math.max(0, counts.pings - counts.answered),
        uptime: (performance.now() - started) / 1000, version: pageVersion };
      sendReport(wt, encodeReport(report)).catch(() => {});
    }, 5000);
    wt.closed.then((c) => { $('status').textContent = `session closed: ${c.closeCode} ${c.reason}`; },
      (e) => { $('status').textContent = `session ended: ${describe(e)}`; });
    const s = await wt.createBidirectionalStream();
    writer = s.writable.getWriter();
    dgrams = wt.datagrams.writable.getWriter();
    $('line').disabled = false;
    $('ping').disabled = false;
    (async () => {
      const r = s.readable.getReader();
      try {
        for (;;) {
          const { value, done } = await r.read();
          if (done) { show($('term'), '[the service closed the connection]\n', true); return; }
          counts.received += value.length;
          show($('term'), dec.decode(value, { stream: true }));
        }
      } catch (e) {
        const why = refusals[e.streamErrorCode];
        show($('term'), `[${why ? why + ': ' : ''}${describe(e)}]\n`, true);
      }
    })();
    (async () => {
      const r = wt.datagrams.readable.getReader();
      for (;;) {
        const { value, done } = await r.read();
        if (done) return;
        const text = dec.decode(value);
        const t = sentAt.get(text);
        counts.received += value.length;
        if (t) {
          counts.answered++;
          counts.rttUs = Math.round((performance.now() - t) * 1000);
        }
        show($('pings'), `${text}${t ? `  ${(performance.now() - t).toFixed(1)} ms` : ''}\n`);
      }
    })().catch(() => {});
  }
  $('form').addEventListener('submit', (ev) => { ev.preventDefault(); connect(); });
  $('line').addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter' || !writer) return;
    const bytes = enc.encode($('line').value + '\n');
    counts.sent += bytes.length;
    writer.write(bytes).catch((e) => show($('term'), `[${describe(e)}]\n`, true));
    $('line').value = '';
  });
  $('ping').addEventListener('click', () => {
    if (!dgrams) return;
    const p = `ping ${pingNo++}`;
    sentAt.set(p, performance.now());
    counts.pings++;
    counts.sent += p.length;
    dgrams.write(enc.encode(p)).catch(() => {});
  });
  const frag = new URLSearchParams(location.hash.slice(1));
  for (const k of ['name', 'token', 'hash']) if (frag.get(k)) $(k).value = frag.get(k);
  if (frag.get('name') && frag.get('token') && frag.get('auto') !== '0' && window.wtmeshConnect.hasWebTransport) connect();
})();
</script>
</body>
</html>
)html";

}  // namespace

std::string_view connect_page_html() { return kPage; }

}  // namespace wtmesh::edge
