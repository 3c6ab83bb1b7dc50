# shellcheck shell=bash disable=SC2034
# bench/lib/targets.sh: starts the origin and the four ways of reaching it (direct, nginx one-hop proxy
# in plain HTTP and with TLS termination, an `ssh -R` reverse tunnel, and wtmesh edge + agent, public
# side in HTTPS and, if the edge has --http-listen, in plain HTTP).
# Each target registers: T_URL (base URL given to wrk/h2load), T_HOSTHDR (Host header to send, or empty),
# T_CURL (extra curl arguments, word-split), T_CURLBASE (base URL for curl), T_ROOTS (pids whose process
# trees are "the proxy" for CPU accounting), T_AGENT (pid of the agent-side process for RSS), T_PROTO, T_NOTE.
# Everything listens on 127.0.0.1 only and lives under $BENCH_TMP. Sourced, not executed.

declare -A T_URL T_HOSTHDR T_CURL T_CURLBASE T_ROOTS T_AGENT T_PROTO T_NOTE
TARGETS=()

register() {  # register NAME PROTO URL HOSTHDR CURLBASE CURLARGS ROOTS AGENT NOTE
  TARGETS+=("$1")
  T_PROTO[$1]=$2 T_URL[$1]=$3 T_HOSTHDR[$1]=$4 T_CURLBASE[$1]=$5 T_CURL[$1]=$6 T_ROOTS[$1]=$7
  T_AGENT[$1]=$8 T_NOTE[$1]=$9
}

# Common nginx http{} settings. keepalive_requests is raised everywhere so that neither wrk's connections
# nor a proxy's upstream connections are recycled every 1000 requests (nginx's default), which would
# measure reconnects instead of relaying.
nginx_common() {  # nginx_common DIR
  cat <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 120s;
  keepalive_requests 10000000;
  client_body_temp_path $1/client_body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
EOF
}

start_origin() {
  local dir=$BENCH_TMP/origin www=$BENCH_TMP/www
  mkdir -p "$dir" "$www"
  head -c 1024 /dev/urandom > "$www/1k.bin"
  head -c $((100 * 1024 * 1024)) /dev/urandom > "$www/100m.bin"
  free_port ORIGIN_PORT
  free_port ORIGIN_H2C_PORT
  # The second port speaks HTTP/2 with prior knowledge (h2c) for the wtmesh_h2c row.
  { nginx_common "$dir"
    cat <<EOF
  server {
    listen 127.0.0.1:$ORIGIN_PORT reuseport backlog=4096;
    root $www;
  }
  server {
    listen 127.0.0.1:$ORIGIN_H2C_PORT http2 backlog=4096;
    http2_max_requests 10000000;
    root $www;
  }
}
EOF
  } > "$dir/nginx.conf"
  spawn origin nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
  ORIGIN_PID=$SPAWNED_PID
  wait_tcp "$ORIGIN_PORT" 10 || die "origin nginx did not start (see $OUT/origin.log)"
  register direct HTTP "http://127.0.0.1:$ORIGIN_PORT" "" "http://127.0.0.1:$ORIGIN_PORT" "" "" "" \
    "no proxy"
}

# One nginx (1 worker) serves both the plain and the TLS proxy ports; only one is loaded at a time.
start_nginx_proxy() {
  local dir=$BENCH_TMP/proxy
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2> "$OUT/proxy-cert.log" \
    || die "openssl could not make the proxy certificate"
  free_port PROXY_PORT
  free_port PROXY_TLS_PORT
  { nginx_common "$dir"
    cat <<EOF
  upstream origin {
    server 127.0.0.1:$ORIGIN_PORT;
    keepalive 128;
    keepalive_requests 10000000;
  }
  # Stream bodies through the worker's buffers instead of spooling them to temp files, like a tunnel.
  proxy_max_temp_file_size 0;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header Host \$host;
  server {
    listen 127.0.0.1:$PROXY_PORT reuseport backlog=4096;
    location / { proxy_pass http://origin; }
  }
  server {
    listen 127.0.0.1:$PROXY_TLS_PORT ssl http2 reuseport backlog=4096;
    http2_max_requests 10000000;
    ssl_certificate $dir/cert.pem;
    ssl_certificate_key $dir/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:bench:1m;
    location / { proxy_pass http://origin; }
  }
}
EOF
  } > "$dir/nginx.conf"
  spawn proxy nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
  local pid=$SPAWNED_PID
  { wait_tcp "$PROXY_PORT" 10 && wait_tcp "$PROXY_TLS_PORT" 10; } || die "proxy nginx did not start"
  register nginx HTTP "http://127.0.0.1:$PROXY_PORT" "" "http://127.0.0.1:$PROXY_PORT" "" "$pid" "$pid" \
    "nginx 1 worker, keepalive upstream"
  register nginx_tls HTTPS "https://127.0.0.1:$PROXY_TLS_PORT" "" "https://127.0.0.1:$PROXY_TLS_PORT" \
    "--cacert $dir/cert.pem" "$pid" "$pid" "nginx TLS termination, $(tls_cipher "$PROXY_TLS_PORT")"
}

# tls_cipher PORT: the TLS version and cipher OpenSSL 3 clients (wrk, curl) negotiate with 127.0.0.1:PORT.
tls_cipher() {
  local out
  out=$(timeout 5 openssl s_client -brief -connect "127.0.0.1:$1" < /dev/null 2>&1)
  awk -F': *' '/^Protocol version/ { v = $2 } /^Ciphersuite/ { c = $2 } END { print v " " c }' <<< "$out"
}

# start_sshd: an sshd on a free loopback port with a throw-away host key and client key; sets SSHD_PID,
# SSH_OPTS (client options, cipher $SSH_CIPHER) and SSH_NEGOTIATED (cipher, MAC and kex in use).
# sshd needs its compiled-in privilege-separation directory (/run/sshd). If it is missing, create it empty
# and remove it again on exit; nothing else outside $BENCH_TMP is touched.
start_sshd() {
  local dir=$BENCH_TMP/ssh
  mkdir -p "$dir"
  chmod 700 "$dir"
  if [[ ! -d /run/sshd ]]; then
    mkdir -m 0755 /run/sshd && BENCH_CREATED_PRIVSEP=/run/sshd
  fi
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key" || die "ssh-keygen (host key) failed"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key" || die "ssh-keygen (client key) failed"
  cp "$dir/client_key.pub" "$dir/authorized_keys"
  free_port SSHD_PORT
  cat > "$dir/sshd_config" <<EOF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
GatewayPorts no
X11Forwarding no
PrintMotd no
UseDNS no
LogLevel ERROR
EOF
  spawn sshd /usr/sbin/sshd -D -e -f "$dir/sshd_config"
  SSHD_PID=$SPAWNED_PID
  wait_tcp "$SSHD_PORT" 10 || die "sshd did not start (see $OUT/sshd.log)"
  SSH_OPTS=(-F /dev/null -i "$dir/client_key" -p "$SSHD_PORT" -c "$SSH_CIPHER"
            -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes
            -o ExitOnForwardFailure=yes -o ServerAliveInterval=0 -o Compression=no)
  # One verbose throw-away login only to read the negotiated cipher/MAC/kex from the debug output.
  SSH_NEGOTIATED=$(timeout 10 ssh "${SSH_OPTS[@]}" -o LogLevel=DEBUG1 root@127.0.0.1 true 2>&1 |
    awk '/kex: algorithm:/ { k = $NF } /kex: server->client cipher:/ { c = $5; m = $7 }
         END { print c " mac " m " kex " k }')
}

# ssh_reverse FWD_PORT:TARGET_PORT...: one `ssh -N` session (the `ssh -R` tunnel) forwarding each
# 127.0.0.1:FWD_PORT on the sshd side to 127.0.0.1:TARGET_PORT on the client side; sets SSH_PID.
ssh_reverse() {
  local pair fwd=()
  for pair in "$@"; do fwd+=(-R "127.0.0.1:${pair%%:*}:127.0.0.1:${pair#*:}"); done
  spawn ssh ssh -N -o LogLevel=ERROR "${SSH_OPTS[@]}" "${fwd[@]}" root@127.0.0.1
  SSH_PID=$SPAWNED_PID
  for pair in "$@"; do
    wait_tcp "${pair%%:*}" 10 || die "ssh -R did not open port ${pair%%:*} (see $OUT/ssh.log)"
  done
}

start_ssh() {
  start_sshd
  free_port SSH_FWD_PORT
  ssh_reverse "$SSH_FWD_PORT:$ORIGIN_PORT"
  register ssh HTTP "http://127.0.0.1:$SSH_FWD_PORT" "" "http://127.0.0.1:$SSH_FWD_PORT" "" \
    "$SSHD_PID $SSH_PID" "$SSH_PID" "ssh -R, $SSH_NEGOTIATED"
}

# wtmesh: edge, token, agent (`wtmesh http`), then requests to https://127.0.0.1:EDGE_PORT/ with
# Host: bench.localhost:EDGE_PORT (curl uses --resolve so that SNI and certificate checks are real).
# WTMESH_START_WAIT (default 20) bounds each wait for them in seconds.
start_wtmesh() {
  local dir=$BENCH_TMP/wtmesh
  mkdir -p "$dir"
  free_port EDGE_PORT
  # The edge's optional plain-HTTP public listener gives a second wtmesh row without public TLS, so the
  # TLS cost of the HTTPS row can be told apart (like nginx vs nginx_tls).
  local http_args=()
  EDGE_HTTP_PORT=""
  if "$WTMESH" edge --help 2> /dev/null | grep -q -- --http-listen; then
    free_port EDGE_HTTP_PORT
    http_args=(--http-listen "127.0.0.1:$EDGE_HTTP_PORT")
  fi
  # shellcheck disable=SC2086
  spawn edge "$WTMESH" $WTMESH_GLOBAL_ARGS edge --listen "127.0.0.1:$EDGE_PORT" --domain localhost \
    --state-dir "$dir" "${http_args[@]}" $(edge_workers_args $WTMESH_EDGE_ARGS) $WTMESH_EDGE_ARGS
  local edge_pid=$SPAWNED_PID
  local wait_s=${WTMESH_START_WAIT:-20}
  wait_tcp "$EDGE_PORT" "$wait_s" || { tail -20 "$OUT/edge.log" >&2; die "wtmesh edge did not listen on TCP $EDGE_PORT"; }
  wait_file "$dir/ca.pem" "$wait_s" || die "wtmesh edge wrote no $dir/ca.pem"
  local token
  token=$("$WTMESH" token --state-dir "$dir" --name bench --ttl 1h 2> "$OUT/token.log" |
    grep -Eo '[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+' | tail -1)
  [[ -n "$token" ]] || { cat "$OUT/token.log" >&2; die "wtmesh token printed no token"; }
  # shellcheck disable=SC2086
  spawn agent "$WTMESH" $WTMESH_GLOBAL_ARGS http "$ORIGIN_PORT" --edge "https://127.0.0.1:$EDGE_PORT" \
    --token "$token" --name bench --ca "$dir/ca.pem" $WTMESH_HTTP_ARGS
  local agent_pid=$SPAWNED_PID
  local host="bench.localhost:$EDGE_PORT"
  local curlargs="--cacert $dir/ca.pem --resolve bench.localhost:$EDGE_PORT:127.0.0.1"
  local deadline=$((SECONDS + wait_s)) code=000
  while ((SECONDS < deadline)); do
    alive "$agent_pid" || break
    # shellcheck disable=SC2086
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 $curlargs "https://$host/1k.bin") || true
    [[ "$code" == 200 ]] && break
    sleep 0.2
  done
  if [[ "$code" != 200 ]]; then
    tail -20 "$OUT/edge.log" "$OUT/agent.log" >&2
    die "wtmesh tunnel never answered 200 (last status $code)"
  fi
  register wtmesh HTTPS "https://127.0.0.1:$EDGE_PORT" "$host" "https://$host" "$curlargs" \
    "$edge_pid $agent_pid" "$agent_pid" "edge+agent, public TLS $(tls_cipher "$EDGE_PORT")"
  if [[ -n "$EDGE_HTTP_PORT" ]]; then
    local hhost="bench.localhost:$EDGE_HTTP_PORT" hargs="--resolve bench.localhost:$EDGE_HTTP_PORT:127.0.0.1"
    # shellcheck disable=SC2086
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 $hargs "http://$hhost/1k.bin") || true
    if [[ "$code" == 200 ]]; then
      register wtmesh_http HTTP "http://127.0.0.1:$EDGE_HTTP_PORT" "$hhost" "http://$hhost" "$hargs" \
        "$edge_pid $agent_pid" "$agent_pid" "edge+agent, the edge's plain-HTTP public listener (no public TLS)"
    else
      log "the edge's plain-HTTP listener answered $code; no wtmesh_http row"
    fi
  fi
  WTMESH_EDGE_PID=$edge_pid WTMESH_AGENT_PID=$agent_pid
}
