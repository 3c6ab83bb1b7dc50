#!/usr/bin/env bash
# Agent credentials end to end (docs/protocol.md §3.3, §6.1), with curl against real `wtmesh` processes:
#   - `wtmesh credential -o FILE` and `> FILE` both leave a 0600 file; the grant inside is no bearer token;
#   - `wtmesh http --credential FILE --session-token-ttl 10s` against an edge whose --session-token-ttl
#     is 10s serves for ~35 s (several token lifetimes) with zero failed curl requests, one session
#     (no reconnect), a renewal roughly every 6.7 s on both sides, and a 30 s chunked response that
#     spans the renewals arriving whole;
#   - `credential_file:` in `wtmesh agent --config` works the same;
#   - a session token over the edge's maximum is refused with a sentence naming it;
#   - `wtmesh revoke` ends the live session within 10 s (close code 5, the agent exits saying so) and
#     a new session with the revoked credential is refused (401, revoked).
# Usage: credential_renewal.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

start_edge main --session-token-ttl 10s
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
STATE=${EDGE_STATE[main]}
start_origin main
OP=${ORIGIN_PORT[main]}
T=$PEER_TMP

# --- The credential file.
"$WTMESH" credential --state-dir "$STATE" --name app --valid 1d -o "$T/agent.cred" 2>"$T/cred.err.log" ||
  die "wtmesh credential failed: $(cat "$T/cred.err.log")"
CRED_ID=$(grep -oE 'credential [A-Za-z0-9_-]+ for' "$T/cred.err.log" | awk '{print $2}')
[ -n "$CRED_ID" ] || die "wtmesh credential printed no id: $(cat "$T/cred.err.log")"
pass "wtmesh credential issued $CRED_ID: $(cat "$T/cred.err.log")"
check "-o FILE is mode 0600 (got $(stat -c %a "$T/agent.cred"))" [ "$(stat -c %a "$T/agent.cred")" = 600 ]
(umask 022 && "$WTMESH" credential --state-dir "$STATE" --name app >"$T/stdout.cred" 2>/dev/null)
check "> FILE under umask 022 is made 0600 too (got $(stat -c %a "$T/stdout.cred"))" [ "$(stat -c %a "$T/stdout.cred")" = 600 ]
grant=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).grant)' "$T/agent.cred")
code=$(timeout -k 2 15 "$WTMESH" http "$OP" --edge "https://127.0.0.1:$EP" --token "$grant" --name app --ca "$CA" \
  >/dev/null 2>"$T/grant.err.log" </dev/null; echo $?)
check "the grant alone is no bearer token: wtmesh http --token GRANT exits non-zero (got $code)" [ "$code" != 0 ]
check "  refused as a 401" grep -q 'HTTP 401' "$T/grant.err.log"

# --- A session token over the edge's maximum.
timeout -k 2 15 "$WTMESH" http "$OP" --edge "https://127.0.0.1:$EP" --credential "$T/agent.cred" \
  --session-token-ttl 1m --name app --ca "$CA" >/dev/null 2>"$T/too-long.err.log" </dev/null
rc=$?
check "a 1 min session token against a 10 s maximum: exit non-zero (got $rc)" [ "$rc" != 0 -a "$rc" != 124 ]
check "  with the edge's reason: $(grep -oE 'lifetime [0-9]+ s is over[^)]*' "$T/too-long.err.log")" \
  grep -q 'is over this edge.s maximum of 10 s' "$T/too-long.err.log"

# --- Renewal inside the live session, under load.
"$WTMESH" http "$OP" --edge "https://127.0.0.1:$EP" --credential "$T/agent.cred" --session-token-ttl 10s \
  --name app --ca "$CA" >"$T/agent.out.log" 2>"$T/agent.err.log" </dev/null &
AGENT=$!
track $AGENT
wait_for 20 grep -qE '^https://' "$T/agent.out.log" || die "the agent printed no URL: $(cat "$T/agent.err.log")"
URL="https://app.localhost:$EP"
# A 30 s chunked response (150 chunks, 200 ms apart) across the renewals.
curl -sS -m 60 --cacert "$CA" "$URL/chunked?n=150&ms=200" >"$T/chunked.body" 2>"$T/chunked.err.log" &
CHUNKED=$!
ok=0
bad=0
start=$(now_ms)
while [ $(($(now_ms) - start)) -lt 35000 ]; do
  c=$(curl -sS -m 5 --cacert "$CA" -o /dev/null -w '%{http_code}' "$URL/hello" 2>>"$T/curl.err.log")
  if [ "$c" = 200 ]; then ok=$((ok + 1)); else bad=$((bad + 1)); echo "$(date +%T.%N) $c" >>"$T/curl-failures.log"; fi
  sleep 0.1
done
wait $CHUNKED
chunked_rc=$?
renewals=$(grep -c 'session token renewed' "$T/agent.err.log")
edge_renewals=$(grep -c 'session renewed (credential '"$CRED_ID"')' "${EDGE_DIR[main]}/stderr")
connects=$(grep -c 'connected to the edge' "$T/agent.err.log")
log "35 s: $ok requests answered 200, $bad failed; agent renewals $renewals, edge renewals $edge_renewals, sessions $connects"
check "35 s of requests across renewals: $ok answered 200 (at least 50), zero failed (got $bad)" [ "$bad" = 0 -a "$ok" -ge 50 ]
check "the agent renewed its 10 s token at least 4 times (got $renewals)" [ "$renewals" -ge 4 ]
check "the edge accepted as many renewals (got $edge_renewals)" [ "$edge_renewals" -ge 4 ]
check "one session all along: no reconnect (got $connects 'connected')" [ "$connects" = 1 ]
check "the edge never closed a session for an expired token" bash -c "! grep -q 'token expired' '${EDGE_DIR[main]}/stderr'"
check "the 30 s chunked response spanning the renewals came whole (curl $chunked_rc, $(grep -c '^chunk ' "$T/chunked.body") chunks)" \
  [ "$chunked_rc" = 0 -a "$(grep -c '^chunk ' "$T/chunked.body")" = 150 ]

# --- credential_file: in the YAML config.
cat >"$T/agent.yml" <<YAML
edge: https://127.0.0.1:$EP
ca: $CA
credential_file: $T/agent.cred
session_token_ttl: 10s
tunnels:
  - name: cfg
    local_port: $OP
YAML
"$WTMESH" credential --state-dir "$STATE" --name cfg -o "$T/cfg.cred" 2>/dev/null || die "wtmesh credential cfg failed"
sed -i "s#credential_file: .*#credential_file: $T/cfg.cred#" "$T/agent.yml"
"$WTMESH" agent --config "$T/agent.yml" >"$T/cfg.out.log" 2>"$T/cfg.err.log" </dev/null &
CFG=$!
track $CFG
wait_for 20 grep -qE '^https://cfg' "$T/cfg.out.log" || fail "wtmesh agent with credential_file: printed no URL: $(tail -3 "$T/cfg.err.log")"
code=$(curl -sS -m 5 --cacert "$CA" -o /dev/null -w '%{http_code}' "https://cfg.localhost:$EP/hello" 2>/dev/null)
check "wtmesh agent --config with credential_file: serves cfg.localhost (got $code)" [ "$code" = 200 ]
stop_pid $CFG 5

# --- Revocation.
t0=$(now_ms)
"$WTMESH" revoke --state-dir "$STATE" "$CRED_ID" 2>"$T/revoke.err.log" || die "wtmesh revoke failed: $(cat "$T/revoke.err.log")"
pass "wtmesh revoke: $(cat "$T/revoke.err.log")"
check "the revocation list is mode 0600" [ "$(stat -c %a "$STATE/revoked")" = 600 ]
wait_for 12 bash -c "! kill -0 $AGENT 2>/dev/null"
gone_ms=$(($(now_ms) - t0))
check "the revoked credential's agent exited within 10 s (after $gone_ms ms)" bash -c "[ $gone_ms -le 10000 ] && ! kill -0 $AGENT 2>/dev/null"
stop_pid $AGENT 1
check "  with a non-zero status (got $STOP_STATUS)" [ "$STOP_STATUS" != 0 ]
check "  saying the credential was revoked: $(grep -m1 'revoked' "$T/agent.err.log")" grep -q 'the credential was revoked' "$T/agent.err.log"
check "the edge logged why it closed the session" edge_log_has main "credential $CRED_ID was revoked; closing the session"
code=$(curl -sS -m 5 --cacert "$CA" -o /dev/null -w '%{http_code}' "$URL/hello" 2>/dev/null)
check "app.localhost no longer answers from the agent (got $code)" [ "$code" != 200 ]
timeout -k 2 15 "$WTMESH" http "$OP" --edge "https://127.0.0.1:$EP" --credential "$T/agent.cred" --session-token-ttl 10s \
  --name app --ca "$CA" >/dev/null 2>"$T/after.err.log" </dev/null
rc=$?
check "a new session with the revoked credential is refused: exit non-zero (got $rc)" [ "$rc" != 0 -a "$rc" != 124 ]
check "  as revoked: $(grep -oE 'invalid token: revoked[^)]*' "$T/after.err.log")" grep -q 'invalid token: revoked' "$T/after.err.log"

stop_edge main
check "edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
peer_finish
