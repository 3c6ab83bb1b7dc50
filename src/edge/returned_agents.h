// The agents that came back to this draining edge (docs/protocol.md §3.6): asked to move, their new
// session request reached this edge again (one edge, no other address), so they have nowhere to move
// and the handoff stops waiting for them (TunnelService::sessions_to_move). Listed by the agent's
// instance id (tunnel::kInstanceHeader). One list for all the workers of an edge (edge/edge_workers.h;
// a single-worker edge's TunnelService has its own): the new session's QUIC connection may land on
// another worker than the one holding the live session.
//
// Bounded (kMax): an instance id is not a credential, so anyone may add one while the edge drains; a
// full list adds no more, and an agent not listed is waited for until the handoff time is over, as
// without the list. Thread-safe.
#pragma once

#include <cstddef>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

namespace wtmesh::edge {

class ReturnedAgents {
 public:
  static constexpr size_t kMax = 4096;

  // False when the list is full (or had it already).
  bool add(std::string_view instance) {
    std::lock_guard lock(mutex_);
    if (ids_.size() >= kMax) return false;
    return ids_.emplace(instance).second;
  }
  bool contains(std::string_view instance) const {
    std::lock_guard lock(mutex_);
    return ids_.contains(instance);
  }
  size_t size() const {
    std::lock_guard lock(mutex_);
    return ids_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::set<std::string, std::less<>> ids_;
};

}  // namespace wtmesh::edge
