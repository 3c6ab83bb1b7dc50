#!/usr/bin/env bash
# Real peer: Debian's headless Chromium (driven by playwright-core) opens WebTransport sessions to
# `wtmesh edge` with serverCertificateHashes and checks:
#   - the edge's certificate fits Chromium's rules (ECDSA P-256, validity <= 14 days, hash = SHA-256 of DER)
#   - /echo: bidi echo (small, 256 KiB), uni echo, datagram echo, close(4242, "bye from chromium"),
#     and the edge logs `session closed code=4242 reason="bye from chromium"`
#   - another path is refused (404), an Origin outside --allow-origin is refused, one inside is accepted
#   - the edge 'open' runs with --quic-retry-above 0: every Chromium connection to it goes through a
#     QUIC Retry first (address validation), and its /metrics counts them (wtmesh_quic_retries_total)
# Usage: chromium_webtransport.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

need_chromium

# The page's origin (http://localhost:PAGE_PORT) must be known before the edges start, for --allow-origin.
page_port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
page_origin="http://localhost:$page_port"

open_admin=$(free_port)
start_edge open --echo --quic-retry-above 0 --admin-listen "127.0.0.1:$open_admin"
start_edge allowed --echo --allow-origin https://example.invalid --allow-origin "$page_origin"
start_edge refused --echo --allow-origin https://example.invalid

# --- The certificate, as Chromium's serverCertificateHashes verifier will judge it.
cert=${EDGE_STATE[open]}/cert.pem
hash=${EDGE_HASH[open]}
check "cert.sha256 is 64 lower-case hex digits" grep -qE '^[0-9a-f]{64}$' <<<"$hash"
der_hash=$(openssl x509 -in "$cert" -outform der 2>/dev/null | sha256sum | cut -d' ' -f1)
check "cert.sha256 equals SHA-256 of the leaf certificate's DER" [ "$der_hash" = "$hash" ]
check "leaf key is ECDSA P-256" bash -c "openssl x509 -in '$cert' -noout -text | grep -qE 'ASN1 OID: prime256v1|NIST CURVE: P-256'"
not_before=$(date -d "$(openssl x509 -in "$cert" -noout -startdate | cut -d= -f2)" +%s)
not_after=$(date -d "$(openssl x509 -in "$cert" -noout -enddate | cut -d= -f2)" +%s)
validity=$((not_after - not_before))
check "leaf validity $((validity / 3600)) h is at most 14 days" [ "$validity" -le $((14 * 86400 + 1)) ]
now=$(date +%s)
check "leaf is valid now" [ "$not_before" -le "$now" -a "$now" -lt "$not_after" ]

# --- Chromium. Every wait inside the page is bounded; the whole harness is bounded here too.
result=$PEER_TMP/result.json
log "running Chromium (page $page_origin/)"
timeout -k 5 150 node "$BROWSER_DIR/wt_echo.mjs" --page-port "$page_port" --timeout 140000 \
  --echo echo "https://127.0.0.1:${EDGE_PORT[open]}/echo" "${EDGE_HASH[open]}" \
  --refused wrong_path "https://127.0.0.1:${EDGE_PORT[open]}/no-such-path" "${EDGE_HASH[open]}" \
  --allowed allowed_origin "https://127.0.0.1:${EDGE_PORT[allowed]}/echo" "${EDGE_HASH[allowed]}" \
  --refused refused_origin "https://127.0.0.1:${EDGE_PORT[refused]}/echo" "${EDGE_HASH[refused]}" \
  >"$result" 2>"$PEER_TMP/chromium.log" &
node_pid=$!
track "$node_pid"
wait "$node_pid"
node_rc=$?
[ "$node_rc" -eq 0 ] || fail "browser harness exited with status $node_rc (124 = killed by timeout)"
[ -s "$result" ] || die "browser harness printed no result"

wt_steps "$result"
log "browser $(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(r.browser||"?")' "$result")"

expect_step echo.ready "WebTransport session to /echo is ready"
expect_step echo.bidi_small "bidi stream echo (19 bytes + FIN)"
expect_step echo.bidi_large "bidi stream echo (256 KiB + FIN)"
expect_step echo.uni "uni stream answered by a server uni stream with the same bytes"
expect_step echo.datagram "datagram echo"
expect_step echo.close "close({closeCode: 4242, reason: 'bye from chromium'})"
expect_step wrong_path.refused "a session to another path is refused"
expect_step allowed_origin.ready "an Origin in --allow-origin is accepted"
expect_step allowed_origin.close "and its session closes"
expect_step refused_origin.refused "an Origin not in --allow-origin is refused"

# The refused edge must not have opened a session (its log is the only place that tells the refusal from
# any other handshake failure).
if edge_log_has refused "session opened"; then
  fail "edge 'refused' logged a session opened for an Origin outside --allow-origin"
else
  pass "edge 'refused' opened no session"
fi

want='session closed code=4242 reason="bye from chromium"'
if wait_for 5 edge_log_has open "$want"; then
  pass "edge logged: $want"
else
  fail "edge did not log: $want"
fi

retries=$(curl -sS -m 5 "http://127.0.0.1:$open_admin/metrics" | awk '$1 == "wtmesh_quic_retries_total" {print $2}')
check "edge 'open' sent Chromium's connections through a Retry (wtmesh_quic_retries_total ${retries:-missing} >= 1)" \
  [ "${retries:-0}" -ge 1 ]

stop_edge open
check "edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]

peer_finish
