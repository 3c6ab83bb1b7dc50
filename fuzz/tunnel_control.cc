// Fuzzes the typed control messages (tunnel/control.h): the input is a control stream, split into
// frames by ControlReader as the edge and agent do; every frame is decoded, and every message that
// decodes must encode to a bounded frame that decodes to the same message. The input is also decoded
// as one raw payload (skipping the framing), as a datagram, and as a stream kind.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tunnel/control.h"
#include "tunnel/registry.h"
#include "tunnel/wire.h"

namespace {

using namespace wtmesh::tunnel;

void check(const ControlFrame& frame) {
  const ControlDecode d = decode(frame);
  if (!d) {
    if (d.describe().empty()) __builtin_trap();
    return;
  }
  const std::vector<uint8_t> wire = encode(d.message());
  ControlReader reader;
  std::vector<ControlFrame> again;
  if (reader.feed(wire, again) != WireError::kNone || again.size() != 1) __builtin_trap();
  if (again[0].payload.size() > kMaxControlPayload) __builtin_trap();
  const ControlDecode back = decode(again[0]);
  if (!back || encode(back.message()) != wire) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::span<const uint8_t> in(data + 1, size - 1);
  // The raw payload of a frame of type 1..7 (7: one v1 does not define).
  check(ControlFrame{1 + data[0] % 7u, std::string(reinterpret_cast<const char*>(in.data()), in.size())});

  ControlReader reader;
  std::vector<ControlFrame> frames;
  const size_t step = 1 + data[0] % 64;
  for (size_t off = 0; off < in.size(); off += step) {
    if (reader.feed(in.subspan(off, std::min(step, in.size() - off)), frames) != WireError::kNone) break;
  }
  for (const auto& f : frames) check(f);

  if (auto d = decode_datagram(in)) {
    if (d->payload.size() >= in.size() && !in.empty()) __builtin_trap();
  }
  StreamKindReader kind;
  const size_t used = kind.feed(in);
  if (used > 8 || (kind.kind().has_value() != (used > 0 && used == (size_t{1} << (in[0] >> 6))))) {
    __builtin_trap();
  }
  return 0;
}
