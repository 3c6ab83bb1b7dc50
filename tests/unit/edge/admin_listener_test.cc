// The admin listener's routes (edge/admin_listener.h), sans-I/O: GET /metrics and GET /ready only.
#include "edge/admin_listener.h"

#include <gtest/gtest.h>

namespace wtmesh::edge {
namespace {

AdminSource source(bool ready) {
  return AdminSource{[ready] { return ready; }, [] { return std::string("# metrics\n"); }};
}

TEST(AdminReplyTest, MetricsInTheTextFormat) {
  const AdminReply r = admin_reply("GET", "/metrics", source(true));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(r.body, "# metrics\n");
  EXPECT_EQ(admin_reply("GET", "/metrics?name[]=x", source(true)).status, 200);  // a query is ignored
}

TEST(AdminReplyTest, ReadyFollowsTheEdge) {
  EXPECT_EQ(admin_reply("GET", "/ready", source(true)).status, 200);
  EXPECT_EQ(admin_reply("GET", "/ready", source(false)).status, 503);
  EXPECT_EQ(admin_reply("GET", "/ready", AdminSource{}).status, 503);    // nobody says it is ready
  EXPECT_EQ(admin_reply("GET", "/metrics", source(false)).status, 200);  // metrics even while draining
}

TEST(AdminReplyTest, OtherPathsAre404OtherMethods405) {
  EXPECT_EQ(admin_reply("GET", "/", source(true)).status, 404);
  EXPECT_EQ(admin_reply("GET", "/metrics/", source(true)).status, 404);
  EXPECT_EQ(admin_reply("GET", "/READY", source(true)).status, 404);
  EXPECT_EQ(admin_reply("POST", "/nope", source(true)).status, 404);
  for (const char* m : {"POST", "HEAD", "PUT", "DELETE", "get"}) {
    const AdminReply r = admin_reply(m, "/metrics", source(true));
    EXPECT_EQ(r.status, 405) << m;
    EXPECT_EQ(r.allow, "GET") << m;
  }
}

}  // namespace
}  // namespace wtmesh::edge
