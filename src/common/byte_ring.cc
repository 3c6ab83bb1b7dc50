#include "common/byte_ring.h"

#include <algorithm>
#include <cstring>

namespace wtmesh {

namespace {
constexpr size_t kMinCapacity = 4096;
}

void ByteRing::grow(size_t need) {
  size_t cap = std::max(cap_, kMinCapacity);
  while (cap < need) cap *= 2;  // need > cap_ (append's check), so this always grows
  std::unique_ptr<uint8_t[]> next(new uint8_t[cap]);
  const size_t first = std::min(size_, cap_ - head_);
  if (first > 0) std::memcpy(next.get(), buf_.get() + head_, first);
  if (size_ > first) std::memcpy(next.get() + first, buf_.get(), size_ - first);
  buf_ = std::move(next);
  cap_ = cap;
  head_ = 0;
}

void ByteRing::append(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return;
  if (size_ + bytes.size() > cap_) grow(size_ + bytes.size());
  size_t tail = head_ + size_;
  if (tail >= cap_) tail -= cap_;
  const size_t first = std::min(bytes.size(), cap_ - tail);
  std::memcpy(buf_.get() + tail, bytes.data(), first);
  if (bytes.size() > first) std::memcpy(buf_.get(), bytes.data() + first, bytes.size() - first);
  size_ += bytes.size();
}

std::span<const uint8_t> ByteRing::front() const {
  if (size_ == 0) return {};
  return {buf_.get() + head_, std::min(size_, cap_ - head_)};
}

void ByteRing::consume(size_t n) {
  n = std::min(n, size_);
  size_ -= n;
  head_ += n;
  if (head_ >= cap_) head_ -= cap_;
  if (size_ == 0) head_ = 0;  // the next append starts at the beginning: one run for as long as possible
}

void ByteRing::clear() {
  size_ = 0;
  head_ = 0;
  release_if_empty();
}

void ByteRing::release_if_empty() {
  if (size_ == 0 && cap_ > keep_) {
    buf_.reset();
    cap_ = 0;
  }
}

}  // namespace wtmesh
