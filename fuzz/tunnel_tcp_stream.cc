// Fuzzes the tcp-stream head reader (docs/protocol.md §4.2) in fragments the input chooses: it stays
// within its buffer cap, never claims more bytes than it was given, and a head it accepts encodes back
// to the same bytes' meaning.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tunnel/tcp_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wtmesh::tunnel;
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 32;
  std::span<const uint8_t> in(data + 1, size - 1);
  TcpHeadReader reader;
  TcpStreamHead head;
  for (size_t off = 0; off < in.size();) {
    auto chunk = in.subspan(off, std::min(step, in.size() - off));
    size_t used = 0;
    const WireError e = reader.feed(chunk, used, head);
    if (used > chunk.size()) __builtin_trap();
    if (reader.buffered_bytes() > kMaxTcpHeadLength + 8) __builtin_trap();
    if (e == WireError::kNone) {
      TcpStreamHead again;
      const std::vector<uint8_t> wire = encode_tcp_stream_head(head);
      size_t u = 0;
      TcpHeadReader r2;
      if (r2.feed(std::span<const uint8_t>(wire).subspan(1), u, again) != WireError::kNone ||
          !(again == head))
        __builtin_trap();
      proxy_v2_header(head.client, head.server);
      break;
    }
    if (e != WireError::kNeedMore) break;
    off += used;
  }
  TcpStreamHead h;
  decode_tcp_head(in, h);
  return 0;
}
