#!/usr/bin/env bash
# Real peers: public HTTP/3 through `wtmesh edge` + `wtmesh http` in front of the Node origin
# (tests/peers/origin.mjs), with two clients we did not write:
#   - ngtcp2's gtlsclient (nghttp3 inside; SNI app.localhost): GET, a 5 MB download checked byte for
#     byte against the origin's SHA-256, a 2 MB POST whose SHA-256 the origin reports back, an echo
#     of 1 MB, 20 requests multiplexed on one connection, an unknown name's 404; the edge logs " h3";
#   - headless Chromium (playwright-core) trusting the edge's CA in its NSS db (no certificate
#     overrides) loads the page over HTTP/3, verifying the per-name certificate the edge chose by SNI
#     on QUIC (subject app.localhost), and uploads 3 MiB and downloads 4 MB from the page, hashes
#     checked. Chromium is told to use QUIC for the origin (--origin-to-force-quic-on) instead of
#     finding it through Alt-Svc: its QUIC refuses certificates that chain to a locally installed root
#     (ERR_QUIC_CERT_ROOT_NOT_KNOWN) unless the origin is forced, so Alt-Svc can move it only with a
#     publicly trusted certificate (--cert/--key). Chromium resolves app.localhost to ::1 first and
#     QUIC does not fall back to 127.0.0.1 as TCP does, so this edge listens on [::] (both loopbacks);
#   - curl (TCP): every HTTPS response, over HTTP/1.1 and HTTP/2, carries Alt-Svc: h3=":PORT", the
#     local service's own Alt-Svc is not passed on; `--no-http3` turns both off (gtlsclient gets the
#     WebTransport server's 404 for a tunnel name, and no Alt-Svc is sent).
# Usage: http_tunnel_h3.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

command -v gtlsclient >/dev/null || die "gtlsclient not found (Debian package ngtcp2-client; run scripts/setup.sh)"
browser_dir=$(cd "$(dirname "$0")/../browser" && pwd)
[ -d "$browser_dir/node_modules/playwright-core" ] || die "playwright-core missing in $browser_dir (run scripts/setup.sh)"
command -v certutil >/dev/null || die "certutil not found (package libnss3-tools; run scripts/setup.sh)"

# A short HTTP idle timeout: Chromium keeps using an open HTTP/2 connection and takes Alt-Svc for the
# next one, so the edge closes idle TCP connections quickly.
EDGE_LISTEN_ADDR="[::]" start_app_tunnel
sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- Alt-Svc on TCP ---------------------------------------------------------------------------------
for v in --http1.1 --http2; do
  alt=$(curl -sS -m 10 "$v" --cacert "$CA" -D - -o /dev/null "$BASE/hello" | tr -d '\r' | grep -i '^alt-svc:' || true)
  check "curl $v: Alt-Svc announces HTTP/3 on the UDP port (got '${alt}')" \
    grep -qixF "alt-svc: h3=\":$EP\"; ma=86400" <<<"$alt"
done
alt=$(curl -sS -m 10 --cacert "$CA" -D - -o /dev/null "$BASE/nothing-here" | tr -d '\r' | grep -ci '^alt-svc:' || true)
check "the origin's 404 carries Alt-Svc too" [ "$alt" = 1 ]

# --- gtlsclient -------------------------------------------------------------------------------------
# gtl OUT URL... [-- extra gtlsclient args]: one QUIC connection fetching the URLs (SNI app.localhost).
gtl() {
  local out=$1
  shift
  timeout -k 5 60 gtlsclient --exit-on-all-streams-close --no-quic-dump --no-http-dump --handshake-timeout=10s \
    --timeout=30s --sni=app.localhost "$@" >"$out" 2>&1 </dev/null
}
status_of() { grep -oE "^http: stream 0x$(printf '%x' "$2") \[:status: [0-9]+\]" "$1" | grep -oE '[0-9]+\]$' | tr -d ']'; }

mkdir -p "$T/dl"
gtl "$T/get.out" --download="$T/dl" 127.0.0.1 "$EP" "$BASE/hello"
check "gtlsclient GET /hello exits 0" [ $? -eq 0 ]
check "ALPN h3 negotiated with the edge" grep -q '^Negotiated ALPN is h3$' "$T/get.out"
check "GET /hello over HTTP/3: :status 200 (got $(status_of "$T/get.out" 0))" [ "$(status_of "$T/get.out" 0)" = 200 ]
check "GET /hello body is the origin's" grep -qxF 'hello from the origin' "$T/dl/hello"
check "the edge logs the request as h3" wait_for 3 edge_log_has main " GET app.localhost/hello 200 22B"

gtl "$T/down.out" --download="$T/dl" 127.0.0.1 "$EP" "$BASE/bytes?n=5000000"
check "5 MB download over HTTP/3: :status 200" [ "$(status_of "$T/down.out" 0)" = 200 ]
dl=$(find "$T/dl" -name 'bytes*' | head -1)
origin_sha=$(curl -sS -m 10 --cacert "$CA" "$BASE/stats" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).lastSent?.sha256??""))')
check "5 MB download: $(stat -c %s "$dl" 2>/dev/null) bytes, SHA-256 equal to what the origin sent" \
  [ -n "$dl" ] && [ "$(sha "$dl")" = "$origin_sha" ]

head -c 2000000 /dev/urandom >"$T/up.bin"
gtl "$T/up.out" --download="$T/dl" -m POST -d "$T/up.bin" 127.0.0.1 "$EP" "$BASE/upload"
up_json=$(cat "$T/dl/upload" 2>/dev/null)
check "2 MB POST over HTTP/3: :status 200, the origin got every byte ($up_json)" \
  grep -qF "{\"bytes\":2000000,\"sha256\":\"$(sha "$T/up.bin")\"}" <<<"$up_json"

head -c 1048576 /dev/urandom >"$T/echo.bin"
gtl "$T/echo.out" --download="$T/dl" -m POST -d "$T/echo.bin" 127.0.0.1 "$EP" "$BASE/echo"
check "1 MiB echoed over HTTP/3 byte for byte" cmp -s "$T/echo.bin" "$T/dl/echo"

urls=()
for i in $(seq 1 20); do urls+=("$BASE/hello?i=$i"); done
gtl "$T/many.out" 127.0.0.1 "$EP" "${urls[@]}"
n200=$(grep -cE '^http: stream 0x[0-9a-f]+ \[:status: 200\]' "$T/many.out" || true)
check "20 requests on one HTTP/3 connection: 20 x 200 (got $n200)" [ "$n200" = 20 ]

gtl "$T/unknown.out" --sni=nobody.localhost 127.0.0.1 "$EP" "https://nobody.localhost:$EP/"
check "a name with no tunnel: 404 over HTTP/3" [ "$(status_of "$T/unknown.out" 0)" = 404 ]

# --- Chromium: Alt-Svc, the per-name certificate on QUIC, uploads and downloads -------------------
mkdir -p "$T/home/.pki/nssdb"
certutil -d "sql:$T/home/.pki/nssdb" -N --empty-password || die "certutil -N failed"
certutil -d "sql:$T/home/.pki/nssdb" -A -t 'C,,' -n wtmesh-local-ca -i "$CA" || die "certutil could not add $CA"
# page OUT [harness args...]
page() {
  local out=$1
  shift
  (cd "$browser_dir" && HOME=$T/home timeout -k 5 100 node h3_page.mjs --url "$BASE/" --timeout 90000 "$@") \
    >"$out" 2>"$out.log"
}
field() {
  node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));
    const v=process.argv[2].split(".").reduce((o,k)=>o==null?o:o[k],j);
    console.log(v==null?"":typeof v==="object"?JSON.stringify(v):String(v))' "$1" "$2"
}
log "Chromium loads $BASE/ over HTTP/3"
page "$T/alt.json" --loads 1 --chromium-arg "--origin-to-force-quic-on=app.localhost:$EP"
rc=$?
log "result: $(cat "$T/alt.json")"
check "browser harness exits 0 (status $rc: $(field "$T/alt.json" harness_error))" [ "$rc" = 0 ]
check "Chromium $(field "$T/alt.json" browser): page status 200 over $(field "$T/alt.json" loads.0.protocol)" \
  [ "$(field "$T/alt.json" loads.0.status)" = 200 ]
check "the page came over h3" [ "$(field "$T/alt.json" loads.0.protocol)" = h3 ]
check "over QUIC the certificate is app.localhost's own (subject $(field "$T/alt.json" loads.0.subject))" \
  [ "$(field "$T/alt.json" loads.0.subject)" = app.localhost ]
check "issued by the edge's local CA (got $(field "$T/alt.json" loads.0.issuer))" \
  grep -q '^wtmesh local CA' <<<"$(field "$T/alt.json" loads.0.issuer)"
check "page upload 3 MiB: $(field "$T/alt.json" fetches.upload.protocol), the origin's SHA-256 matches" \
  [ "$(field "$T/alt.json" fetches.upload.json.sha256)" = "$(field "$T/alt.json" fetches.upload.sha256)" ]
check "page upload went over h3" [ "$(field "$T/alt.json" fetches.upload.protocol)" = h3 ]
check "page download 4 MB over $(field "$T/alt.json" fetches.download.protocol): SHA-256 equal to the origin's" \
  [ "$(field "$T/alt.json" fetches.download.sha256)" = "$(field "$T/alt.json" fetches.download.originSha256)" ]
check "page download went over h3" [ "$(field "$T/alt.json" fetches.download.protocol)" = h3 ]
check "the edge logs Chromium's upload as h3" grep -qE 'POST app.localhost/upload\?from=h3 200 .* h3$' "${EDGE_DIR[main]}/stderr"

# --- --no-http3 ---------------------------------------------------------------------------------------
start_edge off --no-http3
OFF=${EDGE_PORT[off]}
start_http app2 off app "$OP"
alt=$(curl -sS -m 10 --cacert "${EDGE_STATE[off]}/ca.pem" -D - -o /dev/null "https://app.localhost:$OFF/hello" |
  tr -d '\r' | grep -ci '^alt-svc:' || true)
check "--no-http3: no Alt-Svc on HTTPS" [ "$alt" = 0 ]
timeout -k 5 30 gtlsclient --exit-on-all-streams-close --no-quic-dump --no-http-dump --sni=app.localhost \
  127.0.0.1 "$OFF" "https://app.localhost:$OFF/hello" >"$T/off.out" 2>&1 </dev/null
check "--no-http3: a tunnel name over HTTP/3 gets the WebTransport server's 404" [ "$(status_of "$T/off.out" 0)" = 404 ]

if [ "$PEER_FAILED" -gt 0 ]; then
  show_log "Chromium harness log" "$T/alt.json.log" 40
  show_log "edge log" "${EDGE_DIR[main]}/stderr" 40
fi
peer_finish
