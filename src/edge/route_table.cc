#include "edge/route_table.h"

#include <array>

#include "tunnel/host_pattern.h"

namespace wtmesh::edge {
namespace {

constexpr char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

const char* to_string(ClaimResult r) {
  switch (r) {
    case ClaimResult::kOk:
      return "ok";
    case ClaimResult::kTaken:
      return "taken";
    case ClaimResult::kFull:
      return "full";
  }
  return "?";
}

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

// --- names ----------------------------------------------------------------------------------------

size_t LocalRouteTable::NameHash::operator()(Name n) const {
  uint64_t h = 14695981039346656037ULL;
  for (const std::string_view piece : {n.head, n.tail}) {
    for (const char c : piece) {
      h ^= static_cast<uint8_t>(lower(c));
      h *= 1099511628211ULL;
    }
  }
  return static_cast<size_t>(h);
}

bool LocalRouteTable::NameEq::same(std::string_view stored, Name n) {
  if (stored.size() != n.head.size() + n.tail.size()) return false;
  size_t i = 0;
  for (const std::string_view piece : {n.head, n.tail}) {
    for (const char c : piece) {
      if (stored[i++] != lower(c)) return false;
    }
  }
  return true;
}

const LocalRouteTable::Slot* LocalRouteTable::find_slot(const Names& names, Name name) const {
  auto it = names.find(name);
  return it == names.end() ? nullptr : &it->second;
}

// --- lookup ---------------------------------------------------------------------------------------

RouteMatch LocalRouteTable::match(const Slot& slot, SteadyTime now) const {
  RouteMatch m;
  m.pattern = *slot.name;
  if (slot.owner != nullptr) {
    const Owner& o = *slot.owner;
    if (now < o.expires) {
      m.state = RouteMatch::State::kLive;
      m.owner = *o.id;
      m.edge_id = o.edge_id;
      m.tunnel_id = slot.tunnel_id;
    } else if (limits_.max_offline > 0 && now < o.expires + limits_.offline_grace) {
      m.state = RouteMatch::State::kOffline;  // expired, not purged yet: what purge() will leave
    }
  } else if (slot.tombstone && now < slot.offline->first) {
    m.state = RouteMatch::State::kOffline;
  }
  return m;
}

RouteMatch LocalRouteTable::find(std::string_view type, std::string_view host, SteadyTime now) const {
  auto t = types_.find(type);
  if (t == types_.end()) return {};
  const Names& names = t->second;
  // The one lookup order: exact, "*.parent", catch-all; live routes before offline ones.
  std::array<const Slot*, 3> candidates{};
  if (!host.empty()) candidates[0] = find_slot(names, Name{host, {}});
  if (const auto parent = tunnel::wildcard_parent(host))
    candidates[1] = find_slot(names, Name{"*.", *parent});
  candidates[2] = find_slot(names, Name{kCatchAll, {}});
  RouteMatch offline;
  for (const Slot* s : candidates) {
    if (s == nullptr) continue;
    const RouteMatch m = match(*s, now);
    if (m.live()) return m;
    if (m.offline() && !offline.offline()) offline = m;
  }
  return offline;
}

void LocalRouteTable::lookup(std::string_view type, std::string_view host, SteadyTime now, LookupDone done) {
  purge(now);
  done(find(type, host, now));
}

// --- changes --------------------------------------------------------------------------------------

void LocalRouteTable::claim(RouteKey key, const RouteLease& lease, uint32_t tunnel_id, SteadyTime now,
                            ClaimDone done) {
  purge(now);
  auto t = types_.find(key.type);
  if (t == types_.end()) t = types_.emplace(std::string(key.type), Names{}).first;
  Names& names = t->second;
  auto it = names.find(Name{key.name, {}});
  if (it != names.end() && it->second.owner != nullptr) {
    Owner& holder = *it->second.owner;
    if (*holder.id != lease.owner) {
      if (done) done(ClaimReply{ClaimResult::kTaken, *holder.id});
      return;
    }
    it->second.tunnel_id = tunnel_id;
    if (holder.edge_id != lease.edge_id) holder.edge_id = std::string(lease.edge_id);
    holder.ttl = lease.ttl;
    touch(holder, now);
    if (done) done(ClaimReply{});
    return;
  }
  if (live_ >= limits_.max_routes) {
    if (done) done(ClaimReply{ClaimResult::kFull, {}});
    return;
  }
  if (it == names.end()) {
    it = names.emplace(lower_ascii(key.name), Slot{}).first;
    it->second.names = &names;
    it->second.name = &it->first;
  }
  hold(it->second, lease, tunnel_id, now);  // a tombstone of the name is replaced
  if (done) done(ClaimReply{});
}

void LocalRouteTable::release(RouteKey key, std::string_view owner, SteadyTime now, ReleaseDone done) {
  purge(now);
  bool released = false;
  if (auto t = types_.find(key.type); t != types_.end()) {
    auto it = t->second.find(Name{key.name, {}});
    if (it != t->second.end() && it->second.owner != nullptr && *it->second.owner->id == owner) {
      detach(it->second);
      erase(it->second);
      released = true;
    }
  }
  if (done) done(released);
}

void LocalRouteTable::release_all(std::string_view owner, SteadyTime now, CountDone done) {
  purge(now);
  size_t n = 0;
  if (auto it = owners_.find(owner); it != owners_.end()) {
    Owner& o = it->second;
    const std::vector<Slot*> slots = std::move(o.slots);
    o.slots.clear();
    n = slots.size();
    drop_owner(o);
    for (Slot* s : slots) {
      s->owner = nullptr;
      --live_;
      bury(*s, now + limits_.offline_grace);
    }
  }
  if (done) done(n);
}

void LocalRouteTable::renew(std::string_view owner, SteadyTime now, CountDone done) {
  purge(now);
  size_t n = 0;
  if (auto it = owners_.find(owner); it != owners_.end()) {
    touch(it->second, now);
    n = it->second.slots.size();
  }
  if (done) done(n);
}

// --- bookkeeping ----------------------------------------------------------------------------------

void LocalRouteTable::purge(SteadyTime now) {
  while (!expiries_.empty() && expiries_.begin()->first <= now) {
    Owner& o = *expiries_.begin()->second;
    const SteadyTime until = o.expires + limits_.offline_grace;
    const std::vector<Slot*> slots = std::move(o.slots);
    o.slots.clear();
    drop_owner(o);
    for (Slot* s : slots) {
      s->owner = nullptr;
      --live_;
      bury(*s, until);
    }
  }
  while (!offline_.empty() && offline_.begin()->first <= now) erase(*offline_.begin()->second);
}

void LocalRouteTable::hold(Slot& slot, const RouteLease& lease, uint32_t tunnel_id, SteadyTime now) {
  if (slot.tombstone) {
    offline_.erase(slot.offline);
    slot.tombstone = false;
  }
  auto it = owners_.find(lease.owner);
  if (it == owners_.end()) {
    it = owners_.emplace(std::string(lease.owner), Owner{}).first;
    it->second.id = &it->first;
    it->second.expiry = expiries_.end();
  }
  Owner& o = it->second;
  if (o.edge_id != lease.edge_id) o.edge_id = std::string(lease.edge_id);
  o.ttl = lease.ttl;
  slot.owner = &o;
  slot.tunnel_id = tunnel_id;
  slot.index = o.slots.size();
  o.slots.push_back(&slot);
  ++live_;
  touch(o, now);
}

void LocalRouteTable::touch(Owner& o, SteadyTime now) {
  o.expires = now + o.ttl;
  if (o.expiry == expiries_.end()) {
    o.expiry = expiries_.emplace(o.expires, &o);
    return;
  }
  auto node = expiries_.extract(o.expiry);  // moved, not reallocated
  node.key() = o.expires;
  o.expiry = expiries_.insert(std::move(node));
}

void LocalRouteTable::detach(Slot& slot) {
  Owner& o = *slot.owner;
  Slot* last = o.slots.back();
  o.slots[slot.index] = last;
  last->index = slot.index;
  o.slots.pop_back();
  slot.owner = nullptr;
  --live_;
  if (o.slots.empty()) drop_owner(o);
}

void LocalRouteTable::drop_owner(Owner& o) {
  if (o.expiry != expiries_.end()) expiries_.erase(o.expiry);
  owners_.erase(owners_.find(*o.id));
}

void LocalRouteTable::bury(Slot& slot, SteadyTime until) {
  if (limits_.max_offline == 0) {
    erase(slot);
    return;
  }
  if (offline_.size() >= limits_.max_offline) erase(*offline_.begin()->second);  // the oldest goes
  slot.offline = offline_.emplace(until, &slot);
  slot.tombstone = true;
}

void LocalRouteTable::erase(Slot& slot) {
  if (slot.tombstone) offline_.erase(slot.offline);
  Names& names = *slot.names;
  names.erase(names.find(*slot.name));
}

}  // namespace wtmesh::edge
