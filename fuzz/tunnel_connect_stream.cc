// Fuzzes the connect-stream head reader and the connect reply reader (docs/protocol.md §4.3) in
// fragments the input chooses: they never claim more bytes than given, a head or reply they accept
// encodes back to the same value, and the whole input decoded at once never crashes.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tunnel/connect_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wtmesh::tunnel;
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 32;
  std::span<const uint8_t> in(data + 1, size - 1);
  ConnectHeadReader heads;
  ConnectReplyReader replies;
  bool head_done = false, reply_done = false;
  for (size_t off = 0; off < in.size() && !(head_done && reply_done);) {
    auto chunk = in.subspan(off, std::min(step, in.size() - off));
    size_t used_head = chunk.size(), used_reply = chunk.size();
    if (!head_done) {
      ConnectHead head;
      const WireError e = heads.feed(chunk, used_head, head);
      if (used_head > chunk.size()) __builtin_trap();
      if (e == WireError::kNone) {
        const std::vector<uint8_t> wire = encode_connect_stream_head(head);
        ConnectHeadReader again;
        ConnectHead back;
        size_t u = 0;
        if (again.feed(std::span<const uint8_t>(wire).subspan(1), u, back) != WireError::kNone || !(back == head))
          __builtin_trap();
      }
      head_done = e != WireError::kNeedMore;
    }
    if (!reply_done) {
      ConnectReply reply;
      const WireError e = replies.feed(chunk, used_reply, reply);
      if (used_reply > chunk.size()) __builtin_trap();
      if (e == WireError::kNone) {
        if (reply.message.size() > kMaxConnectMessage) __builtin_trap();
        reply_done = true;
      } else if (e != WireError::kNeedMore) {
        reply_done = true;
      }
    }
    off += chunk.size();
  }
  ConnectHead h;
  decode_connect_head(in, h);
  return 0;
}
