#!/usr/bin/env bash
# Every token failure mode, through the real `wtmesh http` against a real `wtmesh edge`. For each bad
# token the agent must exit non-zero within 15 s with one clear `wtmesh: ...` sentence on stderr and no
# crash (no abort, sanitizer report or stack trace), the edge must log the precise reason, and no
# hostname may be served. Bad tokens other than garbage are made by tests/peers/forge_token.mjs from a
# good one and signed again with the edge's own key, so each is refused for exactly one reason:
#   garbage, expired (exp 5 min ago, beyond the 30 s leeway), not yet valid (nbf in 10 min), wrong
#   audience, alg none, alg HS256, one signature bit flipped, no kid, lifetime over 30 days, no exp,
#   signed by another edge's key (unknown kid), no hostname under the edge's domain (403), a valid
#   token for another name (REGISTER refused: not covered)
# CLI: no token at all, both --token and --token-file, a missing token file, `wtmesh token --ttl 1s`
# (below the 10 s minimum) are refused with a sentence; an empty token file is reported.
# Finally a good token still works (the edge survived all of the above).
# Usage: http_tunnel_tokens.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

start_edge main
start_edge other
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
start_origin main
OP=${ORIGIN_PORT[main]}
T=$PEER_TMP

good=$(make_token main app) || die "wtmesh token failed"
key=${EDGE_STATE[main]}/keys/signing.pem
[ -s "$key" ] || die "no signing key at $key"

# no_crash FILE: the output shows no abort, sanitizer report or stack trace.
no_crash() { ! grep -qiE 'terminate called|Aborted|AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:|stack trace|Segmentation|core dumped|#[0-9]+ 0x' "$1"; }

# refused_run LABEL TOKEN WANT_STDERR_REGEX [EDGE_LOG_STRING]: runs `wtmesh http` with TOKEN (bounded
# at 15 s), expects a non-zero exit, WANT_STDERR_REGEX on stderr, and EDGE_LOG_STRING in the edge's log.
refused_run() {
  local label=$1 token=$2 want=$3 edge_want=${4:-} rc out err
  out=$T/tok-$label.out.log
  err=$T/tok-$label.err.log
  timeout -k 2 15 "$WTMESH" http "$OP" --edge "https://127.0.0.1:$EP" --token "$token" --name app --ca "$CA" \
    >"$out" 2>"$err" </dev/null
  rc=$?
  local msg
  msg=$(grep -E '^wtmesh: ' "$err" | grep -vE 'exposing|connected to the edge' | tail -1)
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] && grep -qE -- "$want" "$err" && no_crash "$err"; then
    pass "$label: wtmesh http exits $rc: $msg"
  else
    fail "$label: want a non-zero exit (not a timeout) and /$want/ on stderr; got exit $rc, stderr: $(tail -3 "$err")"
  fi
  if grep -qE '^https://' "$out"; then fail "$label: a public URL was printed: $(cat "$out")"; fi
  if [ -n "$edge_want" ]; then
    if wait_for 3 edge_log_has main "$edge_want"; then
      pass "$label: the edge logs '$edge_want'"
    else
      fail "$label: the edge did not log '$edge_want'"
    fi
  fi
}

auth401='the edge refused the token \(HTTP 401\)'
refused_run garbage "not-a-token" "$auth401" "refused session from 127.0.0.1: token malformed"
refused_run garbage_jwt_shape "eyJhbGciOiJFUzI1NiJ9.e30.AAAA" "$auth401"
for mode in expired not_yet_valid wrong_aud alg_none alg_hs256 bad_sig no_kid too_long missing_exp; do
  forged=$(node "$PEER_DIR/forge_token.mjs" "$key" "$good" "$mode") || die "forge_token.mjs $mode failed"
  case $mode in
    expired) reason="token expired" ;;
    not_yet_valid) reason="token not_yet_valid" ;;
    wrong_aud) reason="token wrong_audience" ;;
    alg_none | alg_hs256) reason="token unsupported_alg" ;;
    bad_sig) reason="token bad_signature" ;;
    no_kid) reason="token unknown_key" ;;
    too_long | missing_exp) reason="token malformed" ;;
  esac
  refused_run "$mode" "$forged" "$auth401" "$reason"
done
refused_run other_edge_key "$(make_token other app)" "$auth401" "token unknown_key"
refused_run foreign_domain "$(node "$PEER_DIR/forge_token.mjs" "$key" "$good" foreign_host)" \
  'the edge refused the token \(HTTP 403\)' "from 127.0.0.1: token names no host under localhost"
refused_run foreign_domain_cli "$("$WTMESH" token --state-dir "${EDGE_STATE[main]}" --name app --domain example.com)" \
  'the edge refused the token \(HTTP 403\)'
refused_run other_name "$(make_token main other)" 'the edge refused app\.localhost: the token does not cover app\.localhost' \
  "refused app.localhost (id 1): not_covered"

# --- Command-line mistakes: a sentence, a non-zero exit, no connection attempt.
# cli_refused LABEL WANT_REGEX CMD...
cli_refused() {
  local label=$1 want=$2 rc
  shift 2
  timeout -k 2 10 "$@" >"$T/cli-$label.out.log" 2>"$T/cli-$label.err.log" </dev/null
  rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -qE -- "$want" "$T/cli-$label.err.log" && no_crash "$T/cli-$label.err.log"; then
    pass "$label: exit $rc: $(grep -E -- "$want" "$T/cli-$label.err.log" | head -1)"
  else
    fail "$label: want a non-zero exit and /$want/; got exit $rc: $(tail -3 "$T/cli-$label.err.log")"
  fi
}
http_args=(http "$OP" --edge "https://127.0.0.1:$EP" --name app --ca "$CA")
# No secret anywhere (no flag, no WTMESH_TOKEN / WTMESH_CREDENTIAL, no `wtmesh login` in this HOME).
cli_refused missing_token 'no credential for https://127.0.0.1:[0-9]+: give --credential FILE or --token-file FILE, set WTMESH_CREDENTIAL or WTMESH_TOKEN, or log in' \
  env -u WTMESH_TOKEN -u WTMESH_CREDENTIAL -u XDG_CONFIG_HOME HOME="$T" "$WTMESH" "${http_args[@]}"
echo "$good" >"$T/good.token"
cli_refused token_and_file 'give at most one of --token, --token-file and --credential' \
  "$WTMESH" "${http_args[@]}" --token "$good" --token-file "$T/good.token"
cli_refused ttl_too_short 'is not a duration .*at least 10s' \
  "$WTMESH" token --state-dir "${EDGE_STATE[main]}" --name app --ttl 1s
cli_refused bad_name '^wtmesh: --name' "$WTMESH" token --state-dir "${EDGE_STATE[main]}" --name 'no way!'
# A token file is re-read at each reconnect, so a missing or empty one is reported and retried
# (it may be written later) rather than fatal: check the sentence, then stop the agent.
: >"$T/empty.token"
for f in empty missing; do
  file=$T/$f.token
  "$WTMESH" "${http_args[@]}" --token-file "$file" >"$T/tokfile-$f.out.log" 2>"$T/tokfile-$f.err.log" </dev/null &
  pid=$!
  track "$pid"
  if [ "$f" = empty ]; then want="the token file $file is empty"; else want="cannot read the token file $file"; fi
  if wait_for 5 grep -qF "$want" "$T/tokfile-$f.err.log"; then
    pass "$f token file: reported: $(grep -m1 -F "$want" "$T/tokfile-$f.err.log")"
  else
    fail "$f token file: no '$want' within 5 s: $(tail -3 "$T/tokfile-$f.err.log")"
  fi
  stop_pid "$pid" 5
  check "$f token file: the agent stops on SIGTERM (status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
done

# --- Nothing was served by any of the above; a good token still works.
code=$(curl -sS -m 5 --cacert "$CA" -o /dev/null -w '%{http_code}' "https://app.localhost:$EP/hello" 2>/dev/null)
check "app.localhost was never registered by a refused token: 404 (got $code)" [ "$code" = 404 ]
start_http good main app "$OP" "$good"
code=$(curl -sS -m 5 --cacert "$CA" -o "$T/body" -w '%{http_code}' "https://app.localhost:$EP/hello" 2>"$T/curl.err")
check "a good token still works: 200 (got $code)" [ "$code" = 200 ]
check "with the origin's body" [ "$(cat "$T/body")" = "hello from the origin" ]
no_crash "${EDGE_DIR[main]}/stderr"
check "the edge logged no crash" [ $? -eq 0 ]
stop_edge main
check "edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
peer_finish
