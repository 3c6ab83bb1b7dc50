#include "tunnel/tcp_relay.h"

#include <utility>

namespace wtmesh::tunnel {

void TcpRelay::up_taken(size_t n) {
  up_pos_ += n;
  if (up_pos_ < up_.size()) return;
  up_.clear();
  up_pos_ = 0;
}

std::span<uint8_t> TcpRelay::start_read() {
  reading_ = true;
  up_.resize(read_chunk_);
  up_pos_ = 0;
  return up_;
}

void TcpRelay::read_done(size_t n, bool eof) {
  reading_ = false;
  up_.resize(eof ? 0 : n);
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
