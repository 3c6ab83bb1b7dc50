// Authentication failures per client address (issue 14 6c): every refused token costs the edge an
// ECDSA verification and a log line, so a client whose tokens keep failing is slowed down. Each
// address key (edge/http_codec.h client_limit_key: the IPv4 address, or the IPv6 /64) has a token
// bucket of failures: a failure takes one token, tokens come back at `per_second` up to `burst`, and
// while an address has no token left its session requests are refused (429) before any verification
// and without a log line each. The table holds at most `max_addresses` keys, the least recently
// failing evicted first (O(1)); an evicted key starts again with a full bucket, which only the
// table's size bounds, so the table is sized for the addresses one edge sees failing at once.
// Sans-I/O: time comes in as arguments.
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace wtmesh::edge {

struct AuthFailureLimits {
  double burst = 20;            // failures an address may have at once
  double per_second = 0.5;      // failures given back per second (one every 2 s)
  size_t max_addresses = 4096;  // keys tracked; the least recently failing goes beyond
};

class AuthFailureLimiter {
 public:
  using Time = std::chrono::steady_clock::time_point;
  explicit AuthFailureLimiter(AuthFailureLimits limits = {});

  // True while `key` may still try (it has a token left).
  bool allowed(std::string_view key, Time now);
  // Counts one failure of `key`; true when it took the address's last token (log that once).
  bool on_failure(std::string_view key, Time now);
  size_t size() const {
    std::lock_guard lock(mutex_);
    return buckets_.size();
  }
  size_t evicted() const {
    std::lock_guard lock(mutex_);
    return evicted_;
  }
  const AuthFailureLimits& limits() const { return limits_; }

 private:
  struct Bucket {
    double tokens;
    Time at;
    std::list<std::string>::iterator lru;
  };
  void refill(Bucket& b, Time now) const;

  mutable std::mutex mutex_;  // the workers of one edge share one limiter (edge/edge_workers.h)
  AuthFailureLimits limits_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::list<std::string> lru_;  // most recently failing first
  size_t evicted_ = 0;
};

}  // namespace wtmesh::edge
