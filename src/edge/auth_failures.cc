#include "edge/auth_failures.h"

#include <algorithm>

namespace wtmesh::edge {

AuthFailureLimiter::AuthFailureLimiter(AuthFailureLimits limits) : limits_(limits) {
  limits_.max_addresses = std::max<size_t>(limits_.max_addresses, 1);
  limits_.burst = std::max(limits_.burst, 1.0);
}

void AuthFailureLimiter::refill(Bucket& b, Time now) const {
  if (now <= b.at) return;
  const double seconds = std::chrono::duration<double>(now - b.at).count();
  b.tokens = std::min(limits_.burst, b.tokens + seconds * limits_.per_second);
  b.at = now;
}

bool AuthFailureLimiter::allowed(std::string_view key, Time now) {
  std::lock_guard lock(mutex_);
  auto it = buckets_.find(std::string(key));
  if (it == buckets_.end()) return true;
  refill(it->second, now);
  return it->second.tokens >= 1.0;
}

bool AuthFailureLimiter::on_failure(std::string_view key, Time now) {
  std::lock_guard lock(mutex_);
  auto it = buckets_.find(std::string(key));
  if (it == buckets_.end()) {
    if (buckets_.size() >= limits_.max_addresses) {
      buckets_.erase(lru_.back());
      lru_.pop_back();
      ++evicted_;
    }
    lru_.emplace_front(key);
    it = buckets_.emplace(std::string(key), Bucket{limits_.burst, now, lru_.begin()}).first;
  } else {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    refill(it->second, now);
  }
  Bucket& b = it->second;
  const bool had = b.tokens >= 1.0;
  b.tokens = std::max(0.0, b.tokens - 1.0);
  return had && b.tokens < 1.0;
}

}  // namespace wtmesh::edge
