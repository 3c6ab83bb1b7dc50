#include "quic/session_tickets.h"

namespace wtmesh::quic {

AntiReplayStore::Result AntiReplayStore::add(std::string_view key, std::time_t expires, std::time_t now) {
  purge(now);
  const std::string k(key);
  if (auto it = keys_.find(k); it != keys_.end() && it->second > now) {
    ++replays_;
    return Result::kReplay;
  }
  if (keys_.size() >= capacity_) {
    ++refused_full_;
    return Result::kFull;
  }
  keys_[k] = expires;
  order_.emplace_back(expires, k);
  return Result::kAdded;
}

void AntiReplayStore::purge(std::time_t now) {
  // Expiries arrive nearly in order (ClientHello time + GnuTLS' window): an out-of-order one waits
  // behind the older ones, so it is kept longer, never forgotten early.
  while (!order_.empty() && order_.front().first <= now) {
    auto it = keys_.find(order_.front().second);
    if (it != keys_.end() && it->second <= now) keys_.erase(it);
    order_.pop_front();
  }
}

}  // namespace wtmesh::quic
