#include "quic/send_buffer.h"

#include <algorithm>
#include <cstring>

namespace wtmesh::quic {

size_t SendBuffer::append(std::span<const uint8_t> data, bool fin) {
  if (fin_) return 0;  // nothing may follow a FIN
  const size_t take = std::min(data.size(), capacity_left());
  size_t done = 0;
  while (done < take) {
    if (chunks_.empty() || chunks_.back().used == kChunkSize) chunks_.emplace_back();
    Chunk& c = chunks_.back();
    const size_t n = std::min(take - done, kChunkSize - c.used);
    std::memcpy(c.data.get() + c.used, data.data() + done, n);
    c.used += n;
    done += n;
  }
  end_ += take;
  if (fin && take == data.size()) fin_ = true;
  return take;
}

size_t SendBuffer::unsent(ngtcp2_vec* out, size_t max) const {
  if (sent_ >= end_ || max == 0) return 0;
  // Every chunk but the last is full, so the chunk holding the send cursor is found by division
  // instead of a walk from the acked front (this runs once per packet).
  const uint64_t front = acked_ - head_skip_;  // stream offset of chunks_.front().data[0]
  const uint64_t pos = std::max(sent_, front) - front;
  size_t i = static_cast<size_t>(pos / kChunkSize);
  size_t from = static_cast<size_t>(pos % kChunkSize);
  size_t count = 0;
  for (; i < chunks_.size() && count < max; ++i, from = 0) {
    const Chunk& c = chunks_[i];
    if (c.used > from) {
      out[count].base = c.data.get() + from;
      out[count].len = c.used - from;
      ++count;
    }
  }
  return count;
}

void SendBuffer::mark_sent(size_t n, bool fin) {
  sent_ = std::min<uint64_t>(sent_ + n, end_);
  if (fin && fin_ && sent_ == end_) fin_sent_ = true;
}

void SendBuffer::ack(uint64_t offset, uint64_t len) {
  const uint64_t upto = std::min(offset + len, end_);
  if (upto <= acked_) return;
  uint64_t n = upto - acked_;
  acked_ = upto;
  size_t done = 0;  // chunks fully acked
  while (n > 0 && done < chunks_.size()) {
    const Chunk& c = chunks_[done];
    const size_t avail = c.used - head_skip_;
    if (n < avail) {
      head_skip_ += static_cast<size_t>(n);
      break;
    }
    // Fully acked: dropped below. A later append starts a fresh chunk at end_, which equals acked_ then.
    n -= avail;
    ++done;
    head_skip_ = 0;
  }
  chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<std::ptrdiff_t>(done));
  if (chunks_.empty()) chunks_.shrink_to_fit();  // an idle stream keeps nothing
}

}  // namespace wtmesh::quic
