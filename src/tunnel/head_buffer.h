// `head_length:varint  head:head_length bytes` at the front of a stream, collected in any
// fragmentation: the shared front half of the tcp-stream (tunnel/tcp_stream.h) and connect-stream
// (tunnel/connect_stream.h) head readers, which then decode head() with their own rules.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "tunnel/wire.h"

namespace wtmesh::tunnel {

class HeadBuffer {
 public:
  explicit HeadBuffer(size_t max_length) : max_(max_length) {}
  // Takes bytes from the front of `data` (`used` says how many): kNone once head() is complete,
  // kNeedMore, kMalformed for a head_length of 0, kTooLarge past max_length. Holds at most
  // max_length + 8 bytes.
  WireError feed(std::span<const uint8_t> data, size_t& used);
  std::span<const uint8_t> head() const { return buf_; }
  // Lets go of the head's bytes once decoded.
  void release() { buf_ = {}; }
  size_t buffered_bytes() const { return buf_.size(); }

 private:
  size_t max_;
  std::vector<uint8_t> buf_;
  size_t length_ = 0;  // 0 until the length varint is read
};

}  // namespace wtmesh::tunnel
