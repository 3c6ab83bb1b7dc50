// How much a relay asks of its next socket read: `first` bytes, doubled each time a read comes back
// with everything it asked for (the sender is ahead of us: a bulk transfer), up to `most`. Larger
// reads mean fewer reads and fewer part-filled QUIC trains per byte (a 64 KiB read left as one full
// 64 KiB train and a ~1.6 KiB one; bench/README.md, "Bulk: the relay's buffers"), while a connection
// that trickles keeps the small size and its small buffer.
#pragma once

#include <algorithm>
#include <cstddef>

namespace wtmesh {

class ReadSize {
 public:
  ReadSize(size_t first, size_t most) : size_(first), most_(std::max(first, most)) {}

  size_t get() const { return size_; }
  size_t most() const { return most_; }
  // A read asked for `asked` bytes and got `got`.
  void after_read(size_t asked, size_t got) {
    if (got == asked && got > 0 && size_ < most_) size_ = std::min(size_ * 2, most_);
  }

 private:
  size_t size_;
  size_t most_;
};

}  // namespace wtmesh
