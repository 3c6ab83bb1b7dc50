// REGISTERs of type "tcp" on the edge's AgentSession (docs/protocol.md §3.1): the name is checked and
// claimed like an http one (route key tcp/NAME), then the TcpPublisher gives it a port or refuses,
// and its port is given back on UNREGISTER and when the session ends.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "agent_session_fixture.h"

namespace wtmesh::edge {
namespace {

// Records what the session asks; answers with `answer` (a port URL by default).
struct FakePublisher final : TcpPublisher {
  TcpPublishResult publish(const TcpPublishRequest& r) override {
    requests.push_back(r);
    TcpPublishResult res = answer;
    if (res.ok && res.url.empty())
      res.url =
          r.private_only ? "tcp://" + r.hostname : "tcp://127.0.0.1:" + std::to_string(20000 + r.tunnel_id);
    if (res.ok) published.insert(r.tunnel_id);
    return res;
  }
  void unpublish(uint64_t /*session*/, uint32_t tunnel_id) override {
    unpublished.push_back(tunnel_id);
    published.erase(tunnel_id);
  }
  TcpPublishResult answer{true, "", "", ""};
  std::vector<TcpPublishRequest> requests;
  std::set<uint32_t> published;
  std::vector<uint32_t> unpublished;
};

class AgentSessionTcpTest : public AgentSessionTest {
 protected:
  void SetUp() override {
    start({"db.localhost", "app.localhost"}, 64, &tcp_);
    open_control();
  }
  std::pair<uint64_t, json> register_tcp(uint32_t id, const std::string& host, const json& options) {
    send(tunnel::ControlType::kRegister,
         json{{"id", id}, {"type", "tcp"}, {"hostname", host}, {"options", options}});
    auto r = replies();
    EXPECT_EQ(r.size(), 1u);
    return r.empty() ? std::pair<uint64_t, json>{} : r[0];
  }
  static constexpr uint64_t kRegistered = static_cast<uint64_t>(tunnel::ControlType::kRegistered);
  static constexpr uint64_t kRefused = static_cast<uint64_t>(tunnel::ControlType::kRefused);

  FakePublisher tcp_;
};

TEST_F(AgentSessionTcpTest, RegisteredWithThePortUrlAndTheNameRouted) {
  auto [type, j] = register_tcp(5, "DB.localhost", json{{"remote_port", 20042}});
  EXPECT_EQ(type, kRegistered);
  EXPECT_EQ(j["url"], "tcp://127.0.0.1:20005");
  EXPECT_EQ(j["hostname"], "db.localhost");
  ASSERT_EQ(tcp_.requests.size(), 1u);
  EXPECT_EQ(tcp_.requests[0].session, 1u);
  EXPECT_EQ(tcp_.requests[0].hostname, "db.localhost");
  EXPECT_EQ(tcp_.requests[0].remote_port, 20042u);
  EXPECT_FALSE(tcp_.requests[0].private_only);
  const RouteMatch route = routes_.find(kTcp, "db.localhost", clock_.t);
  ASSERT_TRUE(route.live()) << "the name is in the route table under type tcp";
  EXPECT_EQ(route.tunnel_id, 5u);
  EXPECT_FALSE(routes_.find(kHttp, "db.localhost", clock_.t).live()) << "types never meet";
  // The same name as http on the same session is another route.
  EXPECT_EQ(register_one(6, "db.localhost").first, kRegistered);
}

TEST_F(AgentSessionTcpTest, PrivateIsPassedOn) {
  auto [type, j] = register_tcp(2, "db.localhost", json{{"private", true}});
  EXPECT_EQ(type, kRegistered);
  EXPECT_EQ(j["url"], "tcp://db.localhost");
  ASSERT_EQ(tcp_.requests.size(), 1u);
  EXPECT_TRUE(tcp_.requests[0].private_only);
}

TEST_F(AgentSessionTcpTest, PublisherRefusalIsForwardedAndTheRouteReleased) {
  tcp_.answer = TcpPublishResult{false, "", "port_taken", "port 20042 is held by another tunnel"};
  auto [type, j] = register_tcp(3, "db.localhost", json{{"remote_port", 20042}});
  EXPECT_EQ(type, kRefused);
  EXPECT_EQ(j["code"], "port_taken");
  EXPECT_EQ(j["message"], "port 20042 is held by another tunnel");
  EXPECT_FALSE(routes_.find(kTcp, "db.localhost", clock_.t).live());
  EXPECT_EQ(ts_->tunnel_count(), 0u);
  // The id is free again, and a later REGISTER that the publisher takes works.
  tcp_.answer = TcpPublishResult{true, "", "", ""};
  EXPECT_EQ(register_tcp(3, "db.localhost", json::object()).first, kRegistered);
}

TEST_F(AgentSessionTcpTest, NameChecksComeFirst) {
  auto [type, j] = register_tcp(1, "secret.localhost", json::object());
  EXPECT_EQ(type, kRefused);
  EXPECT_EQ(j["code"], "not_covered");
  EXPECT_EQ(register_tcp(2, "db.example.com", json::object()).second["code"], "invalid");
  EXPECT_TRUE(tcp_.requests.empty()) << "no port is asked for a name the session may not have";
  routes_.claim({kTcp, "app.localhost"}, {"someone-else", "edge-y", 60s}, 1, clock_.t, nullptr);
  EXPECT_EQ(register_tcp(3, "app.localhost", json::object()).second["code"], "taken");
  EXPECT_TRUE(tcp_.requests.empty());
}

TEST_F(AgentSessionTcpTest, UnregisterAndSessionEndGiveThePortsBack) {
  EXPECT_EQ(register_tcp(1, "db.localhost", json::object()).first, kRegistered);
  EXPECT_EQ(register_tcp(2, "app.localhost", json::object()).first, kRegistered);
  send(tunnel::ControlType::kUnregister, json{{"id", 1}});
  EXPECT_EQ(tcp_.unpublished, std::vector<uint32_t>{1});
  EXPECT_FALSE(routes_.find(kTcp, "db.localhost", clock_.t).live());
  fake_->peer_closes(0, "bye");
  EXPECT_EQ(tcp_.unpublished, (std::vector<uint32_t>{1, 2}));
  EXPECT_TRUE(tcp_.published.empty());
}

TEST_F(AgentSessionTcpTest, WithoutAPublisherTcpIsRefusedAsInvalid) {
  start({"db.localhost"});
  open_control();
  auto [type, j] = register_tcp(1, "db.localhost", json::object());
  EXPECT_EQ(type, kRefused);
  EXPECT_EQ(j["code"], "invalid");
  EXPECT_NE(j["message"].get<std::string>().find("not served here"), std::string::npos);
}

}  // namespace
}  // namespace wtmesh::edge
