#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of wtmesh on Debian bookworm.
# Idempotent and fast when everything is present: apt is only touched when `dpkg-query` says a package
# is missing (or ngtcp2/nghttp3 are older than the backports versions), npm only when node_modules is.
# Needs root (or sudo). Set WTMESH_SETUP_VERBOSE=1 to see apt/npm output.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
quiet() { if [ "${WTMESH_SETUP_VERBOSE:-0}" = 1 ]; then "$@"; else "$@" >/dev/null; fi; }

# Build toolchain and libraries (plain bookworm).
# clang 14 + libclang-rt-14-dev: libFuzzer (libclang_rt.fuzzer-x86_64.a) and the ASan/UBSan runtimes.
# libunistring-dev: -lunistring, which GnuTLS's static archive needs (cmake -DWTMESH_STATIC_DEPS=ON).
base_pkgs=(
  build-essential cmake ninja-build pkg-config git
  clang clang-14 llvm-14 libclang-rt-14-dev clang-tidy clang-format
  libgnutls28-dev libnghttp2-dev libspdlog-dev libfmt-dev libcli11-dev libyaml-cpp-dev
  libunistring-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev googletest libbenchmark-dev
)
# From bookworm-backports: ngtcp2 1.11, nghttp3 1.8, Boost 1.83, ngtcp2's example client/server (peers).
bpo_pkgs=(
  libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp3-dev libboost1.83-dev
  ngtcp2-client ngtcp2-server
)
# Real peers and tools used by the tests, the demo and the benchmarks.
peer_pkgs=(
  chromium curl openssl gnutls-bin procps psmisc coreutils libnss3-tools
  nghttp2-client wrk nginx-light openssh-server openssh-client iperf3
  python3-grpcio redis-server redis-tools netcat-openbsd dnsmasq-base bind9-dnsutils
  nftables iproute2 conntrack  # tests/net: namespaces with loss, UDP blocking, NAT rebinding
  prometheus  # for promtool: tests/peers/metrics.sh checks /metrics with `promtool check metrics`
)
# Minimum versions that only backports has (bookworm itself ships older ngtcp2/nghttp3).
declare -A min_version=(
  [libngtcp2-dev]=1.11.0 [libngtcp2-crypto-gnutls-dev]=1.11.0 [libnghttp3-dev]=1.8.0
)

# Prints the packages of "$@" that are not installed (or too old).
missing() {
  local p status version
  for p in "$@"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    if [ "${status:0:2}" != "ii" ]; then echo "$p"; continue; fi
    if [ -n "${min_version[$p]:-}" ]; then
      version=$(dpkg-query -W -f='${Version}' "$p")
      dpkg --compare-versions "$version" ge "${min_version[$p]}" || echo "$p"
    fi
  done
}

mapfile -t need_base < <(missing "${base_pkgs[@]}" "${peer_pkgs[@]}")
mapfile -t need_bpo < <(missing "${bpo_pkgs[@]}")
# Node.js: the image may ship NodeSource's build (with npm bundled); Debian's nodejs/npm conflict with it.
need_node=()
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then need_node=(nodejs npm); fi

if [ ${#need_base[@]} -gt 0 ] || [ ${#need_bpo[@]} -gt 0 ] || [ ${#need_node[@]} -gt 0 ]; then
  echo "setup: installing: ${need_base[*]} ${need_bpo[*]} ${need_node[*]}"
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    $SUDO tee /etc/apt/sources.list.d/wtmesh-backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  quiet $SUDO apt-get update -qq
  if [ ${#need_base[@]} -gt 0 ] || [ ${#need_node[@]} -gt 0 ]; then
    quiet $SUDO apt-get install -y -qq --no-install-recommends "${need_base[@]}" "${need_node[@]}"
  fi
  if [ ${#need_bpo[@]} -gt 0 ]; then
    quiet $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports "${need_bpo[@]}"
  fi
fi

# Node packages for the browser test: playwright-core drives Debian's chromium (never downloads a browser).
if [ ! -d "$here/tests/browser/node_modules/playwright-core" ]; then
  echo "setup: npm packages for tests/browser"
  if [ -f "$here/tests/browser/package-lock.json" ]; then
    (cd "$here/tests/browser" && quiet npm ci --no-audit --no-fund --loglevel=error)
  else
    (cd "$here/tests/browser" && quiet npm install --no-audit --no-fund --loglevel=error)
  fi
fi
# Node packages for the peer tests (tests/peers/websocket_h1.sh: ws; websocket_vite.sh: vite).
if [ ! -d "$here/tests/peers/node_modules/ws" ] || [ ! -d "$here/tests/peers/node_modules/vite" ]; then
  echo "setup: npm packages for tests/peers"
  if [ -f "$here/tests/peers/package-lock.json" ]; then
    (cd "$here/tests/peers" && quiet npm ci --no-audit --no-fund --loglevel=error)
  else
    (cd "$here/tests/peers" && quiet npm install --no-audit --no-fund --loglevel=error)
  fi
fi
echo "setup: done"
