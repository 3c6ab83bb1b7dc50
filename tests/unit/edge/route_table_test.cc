#include "edge/route_table.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace wtmesh::edge {
namespace {

using namespace std::chrono_literals;

constexpr auto kTtl = 30s;

struct Entry {
  std::string pattern, owner;
  uint32_t tunnel_id = 0;
  bool operator==(const Entry&) const = default;
};

// A LocalRouteTable driven through the RouteTable interface, with a settable clock. Every call
// checks that the local table completed inline.
struct Table {
  explicit Table(LocalRouteTable::Limits limits = {}) : t(limits) {}

  ClaimResult claim(std::string_view name, std::string_view owner, uint32_t id,
                    std::string_view type = kHttp) {
    return claim_reply(name, owner, id, type).first;
  }
  std::pair<ClaimResult, std::string> claim_reply(std::string_view name, std::string_view owner, uint32_t id,
                                                  std::string_view type = kHttp) {
    std::optional<std::pair<ClaimResult, std::string>> r;
    t.claim({type, name}, {owner, "edge-a", kTtl}, id, now,
            [&r](const ClaimReply& c) { r.emplace(c.result, std::string(c.holder)); });
    EXPECT_TRUE(r) << "completed inline";
    return r.value_or(std::pair{ClaimResult::kFull, std::string()});
  }
  bool release(std::string_view name, std::string_view owner, std::string_view type = kHttp) {
    std::optional<bool> r;
    t.release({type, name}, owner, now, [&r](bool released) { r = released; });
    EXPECT_TRUE(r) << "completed inline";
    return r.value_or(false);
  }
  size_t release_all(std::string_view owner) {
    std::optional<size_t> r;
    t.release_all(owner, now, [&r](size_t n) { r = n; });
    EXPECT_TRUE(r) << "completed inline";
    return r.value_or(0);
  }
  size_t renew(std::string_view owner) {
    std::optional<size_t> r;
    t.renew(owner, now, [&r](size_t n) { r = n; });
    EXPECT_TRUE(r) << "completed inline";
    return r.value_or(0);
  }
  RouteMatch::State state(std::string_view host, std::string_view type = kHttp) {
    std::optional<RouteMatch::State> r;
    t.lookup(type, host, now, [&r](const RouteMatch& m) { r = m.state; });
    EXPECT_TRUE(r) << "completed inline";
    return r.value_or(RouteMatch::State::kNone);
  }
  // The live route serving `host`, if any.
  std::optional<Entry> lookup(std::string_view host, std::string_view type = kHttp) {
    std::optional<Entry> r;
    bool done = false;
    t.lookup(type, host, now, [&](const RouteMatch& m) {
      done = true;
      if (m.live()) r = Entry{std::string(m.pattern), std::string(m.owner), m.tunnel_id};
    });
    EXPECT_TRUE(done) << "completed inline";
    return r;
  }
  bool offline(std::string_view host, std::string_view type = kHttp) {
    return state(host, type) == RouteMatch::State::kOffline;
  }

  LocalRouteTable t;
  SteadyTime now = SteadyTime(std::chrono::hours(1000));
};

TEST(LocalRouteTable, ClaimLookupRelease) {
  Table t;
  EXPECT_EQ(t.claim("App.Localhost", "s1", 7), ClaimResult::kOk);
  auto r = t.lookup("app.localhost");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, (Entry{"app.localhost", "s1", 7}));
  EXPECT_TRUE(t.lookup("APP.LOCALHOST"));
  EXPECT_FALSE(t.lookup("other.localhost"));
  EXPECT_TRUE(t.release("app.localhost", "s1"));
  EXPECT_FALSE(t.lookup("app.localhost"));
  EXPECT_FALSE(t.release("app.localhost", "s1"));
}

TEST(LocalRouteTable, TakenByAnotherOwnerSameOwnerUpdates) {
  Table t;
  EXPECT_EQ(t.claim("app.localhost", "s1", 1), ClaimResult::kOk);
  EXPECT_EQ(t.claim_reply("APP.localhost", "s2", 1), std::pair(ClaimResult::kTaken, std::string("s1")))
      << "the holder is named, so the caller can probe it";
  EXPECT_EQ(t.claim("app.localhost", "s1", 9), ClaimResult::kOk);
  EXPECT_EQ(t.lookup("app.localhost")->tunnel_id, 9u);
  EXPECT_EQ(t.lookup("app.localhost")->owner, "s1");
  // Another owner can never release it.
  EXPECT_FALSE(t.release("app.localhost", "s2"));
  EXPECT_TRUE(t.lookup("app.localhost"));
  EXPECT_EQ(t.release_all("s2"), 0u);
  EXPECT_TRUE(t.lookup("app.localhost"));
}

TEST(LocalRouteTable, ReleaseAllDropsOnlyThatOwner) {
  Table t;
  t.claim("a.localhost", "s1", 1);
  t.claim("b.localhost", "s1", 2);
  t.claim("c.localhost", "s2", 1);
  EXPECT_EQ(t.release_all("s1"), 2u);
  EXPECT_FALSE(t.lookup("a.localhost"));
  EXPECT_FALSE(t.lookup("b.localhost"));
  EXPECT_TRUE(t.lookup("c.localhost"));
  EXPECT_EQ(t.release_all("s1"), 0u);
  EXPECT_EQ(t.t.size(), 1u);
}

TEST(LocalRouteTable, ExactThenWildcardThenCatchAll) {
  Table t;
  t.claim("*.example.com", "wild", 1);
  t.claim("api.example.com", "exact", 2);
  EXPECT_EQ(t.lookup("api.example.com")->owner, "exact");
  EXPECT_EQ(t.lookup("www.example.com")->owner, "wild");
  EXPECT_EQ(t.lookup("WWW.Example.COM")->pattern, "*.example.com");
  // One label only, like token wildcards.
  EXPECT_FALSE(t.lookup("a.b.example.com"));
  EXPECT_FALSE(t.lookup("example.com"));
  t.claim(kCatchAll, "all", 3);
  EXPECT_EQ(t.lookup("a.b.example.com")->owner, "all");
  EXPECT_EQ(t.lookup("example.com")->owner, "all");
  EXPECT_EQ(t.lookup("")->owner, "all");
  EXPECT_EQ(t.lookup("api.example.com")->owner, "exact");
  EXPECT_EQ(t.lookup("x.example.com")->owner, "wild");
}

TEST(LocalRouteTable, DegenerateHostsDoNotMatchWildcards) {
  Table t;
  t.claim("*.com", "w", 1);
  EXPECT_FALSE(t.lookup(".com"));
  EXPECT_FALSE(t.lookup("com."));
  EXPECT_TRUE(t.lookup("a.com"));
}

TEST(LocalRouteTable, CapacityIsEnforced) {
  Table t(LocalRouteTable::Limits{.max_routes = 2});
  EXPECT_EQ(t.claim("a.localhost", "s", 1), ClaimResult::kOk);
  EXPECT_EQ(t.claim("b.localhost", "s", 2), ClaimResult::kOk);
  EXPECT_EQ(t.claim("c.localhost", "s", 3), ClaimResult::kFull);
  // Re-claiming a held name is not a new route.
  EXPECT_EQ(t.claim("a.localhost", "s", 4), ClaimResult::kOk);
  EXPECT_EQ(t.claim("a.localhost", "x", 4), ClaimResult::kTaken);
  t.release("b.localhost", "s");
  EXPECT_EQ(t.claim("c.localhost", "s", 3), ClaimResult::kOk);
  EXPECT_STREQ(to_string(ClaimResult::kFull), "full");
}

TEST(LocalRouteTable, NamesAreCaseInsensitiveEverywhere) {
  Table t;
  t.claim("*.Apps.Example.COM", "wild", 1);
  t.claim("API.example.com", "exact", 2);
  EXPECT_EQ(t.lookup("x.APPS.example.com")->pattern, "*.apps.example.com") << "stored lower-case";
  EXPECT_EQ(t.lookup("api.EXAMPLE.com")->pattern, "api.example.com");
  EXPECT_EQ(t.claim("api.Example.Com", "other", 3), ClaimResult::kTaken);
  EXPECT_TRUE(t.release("Api.Example.Com", "exact"));
  EXPECT_FALSE(t.lookup("api.example.com"));
}

TEST(LocalRouteTable, TypesAreKeptApart) {
  Table t;
  EXPECT_EQ(t.claim("app.localhost", "web", 1, kHttp), ClaimResult::kOk);
  EXPECT_EQ(t.claim("app.localhost", "db", 2, "tcp"), ClaimResult::kOk) << "same name, other type";
  EXPECT_EQ(t.claim(kCatchAll, "all-tcp", 3, "tcp"), ClaimResult::kOk);
  EXPECT_EQ(t.lookup("app.localhost", kHttp)->owner, "web");
  EXPECT_EQ(t.lookup("app.localhost", "tcp")->owner, "db");
  EXPECT_FALSE(t.lookup("other.localhost", kHttp)) << "a tcp catch-all does not serve http";
  EXPECT_EQ(t.lookup("other.localhost", "tcp")->owner, "all-tcp");
  EXPECT_FALSE(t.lookup("app.localhost", "udp"));
  EXPECT_FALSE(t.release("app.localhost", "web", "tcp"));
  EXPECT_EQ(t.release_all("db"), 1u);
  EXPECT_EQ(t.lookup("app.localhost", "tcp")->owner, "all-tcp");
  EXPECT_EQ(t.release_all("all-tcp"), 1u);
  EXPECT_TRUE(t.offline("app.localhost", "tcp"));
  EXPECT_EQ(t.lookup("app.localhost", kHttp)->owner, "web");
}

TEST(LocalRouteTable, LeasesExpireUnlessRenewed) {
  Table t(LocalRouteTable::Limits{.offline_grace = 60s});
  const SteadyTime t0 = t.now;
  t.claim("a.localhost", "s1", 1);
  t.claim("b.localhost", "s1", 2);
  t.claim("c.localhost", "s2", 3);
  t.now = t0 + 20s;
  EXPECT_EQ(t.renew("s1"), 2u);
  EXPECT_EQ(t.renew("nobody"), 0u);
  t.now = t0 + kTtl - 1s;
  EXPECT_TRUE(t.lookup("c.localhost"));
  t.now = t0 + kTtl;
  EXPECT_FALSE(t.lookup("c.localhost")) << "not renewed: expired";
  EXPECT_TRUE(t.offline("c.localhost")) << "an expired lease is offline for the grace, like a released one";
  EXPECT_EQ(t.lookup("a.localhost")->tunnel_id, 1u) << "renewed at +20 s: until +50 s";
  // A claim renews the owner's lease too.
  t.now = t0 + 45s;
  EXPECT_EQ(t.claim("a.localhost", "s1", 1), ClaimResult::kOk);
  t.now = t0 + 70s;
  EXPECT_TRUE(t.lookup("b.localhost"));
  // Purged: the expired lease became a tombstone, and goes when its grace ends.
  t.t.expire(t.now);
  EXPECT_EQ(t.t.size(), 2u);
  EXPECT_EQ(t.t.offline_count(), 1u);
  EXPECT_EQ(t.t.owner_count(), 1u);
  EXPECT_EQ(t.renew("s2"), 0u) << "an expired owner holds nothing";
  // +90 s: c's grace is over; s1, renewed last by the claim at +45 s, expired at +75 s.
  t.now = t0 + kTtl + 60s;
  EXPECT_EQ(t.state("c.localhost"), RouteMatch::State::kNone);
  EXPECT_TRUE(t.offline("a.localhost"));
  t.t.expire(t.now);
  EXPECT_EQ(t.t.size(), 0u);
  EXPECT_EQ(t.t.offline_count(), 2u);
  EXPECT_EQ(t.t.owner_count(), 0u);
  // Anyone may claim an expired name.
  EXPECT_EQ(t.claim("c.localhost", "s3", 4), ClaimResult::kOk);
  EXPECT_EQ(t.claim("a.localhost", "s3", 5), ClaimResult::kOk);
}

TEST(LocalRouteTable, ReleasedSessionLeavesOfflineTombstonesUntilTheNameIsClaimedAgain) {
  Table t(LocalRouteTable::Limits{.offline_grace = 60s});
  t.claim("app.localhost", "s1", 1);
  t.claim("*.wild.localhost", "s1", 2);
  EXPECT_EQ(t.release_all("s1"), 2u);
  EXPECT_FALSE(t.lookup("app.localhost"));
  EXPECT_TRUE(t.offline("app.localhost"));
  EXPECT_TRUE(t.offline("x.wild.localhost")) << "wildcards have tombstones too";
  EXPECT_EQ(t.state("nobody.localhost"), RouteMatch::State::kNone);
  EXPECT_EQ(t.t.size(), 0u);
  // A new claim replaces the tombstone at once, by any owner.
  t.now += 10s;
  EXPECT_EQ(t.claim("app.localhost", "s2", 5), ClaimResult::kOk);
  EXPECT_EQ(t.lookup("app.localhost")->owner, "s2");
  EXPECT_EQ(t.t.offline_count(), 1u);
  // An UNREGISTER (release of one route) leaves no tombstone, and the old one is gone.
  EXPECT_TRUE(t.release("app.localhost", "s2"));
  EXPECT_EQ(t.state("app.localhost"), RouteMatch::State::kNone);
  // The grace ends.
  t.now += 50s;
  EXPECT_EQ(t.state("x.wild.localhost"), RouteMatch::State::kNone);
}

TEST(LocalRouteTable, LiveRoutesComeBeforeOfflineOnesInTheOrder) {
  Table t;
  t.claim("api.example.com", "gone", 1);
  t.claim(kCatchAll, "all", 2);
  t.release_all("gone");
  EXPECT_EQ(t.lookup("api.example.com")->owner, "all") << "a live catch-all serves an offline exact name";
  t.release_all("all");
  EXPECT_TRUE(t.offline("api.example.com"));
  EXPECT_TRUE(t.offline("anything.else"));
}

TEST(LocalRouteTable, ReleaseAllOfAnOwnerWithManyRoutes) {
  constexpr size_t kMany = 20'000;
  Table t(LocalRouteTable::Limits{.max_offline = kMany});
  for (size_t i = 0; i < kMany; ++i) {
    ASSERT_EQ(t.claim("n" + std::to_string(i) + ".localhost", "big", static_cast<uint32_t>(i)),
              ClaimResult::kOk);
  }
  for (uint32_t i = 0; i < 10; ++i) t.claim("m" + std::to_string(i) + ".localhost", "small", i);
  // Releasing single routes out of the middle keeps the owner's index right.
  EXPECT_TRUE(t.release("n0.localhost", "big"));
  EXPECT_TRUE(t.release("n777.localhost", "big"));
  EXPECT_EQ(t.renew("big"), kMany - 2);
  EXPECT_EQ(t.release_all("big"), kMany - 2);
  EXPECT_EQ(t.t.size(), 10u);
  EXPECT_EQ(t.t.owner_count(), 1u);
  EXPECT_EQ(t.t.offline_count(), kMany - 2);
  EXPECT_TRUE(t.offline("n19999.localhost"));
  EXPECT_EQ(t.state("n777.localhost"), RouteMatch::State::kNone);
  EXPECT_EQ(t.lookup("m9.localhost")->owner, "small");
  EXPECT_EQ(t.release_all("small"), 10u);
  EXPECT_EQ(t.t.owner_count(), 0u);
}

TEST(LocalRouteTable, TombstonesAreCappedOldestFirst) {
  Table t(LocalRouteTable::Limits{.max_offline = 2, .offline_grace = 60s});
  for (const char* name : {"a.localhost", "b.localhost", "c.localhost"}) {
    t.claim(name, name, 1);
    t.release_all(name);
    t.now += 1s;
  }
  EXPECT_EQ(t.t.offline_count(), 2u);
  EXPECT_EQ(t.state("a.localhost"), RouteMatch::State::kNone) << "the oldest went";
  EXPECT_TRUE(t.offline("b.localhost"));
  EXPECT_TRUE(t.offline("c.localhost"));
  // Without room for any, a released name is simply gone.
  Table none(LocalRouteTable::Limits{.max_offline = 0});
  none.claim("a.localhost", "s", 1);
  none.release_all("s");
  EXPECT_EQ(none.state("a.localhost"), RouteMatch::State::kNone);
}

TEST(LocalRouteTable, TombstonesDoNotCountAgainstTheCapacity) {
  Table t(LocalRouteTable::Limits{.max_routes = 1});
  t.claim("a.localhost", "s1", 1);
  t.release_all("s1");
  EXPECT_EQ(t.claim("b.localhost", "s2", 1), ClaimResult::kOk);
  EXPECT_EQ(t.claim("a.localhost", "s2", 2), ClaimResult::kFull) << "replacing a tombstone is a new route";
  EXPECT_TRUE(t.offline("a.localhost"));
}

TEST(LocalRouteTable, FindAnswersWhatLookupAnswers) {
  Table t;
  t.claim("*.example.com", "wild", 1);
  const RouteMatch m = t.t.find(kHttp, "x.example.com", t.now);
  ASSERT_TRUE(m.live());
  EXPECT_EQ(m.pattern, "*.example.com");
  EXPECT_EQ(m.owner, "wild");
  EXPECT_EQ(m.edge_id, "edge-a");
  EXPECT_EQ(m.tunnel_id, 1u);
  EXPECT_EQ(t.t.find(kHttp, "x.example.com", t.now + kTtl).state, RouteMatch::State::kOffline)
      << "expired, not purged yet: what the purge will leave";
}

}  // namespace
}  // namespace wtmesh::edge
