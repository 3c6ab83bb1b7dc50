// Fuzzes the agent's decoder of HTTP/1.1 responses from the local service (ResponseDecoder): status
// lines, header fields, 1xx interim responses, Content-Length / chunked / close-delimited bodies,
// fed in fragments the input chooses with a body slice size it chooses. Invariants: the input
// buffer and each body slice stay within their bounds; the head, body and outcome do not depend on
// how the bytes were split or sliced; a complete length-delimited body has exactly its length; the
// head always encodes for the tunnel.
//
// Input: byte 0 = fragment size (1..64), byte 1 = options (bit 0: HEAD request, bit 1: small limits,
// bits 2..7: body slice size), then the upstream's bytes (EOF after the last).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "agent/upstream_http.h"
#include "tunnel/wire.h"

namespace {

// An invariant does not hold: say which before libFuzzer saves the input.
[[noreturn]] void broken(int line) {
  std::fprintf(stderr, "%s:%d: invariant broken\n", __FILE__, line);
  std::abort();
}

using wtmesh::agent::ResponseDecoder;
using Status = ResponseDecoder::Status;

struct Outcome {
  bool head = false;
  int interim = 0;  // 1xx heads before the final one
  int status = 0;
  wtmesh::tunnel::ResponseHead head_value;
  std::vector<uint8_t> body;
  Status end = Status::kNeedInput;
  std::string error;
  bool reusable = false;
};

Outcome run(std::span<const uint8_t> in, size_t step, bool head_request, bool small, size_t max_body) {
  ResponseDecoder::Limits limits;
  if (small) limits = {.header_limit = 512, .input_buffer = 1024, .max_informational = 2};
  const size_t input_cap = std::max(limits.input_buffer, limits.header_limit + 1);
  ResponseDecoder dec(head_request, limits);
  Outcome o;
  std::vector<uint8_t> pending;
  std::vector<uint8_t> slice;
  // Decodes until it needs input or ends; returns false once it ended.
  auto pump = [&]() -> bool {
    for (int guard = 0;; ++guard) {
      if (guard > 1'000'000) broken(__LINE__);  // no progress: a hang
      slice.clear();
      const Status s = dec.decode(slice, max_body);
      if (slice.size() > max_body) broken(__LINE__);
      o.body.insert(o.body.end(), slice.begin(), slice.end());
      if (dec.buffered_bytes() > input_cap) broken(__LINE__);
      switch (s) {
        case Status::kHead:
          if (o.head) broken(__LINE__);  // one final head per response, and nothing interim after it
          o.head_value = dec.take_head();
          if (wtmesh::tunnel::is_interim(o.head_value.status)) {  // 100, 103: before the final head
            if (dec.head_produced() || ++o.interim > limits.max_informational) broken(__LINE__);
            o.head_value = {};
            break;
          }
          o.head = true;
          o.status = dec.status();
          if (o.head_value.status < 200 || o.head_value.status > 599) broken(__LINE__);
          {
            // What the agent sends on: the edge must be able to read it back.
            const auto bytes = wtmesh::tunnel::encode_response_head(o.head_value);
            wtmesh::tunnel::HeadReader<wtmesh::tunnel::ResponseHead> reader;
            wtmesh::tunnel::ResponseHead back;
            if (reader.feed(bytes, back) != wtmesh::tunnel::WireError::kNone || back.status != o.head_value.status ||
                back.headers != o.head_value.headers)
              broken(__LINE__);
          }
          break;
        case Status::kBodyFull:
          if (slice.size() != max_body) broken(__LINE__);
          break;
        case Status::kNeedInput:
          return true;
        case Status::kDone:
        case Status::kError:
          o.end = s;
          o.error = dec.error();
          o.reusable = dec.reusable();
          return false;
      }
    }
  };
  bool live = true;
  for (size_t off = 0; off < in.size() && live; off += step) {
    const auto chunk = in.subspan(off, std::min(step, in.size() - off));
    pending.insert(pending.end(), chunk.begin(), chunk.end());
    // Like the agent: put what fits, decode, repeat while the decoder makes room.
    while (live && !pending.empty()) {
      const size_t n = std::min(pending.size(), dec.input_room());
      if (n == 0) break;
      dec.put_input(std::span<const uint8_t>(pending).first(n));
      pending.erase(pending.begin(), pending.begin() + static_cast<ptrdiff_t>(n));
      live = pump();
    }
    if (live && dec.input_room() == 0) live = pump();
  }
  if (live && pending.empty()) {
    dec.put_eof();
    live = pump();
    if (live) broken(__LINE__);  // after EOF the decoder must finish one way or the other
  }
  return o;
}

// `a` is the run fed in fragments, `b` the one fed whole.
bool same(const Outcome& a, const Outcome& b) {
  return a.head == b.head && a.status == b.status && a.head_value.headers == b.head_value.headers &&
         a.head_value.content_length == b.head_value.content_length &&
         a.head_value.has_body == b.head_value.has_body && a.body == b.body && a.end == b.end &&
         // Bytes after a complete response make the connection unusable; fed in fragments they
         // may not have arrived yet when the response completes, so only "whole reusable" binds.
         (a.reusable || !b.reusable) &&
         // Beast checks the bytes of a header section as they come only when they arrive in one
         // piece; fed in fragments it waits for the blank line. So a malformed header that never
         // ends is "malformed" whole but "closed before responding" split: both refuse it.
         (a.error == b.error || !a.head);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2 || size > 256 * 1024) return 0;
  const size_t step = 1 + data[0] % 64;
  const bool head_request = data[1] & 1;
  const bool small = data[1] & 2;
  const size_t max_body = 1 + (data[1] >> 2) * 37;
  std::span<const uint8_t> in(data + 2, size - 2);

  const Outcome split = run(in, step, head_request, small, max_body);
  const Outcome whole = run(in, in.size() + 1, head_request, small, 64 * 1024);
  if (!same(split, whole)) broken(__LINE__);
  if (split.end == Status::kDone && split.head && split.head_value.has_body && !head_request &&
      split.head_value.content_length && *split.head_value.content_length != split.body.size())
    broken(__LINE__);
  if (head_request && !split.body.empty()) broken(__LINE__);
  return 0;
}
