// Which tunnel serves which name: the edge's route table behind an interface that the in-process
// LocalRouteTable implements today and a store shared by several edges (Redis) can implement
// tomorrow, without touching the tunnel sessions or the public HTTP side.
//
// Keys. A route is named by a RouteKey {type, name}. Types never meet: "http" (kHttp) is the only one
// today; "tcp", "udp", "service" will have their own names. Names are compared ASCII
// case-insensitively (stored lower-case). A name is one of
//   - an exact name     "app.example.com"
//   - a wildcard        "*.example.com": any name with exactly one more label (a.example.com, not
//                       a.b.example.com nor example.com), the rule token host patterns use
//                       (tunnel/host_pattern.h)
//   - the catch-all     "*" (kCatchAll)
// lookup(type, host) tries them in that order, among live routes first and then among offline ones
// (a live wildcard serves a name whose exact route is offline). That order exists only here.
//
// Leases. Each route is a lease held by an owner: an opaque string unique across edges (the edge
// names each tunnel session "EDGE-ID/SERIAL"), with the owner's edge id and the tunnel id the route
// answers to. claim() takes a TTL; renew(owner, now) extends every lease of the owner to now + TTL
// (the tunnel session's heartbeat calls it, and a claim renews too). A lease not renewed in time has
// expired: lookup() no longer returns it as live, and it is purged.
//
// Offline grace. When all of an owner's routes are released at once (release_all(): its session
// ended) or its lease expires (its edge died), each name is left as an "offline" tombstone for
// offline_grace: lookup() answers kOffline (the public side answers 502) instead of nothing (404),
// so clients of an agent that is reconnecting see the tunnel as down rather than unknown. A new
// claim of the name replaces its tombstone at once. release() of one route (the agent's UNREGISTER)
// leaves none: the name was given up on purpose. Tombstones are capped; past the cap the oldest goes.
//
// Asynchronous calls. Every operation completes through a callback. LocalRouteTable calls it inline,
// before the operation returns; a networked store calls it later, from the edge's event loop.
// Callers are written for both, and every implementation keeps these rules:
//   - operations take effect in the order they are issued, and complete in that order (a Redis
//     implementation pipelines them on one connection): a release_all() issued while a claim() is
//     still pending releases what that claim takes;
//   - each completion runs exactly once; the views it is given (ClaimReply::holder, RouteMatch's
//     strings) are valid during the call only;
//   - the table never cancels an operation: a caller that may be destroyed before its completion
//     arrives captures a liveness token (a std::weak_ptr) and ignores a completion that finds it gone.
// Completions are InlineFunctions (common/inline_function.h): the capture lives in the object, so
// issuing an operation allocates nothing for it, and LocalRouteTable::lookup() allocates nothing at
// all (names are hashed and compared case-insensitively in place; the wildcard candidate is the
// host's parent, not a new string).
//
// What a Redis implementation adds: one key per route ("route:TYPE:NAME" → owner, edge id, tunnel
// id) with PEXPIRE = TTL, and one set per owner, so renew() and release_all() touch only that owner's
// keys; tombstones as keys of their own with PEXPIRE = offline_grace; claim() as a script (set when
// absent, a tombstone, or already the caller's; count it against the capacity); lookup() as one
// round trip (MGET of the three candidates and their tombstones). Expiry is then Redis' own, and
// expire() does nothing.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/inline_function.h"
#include "common/time.h"

namespace wtmesh::edge {

inline constexpr std::string_view kHttp = "http";
inline constexpr std::string_view kTcp = "tcp";  // TCP tunnels by name (public port or private)
inline constexpr std::string_view kUdp = "udp";  // UDP tunnels by name (public port or private)
inline constexpr std::string_view kCatchAll = "*";

// A route's name within its type. Views: the table copies what it keeps.
struct RouteKey {
  std::string_view type;  // kHttp, kTcp, kUdp
  std::string_view name;  // a name, "*.name" or kCatchAll, already validated by the caller
};

// Who holds a route, and for how long without a renew().
struct RouteLease {
  std::string_view owner;    // unique across edges
  std::string_view edge_id;  // the edge the owner's session is on
  SteadyTime::duration ttl{};
};

enum class ClaimResult {
  kOk,     // the owner holds the name now (also when it already did: the tunnel id is updated)
  kTaken,  // another owner holds it
  kFull,   // the table is at its capacity
};
const char* to_string(ClaimResult r);

struct ClaimReply {
  ClaimResult result = ClaimResult::kOk;
  std::string_view holder;  // kTaken: the owner holding the name
};

// What lookup() found for a host.
struct RouteMatch {
  enum class State {
    kNone,     // no route, and no recently departed one
    kLive,     // a lease serves the host
    kOffline,  // the route that would serve it is in its offline grace
  };
  State state = State::kNone;
  std::string_view pattern;  // the route that matched (kLive, kOffline), lower-case
  std::string_view owner;    // kLive
  std::string_view edge_id;  // kLive
  uint32_t tunnel_id = 0;    // kLive

  bool live() const { return state == State::kLive; }
  bool offline() const { return state == State::kOffline; }
};

class RouteTable {
 public:
  using ClaimDone = InlineFunction<void(const ClaimReply&)>;
  using LookupDone = InlineFunction<void(const RouteMatch&)>;
  using ReleaseDone = InlineFunction<void(bool released)>;
  using CountDone = InlineFunction<void(size_t routes)>;

  virtual ~RouteTable() = default;

  // Makes `lease.owner` the holder of `key`, answering `tunnel_id`; renews the owner's lease.
  virtual void claim(RouteKey key, const RouteLease& lease, uint32_t tunnel_id, SteadyTime now,
                     ClaimDone done) = 0;
  // Drops the route if `owner` holds it (no tombstone); false otherwise (never another owner's).
  virtual void release(RouteKey key, std::string_view owner, SteadyTime now, ReleaseDone done = nullptr) = 0;
  // Drops every route of `owner`, leaving offline tombstones; completes with how many.
  virtual void release_all(std::string_view owner, SteadyTime now, CountDone done = nullptr) = 0;
  // Extends every lease of `owner` to now + its TTL; completes with how many routes it holds.
  virtual void renew(std::string_view owner, SteadyTime now, CountDone done = nullptr) = 0;
  // `host` is a bare host name (no port). Exact match, then "*.parent", then the catch-all.
  virtual void lookup(std::string_view type, std::string_view host, SteadyTime now, LookupDone done) = 0;
  // Housekeeping: purges expired leases (into tombstones) and tombstones past their grace. Every
  // other operation does it too; a store with its own expiry does nothing here.
  virtual void expire(SteadyTime now) = 0;
};

// The in-memory table of one edge: every operation completes inline.
class LocalRouteTable final : public RouteTable {
 public:
  struct Limits {
    size_t max_routes = 100'000;  // live routes (kFull beyond)
    size_t max_offline = 4096;    // tombstones (the oldest goes beyond)
    std::chrono::seconds offline_grace{300};
  };

  LocalRouteTable() : LocalRouteTable(Limits{}) {}
  explicit LocalRouteTable(Limits limits) : limits_(limits) {}
  LocalRouteTable(const LocalRouteTable&) = delete;
  LocalRouteTable& operator=(const LocalRouteTable&) = delete;

  void claim(RouteKey key, const RouteLease& lease, uint32_t tunnel_id, SteadyTime now,
             ClaimDone done) override;
  void release(RouteKey key, std::string_view owner, SteadyTime now, ReleaseDone done = nullptr) override;
  void release_all(std::string_view owner, SteadyTime now, CountDone done = nullptr) override;
  void renew(std::string_view owner, SteadyTime now, CountDone done = nullptr) override;
  void lookup(std::string_view type, std::string_view host, SteadyTime now, LookupDone done) override;
  void expire(SteadyTime now) override { purge(now); }

  // What lookup() answers, synchronously (tests, introspection). Views valid until the next change.
  RouteMatch find(std::string_view type, std::string_view host, SteadyTime now) const;
  // Routes held, counting leases that expired but are not purged yet.
  size_t size() const { return live_; }
  size_t offline_count() const { return offline_.size(); }
  size_t owner_count() const { return owners_.size(); }
  const Limits& limits() const { return limits_; }

 private:
  // A name as one or two pieces, so "*." + parent is looked up without building it.
  struct Name {
    std::string_view head, tail;
  };
  struct NameHash {  // FNV-1a over the ASCII-lower-cased bytes
    using is_transparent = void;
    size_t operator()(Name n) const;
    size_t operator()(std::string_view s) const { return (*this)(Name{s, {}}); }
  };
  struct NameEq {  // stored names are lower-case; the other side may not be
    using is_transparent = void;
    static bool same(std::string_view stored, Name n);
    bool operator()(std::string_view a, std::string_view b) const { return same(a, Name{b, {}}); }
    bool operator()(Name a, std::string_view b) const { return same(b, a); }
    bool operator()(std::string_view a, Name b) const { return same(a, b); }
  };
  struct ExactHash {  // owners are compared as they are
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Owner;
  struct Slot;
  using Names = std::unordered_map<std::string, Slot, NameHash, NameEq>;  // name → route of one type
  using Offline = std::multimap<SteadyTime, Slot*>;                       // tombstones by end of grace
  using Expiries = std::multimap<SteadyTime, Owner*>;                     // owners by lease expiry

  // One name of one type: a lease (owner != nullptr) or an offline tombstone.
  struct Slot {
    Names* names = nullptr;
    const std::string* name = nullptr;  // the key in *names
    Owner* owner = nullptr;
    uint32_t tunnel_id = 0;
    size_t index = 0;        // in owner->slots
    bool tombstone = false;  // in offline_, at `offline`
    Offline::iterator offline;
  };
  struct Owner {
    const std::string* id = nullptr;  // the key in owners_
    std::string edge_id;
    SteadyTime::duration ttl{};
    SteadyTime expires{};
    Expiries::iterator expiry;
    std::vector<Slot*> slots;
  };

  const Slot* find_slot(const Names& names, Name name) const;
  RouteMatch match(const Slot& slot, SteadyTime now) const;
  void purge(SteadyTime now);
  void hold(Slot& slot, const RouteLease& lease, uint32_t tunnel_id, SteadyTime now);
  void touch(Owner& owner, SteadyTime now);
  void detach(Slot& slot);  // from its owner; drops the owner with its last route
  void drop_owner(Owner& owner);
  void bury(Slot& slot, SteadyTime until);  // lease → tombstone, or erased when none may be kept
  void erase(Slot& slot);

  Limits limits_;
  std::map<std::string, Names, std::less<>> types_;
  std::unordered_map<std::string, Owner, ExactHash, std::equal_to<>> owners_;
  Expiries expiries_;
  Offline offline_;
  size_t live_ = 0;
};

// ASCII lower-case copy.
std::string lower_ascii(std::string_view s);

}  // namespace wtmesh::edge
