# Shared helpers for tests/peers/*.sh (sourced; not a test itself: CMake only globs *.sh).
# Starts wtmesh edges with bounded waits, records PASS/FAIL per check, and on exit kills every
# process it started and prints the logs of anything that failed.
#
# A test script does:
#   source "$(dirname "$0")/lib.bash"; peer_init "$@"
#   start_edge main [--allow-origin ...]      # sets EDGE_PORT[main], EDGE_DIR[main], ...
#   check "name" test-command...  /  pass "..."  /  fail "..."
#   peer_finish                                # exits 1 when any check failed
# Env: WTMESH_PEER_KEEP=1 keeps the temp dir; WTMESH_PEER_WAIT (s) bounds the edge start (default 20).

# Globals here are read by the scripts that source this file.
# shellcheck disable=SC2034

set -uo pipefail

PEER_NAME=$(basename "$0" .sh)
PEER_TMP=""
PEER_PIDS=()
PEER_PASSED=0
PEER_FAILED=0
PEER_SKIPPED=0
declare -gA EDGE_PID=() EDGE_PORT=() EDGE_DIR=() EDGE_STATE=() EDGE_HASH=()
WTMESH=""

log() { printf '[%s] %s\n' "$PEER_NAME" "$*" >&2; }
pass() { PEER_PASSED=$((PEER_PASSED + 1)); printf 'PASS: %s\n' "$*"; }
fail() { PEER_FAILED=$((PEER_FAILED + 1)); printf 'FAIL: %s\n' "$*"; }
skip() { PEER_SKIPPED=$((PEER_SKIPPED + 1)); printf 'SKIP: %s\n' "$*"; }
# A failure that makes the rest of the test meaningless.
die() {
  PEER_FAILED=$((PEER_FAILED + 1))
  printf 'FATAL: %s\n' "$*"
  exit 1
}
# check NAME CMD...: runs CMD, PASS when it exits 0.
check() {
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}

# Prints the last lines of a log file, indented, under a heading.
show_log() {
  local title=$1 file=$2 lines=${3:-60}
  [ -f "$file" ] || return 0
  printf -- '----- %s (%s, last %s lines) -----\n' "$title" "$file" "$lines"
  tail -n "$lines" "$file" | sed 's/^/  | /'
}

# stop_pid PID [GRACE_S] [SIGNAL]: SIGNAL (default TERM), up to GRACE_S s (default 5) to exit, then SIGKILL. Sets STOP_STATUS to
# the exit status, or "killed" when SIGTERM was not enough. (No $(...) around it: a subshell cannot wait.)
STOP_STATUS=""
stop_pid() {
  local pid=$1 grace=${2:-5} sig=${3:-TERM} i
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null
    STOP_STATUS=$?
    return 0
  fi
  kill -"$sig" "$pid" 2>/dev/null
  for ((i = 0; i < grace * 10; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null
      STOP_STATUS=$?
      return 0
    fi
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  STOP_STATUS=killed
}

peer_cleanup() {
  local rc=$? pid name
  for pid in "${PEER_PIDS[@]}"; do stop_pid "$pid" 3; done
  if [ "$PEER_FAILED" -gt 0 ] || [ "$rc" -ne 0 ]; then
    for name in "${!EDGE_DIR[@]}"; do
      show_log "edge '$name' stderr" "${EDGE_DIR[$name]}/stderr" 80
      show_log "edge '$name' stdout" "${EDGE_DIR[$name]}/stdout" 10
    done
    for f in "$PEER_TMP"/*.log; do [ -f "$f" ] && show_log "$(basename "$f")" "$f" 80; done
  fi
  if [ -n "$PEER_TMP" ] && [ "${WTMESH_PEER_KEEP:-0}" != 1 ]; then rm -rf "$PEER_TMP"; fi
  [ -n "$PEER_TMP" ] && [ "${WTMESH_PEER_KEEP:-0}" = 1 ] && echo "kept $PEER_TMP"
}

peer_init() {
  WTMESH=${1:-}
  [ -n "$WTMESH" ] || die "usage: $0 PATH_OF_WTMESH_BINARY"
  [ -x "$WTMESH" ] || die "wtmesh binary not found or not executable: $WTMESH"
  WTMESH=$(cd "$(dirname "$WTMESH")" && pwd)/$(basename "$WTMESH")
  PEER_TMP=$(mktemp -d "${TMPDIR:-/tmp}/wtmesh-peer-$PEER_NAME.XXXXXX")
  trap peer_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Registers a background process for the cleanup.
track() { PEER_PIDS+=("$1"); }

# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds; 1 on timeout.
wait_for() {
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  "$@"
}

# node_checks NAME SECONDS SCRIPT ARGS...: runs a Node peer client (bounded) whose "ok WHAT" /
# "not ok WHAT: why" lines become checks (prefixed "NAME: " unless NAME is ""), then checks that it
# exited 0. Its output is kept in $PEER_TMP/node-NAME.{out,log}.
node_checks() {
  local name=$1 secs=$2 script=$3 rc line prefix="" out
  shift 3
  [ -z "$name" ] || prefix="$name: "
  out=$PEER_TMP/node-${name:-$(basename "$script" .mjs)}
  timeout "$secs" node "$script" "$@" >"$out.out" 2>"$out.log"
  rc=$?
  while IFS= read -r line; do
    case "$line" in
      "ok "*) pass "$prefix${line#ok }" ;;
      "not ok "*) fail "$prefix${line#not ok }" ;;
    esac
  done <"$out.out"
  check "${prefix}the client exits 0 (status $rc)" [ "$rc" = 0 ]
}

# start_ws_echo: Node's `ws` echo service (tests/peers/ws_echo_server.mjs) on a free port, WS_ECHO_PORT;
# its log (one line per connection and close) is $PEER_TMP/ws-server.log.
start_ws_echo() {
  [ -d "$PEER_DIR/node_modules/ws" ] || die "ws missing in $PEER_DIR (run scripts/setup.sh)"
  node "$PEER_DIR/ws_echo_server.mjs" >"$PEER_TMP/ws-server.log" 2>&1 </dev/null &
  track $!
  wait_for 10 grep -q 'ws echo listening on' "$PEER_TMP/ws-server.log" ||
    die "ws echo server did not start: $(cat "$PEER_TMP/ws-server.log")"
  WS_ECHO_PORT=$(grep -m1 -oE 'ws echo listening on [0-9]+' "$PEER_TMP/ws-server.log" | grep -oE '[0-9]+$')
}

# need_chromium: dies unless Debian's chromium (or WTMESH_CHROMIUM) and tests/browser's
# playwright-core are installed; sets BROWSER_DIR.
need_chromium() {
  BROWSER_DIR=$(cd "$PEER_DIR/../browser" && pwd)
  local chromium=${WTMESH_CHROMIUM:-/usr/bin/chromium}
  [ -x "$chromium" ] || die "chromium not found at $chromium (run scripts/setup.sh)"
  [ -d "$BROWSER_DIR/node_modules/playwright-core" ] ||
    die "playwright-core missing in $BROWSER_DIR (run scripts/setup.sh)"
}

# chromium_ws_page OUT HOST PORT SUBPROTOCOL [chromium args...]: Chromium (need_chromium, nss_home
# $PEER_TMP/home first) loads https://HOST:PORT/ and opens wss://HOST:PORT/chromium from it
# (tests/browser/websocket_page.mjs); the JSON result goes to OUT, the harness log to OUT.log.
chromium_ws_page() {
  local out=$1 host=$2 port=$3 sub=$4 args=() a rc
  shift 4
  for a in "$@"; do args+=(--chromium-arg "$a"); done
  log "Chromium loads https://$host:$port/ then opens wss://$host:$port/chromium"
  (cd "$BROWSER_DIR" && HOME=$PEER_TMP/home timeout -k 5 90 node websocket_page.mjs --url "https://$host:$port/" \
    --ws "wss://$host:$port/chromium" --timeout 80000 --subprotocol "$sub" "${args[@]}") >"$out" 2>"$out.log"
  rc=$?
  [ -s "$out" ] || die "browser harness printed nothing (exit $rc): $(tail -5 "$out.log")"
  log "result: $(cat "$out")"
  check "browser harness exits 0 (status $rc)" [ "$rc" = 0 ]
  local e
  e=$(json_field "$out" harness_error)$(json_field "$out" navError)$(json_field "$out" ws.error)
  [ -z "$e" ] || fail "browser harness / navigation / the page's WebSocket: $e"
}

# chromium_ws_echo EDGE HTTPVER [chromium args...]: the page of app.localhost (a tunnel to Node's `ws`
# echo service, start_ws_echo) over HTTPVER (h2 or h3), then a WebSocket from it: subprotocol chat and
# permessage-deflate negotiated end to end, a text and a 300,000-byte binary message echoed, the
# client's close 4001 + reason seen by the service and back, the edge's log line for HTTPVER.
chromium_ws_echo() {
  local edge=$1 ver=$2 out=$PEER_TMP/ws-echo-$2.json
  shift 2
  chromium_ws_page "$out" app.localhost "${EDGE_PORT[$edge]}" chat "$@"
  local f
  f() { json_field "$out" "$1"; }
  check "Chromium $(f browser) loaded the page over $ver (got $(f protocolHttp))" [ "$(f protocolHttp)" = "$ver" ]
  check "the socket's subprotocol is chat (got '$(f ws.protocol)')" [ "$(f ws.protocol)" = chat ]
  check "permessage-deflate negotiated (got '$(f ws.extensions)')" grep -q permessage-deflate <<<"$(f ws.extensions)"
  check "a text message echoed (got '$(f ws.text)')" [ "$(f ws.text)" = "hello from chromium ✓" ]
  check "a 300,000-byte binary message echoed byte-exact" [ "$(f ws.binaryOk)" = true ]
  check "the close 4001 + reason came back cleanly (got $(f ws.close))" \
    [ "$(f ws.close)" = '{"code":4001,"reason":"client says bye","wasClean":true}' ]
  check "the service saw the close 4001 and its reason" grep -q '^close 4001 client says bye$' "$PEER_TMP/ws-server.log"
  check "the service saw the socket (subprotocol chat, X-Forwarded-Proto https)" \
    grep -q 'connection /chromium protocol=chat xfp=https' "$PEER_TMP/ws-server.log"
  check "the edge logged the socket as a $ver extended CONNECT answered 200" \
    grep -qE "CONNECT app\.localhost/chromium 200 .* $ver\$" "${EDGE_DIR[$edge]}/stderr"
  [ "$PEER_FAILED" -eq 0 ] || show_log "Chromium harness log" "$out.log" 30
}

# chromium_ws_h2c EDGE HTTPVER [chromium args...]: the same from a page of h2app.localhost, a tunnel
# whose upstream is h2c (Node http2 with enableConnectProtocol and a frame echo, h2_origin.mjs): the
# public leg's extended CONNECT, RFC 6455 on the tunnel, RFC 8441 upstream. Checks the page's
# protocol, a text and a 300,000-byte binary echo, the close coming back, and the edge's log.
chromium_ws_h2c() {
  local edge=$1 ver=$2 out=$PEER_TMP/ws-h2c-$2.json
  shift 2
  start_h2_origin "ws-h2c-$ver" --mode h2c
  HTTP_EXTRA_ARGS=(--upstream h2c)
  start_http "h2app-$ver" "$edge" h2app "${ORIGIN_PORT[ws-h2c-$ver]}"
  HTTP_EXTRA_ARGS=()
  chromium_ws_page "$out" h2app.localhost "${EDGE_PORT[$edge]}" none "$@"
  local f
  f() { json_field "$out" "$1"; }
  check "h2c: the page came over $ver (got $(f protocolHttp))" [ "$(f protocolHttp)" = "$ver" ]
  check "h2c: a text message echoed (got '$(f ws.text)')" [ "$(f ws.text)" = "hello from chromium ✓" ]
  check "h2c: a 300,000-byte binary message echoed byte-exact" [ "$(f ws.binaryOk)" = true ]
  check "h2c: the close 4001 + reason came back (got $(f ws.close))" \
    grep -q '"code":4001,"reason":"client says bye"' <<<"$(f ws.close)"
  check "h2c: the edge logged a $ver CONNECT answered 200" \
    grep -qE "CONNECT h2app\.localhost/chromium 200 .* $ver\$" "${EDGE_DIR[$edge]}/stderr"
  [ "$PEER_FAILED" -eq 0 ] || show_log "Chromium harness log (h2c)" "$out.log" 30
}

# json_field FILE PATH: a value from a JSON file ("a.b.c"; objects as JSON, "" when absent).
json_field() {
  node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));
    const v=process.argv[2].split(".").reduce((o,k)=>o==null?o:o[k],j);
    console.log(v==null?"":typeof v==="object"?JSON.stringify(v):String(v))' "$1" "$2"
}

# nss_home DIR [CA_FILE]: a HOME for Chromium whose NSS db (DIR/.pki/nssdb, certutil from
# libnss3-tools) is empty, or trusts CA_FILE: real certificate verification, no --ignore-* flags.
nss_home() {
  command -v certutil >/dev/null || die "certutil not found (package libnss3-tools; run scripts/setup.sh)"
  mkdir -p "$1/.pki/nssdb"
  certutil -d "sql:$1/.pki/nssdb" -N --empty-password || die "certutil -N failed"
  [ -z "${2:-}" ] || certutil -d "sql:$1/.pki/nssdb" -A -t 'C,,' -n wtmesh-local-ca -i "$2" ||
    die "certutil could not add $2"
}

# start_edge NAME [extra edge args...]: starts `wtmesh edge` on a free port with its own state dir and
# waits (bounded) for its listening line. Dies when the edge exits or stays silent.
# An edge runs one worker per core by default (two on CI's box). WTMESH_PEER_WORKERS=N: every edge that
# does not choose its own runs `--workers N` (1: the single-threaded edge; 4: more crossings than cores).
start_edge() {
  local name=$1 dir line pid i wait_s=${WTMESH_PEER_WAIT:-20} addr=${EDGE_LISTEN_ADDR:-127.0.0.1}
  shift
  if [ -n "${WTMESH_PEER_WORKERS:-}" ] && [[ " $* " != *" --workers "* ]]; then
    set -- --workers "$WTMESH_PEER_WORKERS" "$@"
  fi
  dir=$PEER_TMP/edge-$name
  mkdir -p "$dir/state"
  log "starting edge '$name': $WTMESH edge --listen $addr:0 --domain localhost --state-dir $dir/state $*"
  # EDGE_NETNS (tests/net/netlab.bash): in that network namespace (ip execs the edge: same pid).
  ${EDGE_NETNS:+ip netns exec "$EDGE_NETNS"} "$WTMESH" edge --listen "$addr:0" --domain localhost \
    --state-dir "$dir/state" "$@" >"$dir/stdout" 2>"$dir/stderr" </dev/null &
  pid=$!
  track "$pid"
  EDGE_PID[$name]=$pid
  EDGE_DIR[$name]=$dir
  EDGE_STATE[$name]=$dir/state
  line=""
  for ((i = 0; i < wait_s * 10; i++)); do
    line=$(grep -m1 -oE 'wtmesh edge listening on udp://[^ ]+:[0-9]+' "$dir/stdout" 2>/dev/null || true)
    [ -n "$line" ] && break
    kill -0 "$pid" 2>/dev/null || {
      wait "$pid"
      die "edge '$name' exited (status $?) before printing 'wtmesh edge listening on udp://ADDRESS:PORT'"
    }
    sleep 0.1
  done
  [ -n "$line" ] || die "edge '$name' printed no 'wtmesh edge listening on udp://ADDRESS:PORT' line" \
    "on stdout within ${wait_s} s (is stdout flushed after that line?)"
  EDGE_PORT[$name]=${line##*:}
  [ "${EDGE_PORT[$name]}" -gt 0 ] || die "edge '$name' reported port 0 instead of the real port"
  local f
  for f in ca.pem cert.pem key.pem cert.sha256; do
    [ -s "$dir/state/$f" ] || die "edge '$name' did not create $f in its state dir"
  done
  EDGE_HASH[$name]=$(tr -d ' \t\r\n' <"$dir/state/cert.sha256")
  log "edge '$name' is up: pid $pid, udp port ${EDGE_PORT[$name]}, cert sha256 ${EDGE_HASH[$name]}"
}

# stop_edge NAME [SIGNAL]: SIGTERM (or SIGNAL); STOP_STATUS tells how it ended ("0" = clean exit).
stop_edge() { stop_pid "${EDGE_PID[$1]}" 5 "${2:-TERM}"; }

# edge_log_has NAME FIXED_STRING: true when the edge's stderr contains the string.
edge_log_has() { grep -qF -- "$2" "${EDGE_DIR[$1]}/stderr"; }

peer_finish() {
  echo "$PEER_NAME: $PEER_PASSED passed, $PEER_FAILED failed, $PEER_SKIPPED skipped"
  [ "$PEER_FAILED" -eq 0 ] || exit 1
  exit 0
}

# --- Tunnels (http_tunnel*.sh) -----------------------------------------------------------------------
declare -gA ORIGIN_PID=() ORIGIN_PORT=() AGENT_PID=() AGENT_URL=() AGENT_OUT=() AGENT_ERR=()
PEER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# start_origin NAME [origin.mjs args...]: the Node origin (tests/peers/origin.mjs) on a free port;
# sets ORIGIN_PORT[NAME]; its requests are logged to $PEER_TMP/origin-NAME.requests.
start_origin() {
  local name=$1
  shift
  start_node_origin "$name" origin.mjs --log "$PEER_TMP/origin-$name.requests" "$@"
}

# start_node_origin NAME SCRIPT [args...]: a Node service from tests/peers/SCRIPT that prints "origin
# listening on PORT" once ready; sets ORIGIN_PID[NAME] and ORIGIN_PORT[NAME].
start_node_origin() {
  local name=$1 script=$2
  shift 2
  start_listening_origin "$name" node "$PEER_DIR/$script" "$@"
}

# start_listening_origin NAME COMMAND [args...]: any local service that prints "origin listening on
# PORT" once ready (a Node script, tests/peers/grpc_peer.py); sets ORIGIN_PID[NAME], ORIGIN_PORT[NAME].
start_listening_origin() {
  local name=$1 out i line
  shift
  out=$PEER_TMP/origin-$name.log
  "$@" >"$out" 2>&1 </dev/null &
  ORIGIN_PID[$name]=$!
  track "${ORIGIN_PID[$name]}"
  for ((i = 0; i < 100; i++)); do
    line=$(grep -m1 -oE 'origin listening on [0-9]+' "$out" 2>/dev/null || true)
    [ -n "$line" ] && break
    kill -0 "${ORIGIN_PID[$name]}" 2>/dev/null || die "origin '$name' exited: $(cat "$out")"
    sleep 0.1
  done
  [ -n "$line" ] || die "origin '$name' did not start within 10 s"
  ORIGIN_PORT[$name]=${line##* }
  log "origin '$name' is up: pid ${ORIGIN_PID[$name]}, port ${ORIGIN_PORT[$name]}"
}

# start_h2_origin NAME [h2_origin.mjs args...]: tests/peers/h2_origin.mjs (Node http2/https) on a free
# port; sets ORIGIN_PORT[NAME].
start_h2_origin() {
  local name=$1
  shift
  start_node_origin "$name" h2_origin.mjs "$@"
}

# make_test_cert DIR: a CA (DIR/ca.pem) and a leaf for localhost and 127.0.0.1 (DIR/cert.pem,
# DIR/key.pem), with openssl.
make_test_cert() {
  local d=$1
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=wtmesh-test-ca \
    -keyout "$d/ca.key" -out "$d/ca.pem" >/dev/null 2>&1 || die "openssl: CA"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$d/key.pem" -out "$d/leaf.csr" >/dev/null 2>&1 || die "openssl: CSR"
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$d/ext.cnf"
  openssl x509 -req -in "$d/leaf.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/ext.cnf" -out "$d/cert.pem" >/dev/null 2>&1 || die "openssl: leaf"
}

# make_token EDGE NAME [TTL]: prints a token signed with edge EDGE's key for NAME.localhost.
make_token() { "$WTMESH" token --state-dir "${EDGE_STATE[$1]}" --name "$2" --ttl "${3:-10m}"; }

# launch_http AGENT EDGE TUNNEL_NAME LOCALPORT TOKEN: starts `wtmesh http` (AGENT is our label for it)
# without waiting; stdout/stderr go to $PEER_TMP/agent-AGENT.{out,err}.log; sets AGENT_PID[AGENT].
# Extra `wtmesh http` arguments (e.g. --upstream h2c) come from the array HTTP_EXTRA_ARGS.
HTTP_EXTRA_ARGS=()
launch_http() {
  local agent=$1 edge=$2 tname=$3 lport=$4 token=$5
  AGENT_OUT[$agent]=$PEER_TMP/agent-$agent.out.log
  AGENT_ERR[$agent]=$PEER_TMP/agent-$agent.err.log
  # Emptied here, not only by the child's redirections: a restarted agent reuses the names, and a
  # caller polling the file right after this returns must not find the previous agent's lines.
  : >"${AGENT_OUT[$agent]}"
  : >"${AGENT_ERR[$agent]}"
  "$WTMESH" http "$lport" --edge "https://127.0.0.1:${EDGE_PORT[$edge]}" --token "$token" --name "$tname" \
    --ca "${EDGE_STATE[$edge]}/ca.pem" "${HTTP_EXTRA_ARGS[@]}" >"${AGENT_OUT[$agent]}" 2>"${AGENT_ERR[$agent]}" \
    </dev/null &
  AGENT_PID[$agent]=$!
  track "${AGENT_PID[$agent]}"
}

# start_http AGENT EDGE TUNNEL_NAME LOCALPORT [TOKEN]: launch_http, then waits (bounded,
# WTMESH_PEER_WAIT s) for the public URL line; sets AGENT_URL[AGENT]. Dies when it does not come.
start_http() {
  local agent=$1 edge=$2 tname=$3 lport=$4 token=${5:-} i url="" wait_s=${WTMESH_PEER_WAIT:-20}
  [ -n "$token" ] || token=$(make_token "$edge" "$tname") || die "wtmesh token failed"
  launch_http "$agent" "$edge" "$tname" "$lport" "$token"
  for ((i = 0; i < wait_s * 10; i++)); do
    url=$(grep -m1 -oE '^https://[^ ]+/' "${AGENT_OUT[$agent]}" 2>/dev/null || true)
    [ -n "$url" ] && break
    kill -0 "${AGENT_PID[$agent]}" 2>/dev/null || die "wtmesh http '$agent' exited: $(cat "${AGENT_ERR[$agent]}")"
    sleep 0.1
  done
  [ -n "$url" ] || die "wtmesh http '$agent' printed no public URL within ${wait_s} s"
  AGENT_URL[$agent]=$url
  log "agent '$agent' is up: pid ${AGENT_PID[$agent]}, $url"
}

# wtmesh_sanitized: true when $WTMESH is an ASan/UBSan build (3-10x slower, more memory).
wtmesh_sanitized() { LC_ALL=C grep -qa -m1 -e '__asan_init' -e '__ubsan_handle' "$WTMESH"; }

# now_ms: wall clock in milliseconds.
now_ms() { date +%s%3N; }

# free_port: a loopback port free for UDP and TCP both (dnsmasq and iperf3 use one number for both).
free_port() {
  python3 -c '
import socket
while True:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0)); p = u.getsockname()[1]
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", p)); break
    except OSError:
        pass
print(p)'
}

# start_dnsmasq: a dnsmasq on a free loopback port that answers x.test with 10.1.2.3 (udp_tunnel.sh,
# connect_udp.sh, http_tunnel_wt_h2.sh). dnsmasq binds TCP on its port too, so the port is one free
# for both, and a few are tried. Sets DNS_PORT; status 1 when none answered.
start_dnsmasq() {
  local attempt pid
  for attempt in 1 2 3 4 5; do
    DNS_PORT=$(free_port)
    dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --address=/x.test/10.1.2.3 -p "$DNS_PORT" \
      --listen-address=127.0.0.1 --bind-interfaces --user="$(id -un)" --pid-file="$PEER_TMP/dnsmasq.pid" \
      --log-facility=- >"$PEER_TMP/dnsmasq-$attempt.log" 2>&1 </dev/null &
    pid=$!
    track "$pid"
    if wait_for 5 bash -c "timeout 5 dig @127.0.0.1 -p $DNS_PORT x.test +short +time=1 +tries=1 | grep -qx 10.1.2.3"; then
      return 0
    fi
    log "dnsmasq on $DNS_PORT did not answer (attempt $attempt): $(tail -1 "$PEER_TMP/dnsmasq-$attempt.log")"
    kill "$pid" 2>/dev/null
  done
  return 1
}

# --- Attacks on the public listener (edge_dos_*.sh, edge_smuggling.sh) -------------------------------

# start_app_tunnel [edge args...]: edge 'main', the Node origin, and `wtmesh http` exposing it as
# app.localhost; sets EP, CA, OP, BASE and T, and checks that the tunnel answers 200 (also the set-up
# of http_tunnel_kill.sh).
start_app_tunnel() {
  start_edge main "$@"
  EP=${EDGE_PORT[main]}
  CA=${EDGE_STATE[main]}/ca.pem
  start_origin main
  OP=${ORIGIN_PORT[main]}
  start_http app main app "$OP"
  BASE=https://app.localhost:$EP
  T=$PEER_TMP
  local code
  code=$(curl -sS -m 10 --cacert "$CA" -o /dev/null -w '%{http_code}' "$BASE/hello" 2>"$T/curl.err")
  check "the tunnel answers before the test: 200 (got $code)" [ "$code" = 200 ]
}
declare -gA PROBER_PID=() SAMPLER_PID=() ATTACK_PID=()

# ms_now: wall clock in ms without a fork (for tight loops).
ms_now() { echo $((${EPOCHREALTIME/./} / 1000)); }

# edge_rss_kib NAME: the edge's resident set size (VmRSS, KiB); empty once it is gone.
edge_rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/${EDGE_PID[$1]}/status" 2>/dev/null; }

# edge_metric NAME SERIES: one series' value from the edge's /metrics (the edge needs --admin-listen
# 127.0.0.1:0), e.g. edge_metric main 'wtmesh_public_connections_shed_total{reason="h2_flood"}'; 0 when
# the series is absent, empty when the admin listener does not answer.
edge_metric() {
  local ap
  ap=$(grep -m1 -oE 'admin: http://127\.0\.0\.1:[0-9]+' "${EDGE_DIR[$1]}/stdout" | grep -oE '[0-9]+$')
  [ -n "$ap" ] || return 0
  curl -s -m 5 "http://127.0.0.1:$ap/metrics" | awk -v s="$2" 'index($0, s " ") == 1 {print $2; f = 1} END {if (!f) print 0}'
}

# edge_log_lines NAME: lines in the edge's stderr so far.
edge_log_lines() { wc -l <"${EDGE_DIR[$1]}/stderr"; }

# start_prober LABEL URL CA [MAX_S]: a legitimate client in the background: from 127.0.0.1, curl URL
# (certificate verified against CA, -m 3) every ~0.25 s until stop_prober LABEL (or MAX_S, default
# 110). One line per probe in $PEER_TMP/probe-LABEL.txt: "START_MS HTTP_CODE TIME_TOTAL_S".
start_prober() {
  local label=$1 url=$2 ca=$3 max_s=${4:-110}
  local out=$PEER_TMP/probe-$label.txt stop=$PEER_TMP/probe-$label.stop
  rm -f "$stop"
  : >"$out"
  (
    end=$(($(ms_now) + max_s * 1000))
    while [ ! -e "$stop" ] && [ "$(ms_now)" -lt "$end" ]; do
      t=$(ms_now)
      r=$(curl -s -o /dev/null -m 3 --cacert "$ca" -w '%{http_code} %{time_total}' "$url" 2>/dev/null)
      printf '%s %s\n' "$t" "${r:-000 9}" >>"$out"
      sleep 0.25
    done
  ) </dev/null &
  PROBER_PID[$label]=$!
  track "${PROBER_PID[$label]}"
}

# stop_prober LABEL: ends the probe loop after its current probe (at most ~3 s).
stop_prober() {
  touch "$PEER_TMP/probe-$1.stop"
  stop_pid "${PROBER_PID[$1]}" 5
}

# prober_check LABEL LIMIT_S WHAT: one check: every probe answered 200 in under LIMIT_S seconds.
# Prints the figures (probes, failures, max latency).
prober_check() {
  local label=$1 limit=$2 what=$3 f=$PEER_TMP/probe-$1.txt n bad slow max codes
  n=$(wc -l <"$f")
  bad=$(awk '$2 != 200' "$f" | wc -l)
  slow=$(awk -v l="$limit" '$3 + 0 >= l + 0' "$f" | wc -l)
  max=$(awk 'BEGIN {m = 0} $3 + 0 > m {m = $3 + 0} END {printf "%.3f", m}' "$f")
  codes=$(awk '{print $2}' "$f" | sort | uniq -c | awk '{printf "%s%sx%s", sep, $1, $2; sep = " "}')
  log "$what: prober: $n probes, statuses: $codes, max ${max} s"
  check "$what: the legitimate client (127.0.0.1) got 200 in < ${limit} s on every probe ($n probes, $bad not 200 [$codes], $slow slow, max ${max} s)" \
    [ $((n >= 4 && bad == 0 && slow == 0)) = 1 ]
}

# start_sampler LABEL EDGE [GUARD_PID GUARD_KIB]: samples the edge's VmRSS every 0.5 s into
# $PEER_TMP/rss-LABEL.txt ("MS KIB") until stop_sampler LABEL (or 150 s). With GUARD_PID, sends it
# SIGTERM once the RSS exceeds GUARD_KIB (a runaway edge: the test has failed, no need to eat the box).
start_sampler() {
  local label=$1 edge=$2 guard_pid=${3:-} guard_kib=${4:-0}
  local out=$PEER_TMP/rss-$label.txt stop=$PEER_TMP/rss-$label.stop pid=${EDGE_PID[$2]}
  rm -f "$stop"
  : >"$out"
  (
    end=$(($(ms_now) + 150000))
    guarded=0
    while [ ! -e "$stop" ] && [ "$(ms_now)" -lt "$end" ]; do
      kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
      [ -n "$kib" ] || break
      printf '%s %s\n' "$(ms_now)" "$kib" >>"$out"
      if [ -n "$guard_pid" ] && [ "$guarded" = 0 ] && [ "$kib" -gt "$guard_kib" ]; then
        printf '[%s] edge %s RSS %s KiB over the guard %s KiB: stopping the attack early\n' \
          "$PEER_NAME" "$edge" "$kib" "$guard_kib" >&2
        kill -TERM "$guard_pid" 2>/dev/null
        guarded=1
      fi
      sleep 0.5
    done
  ) </dev/null &
  SAMPLER_PID[$label]=$!
  track "${SAMPLER_PID[$label]}"
}

stop_sampler() {
  touch "$PEER_TMP/rss-$1.stop"
  stop_pid "${SAMPLER_PID[$1]}" 3
}

# sampler_max_kib LABEL: the largest RSS sample (KiB), 0 when none.
sampler_max_kib() { awk 'BEGIN {m = 0} $2 + 0 > m {m = $2 + 0} END {print m}' "$PEER_TMP/rss-$1.txt"; }

# attack_start LABEL MODE [edge_attack.mjs args...]: runs tests/peers/edge_attack.mjs in the
# background with the open-files soft limit raised to the hard limit (for the attacker only), under a
# watchdog (ATTACK_MAX_S, default 100 s: SIGTERM, on which it still prints its summary). Its JSON
# summary goes to $PEER_TMP/attack-LABEL.json, its progress to $PEER_TMP/attack-LABEL.log.
# Sets ATTACK_PID[LABEL].
attack_start() {
  local label=$1
  shift
  (
    ulimit -Sn "$(ulimit -Hn)" 2>/dev/null
    exec timeout -k 5 "${ATTACK_MAX_S:-100}" node "$PEER_DIR/edge_attack.mjs" "$@"
  ) >"$PEER_TMP/attack-$label.json" 2>"$PEER_TMP/attack-$label.log" </dev/null &
  ATTACK_PID[$label]=$!
  track "${ATTACK_PID[$label]}"
}

# attack_wait LABEL: waits for it to end by itself; dies when it printed no summary.
attack_wait() {
  wait "${ATTACK_PID[$1]}" 2>/dev/null
  [ -s "$PEER_TMP/attack-$1.json" ] || die "edge_attack.mjs ($1) printed no summary: $(tail -5 "$PEER_TMP/attack-$1.log")"
  log "attack $1: $(tail -1 "$PEER_TMP/attack-$1.json" | cut -c1-1500)"
}

# attack_run LABEL MODE [args...]: attack_start + attack_wait.
attack_run() {
  attack_start "$@"
  attack_wait "$1"
}

# attack_json LABEL JS_EXPR: prints JS_EXPR evaluated with `s` = the attack's summary object
# (objects as JSON), e.g. attack_json slow 's.closedWithinCut'.
attack_json() {
  node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n");
    const s = JSON.parse(lines[lines.length - 1]);
    const v = eval(process.argv[2]);
    console.log(typeof v === "object" && v !== null ? JSON.stringify(v) : String(v));
  ' "$PEER_TMP/attack-$1.json" "$2"
}

# --- wt_echo.mjs results (chromium_webtransport.sh, wt_relay.sh) -----------------------------------

# wt_steps RESULT_JSON: sets STEPS to one "check.step<TAB>ok<TAB>detail" line per step of every check in
# the harness's JSON result (plus "harness<TAB>false<TAB>error" when the harness failed), and FAILs
# the harness error if there is one.
wt_steps() {
  # shellcheck disable=SC2016  # JavaScript template literals, not shell
  STEPS=$(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    if (r.harness_error) console.log(`harness\tfalse\t${r.harness_error}`);
    for (const [check, res] of Object.entries(r.checks || {}))
      for (const [step, v] of Object.entries(res))
        if (v && typeof v === "object")
          console.log(`${check}.${step}\t${v.ok}\t${JSON.stringify(v)}`);
  ' "$1") || die "cannot parse the browser result: $(head -c 2000 "$1")"
  if grep -q '^harness' <<<"$STEPS"; then fail "browser harness: $(grep '^harness' <<<"$STEPS" | cut -f3)"; fi
  return 0
}

# step_line KEY: the STEPS line of step KEY ("" when it did not run).
step_line() { grep -P "^\Q$1\E\t" <<<"$STEPS" | head -1; }

# expect_step KEY DESCRIPTION: PASS when the step exists and is ok.
expect_step() {
  local key=$1 what=$2 line
  line=$(step_line "$key")
  if [ -z "$line" ]; then
    fail "$what (step $key did not run)"
  elif [ "$(cut -f2 <<<"$line")" = true ]; then
    pass "$what ($(cut -f3 <<<"$line"))"
  else
    fail "$what: $(cut -f3 <<<"$line")"
  fi
}
