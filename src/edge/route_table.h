// Which tunnel serves which public hostname: the edge's route table behind an interface, so a later
// table shared by several edges (e.g. in Redis) can replace the in-process one without touching the
// tunnel sessions or the public HTTP side.
//
// Owners are opaque strings (the edge names each tunnel session with one that is unique across
// edges); the table never interprets them. Names are compared ASCII case-insensitively. A route is
// one of:
//   - an exact name        "app.example.com"
//   - a wildcard           "*.example.com": any name with exactly one more label (a.example.com, not
//                          a.b.example.com nor example.com), the same rule as token host patterns
//   - the catch-all        "*" (kCatchAll)
// lookup() tries them in that order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace wtmesh::edge {

inline constexpr std::string_view kCatchAll = "*";

struct RouteEntry {
  std::string pattern;     // the registered name, lower-case
  std::string owner;       // the tunnel session holding it
  uint32_t tunnel_id = 0;  // the REGISTER id on that session

  bool operator==(const RouteEntry&) const = default;
};

enum class ClaimResult {
  kOk,     // the owner holds the name now (also when it already did: the tunnel id is updated)
  kTaken,  // another owner holds it
  kFull,   // the table is at its capacity
};
const char* to_string(ClaimResult r);

class RouteTable {
 public:
  virtual ~RouteTable() = default;
  // `hostname` is a name, "*.name" or kCatchAll, already validated by the caller.
  virtual ClaimResult claim(std::string_view hostname, std::string_view owner, uint32_t tunnel_id) = 0;
  // Drops the route if `owner` holds it; false otherwise (never drops another owner's route).
  virtual bool release(std::string_view hostname, std::string_view owner) = 0;
  // Drops every route of `owner`; returns how many.
  virtual size_t release_all(std::string_view owner) = 0;
  // `host` is a bare host name (no port). Exact match, then "*.parent", then the catch-all.
  virtual std::optional<RouteEntry> lookup(std::string_view host) const = 0;
};

// The in-memory table of one edge.
class LocalRouteTable final : public RouteTable {
 public:
  static constexpr size_t kDefaultMaxRoutes = 100'000;
  explicit LocalRouteTable(size_t max_routes = kDefaultMaxRoutes) : max_routes_(max_routes) {}

  ClaimResult claim(std::string_view hostname, std::string_view owner, uint32_t tunnel_id) override;
  bool release(std::string_view hostname, std::string_view owner) override;
  size_t release_all(std::string_view owner) override;
  std::optional<RouteEntry> lookup(std::string_view host) const override;

  size_t size() const { return routes_.size(); }

 private:
  struct Holder {
    std::string owner;
    uint32_t tunnel_id = 0;
  };
  std::optional<RouteEntry> find(const std::string& key) const;

  size_t max_routes_;
  std::map<std::string, Holder, std::less<>> routes_;  // lower-case pattern → holder
};

// ASCII lower-case copy.
std::string lower_ascii(std::string_view s);

}  // namespace wtmesh::edge
