// Fuzzes the WebTransport relay's openings (docs/protocol.md §7): the session stream's relay id +
// request head and a relayed stream's relay id + flags, fed in fragments the input chooses.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tunnel/wt_relay_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wtmesh::tunnel;
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 64;
  std::span<const uint8_t> in(data + 1, size - 1);
  WtSessionOpenReader session;
  WtStreamOpenReader stream;
  WtSessionOpen so;
  WtStreamOpen st;
  WireError se = WireError::kNeedMore, te = WireError::kNeedMore;
  size_t taken = 0;
  for (size_t off = 0; off < in.size(); off += step) {
    auto chunk = in.subspan(off, std::min(step, in.size() - off));
    if (se == WireError::kNeedMore) se = session.feed(chunk, so);
    if (te == WireError::kNeedMore) {
      size_t used = 0;
      te = stream.feed(chunk, st, &used);
      taken += used;
      if (used > chunk.size() || taken > 16) __builtin_trap();  // two varints at most
    }
  }
  if (se == WireError::kNone && (so.relay_id == 0 || so.relay_id > kMaxRelayId)) __builtin_trap();
  if (te == WireError::kNone && (st.relay_id == 0 || st.relay_id > kMaxRelayId)) __builtin_trap();
  size_t used = 0;
  decode_wt_session_open(in, so, &used);
  decode_wt_stream_open(in, st, &used);
  return 0;
}
