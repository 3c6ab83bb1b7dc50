// One direction of a relayed stream (docs/protocol.md §7): bytes a source delivered that the sink has
// not taken yet, and the source's FIN. Credit goes back to the source only for bytes the sink took,
// so what is held here is bounded by the source's flow-control window (plus `prefix`, bytes of our own
// such as a stream opening written ahead of the source's). Sans-I/O: the caller passes the sink's
// write and the source's consume as functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace wtmesh::tunnel {

class RelayPipe {
 public:
  // `prefix` is sent before any source byte and never credited to the source.
  explicit RelayPipe(std::vector<uint8_t> prefix = {}) : held_(std::move(prefix)), prefix_(held_.size()) {}

  // Source bytes arrive (in order). `write(span, fin) -> size_t` is the sink; `consume(n)` credits the
  // source. Returns false when the held bytes would exceed `cap` (a source that ignores credit).
  template <typename Write, typename Consume>
  bool push(std::span<const uint8_t> data, bool fin, size_t cap, Write&& write, Consume&& consume) {
    if (done_) {
      consume(data.size());  // the sink is gone (reset / stopped): drop, keep the source moving
      return true;
    }
    held_.insert(held_.end(), data.begin(), data.end());
    fin_ = fin_ || fin;
    pump(write, consume);
    return held() <= cap + prefix_;
  }
  // The sink can take more.
  template <typename Write, typename Consume>
  void pump(Write&& write, Consume&& consume) {
    if (done_ || (held() == 0 && !fin_)) return;
    const size_t n = write(std::span<const uint8_t>(held_).subspan(head_), fin_);
    if (n > 0) {
      // Taken bytes are skipped, and dropped from the front only once they are most of the buffer:
      // a sink that takes a little at a time costs no move of everything still held.
      head_ += n;
      if (head_ == held_.size()) {
        held_.clear();
        head_ = 0;
      } else if (head_ >= held_.size() / 2) {
        held_.erase(held_.begin(), held_.begin() + static_cast<std::ptrdiff_t>(head_));
        head_ = 0;
      }
      const size_t own = n < prefix_ ? n : prefix_;
      prefix_ -= own;
      if (n > own) consume(n - own);
    }
    if (held() == 0 && fin_) done_ = true;
  }
  // The sink went away: later bytes are credited and dropped. Returns the held source bytes to credit.
  size_t abandon() {
    done_ = true;
    const size_t source_bytes = held() - prefix_;
    held_.clear();
    head_ = 0;
    prefix_ = 0;
    return source_bytes;
  }
  bool finished() const { return done_; }  // FIN delivered to the sink, or abandoned
  // The source's FIN arrived: everything it will send is here, so the source stream itself may be
  // gone while the held bytes still wait for the sink.
  bool source_ended() const { return fin_; }
  size_t held() const { return held_.size() - head_; }

 private:
  std::vector<uint8_t> held_;  // bytes from head_ on are still to be taken
  size_t head_ = 0;
  size_t prefix_ = 0;
  bool fin_ = false;
  bool done_ = false;
};

}  // namespace wtmesh::tunnel
