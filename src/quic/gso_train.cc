#include "quic/gso_train.h"

#include <algorithm>
#include <cstring>

namespace wtmesh::quic {

GsoTrain::GsoTrain(size_t capacity)
    : buf_(new uint8_t[std::min(capacity, kMaxBytes)]), capacity_(std::min(capacity, kMaxBytes)) {
  ngtcp2_path_storage_zero(&path_);
  ngtcp2_path_storage_zero(&held_path_);
}

void GsoTrain::begin(size_t limit, size_t path_max, size_t probe_max) {
  clear();
  probe_max_ = std::clamp<size_t>(probe_max, 1, capacity_);
  path_max_ = std::clamp<size_t>(path_max, 1, probe_max_);
  limit_ = std::clamp(limit, probe_max_, capacity_);
}

std::span<uint8_t> GsoTrain::next() {
  if (closed_ || held_len_ != 0) return {};
  const size_t room = limit_ - used_;
  // ngtcp2 writes a PMTUD probe only into a buffer at least as large as the probe.
  const size_t len = room >= probe_max_ ? probe_max_ : path_max_;
  if (room < len) return {};
  return {buf_.get() + used_, len};
}

GsoTrain::Added GsoTrain::add(const ngtcp2_path& path, uint32_t ecn, size_t len) {
  if (len == 0) return closed_ ? Added::kClosed : Added::kOpen;
  if (segments_ == 0) {
    ngtcp2_path_copy(&path_.path, &path);
    ecn_ = ecn;
    segment_size_ = len;
    return append(len);
  }
  // One sendmsg has one destination and one TOS byte, and GSO cuts equal segments: a packet for
  // another path, with another mark, or longer than the segment size starts the next train.
  if (!ngtcp2_path_eq(&path_.path, &path) || ecn != ecn_ || len > segment_size_) {
    held_len_ = len;
    ngtcp2_path_copy(&held_path_.path, &path);
    held_ecn_ = ecn;
    closed_ = true;
    return Added::kSplit;
  }
  return append(len);
}

GsoTrain::Added GsoTrain::append(size_t len) {
  used_ += len;
  ++segments_;
  const bool probe = segments_ == 1 && len > path_max_;
  if (probe || len < segment_size_ || segments_ >= kMaxSegments || limit_ - used_ < path_max_) closed_ = true;
  return closed_ ? Added::kClosed : Added::kOpen;
}

GsoTrain::Added GsoTrain::carry_over() {
  const size_t len = held_len_;
  if (len == 0) {
    clear();
    return Added::kOpen;
  }
  std::memmove(buf_.get(), buf_.get() + used_, len);
  used_ = 0;
  segments_ = 0;
  segment_size_ = 0;
  closed_ = false;
  held_len_ = 0;
  return add(held_path_.path, held_ecn_, len);
}

void GsoTrain::clear() {
  used_ = 0;
  segments_ = 0;
  segment_size_ = 0;
  closed_ = false;
  held_len_ = 0;
}

}  // namespace wtmesh::quic
