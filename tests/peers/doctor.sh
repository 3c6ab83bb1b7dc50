#!/usr/bin/env bash
# Our own client against our own edge, as a user runs it: `wtmesh doctor` connects to `wtmesh edge`,
# verifies the edge's certificate against the edge's CA, and reports handshake, stream round-trip and
# datagram round-trip times. Asserts:
#   - doctor exits 0 and prints all three timings
#   - doctor fails (non-zero, bounded) with a CA that did not sign the edge's certificate
#   - doctor fails (non-zero, bounded) when nothing listens on the port
#   - an edge started without --echo refuses /echo (404) and doctor says to start it with --echo
#   - the edge stops cleanly on SIGINT
# Usage: doctor.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

start_edge main --echo
start_edge plain
port=${EDGE_PORT[main]}
ca=${EDGE_STATE[main]}/ca.pem

# run_doctor LOG ARGS...: runs doctor bounded by 40 s; sets DOCTOR_RC.
run_doctor() {
  local out=$1
  shift
  log "wtmesh doctor $*"
  timeout -k 5 40 "$WTMESH" doctor "$@" >"$out" 2>&1 </dev/null &
  local pid=$!
  track "$pid"
  wait "$pid"
  DOCTOR_RC=$?
}

good=$PEER_TMP/doctor.log
run_doctor "$good" --edge "https://127.0.0.1:$port" --ca "$ca"
check "doctor exits 0 (status $DOCTOR_RC; 124 = killed by timeout)" [ "$DOCTOR_RC" -eq 0 ]
# One line per measurement, each with a number and a unit (the exact wording is doctor's own).
timing='[0-9]+(\.[0-9]+)?[[:space:]]*(ns|us|µs|ms|s)\b'
check "doctor prints the handshake time" grep -qiE "handshake.*$timing" "$good"
check "doctor prints the stream round trip" grep -qiE "stream.*$timing" "$good"
check "doctor prints the datagram round trip" grep -qiE "datagram.*$timing" "$good"
sed 's/^/  doctor| /' "$good"

# A CA that did not sign the edge's certificate: the TLS handshake must fail.
other_ca=$PEER_TMP/other-ca.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$PEER_TMP/other-ca.key" \
  -out "$other_ca" -days 2 -subj "/CN=not the wtmesh CA" >/dev/null 2>&1 || die "openssl could not make a CA"
run_doctor "$PEER_TMP/doctor-wrong-ca.log" --edge "https://127.0.0.1:$port" --ca "$other_ca"
check "doctor with a foreign CA fails (status $DOCTOR_RC)" [ "$DOCTOR_RC" -ne 0 -a "$DOCTOR_RC" -ne 124 -a "$DOCTOR_RC" -ne 137 ]

# Nothing listening: a free UDP port (the edge's port after a throwaway bind is not reusable here).
closed_port=$(node -e 'const d=require("dgram").createSocket("udp4");d.bind(0,"127.0.0.1",()=>{console.log(d.address().port);d.close()})')
run_doctor "$PEER_TMP/doctor-no-edge.log" --edge "https://127.0.0.1:$closed_port" --ca "$ca"
check "doctor against a closed port fails within 40 s (status $DOCTOR_RC)" [ "$DOCTOR_RC" -ne 0 -a "$DOCTOR_RC" -ne 124 -a "$DOCTOR_RC" -ne 137 ]

# An edge without --echo (the default) serves no /echo: doctor fails and names the flag.
run_doctor "$PEER_TMP/doctor-no-echo.log" --edge "https://127.0.0.1:${EDGE_PORT[plain]}" --ca "${EDGE_STATE[plain]}/ca.pem"
check "doctor against an edge without --echo fails (status $DOCTOR_RC)" [ "$DOCTOR_RC" -ne 0 -a "$DOCTOR_RC" -ne 124 -a "$DOCTOR_RC" -ne 137 ]
check "... and says the edge serves /echo only with --echo ($(grep -o 'refused.*' "$PEER_TMP/doctor-no-echo.log" | head -1))" \
  grep -q 'only when started with --echo' "$PEER_TMP/doctor-no-echo.log"

check "edge still running" kill -0 "${EDGE_PID[main]}"
stop_edge main INT
check "edge stops cleanly on SIGINT (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
peer_finish
