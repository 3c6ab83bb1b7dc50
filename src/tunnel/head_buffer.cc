#include "tunnel/head_buffer.h"

#include <algorithm>

#include "common/varint.h"

namespace wtmesh::tunnel {

WireError HeadBuffer::feed(std::span<const uint8_t> data, size_t& used) {
  used = 0;
  while (length_ == 0) {
    if (used == data.size()) return WireError::kNeedMore;
    buf_.push_back(data[used++]);
    const auto len = read_varint(buf_);
    if (!len) continue;  // at most 8 bytes: a varint's longest form
    if (len->value == 0) return WireError::kMalformed;
    if (len->value > max_) return WireError::kTooLarge;
    length_ = static_cast<size_t>(len->value);
    buf_.clear();
  }
  const size_t take = std::min(length_ - buf_.size(), data.size() - used);
  buf_.insert(buf_.end(), data.begin() + static_cast<ptrdiff_t>(used),
              data.begin() + static_cast<ptrdiff_t>(used + take));
  used += take;
  return buf_.size() < length_ ? WireError::kNeedMore : WireError::kNone;
}

}  // namespace wtmesh::tunnel
