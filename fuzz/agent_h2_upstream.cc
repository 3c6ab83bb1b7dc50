// Fuzzes the agent's HTTP/2 client toward the local service (H2UpstreamSession on nghttp2, then the
// H2Codec): arbitrary upstream bytes, in fragments the input chooses, after three requests were
// opened (one with a body). Invariants: received bytes per stream stay within our stream window,
// held output within max_output, the streams within our cap; a head taken encodes for the tunnel and
// the codec decodes it; nothing crashes or leaks (ASan).
//
// Input: byte 0 = fragment size (1..64), byte 1 = options (bit 0: consume what arrives, bit 1: small
// limits), then the upstream's bytes (EOF after the last).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "agent/h2_codec.h"
#include "agent/h2_upstream_session.h"
#include "tunnel/wire.h"

namespace {

[[noreturn]] void broken(int line) {
  std::fprintf(stderr, "%s:%d: invariant broken\n", __FILE__, line);
  std::abort();
}

using wtmesh::agent::H2Codec;
using wtmesh::agent::H2UpstreamLimits;
using wtmesh::agent::H2UpstreamSession;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t frag = 1 + data[0] % 64;
  const bool consume = data[1] & 1;
  H2UpstreamLimits limits;
  if (data[1] & 2) {
    limits.stream_window = 1024;
    limits.connection_window = 4096;
    limits.max_header_bytes = 256;
    limits.max_output = 512;
    limits.max_streams = 2;
  }
  H2UpstreamSession s(limits);
  const wtmesh::tunnel::HeaderPairs get = {
      {":method", "GET"}, {":scheme", "http"}, {":authority", "a.test"}, {":path", "/"}};
  std::vector<int32_t> ids;
  for (int i = 0; i < 3; ++i) {
    if (!s.can_open()) break;
    const int32_t id = s.open(get, i != 1, nullptr);
    if (id > 0) ids.push_back(id);
  }
  if (ids.size() > 1) s.send(ids[1], std::span<const uint8_t>(data, 2), true);
  std::vector<H2Codec> codecs(ids.size());
  for (auto& c : codecs)
    c.start_request(wtmesh::tunnel::RequestHead{.method = "GET", .target = "/"}, nullptr);
  std::span<const uint8_t> in(data + 2, size - 2);
  while (!in.empty()) {
    const auto out = s.output();
    if (out.size() > limits.max_output + 16 * 1024 + 64) broken(__LINE__);  // one frame past the cap at most
    s.consume_output(out.size());
    const size_t n = std::min(frag, in.size());
    s.feed(in.first(n));
    in = in.subspan(n);
    if (s.open_streams() > limits.max_streams) broken(__LINE__);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (s.received(ids[i]).size() > static_cast<size_t>(limits.stream_window)) broken(__LINE__);
      if (auto h = s.take_head(ids[i])) {
        wtmesh::tunnel::ResponseHead rh{
            .status = h->status, .has_body = !h->end_stream, .headers = h->headers};
        codecs[i].put_input(wtmesh::tunnel::encode_response_head(rh));
        std::vector<uint8_t> body;
        const auto st = codecs[i].decode(body, 1024);
        if (st != H2Codec::Status::kHead && st != H2Codec::Status::kError) broken(__LINE__);
      }
      if (consume) s.consume(ids[i], s.received(ids[i]).size());
      (void)s.failure(ids[i]);
    }
    (void)s.take_changed();
  }
  s.feed_eof();
  for (int32_t id : ids) s.forget(id);
  return 0;
}
