// A FIFO of bytes in one growable circular buffer: appends at the back, reads from the front,
// and no byte is ever moved to close the gap that consuming leaves (a vector that erases its front
// copies what is left each time, which on a relay that never drains is one more copy of every byte).
//
// The readable bytes are at most two runs; front() is the first. Growing re-linearises into a
// buffer twice as large, so appends are amortised O(1). The ring does not cap itself: its owner
// bounds what it appends (e.g. by flow-control credit). A buffer larger than `keep_capacity` is
// released by clear() or release_if_empty(), which an owner calls at a quiet point (a response
// done), so an idle owner does not hold on to a burst's memory. Draining does not release it: a
// relay's buffer empties and refills all the time, and growing it again each time would copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace wtmesh {

class ByteRing {
 public:
  static constexpr size_t kDefaultKeep = size_t{256} * 1024;

  explicit ByteRing(size_t keep_capacity = kDefaultKeep) : keep_(keep_capacity) {}
  ByteRing(const ByteRing&) = delete;
  ByteRing& operator=(const ByteRing&) = delete;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return cap_; }

  void append(std::span<const uint8_t> bytes);
  // The first contiguous run of readable bytes: all of them unless they wrap around the end.
  std::span<const uint8_t> front() const;
  // Drops the first `n` readable bytes (at most size()).
  void consume(size_t n);
  // Empties the ring; releases the buffer if it is larger than keep_capacity.
  void clear();
  void release_if_empty();

 private:
  void grow(size_t need);

  std::unique_ptr<uint8_t[]> buf_;
  size_t cap_ = 0;
  size_t head_ = 0;  // index of the first readable byte
  size_t size_ = 0;
  size_t keep_;
};

}  // namespace wtmesh
