#!/usr/bin/env bash
# Agents over WebTransport over HTTP/2 (draft-ietf-webtrans-http2-15, `--transport h2`): the agent's
# session runs on TCP + TLS (ALPN h2) to the edge's HTTPS port instead of QUIC, and everything above it is
# unchanged. Real peers on the public side:
#   - `wtmesh http --transport h2` in front of the Node origin: the agent says it is connected over
#     HTTP/2, the edge logs the session as WebTransport over HTTP/2; curl over HTTP/1.1 and HTTP/2 and
#     gtlsclient over HTTP/3 fetch 5 MB (SHA-256 equal to what the origin sent) and POST 2 MB (the
#     origin's SHA-256 of what it got equals ours);
#   - `wtmesh tcp --transport h2` in front of tests/peers/tcp_peer.py serve-count: 1 MiB then SHUT_WR
#     answered with its SHA-256, and nc -N;
#   - `wtmesh udp --transport h2` in front of dnsmasq: dig through the tunnel (DNS datagrams ride as
#     DATAGRAM capsules), and 50 queries each answered;
#   - `wtmesh doctor --transport h2` against /echo: every check passes and it names h2;
#   - `--transport auto` (the default) against a port whose UDP side is a black hole and whose TCP side
#     forwards to the edge: the race (QUIC first, HTTP/2 300 ms later) goes to HTTP/2, and the tunnel
#     serves within 2 s of the agent's start;
#   - a refusal over HTTP/2: a bad token gets the edge's 401 and the agent exits saying so.
# Usage: http_tunnel_wt_h2.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
# shellcheck source=tests/peers/tcp_lib.bash
source "$(dirname "$0")/tcp_lib.bash"
peer_init "$@"
T=$PEER_TMP
sha() { sha256sum "$1" | cut -d' ' -f1; }

pick_tcp_range
start_edge main --tcp-ports "$TCP_RANGE" --udp-ports "$((TCP_RANGE_MIN + 2000))-$((TCP_RANGE_MAX + 2000))"
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
start_origin main
OP=${ORIGIN_PORT[main]}
HTTP_EXTRA_ARGS=(--transport h2)
start_http app main app "$OP"
HTTP_EXTRA_ARGS=()
BASE=https://app.localhost:$EP
check "the agent is connected over HTTP/2" wait_for 5 grep -q 'over HTTP/2 (TCP)' "${AGENT_ERR[app]}"
check "the edge logs the agent's WebTransport session on HTTP/2" \
  wait_for 3 grep -qE 'CONNECT [^ ]*/ingress-mesh 200 .* h2 - WebTransport session' "${EDGE_DIR[main]}/stderr"

# --- HTTP through the tunnel, three public HTTP versions.
origin_sha() {
  curl -sS -m 10 --cacert "$CA" "$BASE/stats" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).lastSent?.sha256??""))'
}
head -c 2000000 /dev/urandom >"$T/up.bin"
for v in --http1.1 --http2; do
  code=$(curl -sS -m 30 "$v" --cacert "$CA" -o "$T/dl.bin" -w '%{http_code} %{http_version}' "$BASE/bytes?n=5000000" 2>"$T/curl.err")
  check "curl $v: 5 MB GET through the h2 session: $code, SHA-256 equal to the origin's" \
    bash -c "[ '${code%% *}' = 200 ] && [ '$(sha "$T/dl.bin")' = '$(origin_sha)' ]"
  got=$(curl -sS -m 30 "$v" --cacert "$CA" --data-binary @"$T/up.bin" "$BASE/upload" 2>>"$T/curl.err")
  check "curl $v: 2 MB POST, the origin got every byte ($got)" \
    grep -qF "{\"bytes\":2000000,\"sha256\":\"$(sha "$T/up.bin")\"}" <<<"$got"
done
if command -v gtlsclient >/dev/null; then
  gtl() {
    local out=$1
    shift
    timeout -k 5 60 gtlsclient --exit-on-all-streams-close --no-quic-dump --no-http-dump --handshake-timeout=10s \
      --timeout=30s --sni=app.localhost "$@" >"$out" 2>&1 </dev/null
  }
  mkdir -p "$T/dl3"
  gtl "$T/h3.out" --download="$T/dl3" 127.0.0.1 "$EP" "$BASE/bytes?n=5000000"
  dl=$(find "$T/dl3" -name 'bytes*' | head -1)
  check "gtlsclient (HTTP/3): 5 MB GET through the h2 session, SHA-256 equal to the origin's" \
    bash -c "[ -n '$dl' ] && [ '$(sha "${dl:-/dev/null}")' = '$(origin_sha)' ]"
  gtl "$T/h3up.out" --download="$T/dl3" -m POST -d "$T/up.bin" 127.0.0.1 "$EP" "$BASE/upload"
  check "gtlsclient (HTTP/3): 2 MB POST, the origin got every byte ($(cat "$T/dl3/upload" 2>/dev/null))" \
    grep -qF "{\"bytes\":2000000,\"sha256\":\"$(sha "$T/up.bin")\"}" "$T/dl3/upload"
else
  skip "gtlsclient not installed (ngtcp2-client): no HTTP/3 client"
fi

# --- A TCP tunnel over the h2 session.
start_tcp_server count serve-count
start_tcp tcp main tcpsvc "${SRV_PORT[count]}" --transport h2
check "wtmesh tcp is connected over HTTP/2" wait_for 5 grep -q 'over HTTP/2 (TCP)' "${AGENT_ERR[tcp]}"
check "tcp tunnel over h2: 1 MiB, SHUT_WR, the SHA-256 answer arrives" \
  timeout 30 python3 -u "$PEER_DIR/tcp_peer.py" halfclose "${TCP_PORT[tcp]}" 1048576
if command -v nc >/dev/null; then
  got=$(printf 'hello' | timeout 20 nc -N 127.0.0.1 "${TCP_PORT[tcp]}")
  check "tcp tunnel over h2 with nc -N: '$got'" grep -q '^got 5 bytes sha256 2cf24dba' <<<"$got"
fi

# --- A UDP tunnel over the h2 session: DNS with dig (datagrams as DATAGRAM capsules).
if command -v dnsmasq >/dev/null && command -v dig >/dev/null; then
  dns_ok=0
  start_dnsmasq && dns_ok=1
  check "dnsmasq answers directly (port $DNS_PORT)" [ "$dns_ok" = 1 ]
  start_udp dns main dns "$DNS_PORT" --transport h2
  check "wtmesh udp is connected over HTTP/2" wait_for 5 grep -q 'over HTTP/2 (TCP)' "${AGENT_ERR[dns]}"
  got=$(timeout 20 dig @127.0.0.1 -p "${UDP_PORT[dns]}" x.test +short +time=2 +tries=3)
  check "dig x.test through the udp tunnel over h2: '$got'" [ "$got" = 10.1.2.3 ]
  for i in $(seq 1 50); do echo "q$i.x.test A"; done >"$T/dig-batch.txt"
  answered=$(timeout 60 dig @127.0.0.1 -p "${UDP_PORT[dns]}" +short +time=2 +tries=3 -f "$T/dig-batch.txt" | grep -cx 10.1.2.3)
  check "50 dig queries through the udp tunnel over h2, each answered: $answered" [ "$answered" = 50 ]
else
  skip "dnsmasq or dig not installed (dnsmasq-base, bind9-dnsutils)"
fi

# --- doctor over h2.
timeout 30 "$WTMESH" doctor --edge "https://127.0.0.1:$EP" --ca "$CA" --transport h2 >"$T/doctor.out" 2>&1
rc=$?
log "doctor: $(tr '\n' '|' <"$T/doctor.out")"
check "wtmesh doctor --transport h2 exits 0 (status $rc)" [ "$rc" = 0 ]
check "doctor names the transport it used" grep -q 'all checks passed (transport h2)' "$T/doctor.out"
check "doctor's handshake line says TLS and h2" grep -qE 'handshake +ok .*transport h2: TCP, TLS1\.[23] h2' "$T/doctor.out"

# --- Refusals over HTTP/2.
refused_port_tunnel tcp "bad token over h2" main x "not-a-token" 'refused the token \(HTTP 401\)' --transport h2

# --- auto with UDP blocked: a port whose UDP side drops everything (a bound socket nobody answers from)
# and whose TCP side forwards to the edge's HTTPS port. The agent's QUIC gets no handshake, and after
# 2 s the same session goes over HTTP/2; the tunnel then serves.
python3 -u - >"$T/blackhole.log" 2>&1 </dev/null <<PY &
import socket, threading
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
for _ in range(50):
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    try:
        u.bind(("127.0.0.1", port))
        break
    except OSError:
        t.close(); t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.listen(16)
print("listening", port, flush=True)
def pipe(a, b):
    try:
        while (d := a.recv(65536)):
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
def serve(c):
    e = socket.create_connection(("127.0.0.1", $EP))
    threading.Thread(target=pipe, args=(c, e), daemon=True).start()
    pipe(e, c)
# UDP: dropped until the file udp-open exists, then relayed to the edge's QUIC port (QUIC is back).
import os
ups = {}
def udp_back(client, e):
    while True:
        d = e.recv(65536)
        u.sendto(d, client)
def udp_loop():
    while True:
        d, client = u.recvfrom(65536)
        if not os.path.exists("$T/udp-open"):
            continue
        if client not in ups:
            e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            e.connect(("127.0.0.1", $EP))
            ups[client] = e
            threading.Thread(target=udp_back, args=(client, e), daemon=True).start()
        ups[client].send(d)
threading.Thread(target=udp_loop, daemon=True).start()
while True:
    c, _ = t.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
track $!
wait_for 10 grep -q '^listening ' "$T/blackhole.log" || die "the UDP black hole did not start: $(cat "$T/blackhole.log")"
BH=$(cut -d' ' -f2 "$T/blackhole.log" | head -1)
token=$(make_token main auto) || die "wtmesh token failed"
AGENT_OUT[auto]=$T/agent-auto.out.log
AGENT_ERR[auto]=$T/agent-auto.err.log
started=$(now_ms)
WTMESH_QUIC_PROBE_INTERVAL_MS=1500 "$WTMESH" http "$OP" --edge "https://127.0.0.1:$BH" --token "$token" --name auto --ca "$CA" \
  >"${AGENT_OUT[auto]}" 2>"${AGENT_ERR[auto]}" </dev/null &
track $!
check "auto with UDP blocked: the agent falls back to HTTP/2" wait_for 15 grep -q 'over HTTP/2 (TCP)' "${AGENT_ERR[auto]}"
ready_ms=$(($(now_ms) - started))
check "auto with UDP blocked: it said why (no QUIC handshake within 300 ms)" \
  grep -q 'over HTTP/2 (TCP): no QUIC handshake within 300 ms' "${AGENT_ERR[auto]}"
code=$(curl -sS -m 10 --cacert "$CA" -o /dev/null -w '%{http_code}' "https://auto.localhost:$EP/hello" 2>"$T/curl.err")
check "auto with UDP blocked: the tunnel serves (got $code), connected $ready_ms ms after the agent started (want < 2000)" \
  [ "$code" = 200 -a "$ready_ms" -lt 2000 ]

# --- QUIC comes back: UDP through that port now reaches the edge. The agent (probing every 1.5 s)
# opens a session over QUIC, whose REGISTER takes the name over from the HTTP/2 session at the edge
# (protocol.md §3.5); a streaming response under way on HTTP/2 finishes there, and requests sent all
# along get 200.
AUTO=https://auto.localhost:$EP
curl -sS -m 20 --cacert "$CA" -N "$AUTO/chunked?n=12&ms=300" >"$T/moving-stream.txt" 2>"$T/moving-stream.err" &
stream_pid=$!
(
  for _ in $(seq 1 120); do
    curl -sS -m 5 --cacert "$CA" -o /dev/null -w '%{http_code}\n' "$AUTO/hello" 2>>"$T/moving.err" || echo fail
    [ -f "$T/moving-stop" ] && break
    sleep 0.05
  done
) >"$T/moving.codes" &
loop_pid=$!
sleep 0.5
touch "$T/udp-open"
check "QUIC is back: the agent moves to a new session over QUIC" \
  wait_for 10 grep -q 'QUIC reaches the edge again: moving to a new session over QUIC' "${AGENT_ERR[auto]}"
check "the new session is on QUIC" wait_for 5 grep -q 'connected to the edge .* over QUIC' "${AGENT_ERR[auto]}"
check "the edge handed the name over from the HTTP/2 session" \
  wait_for 5 grep -q 'auto.localhost handed over from' "${EDGE_DIR[main]}/stderr"
wait "$stream_pid"
check "the streaming response under way on HTTP/2 finished there (12 chunks)" \
  [ "$(grep -c '^chunk ' "$T/moving-stream.txt")" = 12 ]
check "the agent closed the HTTP/2 session once it was idle" \
  wait_for 10 grep -q 'closing the replaced session' "${AGENT_ERR[auto]}"
sleep 1
touch "$T/moving-stop"
wait "$loop_pid"
n_codes=$(wc -l <"$T/moving.codes")
bad=$(grep -vc '^200$' "$T/moving.codes" || true)
check "every request during the move got 200 ($n_codes requests, $bad not 200)" [ "$n_codes" -ge 20 -a "$bad" = 0 ]
code=$(curl -sS -m 10 --cacert "$CA" -o /dev/null -w '%{http_code}' "$AUTO/hello" 2>"$T/curl.err")
check "after the move the tunnel serves over QUIC (got $code)" [ "$code" = 200 ]

peer_finish
