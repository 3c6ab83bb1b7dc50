#!/usr/bin/env bash
# The main command: installs dependencies, builds wtmesh, and runs the whole thing on loopback:
#   - a local edge on 127.0.0.1 (QUIC/HTTP/3 on UDP, public HTTPS on TCP, same port), state under .wtmesh/;
#   - `wtmesh doctor` against it;
#   - a demo web service (scripts/demo_service.mjs) on 127.0.0.1;
#   - an agent (`wtmesh http`) exposing that service as https://demo.localhost:PORT/ with a fresh token;
#   - a page server for the browser WebTransport echo test;
# then checks the public URL with curl, prints it with a curl line to try, and keeps everything running
# until Ctrl-C (the agent's one-line-per-request log is in .wtmesh/agent.out).
#
#   ./scripts/demo.sh            run until Ctrl-C
#   ./scripts/demo.sh --check    start, check, print, then stop (used by CI; exit status = the checks)
# Env: WTMESH_SKIP_SETUP=1, WTMESH_BUILD_DIR (default build), WTMESH_EDGE_PORT (default 4433; 0 = any free
# port), WTMESH_SERVICE_PORT (default 3000), WTMESH_PAGE_PORT (default 8080) (both: taken -> any free
# port), WTMESH_DEMO_NAME (tunnel name, default demo), WTMESH_BIN (use this binary, skip the build).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build_dir=${WTMESH_BUILD_DIR:-build}
state=$root/.wtmesh
wtmesh=${WTMESH_BIN:-$root/$build_dir/wtmesh}
edge_port=${WTMESH_EDGE_PORT:-4433}
page_port=${WTMESH_PAGE_PORT:-8080}
service_port=${WTMESH_SERVICE_PORT:-3000}
name=${WTMESH_DEMO_NAME:-demo}
check_only=0
[ "${1:-}" = "--check" ] && check_only=1

pids=()
say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }
if [ ! -t 1 ]; then say() { printf 'demo: %s\n' "$*"; }; fi
fail() {
  printf 'demo: FAILED: %s\n' "$*" >&2
  exit 1
}

cleanup() {
  local i pid
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[$i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'echo; say "stopping"; exit 0' INT
trap 'exit 143' TERM

# wait_line FILE REGEX PID SECONDS: prints the first match of REGEX in FILE; fails when PID exits first.
wait_line() {
  local file=$1 re=$2 pid=$3 secs=$4 line i
  for ((i = 0; i < secs * 10; i++)); do
    line=$(grep -m1 -oE "$re" "$file" 2>/dev/null || true)
    if [ -n "$line" ]; then
      echo "$line"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

setup_and_build() {
  if [ "${WTMESH_SKIP_SETUP:-0}" != 1 ]; then bash scripts/setup.sh; fi
  if [ -n "${WTMESH_BIN:-}" ]; then
    [ -x "$wtmesh" ] || fail "WTMESH_BIN=$wtmesh is not an executable"
    return 0
  fi
  say "building $build_dir/wtmesh"
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || fail "cmake configure"
  cmake --build "$build_dir" -j2 --target wtmesh || fail "build of wtmesh"
}

# Sets EDGE_PORT, EDGE_URL, CERT_HASH, METRICS_URL, EDGE_WORKERS.
start_edge() {
  mkdir -p "$state/edge"
  say "starting edge on 127.0.0.1:$edge_port (state in .wtmesh/edge, log in .wtmesh/edge.log)"
  "$wtmesh" edge --listen "127.0.0.1:$edge_port" --domain localhost --state-dir "$state/edge" --echo \
    --admin-listen 127.0.0.1:0 >"$state/edge.out" 2>"$state/edge.log" </dev/null &
  local pid=$!
  pids+=("$pid")
  local line
  if ! line=$(wait_line "$state/edge.out" 'wtmesh edge listening on udp://[0-9.]+:[0-9]+' "$pid" 20); then
    tail -n 30 "$state/edge.log" >&2 || true
    fail "the edge did not start (log above; port $edge_port taken? try WTMESH_EDGE_PORT=0)"
  fi
  EDGE_PORT=${line##*:}
  EDGE_URL="https://127.0.0.1:$EDGE_PORT"
  METRICS_URL=$(wait_line "$state/edge.out" 'http://127\.0\.0\.1:[0-9]+/metrics' "$pid" 10) ||
    fail "the edge printed no admin listener line"
  CERT_HASH=$(tr -d ' \t\r\n' <"$state/edge/cert.sha256")
  EDGE_WORKERS=$(grep -Eom1 'workers: [0-9]+' "$state/edge.out" | grep -Eo '[0-9]+' || echo 1)
}

run_doctor() {
  say "wtmesh doctor --edge $EDGE_URL --ca .wtmesh/edge/ca.pem"
  if ! timeout -k 5 60 "$wtmesh" doctor --edge "$EDGE_URL" --ca "$state/edge/ca.pem" </dev/null \
    | sed 's/^/    /'; then
    tail -n 30 "$state/edge.log" >&2 || true
    fail "wtmesh doctor failed (edge log above)"
  fi
}

# Sets SERVICE_PORT. Falls back to any free port when $service_port is taken.
start_demo_service() {
  local port line pid
  for port in "$service_port" 0; do
    node scripts/demo_service.mjs --port "$port" >"$state/service.out" 2>"$state/service.log" </dev/null &
    pid=$!
    if line=$(wait_line "$state/service.out" 'http://127.0.0.1:[0-9]+/' "$pid" 10); then
      pids+=("$pid")
      SERVICE_PORT=${line##*:}
      SERVICE_PORT=${SERVICE_PORT%/}
      say "demo service on http://127.0.0.1:$SERVICE_PORT/ (scripts/demo_service.mjs)"
      return 0
    fi
    wait "$pid" 2>/dev/null || true
  done
  fail "could not start the demo service (see .wtmesh/service.log)"
}

# Sets PUBLIC_URL. A fresh one-day token for $name, then `wtmesh http` in the background.
start_agent() {
  local token line pid
  token=$("$wtmesh" token --state-dir "$state/edge" --name "$name" --ttl 1d) || fail "wtmesh token failed"
  printf '%s\n' "$token" >"$state/token"
  chmod 600 "$state/token"
  say "starting agent: wtmesh http $SERVICE_PORT --edge $EDGE_URL --name $name (log in .wtmesh/agent.out)"
  "$wtmesh" http "$SERVICE_PORT" --edge "$EDGE_URL" --token-file "$state/token" --name "$name" \
    --ca "$state/edge/ca.pem" >"$state/agent.out" 2>"$state/agent.log" </dev/null &
  pid=$!
  pids+=("$pid")
  if ! line=$(wait_line "$state/agent.out" 'https://[^ ]+/' "$pid" 20); then
    tail -n 30 "$state/agent.log" >&2 || true
    fail "the agent did not register $name (agent log above)"
  fi
  PUBLIC_URL=$line
  PUBLIC_HOST=${PUBLIC_URL#https://}
  PUBLIC_PORT=${PUBLIC_HOST#*:}
  PUBLIC_PORT=${PUBLIC_PORT%%/*}
  PUBLIC_HOST=${PUBLIC_HOST%%:*}
}

# The public URL through curl, with the edge's CA: the page, the forwarding headers, an SSE stream.
check_tunnel() {
  local body events
  body=$(curl -sS --max-time 10 --cacert "$state/edge/ca.pem" "$PUBLIC_URL") \
    || fail "curl $PUBLIC_URL failed (logs: .wtmesh/edge.log, .wtmesh/agent.log)"
  grep -q 'Hello from your local service' <<<"$body" || fail "unexpected page at $PUBLIC_URL"
  grep -q "<th>x-forwarded-proto</th><td>https</td>" <<<"$body" || fail "no X-Forwarded-Proto at the service"
  events=$(curl -sS -N --max-time 10 --cacert "$state/edge/ca.pem" "${PUBLIC_URL}events?n=2" | grep -c '^data:') \
    || fail "the event stream through $PUBLIC_URL failed"
  [ "$events" = 2 ] || fail "expected 2 server-sent events through the tunnel, got $events"
  local versions
  versions=$(curl -sS -o /dev/null --max-time 10 --cacert "$state/edge/ca.pem" -w '%{http_version}' --http2 "$PUBLIC_URL")/$(
    curl -sS -o /dev/null --max-time 10 --cacert "$state/edge/ca.pem" -w '%{http_version}' --http1.1 "$PUBLIC_URL")
  [ "$versions" = 2/1.1 ] || fail "expected HTTP/2 and HTTP/1.1 at $PUBLIC_URL, got $versions"
  local h3=""
  if command -v gtlsclient >/dev/null; then
    local out
    out=$(timeout -k 2 20 gtlsclient --exit-on-all-streams-close --no-quic-dump --no-http-dump \
      --sni="$PUBLIC_HOST" 127.0.0.1 "$PUBLIC_PORT" "$PUBLIC_URL" </dev/null 2>&1) || true
    grep -q '^http: stream 0x0 \[:status: 200\]' <<<"$out" || fail "HTTP/3 (gtlsclient) to $PUBLIC_URL did not answer 200"
    h3=", HTTP/3"
  fi
  local metrics
  metrics=$(curl -sS --max-time 10 "$METRICS_URL") || fail "curl $METRICS_URL failed"
  grep -q '^wtmesh_http_requests_total{' <<<"$metrics" || fail "$METRICS_URL does not count the requests just made"
  say "checked: $PUBLIC_URL serves the demo page over HTTP/2, HTTP/1.1$h3 (HTTPS verified with the edge CA) and streams events; $METRICS_URL counts them"
}

# Sets PAGE_URL. Falls back to any free port when $page_port is taken.
start_page_server() {
  local port line pid
  for port in "$page_port" 0; do
    node tests/browser/serve.mjs --port "$port" >"$state/pages.out" 2>"$state/pages.log" </dev/null &
    pid=$!
    if line=$(wait_line "$state/pages.out" 'http://localhost:[0-9]+/' "$pid" 10); then
      pids+=("$pid")
      PAGE_URL="${line}?url=$EDGE_URL/echo&hash=$CERT_HASH"
      return 0
    fi
    wait "$pid" 2>/dev/null || true
  done
  fail "could not start the test page server (see .wtmesh/pages.log)"
}

print_banner() {
  cat <<EOF

  public URL         $PUBLIC_URL   ->  http://127.0.0.1:$SERVICE_PORT/ (the demo service)

  Try it:
    curl --cacert .wtmesh/edge/ca.pem $PUBLIC_URL
    curl --cacert .wtmesh/edge/ca.pem -N ${PUBLIC_URL}events      # server-sent events, one a second
    curl --cacert .wtmesh/edge/ca.pem -d 'hello' ${PUBLIC_URL}echo
    curl --cacert .wtmesh/edge/ca.pem --http2 -sI $PUBLIC_URL      # HTTP/2 (--http1.1 for HTTP/1.1)
    node tests/peers/ws_client.mjs ${PUBLIC_URL/https/wss}ws .wtmesh/edge/ca.pem quick   # WebSocket echo
    node tests/peers/ws_h2_client.mjs ${PUBLIC_URL}ws .wtmesh/edge/ca.pem quick   # WebSocket over HTTP/2
    gtlsclient --exit-on-all-streams-close --no-quic-dump --sni=$PUBLIC_HOST 127.0.0.1 $PUBLIC_PORT $PUBLIC_URL 2>&1 | grep :status   # HTTP/3
  The agent logs one line per request:   tail -f .wtmesh/agent.out
  Expose your own app:  ${wtmesh#"$root"/} http LOCALPORT --edge $EDGE_URL --name NAME \\
                          --ca .wtmesh/edge/ca.pem --token \$(${wtmesh#"$root"/} token --state-dir .wtmesh/edge --name NAME)
    its upstream: --upstream h2c (HTTP/2 cleartext, gRPC with trailers) | --upstream h3 (HTTP/3 on UDP LOCALPORT;
                  browsers' WebTransport sessions to https://NAME.localhost:PORT/... are relayed to its WebTransport server)
                  | --upstream-tls [--upstream-ca FILE | --upstream-insecure] (HTTPS, h2 or http/1.1 by ALPN)
    who may visit (checked at the edge): --basic-auth USER:PASS | --allow-cidr RANGE | --deny-cidr RANGE
                                         | --require-token KEY (wtmesh token --visitor-key KEY) | --challenge
    where UDP is blocked: --transport h2 (WebTransport over HTTP/2 on the same port; the default auto races QUIC and HTTP/2, and moves back to QUIC when it returns)
    reconnects resume in 0-RTT (the session request in the first flight; WTMESH_0RTT=0 turns it off): the agent says
                  "over QUIC (resumed, 0-RTT)"; HTTP/3 clients too: gtlsclient --session-file s --tp-file tp ... (twice)
  A tunnel that outlives tokens: ${wtmesh#"$root"/} credential --state-dir .wtmesh/edge --name NAME -o agent.cred, then
                          ... http LOCALPORT --credential agent.cred (renews inside the session; wtmesh revoke ID ends it)
  Expose a TCP service (ssh, redis, postgres):  ${wtmesh#"$root"/} tcp LOCALPORT --edge $EDGE_URL --name NAME \\
                          --ca .wtmesh/edge/ca.pem --token ...   -> prints tcp://127.0.0.1:PORT (edge ports 20000-20999)
  Expose a UDP service (DNS, games):  ${wtmesh#"$root"/} udp LOCALPORT --edge $EDGE_URL --name NAME \\
                          --ca .wtmesh/edge/ca.pem --token ...   -> prints udp://127.0.0.1:PORT (edge ports 21000-21999)
  The mesh: publish by name only (tcp ... --private), then reach it from another agent on a local port:
                        ${wtmesh#"$root"/} connect NAME --listen 127.0.0.1:PORT --edge $EDGE_URL --ca .wtmesh/edge/ca.pem \\
                          --token \$(${wtmesh#"$root"/} token --state-dir .wtmesh/edge --name me --connect NAME)
                        add --udp to reach a udp tunnel (udp ... --private): each client address is one flow
                        names the edge reaches itself: wtmesh edge ... --route db=HOST:PORT --udp-route dns=HOST:53
  Browsers as mesh clients: publish by name (tcp/udp ... --private --name NAME), then open in Chromium
                        ${EDGE_URL/127.0.0.1/localhost}/connect/#name=NAME&hash=$CERT_HASH&token=\$(${wtmesh#"$root"/} token --state-dir .wtmesh/edge --name me --connect NAME)
                        (the edge's demo page: a line terminal over a stream, a datagram ping; trust .wtmesh/edge/ca.pem;
                         it reports telemetry every 5 s: agent="browser/me#N" in the metrics below)
  Metrics (requests by tunnel, agents' RTT from their telemetry):   curl $METRICS_URL
  An edge on every core: this edge runs $EDGE_WORKERS worker(s), one per core by default (${wtmesh#"$root"/} edge ... --workers N):
                        threads on the same ports; a public TCP connection is handed by its SNI or Host to the
                        worker holding its tunnel, anything else reaches its agent from any of them; every cap is
                        the edge's: wtmesh_worker_connections_steered_total and wtmesh_worker_hops_total in the
                        metrics count hand-overs and crossings)
  WebSocket over HTTP/3 (RFC 9220) from Chromium: --enable-features=EnableWebsocketsOverHttp3
                  --origin-to-force-quic-on=$PUBLIC_HOST:$PUBLIC_PORT, then new WebSocket("${PUBLIC_URL/https/wss}ws")

  wtmesh edge        $EDGE_URL   (UDP: HTTP/3 + WebTransport; TCP: public HTTPS, HTTP/2 + HTTP/1.1, Alt-Svc h3)
  echo endpoint      $EDGE_URL/echo  (the edge runs with --echo; off by default)
  cert sha-256       $CERT_HASH
  CA                 $state/edge/ca.pem

  WebTransport from a browser:
    - open in Chromium on this machine:
        $PAGE_URL
      (it opens a WebTransport session with serverCertificateHashes and echoes a stream and a datagram)
    - or in any page's DevTools console on http://localhost:
        const wt = new WebTransport("$EDGE_URL/echo", {serverCertificateHashes:
          [{algorithm: "sha-256", value: Uint8Array.from("$CERT_HASH".match(/../g), h => parseInt(h, 16))}]});
        await wt.ready;
    - check it again:   ${wtmesh#"$root"/} doctor --edge $EDGE_URL --ca .wtmesh/edge/ca.pem
    - edge log:         tail -f .wtmesh/edge.log

EOF
}

main() {
  mkdir -p "$state"
  setup_and_build
  start_edge
  run_doctor
  start_demo_service
  start_agent
  check_tunnel
  start_page_server
  print_banner
  if [ "$check_only" = 1 ]; then
    say "check passed; stopping (--check)"
    return 0
  fi
  say "running; press Ctrl-C to stop"
  # Stay up until Ctrl-C, or until a piece dies.
  local rc=0
  wait -n "${pids[@]}" || rc=$?
  tail -n 30 "$state/edge.log" "$state/agent.log" >&2 || true
  fail "a demo process exited (status $rc); edge and agent logs above"
}

main
