// Gated server-sent events for the origins (origin.mjs, h2_origin.mjs), for the "unbuffered on every
// pair" checks (sse_pairs.sh): /sse-gated?id=X sends one event at once and the second only when
// /sse-release?id=X is asked for, so a client that sees the first event before the release proves
// nothing on the way held it. Works with Node's http and http2 compatibility responses.
const gates = new Map();

export function sseGated(url, res) {
  const id = url.searchParams.get('id') ?? '0';
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
  res.write('data: first\n\n');
  gates.set(id, () => {
    res.write('data: second\n\n');
    res.end();
  });
}

export function sseRelease(url, res) {
  const id = url.searchParams.get('id') ?? '0';
  const go = gates.get(id);
  gates.delete(id);
  if (go) go();
  res.writeHead(go ? 200 : 404, { 'content-type': 'text/plain' });
  res.end(go ? 'released\n' : 'no such stream\n');
}
