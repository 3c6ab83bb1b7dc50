#include "edge/shared_route_table.h"

namespace wtmesh::edge {

void SharedRouteTable::claim(RouteKey key, const RouteLease& lease, uint32_t tunnel_id, SteadyTime now,
                             ClaimDone done) {
  ClaimReply reply;
  std::string holder;
  {
    std::lock_guard lock(m_);
    table_.claim(key, lease, tunnel_id, now, [&reply, &holder](const ClaimReply& r) {
      reply = r;
      holder = std::string(r.holder);
    });
  }
  reply.holder = holder;
  if (done) done(reply);
}

void SharedRouteTable::release(RouteKey key, std::string_view owner, SteadyTime now, ReleaseDone done) {
  bool released = false;
  {
    std::lock_guard lock(m_);
    table_.release(key, owner, now, [&released](bool r) { released = r; });
  }
  if (done) done(released);
}

void SharedRouteTable::release_all(std::string_view owner, SteadyTime now, CountDone done) {
  size_t n = 0;
  {
    std::lock_guard lock(m_);
    table_.release_all(owner, now, [&n](size_t k) { n = k; });
  }
  if (done) done(n);
}

void SharedRouteTable::renew(std::string_view owner, SteadyTime now, CountDone done) {
  size_t n = 0;
  {
    std::lock_guard lock(m_);
    table_.renew(owner, now, [&n](size_t k) { n = k; });
  }
  if (done) done(n);
}

void SharedRouteTable::lookup(std::string_view type, std::string_view host, SteadyTime now, LookupDone done) {
  RouteMatch match;
  std::string pattern, owner, edge_id;
  {
    std::lock_guard lock(m_);
    table_.lookup(type, host, now, [&](const RouteMatch& m) {
      match = m;
      pattern = std::string(m.pattern);
      owner = std::string(m.owner);
      edge_id = std::string(m.edge_id);
    });
  }
  match.pattern = pattern;
  match.owner = owner;
  match.edge_id = edge_id;
  done(match);
}

void SharedRouteTable::expire(SteadyTime now) {
  std::lock_guard lock(m_);
  table_.expire(now);
}

std::string SharedRouteTable::pattern(std::string_view type, std::string_view host, SteadyTime now) const {
  std::lock_guard lock(m_);
  const RouteMatch m = table_.find(type, host, now);
  return m.state == RouteMatch::State::kNone ? std::string() : std::string(m.pattern);
}

size_t SharedRouteTable::size() const {
  std::lock_guard lock(m_);
  return table_.size();
}

size_t SharedRouteTable::offline_count() const {
  std::lock_guard lock(m_);
  return table_.offline_count();
}

}  // namespace wtmesh::edge
