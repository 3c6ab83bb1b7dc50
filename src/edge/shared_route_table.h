// The route table of a multi-worker edge (edge/worker_directory.h): one LocalRouteTable behind a
// mutex, shared by every worker's TunnelService and WorkerDirectory. Operations still complete
// inline, before they return, as LocalRouteTable's do; but the completion runs after the lock is
// released, with its own copies of the strings it is given, so it may call the table again and
// never holds up another worker while it runs. Order across workers is the order in which they took
// the lock; a claim and a lookup of one name from two workers see each other whole or not at all.
#pragma once

#include <mutex>
#include <string>

#include "edge/route_table.h"

namespace wtmesh::edge {

class SharedRouteTable final : public RouteTable {
 public:
  explicit SharedRouteTable(LocalRouteTable::Limits limits = {}) : table_(limits) {}

  void claim(RouteKey key, const RouteLease& lease, uint32_t tunnel_id, SteadyTime now,
             ClaimDone done) override;
  void release(RouteKey key, std::string_view owner, SteadyTime now, ReleaseDone done = nullptr) override;
  void release_all(std::string_view owner, SteadyTime now, CountDone done = nullptr) override;
  void renew(std::string_view owner, SteadyTime now, CountDone done = nullptr) override;
  void lookup(std::string_view type, std::string_view host, SteadyTime now, LookupDone done) override;
  void expire(SteadyTime now) override;

  // The pattern that serves `host` now ("" when none): what the edge counts a request under.
  std::string pattern(std::string_view type, std::string_view host, SteadyTime now) const;
  size_t size() const;
  size_t offline_count() const;

 private:
  mutable std::mutex m_;
  LocalRouteTable table_;
};

}  // namespace wtmesh::edge
