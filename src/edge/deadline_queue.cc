#include "edge/deadline_queue.h"

namespace wtmesh::edge {

bool DeadlineQueue::schedule(uint64_t key, SteadyTime at) {
  auto [it, added] = wanted_.try_emplace(key, at);
  if (!added) {
    if (it->second <= at) return false;
    it->second = at;  // the older, later entry is stale now
  }
  heap_.push(Entry{at, key});
  // Stale entries leave from the top as time passes; a key rescheduled earlier again and again
  // without ever coming due would pile them up, so past 2x the live keys (and some), rebuild.
  if (heap_.size() > 2 * wanted_.size() + 64) {
    std::vector<Entry> live;
    live.reserve(wanted_.size());
    for (const auto& [k, t] : wanted_) live.push_back(Entry{t, k});
    heap_ = decltype(heap_)(std::greater<>(), std::move(live));
  }
  return true;
}

void DeadlineQueue::settle() const {
  while (!heap_.empty()) {
    const Entry& top = heap_.top();
    auto it = wanted_.find(top.key);
    if (it != wanted_.end() && it->second == top.at) return;
    heap_.pop();
  }
}

std::optional<SteadyTime> DeadlineQueue::next() const {
  settle();
  if (heap_.empty()) return std::nullopt;
  return heap_.top().at;
}

std::vector<uint64_t> DeadlineQueue::take_due(SteadyTime now) {
  std::vector<uint64_t> due;
  for (settle(); !heap_.empty() && heap_.top().at <= now; settle()) {
    due.push_back(heap_.top().key);
    wanted_.erase(heap_.top().key);
    heap_.pop();
  }
  return due;
}

}  // namespace wtmesh::edge
