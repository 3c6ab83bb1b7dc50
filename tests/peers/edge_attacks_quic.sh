#!/usr/bin/env bash
# Issue 14 item 5, the QUIC / WebTransport / agent side of the attack suite. A real edge, a legitimate
# tunnel (our agent `wtmesh http` + a local HTTP service), and a hostile HTTP/3 client
# (build/tests/wtmesh_attack_quic, tests/support/attack/wt_attack.cc: it writes raw HTTP/3 frames,
# QPACK sections, WebTransport stream headers, capsules and datagrams). For every attack:
#   - a legitimate client (curl from 127.0.0.1 to app.localhost/hello every ~0.25 s, -m 3) gets 200 in
#     < 1 s on every probe (2 s in a sanitizer build);
#   - the edge's RSS (VmRSS sampled every 0.5 s) grows less than RSS_LIMIT_MIB over its level before;
#   - the attacker is shed (its stream refused, its session or connection closed) within a bound, and
#     the metric that counts the limit moves.
# The attacks (agent-side ones on an agent session of a valid token, `wtmesh token --name atk`):
#   (streams-bidi)  100,000 WebTransport bidi stream opens on one agent session, half of an edge-only
#                   kind, half cut inside their head: every one refused (reset), a sampled one within 1 s
#   (streams-uni)   100,000 uni stream opens (not used in v1): refused
#   (close-capsule) a CLOSE_WEBTRANSPORT_SESSION capsule announcing 1 GiB, then 1 KiB every 50 ms: the
#                   CONNECT stream is reset (H3_MESSAGE_ERROR) within 1 s
#   (datagrams)     5 s of datagrams as fast as QUIC takes them (unknown flows, bad telemetry): dropped,
#                   counted, the log does not grow with them
#   (register)      10,000 REGISTERs of distinct names (a `*` token): 64 registered, the rest refused
#                   `limit`, answered within 5 s, counted, and at most 30 log lines for the refusals
#   (bad-tokens)    1,000 session requests with forged, tampered and expired (10 s, minted at the start,
#                   used after 42 s: past the 30 s leeway) tokens, 3 per connection, from 4 addresses: every connection is closed by the edge
#                   after its third refusal (H3_EXCESSIVE_LOAD), most requests get 429 unverified
#   (rapid-reset)   10,000 public requests (3,000 sanitized) whose HEADERS went out, reset right after
#                   (bounded by the connection's 128 streams); and as many reset before their first byte
#                   (the edge must reset back, or the stream credit is gone)
#   (qpack-*)       a 1 MiB field section, 20,000 fields, a literal announcing 2^62 bytes (431, at once),
#                   encoder-stream instructions growing the table past the 0 we advertise (connection
#                   closed, QPACK_ENCODER_STREAM_ERROR): 20 connections one after another each
# Usage: edge_attacks_quic.sh PATH_OF_WTMESH
# shellcheck disable=SC2154  # variables set by attack_vals (printf -v)
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

ATTACKER=${WTMESH_ATTACK_QUIC:-$(dirname "$WTMESH")/tests/wtmesh_attack_quic}
[ -x "$ATTACKER" ] || die "the attacker $ATTACKER is not built (cmake --build build --target wtmesh_attack_quic)"

RSS_LIMIT_MIB=32
PROBE_LIMIT_S=1.0
SHED_LIMIT_MS=1000
STREAMS=100000
RESETS=10000
if wtmesh_sanitized; then
  RSS_LIMIT_MIB=192
  PROBE_LIMIT_S=2.0
  SHED_LIMIT_MS=3000
  STREAMS=30000 # a sanitizer build handles streams several times slower
  RESETS=3000
  log "sanitizer build: RSS growth limit $RSS_LIMIT_MIB MiB, probe limit $PROBE_LIMIT_S s, shed within $SHED_LIMIT_MS ms, $STREAMS streams, $RESETS resets"
fi

admin_port=$(free_port)
start_app_tunnel --admin-listen "127.0.0.1:$admin_port"
make_token main atk >"$T/atk.tok" || die "wtmesh token failed"
"$WTMESH" token --state-dir "${EDGE_STATE[main]}" --name '*' --subject star --ttl 10m >"$T/star.tok" ||
  die "wtmesh token failed"
"$WTMESH" token --state-dir "${EDGE_STATE[main]}" --name bad --ttl 10s >"$T/expired.tok" || die "wtmesh token failed"
EXPIRED_MINTED_MS=$(ms_now)
for _ in 1 2 3 4 5; do curl -s -m 5 --cacert "$CA" -o /dev/null "$BASE/hello"; done

# holds "COND && COND": one check of several conditions (expanded by the caller, evaluated here).
# shellcheck disable=SC2317  # called through check
holds() { eval "$1"; }
metric() { # metric TEXT: the value of the sample line starting with TEXT (0 if absent)
  curl -sS -m 5 "http://127.0.0.1:$admin_port/metrics" | awk -v k="$1" 'index($0, k " ") == 1 {print $2; f = 1} END {if (!f) print 0}'
}

# attack_vals LABEL NAME EXPR [NAME EXPR ...]: sets each shell variable NAME to attack_json LABEL EXPR,
# with one node process for all of them (node starts slowly on a loaded machine).
attack_vals() {
  local label=$1 k v
  shift
  while IFS=$'\t' read -r k v; do printf -v "$k" '%s' "$v"; done < <(node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n");
    const s = JSON.parse(lines[lines.length - 1]);
    for (let i = 2; i + 1 < process.argv.length; i += 2) {
      const v = eval(process.argv[i + 1]);
      console.log(process.argv[i] + "\t" + (typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)));
    }' "$PEER_TMP/attack-$label.json" "$@")
}

TABLE=$T/table.txt
: >"$TABLE"
# quic_attack LABEL MODE ARGS...: runs the attacker (watchdog 60 s) with a prober and an RSS sampler
# around it; sets GROWTH_MIB, IDLE_MIB, MAX_MIB. Its JSON summary: attack_json LABEL EXPR.
quic_attack() {
  local label=$1 mode=$2 idle_kib max_kib pid started
  shift 2
  sleep 0.5
  idle_kib=$(edge_rss_kib main)
  LINES0=$(edge_log_lines main)
  start_prober "$label" "$BASE/hello" "$CA"
  sleep 0.5
  timeout -k 5 60 "$ATTACKER" --mode "$mode" --port "$EP" --ca "$CA" "$@" \
    >"$T/attack-$label.json" 2>"$T/attack-$label.log" </dev/null &
  pid=$!
  track "$pid"
  start_sampler "$label" main "$pid" $((idle_kib + 1536 * 1024))
  started=$(ms_now)
  wait "$pid"
  sleep 0.5
  # At least 2 s of probes, even around an attack the edge ends at once.
  while [ $(($(ms_now) - started)) -lt 2000 ]; do sleep 0.2; done
  stop_sampler "$label"
  stop_prober "$label"
  [ -s "$T/attack-$label.json" ] || die "wtmesh_attack_quic ($label) printed no summary: $(tail -5 "$T/attack-$label.log")"
  log "attack $label: $(tail -1 "$T/attack-$label.json" | cut -c1-1500)"
  max_kib=$(sampler_max_kib "$label")
  IDLE_MIB=$((idle_kib / 1024))
  MAX_MIB=$((max_kib / 1024))
  GROWTH_MIB=$(((max_kib - idle_kib) / 1024))
  LOG_LINES=$(($(edge_log_lines main) - LINES0))
  prober_check "$label" "$PROBE_LIMIT_S" "($label)"
  check "($label) edge RSS grew by $GROWTH_MIB MiB (before $IDLE_MIB MiB, max $MAX_MIB MiB; want < $RSS_LIMIT_MIB MiB)" \
    [ "$GROWTH_MIB" -lt "$RSS_LIMIT_MIB" ]
  check "($label) the edge is still running" kill -0 "${EDGE_PID[main]}"
}
# row LABEL SHED PROBES: a line of the summary table (printed at the end).
row() {
  local f=$T/probe-$1.txt n bad max
  n=$(wc -l <"$f")
  bad=$(awk '$2 != 200' "$f" | wc -l)
  max=$(awk 'BEGIN {m = 0} $3 + 0 > m {m = $3 + 0} END {printf "%.3f", m}' "$f")
  printf '| %s | %s | %s | %s | %s | %s/%s ok, max %s s | %s |\n' "$1" "$IDLE_MIB" "$MAX_MIB" "$GROWTH_MIB" "$2" \
    $((n - bad)) "$n" "$max" "$3" >>"$TABLE"
}

# --- 100k WebTransport stream opens on one agent session -----------------------------------------------
kind0=$(metric 'wtmesh_tunnel_stream_refusals_total{reason="kind"}')
bad0=$(metric 'wtmesh_tunnel_stream_refusals_total{reason="malformed"}')
quic_attack streams-bidi streams-bidi --token-file "$T/atk.tok" --count "$STREAMS" --duration 30
attack_vals streams-bidi opened 's.opened' resets 's.peerResets' all_ms 's.allOpenedMs' \
  median 's.shedTimesMs.median' max 's.shedTimesMs.max' not_refused 's.sampledNotRefused' closed_by_edge 's.connClosedByEdge'
kind=$(($(metric 'wtmesh_tunnel_stream_refusals_total{reason="kind"}') - kind0))
bad=$(($(metric 'wtmesh_tunnel_stream_refusals_total{reason="malformed"}') - bad0))
check "(streams-bidi) the attacker opened $opened of $STREAMS streams on one session in $all_ms ms" \
  [ "$opened" = "$STREAMS" ]
check "(streams-bidi) the edge reset every one ($resets resets; stream credit came back each time)" [ "$resets" -ge "$STREAMS" ]
check "(streams-bidi) a sampled stream was refused within $SHED_LIMIT_MS ms (median $median ms, max $max ms; $not_refused never refused)" \
  holds "[ \"$max\" -lt \"$SHED_LIMIT_MS\" ] && [ \"$not_refused\" = 0 ]"
check "(streams-bidi) metric wtmesh_tunnel_stream_refusals_total: kind +$kind, malformed +$bad (want $((STREAMS / 2)) each)" \
  holds "[ \"$kind\" = $((STREAMS / 2)) ] && [ \"$bad\" = $((STREAMS / 2)) ]"
check "(streams-bidi) the session lived on (the edge refuses streams, not the session)" \
  [ "$closed_by_edge" = false ]
row streams-bidi "each stream reset, median $median ms, max $max ms" \
  "$opened opened in $all_ms ms"

uni0=$(metric 'wtmesh_tunnel_stream_refusals_total{reason="uni"}')
quic_attack streams-uni streams-uni --token-file "$T/atk.tok" --count "$STREAMS" --duration 30
opened=$(attack_json streams-uni 's.opened')
uni=$(($(metric 'wtmesh_tunnel_stream_refusals_total{reason="uni"}') - uni0))
check "(streams-uni) the attacker opened $opened of $STREAMS uni streams in $(attack_json streams-uni 's.allOpenedMs') ms" \
  [ "$opened" = "$STREAMS" ]
check "(streams-uni) metric wtmesh_tunnel_stream_refusals_total{reason=\"uni\"} +$uni (want $STREAMS)" [ "$uni" = "$STREAMS" ]
row streams-uni "each stream refused (STOP_SENDING)" "$opened opened in $(attack_json streams-uni 's.allOpenedMs') ms"

# --- a 1 GiB close capsule ------------------------------------------------------------------------------
quic_attack close-capsule close-capsule --token-file "$T/atk.tok" --duration 10
shed=$(attack_json close-capsule 's.shedMs')
check "(close-capsule) the edge shed the session within $SHED_LIMIT_MS ms: $(attack_json close-capsule 's.shedHow') (code $(attack_json close-capsule 's.shedCode'), after ${shed} ms, $(attack_json close-capsule 's.sentBytes') bytes sent)" \
  holds "[ \"$shed\" != undefined ] && [ \"$shed\" -lt \"$SHED_LIMIT_MS\" ] && [ \"$(attack_json close-capsule 's.shedCode')\" = 270 ]"
row close-capsule "CONNECT stream reset (H3_MESSAGE_ERROR) after $shed ms" "$(attack_json close-capsule 's.sentBytes') B sent"

# --- a datagram flood -------------------------------------------------------------------------------------
drop0=$(metric 'wtmesh_udp_packets_dropped_total{reason="unknown_flow"}')
inv0=$(metric 'wtmesh_telemetry_reports_total{result="invalid"}')
quic_attack datagrams datagrams --token-file "$T/atk.tok" --duration 5
sent=$(attack_json datagrams 's.datagramsSent')
drops=$(($(metric 'wtmesh_udp_packets_dropped_total{reason="unknown_flow"}') - drop0))
inv=$(($(metric 'wtmesh_telemetry_reports_total{result="invalid"}') - inv0))
check "(datagrams) the attacker sent $sent datagrams (want > 10000)" [ "$sent" -gt 10000 ]
check "(datagrams) dropped and counted: unknown_flow +$drops, telemetry invalid +$inv" [ $((drops + inv)) -gt $((sent / 4)) ]
check "(datagrams) the log did not grow with them (+$LOG_LINES lines)" [ "$LOG_LINES" -lt 50 ]
row datagrams "dropped, counted (unknown_flow +$drops, invalid telemetry +$inv)" "$sent sent in 5 s"

# --- an agent registering 10k names ---------------------------------------------------------------------
cap0=$(metric 'wtmesh_tunnel_refusals_total{reason="session_cap"}')
quic_attack register register --token-file "$T/star.tok" --count 10000 --duration 15
registered=$(attack_json register 's.registered')
limit=$(attack_json register 's.refused.limit')
cap=$(($(metric 'wtmesh_tunnel_refusals_total{reason="session_cap"}') - cap0))
check "(register) 64 names registered, $limit refused \`limit\` (want 64 and 9936; $(attack_json register 'JSON.stringify(s.refused)'))" \
  holds "[ \"$registered\" = 64 ] && [ \"$limit\" = 9936 ]"
check "(register) every REGISTER answered within 5 s ($(attack_json register 's.answeredMs') ms)" \
  holds "[ \"$(attack_json register 's.answeredMs')\" != undefined ] && [ \"$(attack_json register 's.answeredMs')\" -lt 5000 ]"
check "(register) metric wtmesh_tunnel_refusals_total{reason=\"session_cap\"} +$cap (want 9936)" [ "$cap" = 9936 ]
refusal_lines=$(tail -n "$LOG_LINES" "${EDGE_DIR[main]}/stderr" | grep -c ': refused n')
check "(register) refusals are logged rate-limited: $refusal_lines lines for 9936 refusals (want <= 30; +$LOG_LINES edge log lines in all)" \
  [ "$refusal_lines" -le 30 ]
row register "every REGISTER answered in $(attack_json register 's.answeredMs') ms (64 ok, 9936 \`limit\`)" "+$LOG_LINES log lines"

# --- HTTP/3 rapid reset -----------------------------------------------------------------------------------
ORIGIN_LOG=$PEER_TMP/origin-main.requests
o0=$(wc -l <"$ORIGIN_LOG")
quic_attack rapid-reset rapid-reset --sni app.localhost --count $RESETS --duration 20
requests=$(attack_json rapid-reset 's.requests')
closed=$(attack_json rapid-reset 's.streamsClosed')
reached=$(($(wc -l <"$ORIGIN_LOG") - o0))
check "(rapid-reset) $requests of $RESETS requests sent and reset in $(attack_json rapid-reset 's.allOpenedMs') ms, $closed streams closed" \
  holds "[ \"$requests\" = $RESETS ] && [ \"$closed\" = $RESETS ]"
credit_waits=$(attack_json rapid-reset 's.creditWaits')
check "(rapid-reset) the connection's 128 streams bound the work: the attacker waited for stream credit $credit_waits times ($reached requests reached the origin)" \
  [ "$credit_waits" -gt 0 ]
row rapid-reset "concurrency 128 per connection (QUIC MAX_STREAMS); $reached requests reached the origin" \
  "$RESETS reset in $(attack_json rapid-reset 's.allOpenedMs') ms"

quic_attack rapid-reset-early rapid-reset-early --sni app.localhost --count $RESETS --duration 20
requests=$(attack_json rapid-reset-early 's.requests')
closed=$(attack_json rapid-reset-early 's.streamsClosed')
resets=$(attack_json rapid-reset-early 's.peerResets')
check "(rapid-reset-early) $requests of $RESETS streams reset before their first byte, $closed closed, the edge reset back $resets (before the fix: stuck at 128)" \
  holds "[ \"$requests\" = $RESETS ] && [ \"$closed\" = $RESETS ] && [ \"$resets\" = $RESETS ]"
row rapid-reset-early "each stream reset back at once" "$RESETS in $(attack_json rapid-reset-early 's.allOpenedMs') ms"

# --- QPACK / header bombs ---------------------------------------------------------------------------------
# 20 connections per bomb, each from its own address (under the 64-handshake burst per address, so
# every attempt carries its bomb rather than being refused at the handshake).
qaddr=30
for m in qpack-big qpack-many qpack-literal qpack-encoder; do
  qaddr=$((qaddr + 1))
  quic_attack "$m" "$m" --sni app.localhost --duration 6 --count 20 --local "127.0.0.$qaddr"
  attack_vals "$m" conns 's.connections' not_shed 's.notShed' outcomes 'JSON.stringify(s.outcomes)' \
    max 's.shedTimesMs.max' median 's.shedTimesMs.median' sent_b 's.sentBytes' \
    all_enc "Object.keys(s.outcomes).every(k => k.includes('app 0x201'))" \
    all_431 "Object.keys(s.outcomes).every(k => k === 'status 431')" kinds "Object.keys(s.outcomes).join(', ')"
  check "($m) every one of $conns attempts shed ($outcomes), none lasted (notShed $not_shed)" \
    holds "[ \"$not_shed\" = 0 ] && [ \"$conns\" -ge 15 ]"
  if [ "$m" = qpack-encoder ]; then
    check "($m) each connection closed with QPACK_ENCODER_STREAM_ERROR (0x201)" \
      [ "$all_enc" = true ]
  else
    check "($m) each request answered 431" [ "$all_431" = true ]
  fi
  check "($m) shed within $SHED_LIMIT_MS ms (median $median ms, max $max ms)" \
    [ "$max" -lt "$SHED_LIMIT_MS" ]
  row "$m" "$kinds, median $median ms, max $max ms" "$conns connections, $sent_b B sent"
done

# --- 1000 bad tokens ------------------------------------------------------------------------------------
# Last, so the expired token (10 s, minted at the start) is past the edge's 30 s clock-skew leeway.
while [ $(($(ms_now) - EXPIRED_MINTED_MS)) -lt 42000 ]; do sleep 0.5; done
# 334 of each: a forged signature, tampered claims (the signature of other claims), the expired token.
python3 - "$T/atk.tok" "$T/expired.tok" "$T/bad.tok" <<'PY'
import base64, os, sys
good = open(sys.argv[1]).read().strip()
expired = open(sys.argv[2]).read().strip()
h, p, sig = good.split(".")
b64 = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
tampered = h + "." + b64(b'{"sub":"eve"}') + "." + sig
with open(sys.argv[3], "w") as out:
    for _ in range(334):
        out.write(h + "." + p + "." + b64(os.urandom(64)) + "\n" + tampered + "\n" + expired + "\n")
PY
rl0=$(metric 'wtmesh_session_refusals_total{reason="rate_limited"}')
shed0=$(metric 'wtmesh_connections_shed_total{reason="auth_failures"}')
quic_attack bad-tokens bad-tokens --token-file "$T/bad.tok" --count 1000 --duration 20 \
  --local 127.0.0.21,127.0.0.22,127.0.0.23,127.0.0.24
attack_vals bad-tokens requests 's.requests' conns 's.handshaken' all_conns 's.connections' \
  closed_auth 's.closes["app 0x107 too many authentication failures"] || 0' statuses 'JSON.stringify(s.statuses)' \
  closes 'JSON.stringify(s.closes)' s200 's.statuses["200"] || 0' s401 's.statuses["401"] || 0' \
  s429 's.statuses["429"] || 0' cut_off 's.statuses["-4"] || 0' first_life 's.firstConnLifeMs'
refused_conns=$((all_conns - conns))
rl=$(($(metric 'wtmesh_session_refusals_total{reason="rate_limited"}') - rl0))
shed=$(($(metric 'wtmesh_connections_shed_total{reason="auth_failures"}') - shed0))
log "(bad-tokens) statuses $statuses, closes $closes"
check "(bad-tokens) $requests of 1000 session requests sent on $conns connections ($refused_conns more refused at the handshake: per-address handshake rate)" \
  [ "$requests" = 1000 ]
check "(bad-tokens) the edge closed $closed_auth connections for auth failures (want >= $((conns - 2)) of $conns; metric +$shed)" \
  holds "[ \"$closed_auth\" -ge $((conns - 2)) ] && [ \"$shed\" -ge \"$closed_auth\" ]"
check "(bad-tokens) no request was accepted ($s200 got 200)" [ "$s200" = 0 ]
check "(bad-tokens) most were refused 429 before verification: rate_limited +$rl (want >= 800)" [ "$rl" -ge 800 ]
row bad-tokens "each connection closed after 3 refusals ($closed_auth of $conns, the first after $first_life ms)" \
  "401 x$s401, 429 x$s429, $cut_off cut off by the close, $refused_conns connections refused at the handshake"

code=$(curl -sS -m 5 --cacert "$CA" -o /dev/null -w '%{http_code}' "$BASE/hello" 2>"$T/curl.err")
check "after the attacks the tunnel answers 200 (got $code)" [ "$code" = 200 ]
log "summary (attack | RSS before MiB | max MiB | growth MiB | shed | probes | notes):"
cat "$TABLE" >&2
stop_edge main
check "edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
peer_finish
