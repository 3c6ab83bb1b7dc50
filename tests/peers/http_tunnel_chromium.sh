#!/usr/bin/env bash
# Real peer: Debian's headless Chromium (driven by playwright-core, tests/browser/tunnel_page.mjs)
# loads https://app.localhost:PORT/ through `wtmesh edge` + `wtmesh http` in front of the Node origin
# (tests/peers/origin.mjs), with the edge's certificate verified for real: HOME points at a temp dir
# whose NSS db (~/.pki/nssdb, made with certutil from libnss3-tools) trusts the edge's local CA; no
# --ignore-certificate-errors of any kind. Checks:
#   - navigation 200, TLS subject app.localhost issued by the wtmesh local CA, page protocol https:
#   - the page's fetch('/api') through the tunnel: 200, JSON body, X-Forwarded-Proto https at the origin
#   - the page's EventSource('/sse') gets 3 events in order
#   - the agent logs the page's requests, the origin received them
#   - the same page from a browser whose NSS db does not trust the CA fails with
#     ERR_CERT_AUTHORITY_INVALID (so the first run really verified the certificate)
# Usage: http_tunnel_chromium.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

need_chromium

start_edge main
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
start_origin main
start_http app main app "${ORIGIN_PORT[main]}"
URL=https://app.localhost:$EP/
T=$PEER_TMP

# Two homes: one whose NSS db trusts the edge's CA, one with an empty db.
nss_home "$T/home-trusted" "$CA"
nss_home "$T/home-untrusted"

# run_page HOME_NAME OUT [args...]: the harness, bounded.
run_page() {
  local h=$1 out=$2
  shift 2
  (cd "$BROWSER_DIR" && HOME=$T/home-$h timeout -k 5 90 node tunnel_page.mjs --url "$URL" --timeout 80000 "$@") \
    >"$out" 2>"$T/chromium-$h.log"
}
log "Chromium (trusting the edge's CA) loads $URL"
run_page trusted "$T/trusted.json"
rc=$?
[ -s "$T/trusted.json" ] || die "browser harness printed nothing (exit $rc): $(tail -5 "$T/chromium-trusted.log")"
check "browser harness exits 0 (status $rc)" [ "$rc" = 0 ]
log "result: $(cat "$T/trusted.json")"

# field PATH: a value from the trusted run's JSON ("" when absent).
field() { json_field "$T/trusted.json" "$1"; }
err=$(field harness_error)
[ -z "$err" ] || fail "browser harness: $err"
nav=$(field navError)
[ -z "$nav" ] || fail "navigation failed: $nav"
check "Chromium $(field browser): navigation status 200 (got $(field status))" [ "$(field status)" = 200 ]
check "the page's protocol is https: (got $(field page.protocol))" [ "$(field page.protocol)" = "https:" ]
check "TLS certificate subject is app.localhost (got $(field security.subjectName))" [ "$(field security.subjectName)" = app.localhost ]
check "issued by the edge's local CA (got $(field security.issuer))" grep -q '^wtmesh local CA' <<<"$(field security.issuer)"
check "TLS protocol $(field security.protocol), HTTP $(field protocolHttp)" [ -n "$(field security.protocol)" ]
check "the page's HTML came from the origin (heading '$(field heading)')" [ "$(field heading)" = "served through the wtmesh tunnel" ]
check "page fetch('/api'): 200 (got $(field page.apiStatus))" [ "$(field page.apiStatus)" = 200 ]
check "page fetch('/api'): JSON ok (got $(field page.api))" [ "$(field page.api.ok)" = true ]
check "the origin saw X-Forwarded-Proto https for the page's fetch" [ "$(field page.api.forwardedProto)" = https ]
check "the origin saw Host app.localhost:$EP" [ "$(field page.api.host)" = "app.localhost:$EP" ]
sse=$(field page.sse)
[ -z "$(field page.sseError)" ] || fail "EventSource: $(field page.sseError)"
check "EventSource('/sse') through the tunnel: 3 events in order ($sse)" \
  grep -qE '^\["event 0 t=[0-9]+","event 1 t=[0-9]+","event 2 t=[0-9]+"\]$' <<<"$sse"
check "wtmesh http logs the page's requests (/, /api, /sse)" wait_for 3 bash -c \
  "grep -qE ' GET / 200 ' '${AGENT_OUT[app]}' && grep -qE ' GET /api\\?from=page 200 ' '${AGENT_OUT[app]}' && grep -qE ' GET /sse\\?n=3&ms=200 200 ' '${AGENT_OUT[app]}'"
check "the origin received the page's fetch" grep -qxF 'GET /api?from=page' "$PEER_TMP/origin-main.requests"

log "Chromium (empty NSS db) loads $URL, expecting a certificate error"
run_page untrusted "$T/untrusted.json" --expect-cert-error
rc=$?
nav=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).navError||"")' "$T/untrusted.json" 2>/dev/null)
check "without the CA in its NSS db Chromium refuses the certificate (exit $rc: ${nav:-no error})" \
  grep -q 'ERR_CERT_AUTHORITY_INVALID' <<<"$nav"

stop_edge main
check "edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
peer_finish
