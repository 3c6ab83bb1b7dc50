// A stream's outgoing bytes, kept until the peer acknowledges them (ngtcp2 requires the data it
// was handed to stay valid until acked). Bounded: `cap` covers unacked + unsent bytes, and that cap
// is the backpressure a writer sees.
//
// Bytes live in fixed-capacity chunks that never reallocate, so pointers handed to ngtcp2 stay
// valid while later writes append. An empty buffer owns no memory: every open stream of every
// connection has one (an idle agent session holds eight; bench/idle.sh), and a std::deque would
// allocate ~600 bytes for each up front.
#pragma once

#include <ngtcp2/ngtcp2.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace wtmesh::quic {

class SendBuffer {
 public:
  static constexpr size_t kChunkSize = 16 * 1024;

  explicit SendBuffer(size_t cap = 1 << 20) : cap_(cap) {}

  // Appends as much of `data` as the cap allows; returns the count taken. `fin` is recorded only
  // when all of `data` was taken.
  size_t append(std::span<const uint8_t> data, bool fin);
  size_t capacity_left() const { return cap_ - static_cast<size_t>(end_ - acked_); }

  // Unsent bytes as iovecs (at most `max` entries) starting at the send cursor.
  size_t unsent(ngtcp2_vec* out, size_t max) const;
  bool has_unsent() const { return sent_ < end_ || (fin_ && !fin_sent_); }
  bool fin_pending() const { return fin_ && !fin_sent_; }
  // Moves the send cursor forward by `n` bytes handed to ngtcp2 (and marks FIN sent if `fin`).
  void mark_sent(size_t n, bool fin);
  // The peer acknowledged [offset, offset+len). ngtcp2 reports acks in order from the front.
  void ack(uint64_t offset, uint64_t len);
  bool fin_queued() const { return fin_; }
  bool fin_sent() const { return fin_sent_; }
  bool all_acked() const { return acked_ == end_; }
  uint64_t unacked_bytes() const { return end_ - acked_; }
  uint64_t sent_offset() const { return sent_; }
  uint64_t end_offset() const { return end_; }
  // Heap bytes held (chunks and their index): 0 for a buffer with nothing unacked.
  size_t memory() const { return chunks_.size() * kChunkSize + chunks_.capacity() * sizeof(Chunk); }

 private:
  struct Chunk {
    std::unique_ptr<uint8_t[]> data{new uint8_t[kChunkSize]};
    size_t used = 0;
  };
  size_t cap_;
  std::vector<Chunk> chunks_;  // at most cap / kChunkSize + 1; acked ones leave from the front
  uint64_t acked_ = 0;  // stream offset of chunks_.front().data[0] + head_skip_
  size_t head_skip_ = 0;  // bytes of the front chunk already acked
  uint64_t sent_ = 0;
  uint64_t end_ = 0;
  bool fin_ = false;
  bool fin_sent_ = false;
};

}  // namespace wtmesh::quic
