#!/usr/bin/env bash
# Secrets on disk and in logs (issue 14 item 8), with the umask at 000 so that nothing is right by
# accident:
#   - every private key the edge and `wtmesh token` write (CA key, leaf key, token signing keys) is
#     mode 0600, and every directory they create is 0700; public files need not be;
#   - no log line of the edge or the agent holds a private key, a token, or a token given in a query
#     string (`?token=`, `?access_token=`, `?wtmesh_token=`), after requests that carry them, through
#     a real curl;
#   - the state directory is no more readable after a restart that reuses the keys.
# Usage: secrets_on_disk.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"
T=$PEER_TMP
umask 000

start_edge main
EP=${EDGE_PORT[main]}
STATE=${EDGE_STATE[main]}
TOKEN=$(make_token main app) || die "wtmesh token failed"
start_origin app
start_http app main app "${ORIGIN_PORT[app]}" "$TOKEN"

# Requests whose query strings carry secrets, through the tunnel.
SECRETS=(qs-token-5f1d9a qs-access-c2e7b0 qs-wtmesh-91aa4c)
for q in "token=${SECRETS[0]}" "access_token=${SECRETS[1]}&x=1" "a=b&wtmesh_token=${SECRETS[2]}"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$STATE/ca.pem" \
    --resolve "app.localhost:$EP:127.0.0.1" "https://app.localhost:$EP/hello?$q")
  check "a request with ?${q%%=*}=... through the tunnel: 200 (got $code)" [ "$code" = 200 ]
done
check "the agent logged the requests" wait_for 5 grep -q 'GET /hello' "${AGENT_OUT[app]}"

# mode_of PATH: the permission bits in octal.
mode_of() { stat -c %a "$1"; }
keys=0
while IFS= read -r -d '' f; do
  if grep -q 'PRIVATE KEY' "$f" 2>/dev/null; then
    keys=$((keys + 1))
    check "private key ${f#"$STATE"/} is mode 600 (got $(mode_of "$f"))" [ "$(mode_of "$f")" = 600 ]
  fi
done < <(find "$STATE" -type f -print0)
check "the state holds the CA key, the leaf key and a signing key at least ($keys private keys)" [ "$keys" -ge 3 ]
while IFS= read -r -d '' d; do
  check "directory ${d#"$STATE"/} made by wtmesh is mode 700 (got $(mode_of "$d"))" [ "$(mode_of "$d")" = 700 ]
done < <(find "$STATE" -mindepth 1 -type d -print0)

# Nothing secret in any log.
logs=("${EDGE_DIR[main]}/stdout" "${EDGE_DIR[main]}/stderr" "${AGENT_OUT[app]}" "${AGENT_ERR[app]}")
check "no log holds a private key" bash -c "! grep -l 'PRIVATE KEY' ${logs[*]}"
sig=${TOKEN##*.}
check "no log holds the agent's token (its signature ${sig:0:8}...)" bash -c "! grep -lF -- '$sig' ${logs[*]}"
for s in "${SECRETS[@]}"; do
  check "no log holds the query-string secret $s" bash -c "! grep -lF -- '$s' ${logs[*]}"
done
check "the agent's log shows the redaction" grep -q 'token=REDACTED' "${AGENT_OUT[app]}"

# A restart reuses the keys and loosens nothing.
stop_pid "${AGENT_PID[app]}" 5
stop_edge main
before=$(find "$STATE" -printf '%m %P\n' | sort)
"$WTMESH" edge --listen 127.0.0.1:0 --domain localhost --state-dir "$STATE" >"$T/edge2.out" 2>"$T/edge2.err" </dev/null &
pid=$!
track $pid
wait_for 20 grep -q 'wtmesh edge listening on' "$T/edge2.out" || die "the edge did not restart: $(tail -3 "$T/edge2.err")"
stop_pid $pid 5
after=$(find "$STATE" -printf '%m %P\n' | sort)
check "after a restart the state's files and modes are unchanged" [ "$before" = "$after" ]
peer_finish
