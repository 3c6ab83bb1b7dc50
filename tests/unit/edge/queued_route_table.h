// A second RouteTable implementation, for tests of callers: every operation is queued with copies
// of its arguments and takes effect on an inner LocalRouteTable, completion included, only when the
// test drains the queue, the way a store across the network answers some time after the call. It
// keeps the interface's rules (edge/route_table.h): operations take effect and complete in the
// order they were issued, each completion exactly once.
#pragma once

#include <deque>
#include <string>

#include "common/inline_function.h"
#include "edge/route_table.h"

namespace wtmesh::edge::test {

class QueuedRouteTable final : public RouteTable {
 public:
  explicit QueuedRouteTable(LocalRouteTable::Limits limits = {}) : inner_(limits) {}

  void claim(RouteKey key, const RouteLease& lease, uint32_t tunnel_id, SteadyTime now,
             ClaimDone done) override {
    queue_.emplace_back([this, type = std::string(key.type), name = std::string(key.name),
                         owner = std::string(lease.owner), edge = std::string(lease.edge_id), ttl = lease.ttl,
                         tunnel_id, now, done = std::move(done)]() mutable {
      inner_.claim({type, name}, {owner, edge, ttl}, tunnel_id, now, std::move(done));
    });
  }
  void release(RouteKey key, std::string_view owner, SteadyTime now, ReleaseDone done) override {
    queue_.emplace_back([this, type = std::string(key.type), name = std::string(key.name),
                         owner = std::string(owner), now, done = std::move(done)]() mutable {
      inner_.release({type, name}, owner, now, std::move(done));
    });
  }
  void release_all(std::string_view owner, SteadyTime now, CountDone done) override {
    queue_.emplace_back([this, owner = std::string(owner), now, done = std::move(done)]() mutable {
      inner_.release_all(owner, now, std::move(done));
    });
  }
  void renew(std::string_view owner, SteadyTime now, CountDone done) override {
    queue_.emplace_back([this, owner = std::string(owner), now, done = std::move(done)]() mutable {
      inner_.renew(owner, now, std::move(done));
    });
  }
  void lookup(std::string_view type, std::string_view host, SteadyTime now, LookupDone done) override {
    queue_.emplace_back(
        [this, type = std::string(type), host = std::string(host), now, done = std::move(done)]() mutable {
          inner_.lookup(type, host, now, std::move(done));
        });
  }
  void expire(SteadyTime now) override {
    queue_.emplace_back([this, now] { inner_.expire(now); });
  }

  // Operations issued and not yet carried out.
  size_t pending() const { return queue_.size(); }
  // Carries out every queued operation, including those their completions issue; returns how many.
  size_t drain() {
    size_t n = 0;
    while (!queue_.empty()) {
      Op op = std::move(queue_.front());
      queue_.pop_front();
      op();
      ++n;
    }
    return n;
  }
  const LocalRouteTable& inner() const { return inner_; }
  size_t size() const { return inner_.size(); }

 private:
  using Op = InlineFunction<void(), 256>;
  LocalRouteTable inner_;
  std::deque<Op> queue_;
};

}  // namespace wtmesh::edge::test
