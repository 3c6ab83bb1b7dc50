// DeadlineQueue: when each of many keys (agent sessions) wants its next on_tick, so the edge's one
// timer finds the sessions that are due without looking at the others. Sans-I/O.
//
// A lazy min-heap: schedule() pushes an entry only when it is earlier than the one the key already
// has; a key's later entries are dropped (its deadline moving later is found when the earlier entry
// comes due: the owner asks the key again and schedules what it says). So a tick costs O(due · log n),
// not O(n): 10k idle sessions PING on their own schedules, ~1000 ticks a second, and a scan of every
// session per tick was ~40 % of a core (bench/idle.sh).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <queue>
#include <unordered_map>
#include <vector>

#include "common/time.h"

namespace wtmesh::edge {

class DeadlineQueue {
 public:
  // `key` wants a tick at `at`; kept only when earlier than what it has. True when it was kept.
  bool schedule(uint64_t key, SteadyTime at);
  // `key` wants no tick (its session is gone).
  void forget(uint64_t key) { wanted_.erase(key); }
  // The earliest tick any key wants, if one does.
  std::optional<SteadyTime> next() const;
  // The keys whose tick is due at `now`, earliest first; each leaves the queue (schedule it again).
  std::vector<uint64_t> take_due(SteadyTime now);
  size_t size() const { return wanted_.size(); }
  // Heap entries, stale ones included (tests: they do not pile up).
  size_t entries() const { return heap_.size(); }

 private:
  struct Entry {
    SteadyTime at;
    uint64_t key;
    bool operator>(const Entry& o) const { return at > o.at || (at == o.at && key > o.key); }
  };
  // Drops stale entries from the top (their key wants another time, or none).
  void settle() const;

  mutable std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_;
  std::unordered_map<uint64_t, SteadyTime> wanted_;  // each key's one live entry
};

}  // namespace wtmesh::edge
