#include "wt/stream_credit.h"

#include <algorithm>

namespace wtmesh::wt {

SendCredit::SendCredit(uint64_t initial, uint64_t cap) : cap_(cap), limit_(std::min(initial, cap)) {}

MaxUpdate SendCredit::on_max(uint64_t limit) {
  if (limit > cap_) return MaxUpdate::kInvalid;
  if (limit <= limit_) return MaxUpdate::kIgnored;
  limit_ = limit;
  return MaxUpdate::kRaised;
}

uint64_t SendCredit::take(uint64_t n) {
  const uint64_t taken = std::min(n, available());
  used_ += taken;
  return taken;
}

std::optional<uint64_t> SendCredit::blocked() {
  if (available() != 0 || reported_blocked_at_ == limit_) return std::nullopt;
  reported_blocked_at_ = limit_;
  return limit_;
}

ReceiveCredit::ReceiveCredit(uint64_t window, uint64_t cap, uint64_t threshold)
    : cap_(cap), window_(std::min(window, cap)), threshold_(threshold), limit_(window_) {}

ReceiveCredit ReceiveCredit::bytes(uint64_t window) {
  const uint64_t w = std::min(window, kMaxCredit);
  return ReceiveCredit(w, kMaxCredit, std::max<uint64_t>(w / 2, 1));
}

ReceiveCredit ReceiveCredit::streams(uint64_t concurrent) {
  return ReceiveCredit(concurrent, kMaxStreamCount, 1);
}

bool ReceiveCredit::on_received(uint64_t end) {
  if (end > limit_) return false;
  received_ = std::max(received_, end);
  return true;
}

bool ReceiveCredit::on_received_more(uint64_t n) {
  if (n > limit_ - received_) return false;  // received_ <= limit_ always
  received_ += n;
  return true;
}

std::optional<uint64_t> ReceiveCredit::consume(uint64_t n) {
  consumed_ += std::min(n, received_ - consumed_);
  // consumed_ <= limit_ <= cap_ <= 2^62 and window_ <= cap_: the sum cannot overflow.
  const uint64_t target = std::min(consumed_ + window_, cap_);
  // A raise smaller than the threshold waits, unless it reaches the cap (no later one would).
  if (target <= limit_ || (target - limit_ < threshold_ && target != cap_)) return std::nullopt;
  limit_ = target;
  return limit_;
}

}  // namespace wtmesh::wt
