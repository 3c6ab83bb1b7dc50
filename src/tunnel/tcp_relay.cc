#include "tunnel/tcp_relay.h"

#include <cstring>
#include <utility>

namespace wtmesh::tunnel {

void TcpRelay::reserve_up(size_t n) {
  if (up_cap_ >= n) return;
  auto bigger = std::make_unique_for_overwrite<uint8_t[]>(n);
  if (up_len_ > 0) std::memcpy(bigger.get(), up_.get(), up_len_);
  up_ = std::move(bigger);
  up_cap_ = n;
}

void TcpRelay::queue_up(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return;
  reserve_up(up_len_ + bytes.size());
  std::memcpy(up_.get() + up_len_, bytes.data(), bytes.size());
  up_len_ += bytes.size();
}

void TcpRelay::up_taken(size_t n) {
  up_pos_ += n;
  if (up_pos_ < up_len_) return;
  up_len_ = 0;
  up_pos_ = 0;
}

std::span<uint8_t> TcpRelay::start_read() {
  reading_ = true;
  up_len_ = 0;
  up_pos_ = 0;
  reserve_up(read_size_.get());
  return {up_.get(), read_size_.get()};
}

void TcpRelay::read_done(size_t n, bool eof) {
  reading_ = false;
  if (!eof) read_size_.after_read(read_size_.get(), n);
  up_len_ = eof ? 0 : n;
  up_pos_ = 0;
  if (eof) up_eof_ = true;
}

void TcpRelay::down_data(std::span<const uint8_t> data, bool fin, size_t credit) {
  in_.insert(in_.end(), data.begin(), data.end());
  in_credit_ += credit;
  if (fin) down_fin_ = true;
}

std::span<const uint8_t> TcpRelay::start_write() {
  if (writing_) return {};
  if (out_.empty()) {
    std::swap(out_, in_);
    out_credit_ = std::exchange(in_credit_, 0);
  }
  writing_ = !out_.empty();
  return out_;
}

size_t TcpRelay::write_done() {
  writing_ = false;
  out_.clear();
  return std::exchange(out_credit_, 0);
}

}  // namespace wtmesh::tunnel
