#!/usr/bin/env bash
# Visitor tokens, the browser check and the operator's bounds (docs/protocol.md §3.4, issue 14 item 3),
# with clients we did not write:
#   - `wtmesh token --visitor-key owner.key` makes the owner's key and a visitor token;
#     `wtmesh http --require-token owner.key`: curl over HTTP/1.1 and HTTP/2 gets 401 with
#     `WWW-Authenticate: Bearer` without one, 200 with `Authorization: Bearer` or `?wtmesh_token=`,
#     and the service sees neither (no Authorization, the parameter gone, the rest of the query kept);
#     a token for another host, an agent token (wrong audience) and a foreign key's token get 401;
#     gtlsclient over HTTP/3 401 without, 200 with the query parameter; Node's `ws` WebSocket 401
#     without, open + echo with a Bearer token;
#   - `--challenge`: curl asking for HTML gets the check page (200, no-store), an API call 403 with a
#     clear body, a visitor token passes straight through; headless Chromium passes the check (a
#     proof of work, then a 303 that sets `__Host-wtmesh_pass`, HttpOnly, Secure, SameSite=Lax), the
#     site loads, the page's fetch works, and a WebSocket from the page opens and echoes, the service
#     not seeing the edge's cookie; Node's `ws` without the cookie gets 403;
#   - wrong visitor tokens from one address: 401 until its bucket is empty, then 429 (a right token
#     too), counted in wtmesh_visitor_refusals_total{reason="rate_limited"}, logged when it empties;
#   - `wtmesh edge --visitor-auth-min credentials`: a --challenge tunnel is refused with the reason, a
#     --require-token one registers.
# Usage: visitor_challenge.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"
T=$PEER_TMP
command -v gtlsclient >/dev/null || die "gtlsclient not found (Debian package ngtcp2-client; run scripts/setup.sh)"
need_chromium

admin_port=$(free_port)
start_edge main --admin-listen "127.0.0.1:$admin_port"
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
start_origin app
start_ws_echo

curl_status() {
  local url=$1
  shift
  curl -s -o "$T/body" -D "$T/head" -w '%{http_code}' --max-time 10 --cacert "$CA" \
    --resolve "tok.localhost:$EP:127.0.0.1" --resolve "site.localhost:$EP:127.0.0.1" \
    --resolve "wsapp.localhost:$EP:127.0.0.1" "$@" "$url"
}
h3_status() {
  timeout -k 5 30 gtlsclient --exit-on-all-streams-close --no-quic-dump --no-http-dump --handshake-timeout=10s \
    --timeout=20s --sni="$1" 127.0.0.1 "$EP" "https://$1:$EP$2" </dev/null 2>&1 |
    grep -oE '^http: stream 0x0 \[:status: [0-9]+\]' | grep -oE '[0-9]+' | tail -1
}

# --- visitor tokens ----------------------------------------------------------------------------------
VTOKEN=$("$WTMESH" token --visitor-key "$T/owner.key" --name tok --ttl 1h 2>"$T/token.err") || die "wtmesh token --visitor-key failed"
check "wtmesh token --visitor-key made the owner's key, mode 0600" [ "$(stat -c %a "$T/owner.key")" = 600 ]
check "and said how to use it" grep -q -- "--require-token $T/owner.key" "$T/token.err"
OTHER=$("$WTMESH" token --visitor-key "$T/owner.key" --name site --ttl 1h 2>/dev/null)
FOREIGN=$("$WTMESH" token --visitor-key "$T/stranger.key" --name tok --ttl 1h 2>/dev/null)
AGENT_TOKEN=$(make_token main tok)
HTTP_EXTRA_ARGS=(--require-token "$T/owner.key")
start_http tok main tok "${ORIGIN_PORT[app]}"
HTTP_EXTRA_ARGS=()
check "the edge logged the tunnel with 1 token key" edge_log_has main "registered tok.localhost (id 1)"
check "no private key reaches the edge's log" bash -c "! grep -q 'PRIVATE' '${EDGE_DIR[main]}/stderr' '${EDGE_DIR[main]}/stdout'"
URL="https://tok.localhost:$EP"
for v in --http1.1 --http2; do
  code=$(curl_status "$URL/hello" "$v")
  check "$v without a token: 401 (got $code)" [ "$code" = 401 ]
  check "$v: WWW-Authenticate: Bearer realm=\"tok.localhost\"" grep -qi '^www-authenticate: Bearer realm="tok.localhost"' "$T/head"
  check "$v: the page says why" grep -q 'needs a visitor token' "$T/body"
  code=$(curl_status "$URL/headers" "$v" -H "Authorization: Bearer $VTOKEN")
  check "$v with Authorization: Bearer: 200 (got $code)" [ "$code" = 200 ]
  check "$v: the service does not see the Authorization field" bash -c "! grep -qi '\"authorization\"' '$T/body'"
  code=$(curl_status "$URL/headers?a=1&wtmesh_token=$VTOKEN&b=2" "$v")
  check "$v with ?wtmesh_token=: 200 (got $code)" [ "$code" = 200 ]
  check "$v: the service sees the query without the token" grep -q '"url":"/headers?a=1&b=2"' "$T/body"
  for bad in "$OTHER" "$FOREIGN" "$AGENT_TOKEN"; do
    code=$(curl_status "$URL/hello" "$v" -H "Authorization: Bearer $bad")
    check "$v with a token for another host, key or audience: 401 (got $code)" [ "$code" = 401 ]
  done
done
code=$(h3_status tok.localhost /hello)
check "HTTP/3 (gtlsclient) without a token: 401 (got $code)" [ "$code" = 401 ]
code=$(h3_status tok.localhost "/hello?wtmesh_token=$VTOKEN")
check "HTTP/3 (gtlsclient) with ?wtmesh_token=: 200 (got $code)" [ "$code" = 200 ]
check "the token is redacted in the edge's log" bash -c "! grep -qF '$VTOKEN' '${EDGE_DIR[main]}/stderr' '${EDGE_DIR[main]}/stdout'"

HTTP_EXTRA_ARGS=(--require-token "$T/owner.key")
WSTOKEN=$("$WTMESH" token --visitor-key "$T/owner.key" --name wstok --ttl 1h 2>/dev/null)
start_http wstok main wstok "$WS_ECHO_PORT"
HTTP_EXTRA_ARGS=()
ws() { (cd "$PEER_DIR" && timeout -k 5 30 node ws_status.mjs "$1" "$CA" "${@:2}") 2>&1; }
out=$(ws "wss://wstok.localhost:$EP/chat")
check "WebSocket without a token: $out" grep -q '^HTTP 401 Bearer' <<<"$out"
out=$(ws "wss://wstok.localhost:$EP/chat" "Bearer $WSTOKEN")
check "WebSocket with a Bearer token: open and echo ($(echo "$out" | tr '\n' ' '))" grep -qx 'echo ok' <<<"$out"

# --- the browser check -------------------------------------------------------------------------------
HTTP_EXTRA_ARGS=(--challenge --require-token "$T/owner.key")
start_http site main site "${ORIGIN_PORT[app]}"
HTTP_EXTRA_ARGS=(--challenge)
start_http wsapp main wsapp "$WS_ECHO_PORT"
HTTP_EXTRA_ARGS=()
SURL="https://site.localhost:$EP"
for v in --http1.1 --http2; do
  code=$(curl_status "$SURL/" "$v" -H 'Accept: text/html,*/*')
  check "$v asking for HTML without the cookie: the check page, 200 (got $code)" [ "$code" = 200 ]
  check "$v: it is the check page" grep -q 'Checking your browser' "$T/body"
  check "$v: not cached" grep -qi '^cache-control: no-store' "$T/head"
  code=$(curl_status "$SURL/api" "$v")
  check "$v an API call without the cookie: 403 (got $code)" [ "$code" = 403 ]
  check "$v: the 403 says why" grep -q 'checks browsers' "$T/body"
  code=$(curl_status "$SURL/hello" "$v" -H 'Accept: text/html' -H "Authorization: Bearer $OTHER")
  check "$v with a visitor token: straight through, 200 (got $code)" [ "$code" = 200 ]
  code=$(curl_status "$SURL/hello" "$v" -H 'Accept: text/html' -H 'Cookie: __Host-wtmesh_pass=v1.9999999999.forged')
  check "$v with a forged cookie: the check page again (got $code)" grep -q 'Checking your browser' "$T/body"
done
out=$(ws "wss://wsapp.localhost:$EP/chat")
check "WebSocket (Node ws) without the cookie: 403 ($out)" grep -q '^HTTP 403' <<<"$out"

nss_home "$T/home" "$CA"
run_page() {
  (cd "$BROWSER_DIR" && HOME=$T/home timeout -k 5 90 node challenge_page.mjs --timeout 80000 "$@") 2>"$T/chromium.log"
}
log "Chromium opens $SURL/ through the check"
run_page --url "$SURL/" --fetch '/headers' >"$T/site.json"
log "result: $(cat "$T/site.json")"
f() { json_field "$T/site.json" "$1"; }
[ -z "$(f harness_error)$(f navError)" ] || fail "browser: $(f harness_error)$(f navError)"
docs=$(node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));
  console.log((j.documents||[]).map(d=>`${d.path} ${d.status}`).join(", "))' "$T/site.json")
check "Chromium $(f browser): the check page, the answer (303), the site ($docs)" \
  grep -qE '^/ 200, /\.well-known/wtmesh-challenge 303, / 200$' <<<"$docs"
check "it passes the check and the site loads in $(f ms) ms: heading '$(f final.heading)', status $(f final.status)" \
  [ "$(f final.heading)" = "served through the wtmesh tunnel" ]
check "back on the page asked for ($(f final.url))" [ "$(f final.url)" = "$SURL/" ]
check "the pass cookie is HttpOnly, Secure, SameSite=Lax ($(f cookie))" \
  bash -c "[ '$(f cookie.httpOnly)' = true ] && [ '$(f cookie.secure)' = true ] && [ '$(f cookie.sameSite)' = Lax ]"
check "the page's script cannot read it" [ "$(f scriptSeesCookie)" = false ]
check "the page's fetch('/headers') with the cookie: 200 (got $(f fetch.status))" [ "$(f fetch.status)" = 200 ]
f fetch.text >"$T/fetch.txt"
check "the origin saw that request's fields" grep -q '"headers"' "$T/fetch.txt"
check "and no edge cookie among them" bash -c "! grep -q 'wtmesh_pass' '$T/fetch.txt'"

log "Chromium opens https://wsapp.localhost:$EP/ through the check, then a WebSocket from the page"
run_page --url "https://wsapp.localhost:$EP/" --ws "wss://wsapp.localhost:$EP/chat" >"$T/ws.json"
log "result: $(cat "$T/ws.json")"
g() { json_field "$T/ws.json" "$1"; }
check "the check passed ($(g ms) ms; the service answered $(g final.status))" [ "$(g final.title)" != "Checking your browser" ]
check "a WebSocket from the page opens and echoes ($(g ws))" [ "$(g ws.text)" = "hello through the check" ]
check "the WebSocket service did not see the edge's cookie" \
  bash -c "grep 'connection /chat' '$T/ws-server.log' | tail -1 | grep -q 'cookie=-'"

# --- wrong tokens from one address: 429 -----------------------------------------------------------
# 20 at once, one back every 2 s: on a slow machine a token may come back (and be spent) mid-run.
# From an address of its own (the limiter keys IPv4 by address): the wrong tokens tried above from
# 127.0.0.1 may not have come back yet, and then fewer than 20 would be 401s.
SRC=127.0.0.77
codes=""
for i in $(seq 1 40); do
  codes+=" $(curl_status "$URL/hello" --interface "$SRC" --http1.1 -H "Authorization: Bearer $FOREIGN")"
done
check "40 wrong tokens from $SRC: 401s, then 429 ($codes)" grep -qE '^( 401){20,}( 40[1-9]| 429)* 429( 40[1-9]| 429)*$' <<<"$codes"
code=$(curl_status "$URL/hello" --interface "$SRC" --http1.1 -H "Authorization: Bearer $VTOKEN")
check "then a right token from that address: 429 too (got $code)" [ "$code" = 429 ]
check "with Retry-After" grep -qi '^retry-after:' "$T/head"
# Logged when the bucket empties, not for each 429 (a token coming back meanwhile may empty it again).
n_out=$(cat "${EDGE_DIR[main]}/stderr" "${EDGE_DIR[main]}/stdout" | grep -c 'ran out of attempts')
check "the edge logged the address running out ($n_out times), not each 429" bash -c "[ $n_out -ge 1 ] && [ $n_out -le 5 ]"
metrics=$(curl -s --max-time 5 "http://127.0.0.1:$admin_port/metrics")
check "wtmesh_visitor_refusals_total counts them: $(grep -o 'wtmesh_visitor_refusals_total{reason="rate_limited"} [0-9]*' <<<"$metrics")" \
  grep -qE 'wtmesh_visitor_refusals_total\{reason="rate_limited"\} [1-9]' <<<"$metrics"

# --- operator bounds -----------------------------------------------------------------------------------
start_edge strict --visitor-auth-min credentials
HTTP_EXTRA_ARGS=(--challenge)
launch_http weak strict weak "${ORIGIN_PORT[app]}" "$(make_token strict weak)"
HTTP_EXTRA_ARGS=()
check "a --challenge tunnel is refused by a --visitor-auth-min credentials edge" \
  wait_for 20 grep -q 'requires credentials on every http tunnel' "${AGENT_ERR[weak]}"
HTTP_EXTRA_ARGS=(--require-token "$T/owner.key")
start_http strong strict strong "${ORIGIN_PORT[app]}"
HTTP_EXTRA_ARGS=()
check "one with --require-token registers there: ${AGENT_URL[strong]}" [ -n "${AGENT_URL[strong]}" ]

peer_finish
