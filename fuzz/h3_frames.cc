// libFuzzer target: the HTTP/3 frame reader (request and control classifiers), fed in random splits.
#include <cstddef>
#include <cstdint>
#include <span>

#include "h3/frames.h"

using namespace wtmesh::h3;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // First byte: classifier and split size; the rest is stream bytes.
  const uint8_t ctl = data[0];
  const std::span<const uint8_t> in(data + 1, size - 1);
  FrameClassifier cls = (ctl & 3) == 0   ? classify_request_frame
                        : (ctl & 3) == 1 ? classify_control_frame
                                         : classify_first_control_frame;
  FrameReader reader(cls, 1 + (ctl >> 2) * 64);
  const size_t split = 1 + (ctl >> 4);
  size_t whole_bytes = 0;
  for (size_t off = 0; off < in.size();) {
    const size_t n = std::min(split, in.size() - off);
    const auto piece = in.subspan(off, n);
    off += n;
    size_t pos = 0;
    while (true) {
      size_t used = 0;
      const FrameEvent ev = reader.next(piece.subspan(pos), used);
      pos += used;
      if (pos > piece.size()) __builtin_trap();
      if (ev.kind == FrameEvent::Kind::kNeedMore) break;
      if (ev.kind == FrameEvent::Kind::kError) return 0;
      if (ev.kind == FrameEvent::Kind::kFrame) {
        whole_bytes += ev.payload.size();
        if (ev.payload.size() > 1 + static_cast<size_t>(ctl >> 2) * 64) __builtin_trap();  // the cap holds
        if (ev.type == kFrameGoaway) (void)parse_varint_payload(ev.payload);
      }
    }
    if (pos != piece.size()) __builtin_trap();
  }
  (void)whole_bytes;
  (void)reader.at_frame_boundary();
  return 0;
}
