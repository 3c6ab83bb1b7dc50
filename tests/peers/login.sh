#!/usr/bin/env bash
# `wtmesh login` once, then `wtmesh http PORT` with no other flag (issue 14 item 2), against a real edge,
# through curl, with HOME and XDG_CONFIG_HOME in a temp dir and the umask at 000:
#   - login writes ~/.config/wtmesh/agent.yml and a copy of the credential, both 0600, in 0700
#     directories; the original credential can go away;
#   - `wtmesh http PORT` alone serves the credential's name; `wtmesh tcp PORT`, `connect NAME --listen`,
#     `udp PORT`, `doctor` and `agent` (tunnels added to agent.yml) alone work too; an explicit --name
#     wins over the stored one;
#   - with a wildcard credential (XDG_CONFIG_HOME this time) the name is a random readable one,
#     printed in the banner, and served;
#   - --token prints the `ps` warning; WTMESH_TOKEN and WTMESH_CREDENTIAL (a path, or the file's
#     contents) work with no secret flag and no warning;
#   - the edge's CA carries nameConstraints: openssl verify accepts a leaf it signs for a .localhost
#     name and rejects one for bank.example (permitted subtree violation);
#   - another --edge does not get the login's credential; `wtmesh logout` removes it all and then
#     `wtmesh http PORT` says how to log in.
# Usage: login.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"
T=$PEER_TMP
umask 000

start_edge main --echo
EP=${EDGE_PORT[main]}
STATE=${EDGE_STATE[main]}
EDGE="https://127.0.0.1:$EP"
start_origin main
OP=${ORIGIN_PORT[main]}
mode_of() { stat -c %a "$1"; }

# "${AS_USER[@]}" HOME=DIR CMD...: CMD with no XDG_CONFIG_HOME or secrets from this environment (a
# command, not a function, so that a background one is the wtmesh process itself).
AS_USER=(env -u XDG_CONFIG_HOME -u WTMESH_TOKEN -u WTMESH_CREDENTIAL)

# serve LABEL URL_RE CMD...: starts CMD (a `wtmesh http`) in the background, waits for a public URL
# line matching URL_RE on its stdout; sets SERVE_PID and SERVE_URL, logs in $T/LABEL.{out,err}.
serve() {
  local label=$1 re=$2 i
  shift 2
  "$@" >"$T/$label.out" 2>"$T/$label.err" </dev/null &
  SERVE_PID=$!
  track $SERVE_PID
  SERVE_URL=""
  for ((i = 0; i < 200; i++)); do
    SERVE_URL=$(grep -m1 -oE "$re" "$T/$label.out" 2>/dev/null || true)
    [ -n "$SERVE_URL" ] && break
    kill -0 $SERVE_PID 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$SERVE_URL" ] || fail "$label: no public URL matching $re: $(tail -3 "$T/$label.err")"
}

# through LABEL URL: curl GET URL/hello with the edge's CA; passes when it answers 200 "hello".
through() {
  local label=$1 url=$2 body code
  body=$(curl -sS --max-time 10 --cacert "$STATE/ca.pem" -w '\n%{http_code}' "$url/hello" 2>&1)
  code=${body##*$'\n'}
  check "$label: curl $url/hello through the tunnel: 200 (got $code)" [ "$code" = 200 ]
}

# --- The edge's CA is name-constrained (issue 14 item 6m), as OpenSSL reads and enforces it.
nc=$(openssl x509 -in "$STATE/ca.pem" -noout -ext nameConstraints 2>&1)
check "openssl sees critical nameConstraints on ca.pem: $(echo "$nc" | tr -s ' \n' ' ')" \
  bash -c "grep -q 'critical' <<<'$nc' && grep -q 'DNS:localhost' <<<'$nc' && grep -q 'IP:127.0.0.0/255.0.0.0' <<<'$nc'"
# mint_leaf NAME SAN: a leaf signed with the edge's CA key (as a thief of ca.key would).
mint_leaf() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$1.key" -subj "/CN=$1" \
    -out "$T/$1.csr" 2>/dev/null &&
    openssl x509 -req -in "$T/$1.csr" -CA "$STATE/ca.pem" -CAkey "$STATE/ca.key" -CAcreateserial -days 1 \
      -extfile <(printf 'subjectAltName=%s\n' "$2") -out "$T/$1.pem" 2>/dev/null
}
{ mint_leaf inside DNS:other.localhost && mint_leaf outside DNS:bank.example; } || die "openssl could not mint leaves"
check "openssl verify accepts a leaf for other.localhost from that CA" \
  openssl verify -CAfile "$STATE/ca.pem" "$T/inside.pem"
out=$(openssl verify -CAfile "$STATE/ca.pem" "$T/outside.pem" 2>&1)
check "openssl verify rejects one for bank.example: $(echo "$out" | grep -o 'error [0-9]*.*' | head -1)" \
  bash -c "! openssl verify -CAfile '$STATE/ca.pem' '$T/outside.pem' >/dev/null 2>&1 && grep -q 'permitted subtree violation' <<<'$out'"

# --- login with HOME alone (~/.config/wtmesh).
H=$T/home
mkdir -p "$H"
chmod 755 "$H"
"$WTMESH" credential --state-dir "$STATE" --name app --connect app -o "$T/app.cred" 2>/dev/null ||
  die "wtmesh credential failed"
"${AS_USER[@]}" HOME="$H" "$WTMESH" login --edge "$EDGE" --credential "$T/app.cred" --ca "$STATE/ca.pem" \
  >"$T/login.out" 2>"$T/login.err"
rc=$?
check "wtmesh login exits 0 ($rc): $(head -1 "$T/login.err")" [ "$rc" = 0 ]
CFG=$H/.config/wtmesh
check "login wrote $CFG/agent.yml" [ -s "$CFG/agent.yml" ]
for f in "$CFG/agent.yml" "$CFG/agent.cred"; do
  check "${f#"$H"/} is mode 600 under umask 000 (got $(mode_of "$f"))" [ "$(mode_of "$f")" = 600 ]
done
for d in "$H/.config" "$CFG"; do
  check "${d#"$H"/} is mode 700 (got $(mode_of "$d"))" [ "$(mode_of "$d")" = 700 ]
done
check "agent.yml names the edge and the copied credential" \
  bash -c "grep -qF 'edge: $EDGE' '$CFG/agent.yml' && grep -q 'credential_file: agent.cred' '$CFG/agent.yml'"
check "no private key in agent.yml or in login's output" \
  bash -c "! grep -l 'PRIVATE KEY' '$CFG/agent.yml' '$T/login.out' '$T/login.err'"
rm -f "$T/app.cred"  # the login keeps its own copy

# --- wtmesh http PORT, nothing else.
serve plain '^https://app\.localhost:[0-9]+/' "${AS_USER[@]}" HOME="$H" "$WTMESH" http "$OP"
check "wtmesh http $OP alone: the credential's name, served at $SERVE_URL" [ -n "$SERVE_URL" ]
check "  its banner names the tunnel and the edge" grep -qF "as app.localhost via $EDGE" "$T/plain.err"
through "wtmesh http $OP alone" "${SERVE_URL%/}"
check "  no --token warning without --token" bash -c "! grep -q 'visible to other local users' '$T/plain.err'"
stop_pid $SERVE_PID 5

# --- An explicit flag wins: --name (the credential covers app only, so the edge refuses "other").
timeout -k 2 20 "${AS_USER[@]}" HOME="$H" "$WTMESH" http "$OP" --name other >"$T/other.out" \
  2>"$T/other.err" </dev/null
rc=$?
check "wtmesh http --name other overrides the stored name (exit non-zero, $rc)" [ "$rc" != 0 -a "$rc" != 124 ]
check "  the edge refused other.localhost, not app.localhost" grep -q 'other.localhost' "$T/other.err"

# --- wtmesh tcp PORT and wtmesh doctor, nothing else.
serve tcp '^tcp://[^ ]+:[0-9]+' "${AS_USER[@]}" HOME="$H" "$WTMESH" tcp "$OP"
check "wtmesh tcp $OP alone: $SERVE_URL" [ -n "$SERVE_URL" ]
if [ -n "$SERVE_URL" ]; then
  hp=${SERVE_URL#tcp://}
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:${hp##*:}/hello")
  check "  plain HTTP through the tcp tunnel: 200 (got $code)" [ "$code" = 200 ]
fi
TCP_PID=$SERVE_PID
# connect NAME --listen ... alone reaches that tcp tunnel (the credential's --connect app).
CP=$(free_port)
serve connect '^connect app  ->  [0-9.:]+' "${AS_USER[@]}" HOME="$H" "$WTMESH" connect app --listen "127.0.0.1:$CP"
check "wtmesh connect app --listen 127.0.0.1:$CP alone: $SERVE_URL" [ -n "$SERVE_URL" ]
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$CP/hello")
check "  plain HTTP through connect -> tcp tunnel: 200 (got $code)" [ "$code" = 200 ]
stop_pid $SERVE_PID 5
stop_pid $TCP_PID 5
# udp PORT alone: the edge publishes a udp port for the credential's name.
serve udp '^udp://[^ ]+:[0-9]+' "${AS_USER[@]}" HOME="$H" "$WTMESH" udp "$(free_port)"
check "wtmesh udp PORT alone: $SERVE_URL" [ -n "$SERVE_URL" ]
stop_pid $SERVE_PID 5
timeout -k 2 60 "${AS_USER[@]}" HOME="$H" "$WTMESH" doctor >"$T/doctor.out" 2>"$T/doctor.err" </dev/null
rc=$?
check "wtmesh doctor alone uses the login's edge and CA (exit $rc): $(tail -1 "$T/doctor.out")" [ "$rc" = 0 ]

# --- A wildcard credential, with XDG_CONFIG_HOME: a random readable name.
X=$T/xdg
"$WTMESH" credential --state-dir "$STATE" --name '*' -o "$T/wild.cred" 2>/dev/null || die "wtmesh credential '*' failed"
"${AS_USER[@]}" XDG_CONFIG_HOME="$X" HOME="$T/nohome" "$WTMESH" login --edge "$EDGE" --credential "$T/wild.cred" \
  --ca "$STATE/ca.pem" >/dev/null 2>"$T/login-x.err"
check "login with XDG_CONFIG_HOME writes \$XDG_CONFIG_HOME/wtmesh/agent.yml" [ -s "$X/wtmesh/agent.yml" ]
check "  and not under HOME" [ ! -e "$T/nohome/.config" ]
serve random '^https://[a-z]+-[a-z]+-[0-9a-f]{4}\.localhost:[0-9]+/' \
  "${AS_USER[@]}" XDG_CONFIG_HOME="$X" HOME="$T/nohome" "$WTMESH" http "$OP"
check "wtmesh http $OP under a wildcard credential: a random readable name, $SERVE_URL" [ -n "$SERVE_URL" ]
check "  the banner says it is random: $(grep -o 'as [^ ]* via' "$T/random.err")" grep -q 'a random name' "$T/random.err"
[ -n "$SERVE_URL" ] && through "random name" "${SERVE_URL%/}"
stop_pid $SERVE_PID 5
serve chosen '^https://chosen\.localhost:[0-9]+/' "${AS_USER[@]}" XDG_CONFIG_HOME="$X" "$WTMESH" http "$OP" --name chosen
check "--name chosen under the wildcard login: $SERVE_URL" [ -n "$SERVE_URL" ]
stop_pid $SERVE_PID 5

# --- Secrets from the environment and the --token warning (no login: an empty HOME).
E=$T/empty
mkdir -p "$E"
TOKEN=$(make_token main tok) || die "wtmesh token failed"
serve flag '^https://tok\.localhost:[0-9]+/' "${AS_USER[@]}" HOME="$E" "$WTMESH" http "$OP" --edge "$EDGE" --ca "$STATE/ca.pem" \
  --name tok --token "$TOKEN"
check "--token still works: $SERVE_URL" [ -n "$SERVE_URL" ]
check "  with a warning that it is visible to other users and what to use instead" \
  grep -qE 'warning: --token on the command line is visible to other local users.*--token-file.*WTMESH_TOKEN' \
  "$T/flag.err"
stop_pid $SERVE_PID 5
serve envtok '^https://tok\.localhost:[0-9]+/' "${AS_USER[@]}" HOME="$E" WTMESH_TOKEN="$TOKEN" \
  "$WTMESH" http "$OP" --edge "$EDGE" --ca "$STATE/ca.pem" --name tok
check "WTMESH_TOKEN with no secret flag: $SERVE_URL" [ -n "$SERVE_URL" ]
[ -n "$SERVE_URL" ] && through "WTMESH_TOKEN" "${SERVE_URL%/}"
check "  no warning" bash -c "! grep -q 'visible to other' '$T/envtok.err'"
stop_pid $SERVE_PID 5
"$WTMESH" credential --state-dir "$STATE" --name envcred -o "$T/envcred.cred" 2>/dev/null
serve envpath '^https://envcred\.localhost:[0-9]+/' "${AS_USER[@]}" HOME="$E" \
  WTMESH_CREDENTIAL="$T/envcred.cred" "$WTMESH" http "$OP" --edge "$EDGE" --ca "$STATE/ca.pem"
check "WTMESH_CREDENTIAL=PATH: the credential's name, $SERVE_URL" [ -n "$SERVE_URL" ]
stop_pid $SERVE_PID 5
serve envjson '^https://envcred\.localhost:[0-9]+/' "${AS_USER[@]}" HOME="$E" \
  WTMESH_CREDENTIAL="$(cat "$T/envcred.cred")" "$WTMESH" http "$OP" --edge "$EDGE" --ca "$STATE/ca.pem"
check "WTMESH_CREDENTIAL=the file's JSON: $SERVE_URL" [ -n "$SERVE_URL" ]
[ -n "$SERVE_URL" ] && through "WTMESH_CREDENTIAL contents" "${SERVE_URL%/}"
stop_pid $SERVE_PID 5

# --- Another edge does not get the login's credential.
timeout -k 2 20 "${AS_USER[@]}" HOME="$H" "$WTMESH" http "$OP" --edge https://127.0.0.1:1 \
  >/dev/null 2>"$T/otheredge.err" </dev/null
rc=$?
check "--edge of another edge with no secret: exit non-zero ($rc)" [ "$rc" != 0 -a "$rc" != 124 ]
check "  saying the login is for $EDGE" grep -qF "is for $EDGE" "$T/otheredge.err"

# --- wtmesh agent with no --config: the tunnels added to the login's file.
printf 'tunnels:\n  - {name: app, local_port: %s}\n' "$OP" >>"$CFG/agent.yml"
serve agent '^https://app\.localhost:[0-9]+/' "${AS_USER[@]}" HOME="$H" "$WTMESH" agent
check "wtmesh agent alone runs the tunnels of agent.yml: $SERVE_URL" [ -n "$SERVE_URL" ]
[ -n "$SERVE_URL" ] && through "wtmesh agent alone" "${SERVE_URL%/}"
stop_pid $SERVE_PID 5

# --- logout.
"${AS_USER[@]}" HOME="$H" "$WTMESH" logout 2>"$T/logout.err"
rc=$?
check "wtmesh logout exits 0 ($rc): $(cat "$T/logout.err")" [ "$rc" = 0 ]
check "  agent.cred is gone" [ ! -e "$CFG/agent.cred" ]
check "  agent.yml keeps the user's tunnels but no edge or credential" \
  bash -c "grep -q 'local_port' '$CFG/agent.yml' && ! grep -qE 'edge|credential' '$CFG/agent.yml'"
timeout -k 2 20 "${AS_USER[@]}" HOME="$H" "$WTMESH" http "$OP" >/dev/null 2>"$T/after.err" </dev/null
rc=$?
check "after logout wtmesh http $OP exits 1 ($rc) saying how to log in: $(cat "$T/after.err")" \
  bash -c "[ $rc = 1 ] && grep -q 'wtmesh login --edge' '$T/after.err'"
env XDG_CONFIG_HOME="$X" "$WTMESH" login --clear 2>/dev/null
check "login --clear removes the XDG login too" [ ! -e "$X/wtmesh/agent.yml" ]
peer_finish
