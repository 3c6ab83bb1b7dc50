// Fuzzes the edge's public HTTP/1.1 side: request heads and bodies (Beast's request_parser behind
// Http1Connection, Host normalisation, the tunnel request head built from them), fed in fragments the
// input chooses, against a scripted tunnel directory. Invariants: the input buffer stays within its
// capacity; what reaches the agent and the client does not depend on how the bytes were split; each
// request head written to a stream decodes; each answered request head is within the tunnel limit.
//
// Input: byte 0 = fragment size (1..64), byte 1 = mode (bit 0: the host has a tunnel, bit 1: the
// agent answers each complete request with 200, bit 2: the agent answers WebSocket upgrades with 101
// and echoes the raw bytes, bit 3: with a wrong Sec-WebSocket-Accept), then the client's bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "../tests/unit/edge/fakes.h"
#include "edge/http1_connection.h"
#include "edge/http_codec.h"
#include "tunnel/wire.h"

namespace {

// An invariant does not hold: say which before libFuzzer saves the input.
[[noreturn]] void broken(int line) {
  std::fprintf(stderr, "%s:%d: invariant broken\n", __FILE__, line);
  std::abort();
}

using namespace wtmesh;
using edge::test::FakeDirectory;

struct Outcome {
  std::string client;  // everything written to the client
  std::vector<std::vector<uint8_t>> streams;
  bool finished = false;
};

Outcome run(std::span<const uint8_t> in, size_t step, bool found, bool answer, bool upgrades, bool bad_accept) {
  edge::test::FakeClock clock;
  FakeDirectory dir;
  if (found) dir.add_route("app.localhost");
  edge::Http1Config cfg;
  cfg.client = {"192.0.2.1", true};
  cfg.clock = clock.fn();
  edge::Http1Connection proxy(dir, cfg, {});
  Outcome o;
  std::vector<uint8_t> pending;
  std::vector<wt::StreamId> answered;
  std::map<wt::StreamId, edge::test::UpgradeEcho> echoes;
  auto service = [&] {
    // The agent answers a request once its body is complete (FIN), like a simple upstream.
    if (answer) edge::test::answer_complete_requests(dir, answered);
    if (upgrades) edge::test::answer_upgrades(dir, echoes, bad_accept);
    for (auto out = proxy.client_output(); !out.empty(); out = proxy.client_output()) {
      o.client.append(out.begin(), out.end());  // run by run: the output may wrap around its ring
      proxy.on_client_written(out.size());
    }
  };
  for (size_t off = 0; off < in.size() && !proxy.finished(); off += step) {
    const auto chunk = in.subspan(off, std::min(step, in.size() - off));
    pending.insert(pending.end(), chunk.begin(), chunk.end());
    const size_t n = proxy.on_client_bytes(pending);
    pending.erase(pending.begin(), pending.begin() + static_cast<ptrdiff_t>(n));
    if (proxy.buffered_input() > proxy.input_capacity() + cfg.limits.body_chunk) broken(__LINE__);
    service();
  }
  // Whatever the input buffer could not take yet.
  for (int i = 0; i < 4 && !pending.empty() && !proxy.finished(); ++i) {
    const size_t n = proxy.on_client_bytes(pending);
    pending.erase(pending.begin(), pending.begin() + static_cast<ptrdiff_t>(n));
    service();
  }
  o.finished = proxy.finished();
  for (auto& [id, s] : dir.streams) {
    // The edge always writes a decodable request head first, within the tunnel's head limit.
    if (s.written.empty()) continue;
    tunnel::HeadReader<tunnel::RequestHead> reader;
    tunnel::RequestHead head;
    const auto err = reader.feed(s.written, head);
    if (err != tunnel::WireError::kNone && err != tunnel::WireError::kNeedMore) broken(__LINE__);
    o.streams.push_back(std::move(s.written));
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2 || size > 256 * 1024) return 0;
  const size_t step = 1 + data[0] % 64;
  const bool found = data[1] & 1;
  const bool answer = data[1] & 2;
  const bool upgrades = data[1] & 4;
  const bool bad_accept = data[1] & 8;
  std::span<const uint8_t> in(data + 2, size - 2);

  const Outcome split = run(in, step, found, answer, upgrades, bad_accept);
  const Outcome whole = run(in, in.size() + 1, found, answer, upgrades, bad_accept);
  // The agent's answers (and echoes) come at points that depend on the split, so only the no-answer runs must
  // match byte for byte. One exception: Beast checks a header section's bytes as they come only
  // when they arrive in one piece (fed in fragments it waits for the blank line), so a malformed
  // head that never ends gets its 400 whole but no answer yet split: then what the split run
  // sent is a prefix of what the whole run sent, and only the whole run finished.
  if (!answer && !upgrades) {
    if (split.streams != whole.streams) broken(__LINE__);
    if (split.client != whole.client &&
        (split.finished || !whole.finished || !whole.client.starts_with(split.client)))
      broken(__LINE__);
  }

  // The stateless helpers on their own: any Host value.
  const std::string_view text(reinterpret_cast<const char*>(in.data()), std::min<size_t>(in.size(), 300));
  if (auto h = edge::normalize_host(text)) {
    if (h->empty() || h->size() > text.size()) broken(__LINE__);
    for (char c : *h) {
      if (c >= 'A' && c <= 'Z') broken(__LINE__);  // normalised to lower case
    }
  }
  const std::string clean = edge::sanitize_header_value(text, 64);
  if (clean.size() > 64 || clean.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
    broken(__LINE__);
  return 0;
}
