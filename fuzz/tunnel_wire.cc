// Fuzzes the tunnel protocol's readers: control frames, request/response heads and framed bodies, fed in
// fragments the input chooses.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tunnel/framed_body.h"
#include "tunnel/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wtmesh::tunnel;
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 64;
  std::span<const uint8_t> in(data + 1, size - 1);
  ControlReader control;
  std::vector<ControlFrame> frames;
  HeadReader<RequestHead> request;
  HeadReader<ResponseHead> response;
  RequestHead rq;
  ResponseHead rs;
  FramedBodyReader framed;
  std::vector<std::span<const uint8_t>> pieces;
  for (size_t off = 0; off < in.size(); off += step) {
    auto chunk = in.subspan(off, std::min(step, in.size() - off));
    control.feed(chunk, frames);
    request.feed(chunk, rq);
    response.feed(chunk, rs);
    pieces.clear();
    framed.feed(chunk, pieces);
    for (auto p : pieces) {
      if (p.data() < chunk.data() || p.data() + p.size() > chunk.data() + chunk.size()) __builtin_trap();
    }
    if (framed.buffered_bytes() > kMaxTrailerLength) __builtin_trap();
    if (control.buffered_bytes() > kMaxControlPayload + 16) __builtin_trap();
  }
  decode_request_head(in, rq);
  decode_response_head(in, rs);
  return 0;
}
