// Fuzzes the edge's public HTTP/2 side: the client's frames (nghttp2's framing and HPACK behind
// H2Connection, then our request building, body flow control and response writing), fed in fragments
// the input chooses, against a scripted tunnel directory. Invariants: request bodies waiting here stay
// within the flow-control windows; the output for the client stays within its cap plus one write;
// each request head written to a stream decodes; a finished connection takes no more bytes.
//
// Input: byte 0 = fragment size (1..64), byte 1 = mode (bit 0: the host has a tunnel, bit 1: the
// agent answers each complete request with 200, bit 2: the client stops reading, bit 3: the agent
// answers WebSocket handshakes (an extended CONNECT, RFC 8441) with 101 and echoes the raw bytes,
// bit 4: with a wrong Sec-WebSocket-Accept), then the client's bytes (the seeds start with the
// connection preface).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <span>
#include <vector>

#include "../tests/unit/edge/fakes.h"
#include "edge/h2_connection.h"
#include "tunnel/wire.h"

namespace {

[[noreturn]] void broken(int line) {
  std::fprintf(stderr, "%s:%d: invariant broken\n", __FILE__, line);
  std::abort();
}

using namespace wtmesh;
using edge::test::FakeDirectory;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2 || size > 256 * 1024) return 0;
  const size_t step = 1 + data[0] % 64;
  const bool found = data[1] & 1;
  const bool answer = data[1] & 2;
  const bool reads = (data[1] & 4) == 0;
  const bool upgrades = data[1] & 8;
  const bool bad_accept = data[1] & 16;
  std::span<const uint8_t> in(data + 2, size - 2);

  edge::test::FakeClock clock;
  FakeDirectory dir;
  if (found) dir.add_route("app.localhost");
  edge::H2Config cfg;
  cfg.exchange.client = {"192.0.2.1", true};
  cfg.exchange.clock = clock.fn();
  edge::H2Connection conn(dir, cfg, {});
  std::vector<wt::StreamId> answered;
  std::map<wt::StreamId, edge::test::UpgradeEcho> echoes;
  std::vector<uint8_t> pending;
  for (size_t off = 0; off < in.size() && !conn.finished(); off += step) {
    const auto chunk = in.subspan(off, std::min(step, in.size() - off));
    pending.insert(pending.end(), chunk.begin(), chunk.end());
    const size_t n = conn.on_client_bytes(pending);
    if (n > pending.size()) broken(__LINE__);
    pending.erase(pending.begin(), pending.begin() + static_cast<ptrdiff_t>(n));
    if (conn.buffered_input() >
        cfg.exchange.limits.h2_connection_window + 65'535 + cfg.exchange.limits.body_chunk)
      broken(__LINE__);
    if (answer) edge::test::answer_complete_requests(dir, answered);
    if (upgrades) edge::test::answer_upgrades(dir, echoes, bad_accept);
    // One socket write's worth (16 KiB) over the cap at most: frames are appended whole.
    if (conn.buffered_output() > cfg.exchange.limits.max_pending_output + 17 * 1024) broken(__LINE__);
    if (reads) {
      for (auto out = conn.client_output(); !out.empty(); out = conn.client_output())
        conn.on_client_written(out.size());
    }
  }
  if (conn.finished() && conn.on_client_bytes(in) != in.size()) broken(__LINE__);
  for (auto& [id, s] : dir.streams) {
    if (s.written.empty()) continue;
    tunnel::HeadReader<tunnel::RequestHead> reader;
    tunnel::RequestHead head;
    const auto err = reader.feed(s.written, head);
    if (err != tunnel::WireError::kNone && err != tunnel::WireError::kNeedMore) broken(__LINE__);
  }
  return 0;
}
