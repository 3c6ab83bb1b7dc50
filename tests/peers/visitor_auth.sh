#!/usr/bin/env bash
# Visitor auth at the edge (docs/protocol.md §3.4, issue 14 item 3), with clients we did not write:
#   - `wtmesh http --basic-auth alice:wonderland --basic-auth bob:builder`: curl over HTTP/1.1 and
#     HTTP/2 without credentials gets 401 with `WWW-Authenticate: Basic realm="app.localhost"`, with a
#     wrong password 401, an unknown user 401; with either user 200, and the service never sees the
#     Authorization field; gtlsclient over HTTP/3 gets 401 (it cannot send credentials);
#   - WebSocket (Node's `ws`) through the same tunnel: 401 without credentials, 101 and an echo with
#     them, and the service sees no Authorization field;
#   - `--allow-cidr 10.0.0.0/8` (the test's clients are 127.0.0.1): 403 on HTTP/1.1, HTTP/2 and HTTP/3;
#     `--allow-cidr 127.0.0.0/8 --deny-cidr 127.0.0.1/32`: 403 (deny wins); `--allow-cidr 127.0.0.0/8`: 200;
#   - the edge holds no password: its log shows the tunnel registered with 2 basic users, never a
#     password; the agent's command line warning says passwords there are visible;
#   - `wtmesh edge --require-visitor-auth`: a tunnel without visitor auth is refused with a reason, one
#     with --basic-auth registers;
#   - bad input on the agent: a malformed range or credential stops `wtmesh http` with a clear error.
# Usage: visitor_auth.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"
T=$PEER_TMP
command -v gtlsclient >/dev/null || die "gtlsclient not found (Debian package ngtcp2-client; run scripts/setup.sh)"

start_edge main
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
start_origin app
start_ws_echo

# curl_status URL [curl args...]: the status code; the response head in $T/head, the body in $T/body.
curl_status() {
  local url=$1
  shift
  curl -s -o "$T/body" -D "$T/head" -w '%{http_code}' --max-time 10 --cacert "$CA" \
    --resolve "app.localhost:$EP:127.0.0.1" --resolve "ranges.localhost:$EP:127.0.0.1" \
    --resolve "deny.localhost:$EP:127.0.0.1" --resolve "open.localhost:$EP:127.0.0.1" \
    --resolve "wsapp.localhost:$EP:127.0.0.1" "$@" "$url"
}
# h3_status HOST PATH: gtlsclient's :status for https://HOST:EP/PATH over HTTP/3.
h3_status() {
  timeout -k 5 30 gtlsclient --exit-on-all-streams-close --no-quic-dump --no-http-dump --handshake-timeout=10s \
    --timeout=20s --sni="$1" 127.0.0.1 "$EP" "https://$1:$EP$2" </dev/null 2>&1 |
    grep -oE '^http: stream 0x0 \[:status: [0-9]+\]' | grep -oE '[0-9]+' | tail -1
}

# --- basic auth ------------------------------------------------------------------------------------
HTTP_EXTRA_ARGS=(--basic-auth alice:wonderland --basic-auth bob:builder)
start_http app main app "${ORIGIN_PORT[app]}"
HTTP_EXTRA_ARGS=()
URL="https://app.localhost:$EP"
for v in --http1.1 --http2; do
  code=$(curl_status "$URL/hello" "$v")
  check "$v without credentials: 401 (got $code)" [ "$code" = 401 ]
  check "$v: WWW-Authenticate: Basic realm=\"app.localhost\"" \
    grep -qi '^www-authenticate: Basic realm="app.localhost", charset="UTF-8"' "$T/head"
  check "$v: the 401 page says why" grep -q 'needs a user name and password' "$T/body"
  code=$(curl_status "$URL/hello" "$v" -u alice:wrong)
  check "$v with a wrong password: 401 (got $code)" [ "$code" = 401 ]
  code=$(curl_status "$URL/hello" "$v" -u mallory:wonderland)
  check "$v with an unknown user: 401 (got $code)" [ "$code" = 401 ]
  code=$(curl_status "$URL/hello" "$v" -u alice:wonderland)
  check "$v as alice: 200 (got $code)" [ "$code" = 200 ]
  check "$v: the origin's answer" grep -qxF 'hello from the origin' "$T/body"
  code=$(curl_status "$URL/headers" "$v" -u bob:builder -H 'X-Other: kept')
  check "$v as bob: 200 (got $code)" [ "$code" = 200 ]
  check "$v: the service does not see the Authorization field" bash -c "! grep -qi '\"authorization\"' '$T/body'"
  check "$v: other fields pass" grep -q '"X-Other","kept"\|"x-other","kept"' "$T/body"
done
code=$(h3_status app.localhost /hello)
check "HTTP/3 (gtlsclient) without credentials: 401 (got $code)" [ "$code" = 401 ]
check "the edge logged the tunnel with 2 basic users" \
  edge_log_has main "registered app.localhost (id 1) -> https://app.localhost:$EP/ (visitor auth: 2 basic user(s)"
check "no password in the edge's log" bash -c "! grep -qE 'wonderland|builder' '${EDGE_DIR[main]}/stderr' '${EDGE_DIR[main]}/stdout'"
check "no password in the agent's log" bash -c "! grep -qE 'wonderland|builder' '${AGENT_OUT[app]}'"
check "the agent warns that command-line passwords are visible" grep -q 'visible to other local users' "${AGENT_ERR[app]}"

# --- WebSocket through a tunnel with basic auth ------------------------------------------------------
HTTP_EXTRA_ARGS=(--basic-auth alice:wonderland)
start_http wsapp main wsapp "$WS_ECHO_PORT"
HTTP_EXTRA_ARGS=()
ws() { (cd "$PEER_DIR" && timeout -k 5 30 node ws_status.mjs "wss://wsapp.localhost:$EP/chat" "$CA" "$@") 2>&1; }
out=$(ws)
check "WebSocket without credentials: $out" grep -q '^HTTP 401 Basic realm="wsapp.localhost"' <<<"$out"
out=$(ws "Basic $(printf 'alice:wonderland' | base64)")
check "WebSocket with credentials: open and echo ($(echo "$out" | tr '\n' ' '))" grep -qx 'echo ok' <<<"$out"
check "the WebSocket service saw no Authorization field" grep -q 'connection /chat .* auth=no' "$T/ws-server.log"

# --- client address ranges ---------------------------------------------------------------------------
HTTP_EXTRA_ARGS=(--allow-cidr 10.0.0.0/8)
start_http ranges main ranges "${ORIGIN_PORT[app]}"
HTTP_EXTRA_ARGS=(--allow-cidr 127.0.0.0/8 --deny-cidr 127.0.0.1/32)
start_http deny main deny "${ORIGIN_PORT[app]}"
HTTP_EXTRA_ARGS=(--allow-cidr 127.0.0.0/8 --allow-cidr ::1)
start_http open main open "${ORIGIN_PORT[app]}"
HTTP_EXTRA_ARGS=()
for v in --http1.1 --http2; do
  code=$(curl_status "https://ranges.localhost:$EP/hello" "$v")
  check "$v from 127.0.0.1 to a tunnel allowing 10.0.0.0/8: 403 (got $code)" [ "$code" = 403 ]
  check "$v: the 403 page says why" grep -q 'not allowed to reach this tunnel' "$T/body"
  code=$(curl_status "https://deny.localhost:$EP/hello" "$v")
  check "$v from a denied address inside the allowed range: 403 (got $code)" [ "$code" = 403 ]
  code=$(curl_status "https://open.localhost:$EP/hello" "$v")
  check "$v from an allowed range: 200 (got $code)" [ "$code" = 200 ]
done
code=$(h3_status ranges.localhost /hello)
check "HTTP/3 from 127.0.0.1 to a tunnel allowing 10.0.0.0/8: 403 (got $code)" [ "$code" = 403 ]
code=$(h3_status open.localhost /hello)
check "HTTP/3 from an allowed range: 200 (got $code)" [ "$code" = 200 ]

# --- bad input on the agent --------------------------------------------------------------------------
TOKEN=$(make_token main bad) || die "wtmesh token failed"
for bad in "--allow-cidr 10.1.0.0/8" "--deny-cidr nonsense" "--basic-auth nocolon"; do
  # shellcheck disable=SC2086
  out=$(timeout 10 "$WTMESH" http "${ORIGIN_PORT[app]}" --edge "https://127.0.0.1:$EP" --token "$TOKEN" --name bad \
    --ca "$CA" $bad 2>&1 </dev/null)
  rc=$?
  check "wtmesh http $bad stops with an error (exit $rc): $(echo "$out" | tail -1)" \
    bash -c "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
done

# --- an edge that requires visitor auth ---------------------------------------------------------------
start_edge strict --require-visitor-auth
launch_http plain strict plain "${ORIGIN_PORT[app]}" "$(make_token strict plain)"
check "a tunnel without visitor auth is refused by a --require-visitor-auth edge" \
  wait_for 20 grep -q 'requires visitor auth on every http tunnel' "${AGENT_ERR[plain]}"
HTTP_EXTRA_ARGS=(--basic-auth alice:wonderland)
start_http guarded strict guarded "${ORIGIN_PORT[app]}"
HTTP_EXTRA_ARGS=()
check "one with --basic-auth registers there: ${AGENT_URL[guarded]}" [ -n "${AGENT_URL[guarded]}" ]

peer_finish
