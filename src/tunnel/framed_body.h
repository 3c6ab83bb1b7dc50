// Framed bodies (docs/protocol.md §4.1, feature `trailers`): a response whose head has the `framed`
// flag carries its body as chunks and ends it with a trailer section, so trailers (gRPC's
// `grpc-status`) cross the tunnel:
//
//   framed_body = *( length:varint(>= 1)  data:length bytes )  0x00  trailer_length:varint  trailer_section
//   trailer_section = header_count:varint (name:string value:string) * header_count
//
// trailer_length is at most kMaxTrailerLength and header_count at most kMaxHeaderCount; the stream's
// FIN follows the trailer section, and any byte after it is a protocol error. Sans-I/O and bounded:
// chunk data is never buffered (the reader hands out spans into its input), only a length varint or
// the trailer section is.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tunnel/wire.h"

namespace wtmesh::tunnel {

// Appends one chunk (nothing for empty `data`).
void append_body_chunk(std::vector<uint8_t>& out, std::span<const uint8_t> data);
// Appends the end of a framed body with `trailers` (may be empty); false (nothing appended) when the
// trailer section is over kMaxTrailerLength or kMaxHeaderCount.
bool append_body_end(std::vector<uint8_t>& out, const HeaderPairs& trailers);

class FramedBodyReader {
 public:
  // Consumes all of `in`, appending the chunk data it carries to `data` as spans into `in`. kNone, or
  // a protocol error after which the reader stays failed.
  WireError feed(std::span<const uint8_t> in, std::vector<std::span<const uint8_t>>& data);
  // The end chunk and the trailer section were read.
  bool done() const { return state_ == State::kDone; }
  HeaderPairs take_trailers() { return std::move(trailers_); }
  size_t buffered_bytes() const { return buf_.size(); }

 private:
  enum class State { kLength, kData, kTrailerLength, kTrailers, kDone };
  State state_ = State::kLength;
  std::vector<uint8_t> buf_;  // a partial varint (<= 8 bytes) or the trailer section
  uint64_t remaining_ = 0;
  HeaderPairs trailers_;
  WireError error_ = WireError::kNone;
};

}  // namespace wtmesh::tunnel
