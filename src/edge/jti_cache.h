// The session-token jtis an edge has accepted (docs/protocol.md §6.1: a session token is used once),
// each remembered until its token expires (plus the leeway). One cache serves every worker of an edge
// (edge/worker_directory.h), so a token replayed to another worker is refused as well: it takes a
// lock, held for one map operation.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

namespace wtmesh::edge {

class JtiCache {
 public:
  enum class Result {
    kNew,       // remembered now
    kReplayed,  // seen before, not yet expired
    kFull,      // `capacity` live jtis held: refused
  };
  using WallTime = std::chrono::system_clock::time_point;

  // Admits `jti` (remembered until `until`) unless it is known; expired entries are purged when the
  // cache is full.
  Result admit(const std::string& jti, WallTime now, WallTime until, size_t capacity) {
    std::lock_guard lock(m_);
    if (auto it = seen_.find(jti); it != seen_.end() && it->second > now) return Result::kReplayed;
    if (seen_.size() >= capacity) std::erase_if(seen_, [&](const auto& kv) { return kv.second <= now; });
    if (seen_.size() >= capacity) return Result::kFull;
    seen_[jti] = until;
    return Result::kNew;
  }
  size_t size() const {
    std::lock_guard lock(m_);
    return seen_.size();
  }

 private:
  mutable std::mutex m_;
  std::unordered_map<std::string, WallTime> seen_;
};

}  // namespace wtmesh::edge
