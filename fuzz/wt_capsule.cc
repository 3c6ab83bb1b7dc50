// libFuzzer target for the WebTransport capsule parser (wt/capsule.h): arbitrary bytes, split into
// fragments at fuzzer-chosen points; checks the bounds and that re-serialized capsules parse back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "wt/capsule.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wtmesh::wt;
  if (size == 0) return 0;
  CapsuleLimits limits;
  limits.max_datagram = 2048;
  limits.max_http2_only = 1024;
  CapsuleParser parser(limits);
  std::vector<Capsule> out;
  // First byte picks the fragment size, so both bytewise and bulk feeding get explored.
  const size_t step = 1 + data[0] % 64;
  std::span<const uint8_t> rest(data + 1, size - 1);
  while (!rest.empty()) {
    const size_t n = rest.size() < step ? rest.size() : step;
    if (parser.feed(rest.first(n), out) != CapsuleError::kNone) break;
    if (parser.buffered_bytes() > 4 + kMaxCloseMessage + 2048 + 16) std::abort();
    rest = rest.subspan(n);
  }
  parser.finish();
  // Whatever parsed must survive a round trip unchanged.
  std::vector<uint8_t> wire;
  for (const Capsule& c : out) serialize_capsule(c, wire);
  CapsuleParser again(limits);
  std::vector<Capsule> out2;
  if (again.feed(wire, out2) != CapsuleError::kNone || out2 != out || again.finish() != CapsuleError::kNone) {
    std::abort();
  }
  return 0;
}
