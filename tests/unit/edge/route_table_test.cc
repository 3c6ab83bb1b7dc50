#include "edge/route_table.h"

#include <gtest/gtest.h>

namespace wtmesh::edge {
namespace {

TEST(LocalRouteTable, ClaimLookupRelease) {
  LocalRouteTable t;
  EXPECT_EQ(t.claim("App.Localhost", "s1", 7), ClaimResult::kOk);
  auto r = t.lookup("app.localhost");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, (RouteEntry{"app.localhost", "s1", 7}));
  EXPECT_TRUE(t.lookup("APP.LOCALHOST"));
  EXPECT_FALSE(t.lookup("other.localhost"));
  EXPECT_TRUE(t.release("app.localhost", "s1"));
  EXPECT_FALSE(t.lookup("app.localhost"));
  EXPECT_FALSE(t.release("app.localhost", "s1"));
}

TEST(LocalRouteTable, TakenByAnotherOwnerSameOwnerUpdates) {
  LocalRouteTable t;
  EXPECT_EQ(t.claim("app.localhost", "s1", 1), ClaimResult::kOk);
  EXPECT_EQ(t.claim("APP.localhost", "s2", 1), ClaimResult::kTaken);
  EXPECT_EQ(t.claim("app.localhost", "s1", 9), ClaimResult::kOk);
  EXPECT_EQ(t.lookup("app.localhost")->tunnel_id, 9u);
  EXPECT_EQ(t.lookup("app.localhost")->owner, "s1");
  // Another owner can never release it.
  EXPECT_FALSE(t.release("app.localhost", "s2"));
  EXPECT_TRUE(t.lookup("app.localhost"));
}

TEST(LocalRouteTable, ReleaseAllDropsOnlyThatOwner) {
  LocalRouteTable t;
  t.claim("a.localhost", "s1", 1);
  t.claim("b.localhost", "s1", 2);
  t.claim("c.localhost", "s2", 1);
  EXPECT_EQ(t.release_all("s1"), 2u);
  EXPECT_FALSE(t.lookup("a.localhost"));
  EXPECT_FALSE(t.lookup("b.localhost"));
  EXPECT_TRUE(t.lookup("c.localhost"));
  EXPECT_EQ(t.release_all("s1"), 0u);
  EXPECT_EQ(t.size(), 1u);
}

TEST(LocalRouteTable, ExactThenWildcardThenCatchAll) {
  LocalRouteTable t;
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
  LocalRouteTable t;
  t.claim("*.com", "w", 1);
  EXPECT_FALSE(t.lookup(".com"));
  EXPECT_FALSE(t.lookup("com."));
  EXPECT_TRUE(t.lookup("a.com"));
}

TEST(LocalRouteTable, CapacityIsEnforced) {
  LocalRouteTable t(2);
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

}  // namespace
}  // namespace wtmesh::edge
