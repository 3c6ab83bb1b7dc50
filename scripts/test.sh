#!/usr/bin/env bash
# The test command: installs dependencies (scripts/setup.sh), builds build/ (Ninja, RelWithDebInfo) and runs
# every test with CTest: unit (tests/unit), integration (tests/integration) and real peers (tests/peers).
# Exits non-zero on any failure.
#
#   ./scripts/test.sh                  everything
#   ./scripts/test.sh -L unit          only unit tests (any extra arguments go to ctest)
#   ./scripts/test.sh -R peer_doctor   one test by name
# Env: WTMESH_SKIP_SETUP=1 skips setup.sh; WTMESH_BUILD_DIR (default build); WTMESH_BUILD_TYPE
# (default RelWithDebInfo); WTMESH_CMAKE_ARGS (extra configure arguments, split on spaces); WTMESH_JOBS
# (default 2) for the build; WTMESH_CTEST_JOBS (default 2: two tests at a time; the peer tests that load
# the machine and measure it are RUN_SERIAL in tests/CMakeLists.txt and run alone).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build_dir=${WTMESH_BUILD_DIR:-build}
jobs=${WTMESH_JOBS:-2}
read -ra cmake_args <<<"${WTMESH_CMAKE_ARGS:-}"

if [ "${WTMESH_SKIP_SETUP:-0}" != 1 ]; then
  bash scripts/setup.sh
fi

echo "test: configure $build_dir"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${WTMESH_BUILD_TYPE:-RelWithDebInfo}" \
  "${cmake_args[@]}" >/dev/null \
  || { echo "test: FAILED: cmake configure of $build_dir" >&2; exit 1; }
echo "test: build $build_dir (-j$jobs)"
cmake --build "$build_dir" -j"$jobs" || { echo "test: FAILED: build of $build_dir" >&2; exit 1; }

echo "test: ctest"
ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j"${WTMESH_CTEST_JOBS:-2}" "$@" \
  || { echo "test: FAILED: some tests failed (see above)" >&2; exit 1; }
echo "test: all tests passed"
