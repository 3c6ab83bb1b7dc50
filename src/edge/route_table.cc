#include "edge/route_table.h"

#include <iterator>

namespace wtmesh::edge {

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
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

ClaimResult LocalRouteTable::claim(std::string_view hostname, std::string_view owner, uint32_t tunnel_id) {
  std::string key = lower_ascii(hostname);
  auto it = routes_.find(key);
  if (it != routes_.end()) {
    if (it->second.owner != owner) return ClaimResult::kTaken;
    it->second.tunnel_id = tunnel_id;
    return ClaimResult::kOk;
  }
  if (routes_.size() >= max_routes_) return ClaimResult::kFull;
  routes_.emplace(std::move(key), Holder{std::string(owner), tunnel_id});
  return ClaimResult::kOk;
}

bool LocalRouteTable::release(std::string_view hostname, std::string_view owner) {
  auto it = routes_.find(lower_ascii(hostname));
  if (it == routes_.end() || it->second.owner != owner) return false;
  routes_.erase(it);
  return true;
}

size_t LocalRouteTable::release_all(std::string_view owner) {
  return std::erase_if(routes_, [&](const auto& kv) { return kv.second.owner == owner; });
}

std::optional<RouteEntry> LocalRouteTable::find(const std::string& key) const {
  auto it = routes_.find(key);
  if (it == routes_.end()) return std::nullopt;
  return RouteEntry{it->first, it->second.owner, it->second.tunnel_id};
}

std::optional<RouteEntry> LocalRouteTable::lookup(std::string_view host) const {
  if (host.empty()) return find(std::string(kCatchAll));
  const std::string name = lower_ascii(host);
  if (auto r = find(name)) return r;
  if (const size_t dot = name.find('.'); dot != std::string::npos && dot > 0 && dot + 1 < name.size()) {
    // append(), not "*" + substr(): GCC 12 at -O3 reports a false -Wrestrict for "lit" + string&&.
    if (auto r = find(std::string("*").append(name, dot))) return r;
  }
  return find(std::string(kCatchAll));
}

}  // namespace wtmesh::edge
