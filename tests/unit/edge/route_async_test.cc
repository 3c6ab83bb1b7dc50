// The callers of the RouteTable when it answers late (a shared store across the network): the tunnel
// sessions' claims and releases, TunnelService's lookups, and the public Http1Connection waiting for its
// route, all over a QueuedRouteTable whose operations take effect only when the test drains it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "edge/http1_connection.h"
#include "http1_connection_fixture.h"
#include "queued_route_table.h"
#include "tunnel_service_fixture.h"

namespace wtmesh::edge {
namespace {

using json = nlohmann::json;
using test::bytes;
using test::FakeSession;
using test::str;
using namespace std::chrono_literals;

class RouteAsyncTest : public test::TunnelServiceFixture<test::QueuedRouteTable> {
 protected:
  void TearDown() override {
    h1_.reset();
    TunnelServiceFixture::TearDown();
  }
  FakeSession& agent(size_t i = 0) { return *sessions_.at(i); }
  // The control frames since the last call, as (type, payload).
  std::vector<std::pair<tunnel::ControlType, json>> replies(size_t i = 0) {
    const auto frames = control_frames(agent(i));
    std::vector<std::pair<tunnel::ControlType, json>> out;
    for (size_t k = seen_[i]; k < frames.size(); ++k)
      out.emplace_back(static_cast<tunnel::ControlType>(frames[k].type), json::parse(frames[k].payload));
    seen_[i] = frames.size();
    return out;
  }
  void send(FakeSession& s, tunnel::ControlType type, const json& j) {
    s.handler->on_stream_data(0, tunnel::encode_control_frame(type, j.dump()), false);
  }
  void register_more(FakeSession& s, uint32_t id, const std::string& host) {
    send(s, tunnel::ControlType::kRegister, json{{"id", id}, {"type", "http"}, {"hostname", host}});
  }
  // An agent session holding app.localhost (the claim answered).
  void serve_app() {
    ASSERT_EQ(connect(info("Bearer " + token({"app.localhost"}))).status, 200);
    register_host(agent(), 1, "app.localhost");
    routes_->drain();
    replies();
  }
  void make_proxy() {
    Http1Config cfg;
    cfg.client = {"192.0.2.1", true};
    cfg.clock = clock_.fn();
    h1_ = std::make_unique<Http1Connection>(
        *service_, cfg,
        Http1Connection::Hooks{[this] { ++wakes_; }, [this](const RequestLog& l) { logs_.push_back(l); }});
  }
  std::string output() { return test::drain(*h1_); }
  // Request streams the edge opened on the agent's session.
  size_t request_streams(size_t i = 0) { return agent(i).streams.size() - agent(i).streams.count(0); }

  std::map<size_t, size_t> seen_;
  std::unique_ptr<Http1Connection> h1_;
  int wakes_ = 0;
  std::vector<RequestLog> logs_;
};

TEST_F(RouteAsyncTest, RegisterIsAnsweredWhenTheTableIs) {
  ASSERT_EQ(connect(info("Bearer " + token())).status, 200);
  register_host(agent(), 4, "App.Localhost");
  EXPECT_TRUE(replies().empty()) << "the claim is still under way";
  EXPECT_EQ(service_->find_session(1)->tunnel_count(), 1u) << "counted from the REGISTER on";
  EXPECT_EQ(routes_->drain(), 1u);
  auto r = replies();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].first, tunnel::ControlType::kRegistered);
  EXPECT_EQ(r[0].second["id"], 4);
  EXPECT_EQ(r[0].second["hostname"], "app.localhost");
  const RouteLookup found = route("app.localhost");
  EXPECT_EQ(found.kind, RouteLookup::Kind::kFound);
  EXPECT_EQ(found.tunnel_id, 4u);
}

TEST_F(RouteAsyncTest, AnswersKeepTheOrderOfTheRegisters) {
  ASSERT_EQ(connect(info("Bearer " + token({"*.localhost"}))).status, 200);
  register_host(agent(0), 1, "b.localhost");
  routes_->drain();
  replies(0);
  ASSERT_EQ(connect(info("Bearer " + token({"*.localhost"}))).status, 200);
  register_host(agent(1), 1, "a.localhost");
  register_more(agent(1), 2, "b.localhost");
  register_more(agent(1), 3, "c.localhost");
  register_more(agent(1), 3, "d.localhost");  // refused at once: the id is taken (by a pending claim)
  auto early = replies(1);
  ASSERT_EQ(early.size(), 1u);
  EXPECT_EQ(early[0].second["code"], "duplicate_id");
  EXPECT_EQ(routes_->drain(), 3u);
  auto r = replies(1);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].first, tunnel::ControlType::kRegistered);
  EXPECT_EQ(r[0].second["id"], 1);
  EXPECT_EQ(r[1].first, tunnel::ControlType::kRefused);
  EXPECT_EQ(r[1].second["code"], "taken");
  EXPECT_EQ(r[2].first, tunnel::ControlType::kRegistered);
  EXPECT_EQ(r[2].second["id"], 3);
  EXPECT_EQ(service_->find_session(2)->tunnel_count(), 2u) << "the refused one is forgotten";
  // The holder of the contended name was probed, from the late answer.
  auto probe = replies(0);
  ASSERT_EQ(probe.size(), 1u);
  EXPECT_EQ(probe[0].first, tunnel::ControlType::kPing);
}

TEST_F(RouteAsyncTest, SessionGoneBeforeItsClaimIsAnsweredLeavesOnlyATombstone) {
  ASSERT_EQ(connect(info("Bearer " + token())).status, 200);
  register_host(agent(), 1, "app.localhost");
  agent().peer_closes(0, "agent quit");
  service_->on_tick(clock_.t);  // destroys the ended session
  EXPECT_EQ(service_->find_session(1), nullptr);
  routes_->drain();  // the claim, then the session's release_all: the answer finds nobody
  EXPECT_EQ(routes_->size(), 0u);
  EXPECT_EQ(route("app.localhost").kind, RouteLookup::Kind::kOffline) << "released like any other route";
  clock_.t += 61s;
  EXPECT_EQ(route("app.localhost").kind, RouteLookup::Kind::kUnknown);
}

TEST_F(RouteAsyncTest, UnregisterBeforeTheClaimIsAnswered) {
  ASSERT_EQ(connect(info("Bearer " + token())).status, 200);
  register_host(agent(), 1, "app.localhost");
  send(agent(), tunnel::ControlType::kUnregister, json{{"id", 1}});
  EXPECT_EQ(service_->find_session(1)->tunnel_count(), 0u);
  routes_->drain();
  auto r = replies();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].first, tunnel::ControlType::kRegistered) << "the claim did succeed; the release followed";
  EXPECT_EQ(route("app.localhost").kind, RouteLookup::Kind::kUnknown) << "an UNREGISTER leaves no tombstone";
  // The id and the name are free again.
  register_more(agent(), 1, "app.localhost");
  routes_->drain();
  EXPECT_EQ(replies()[0].first, tunnel::ControlType::kRegistered);
  EXPECT_EQ(route("app.localhost").kind, RouteLookup::Kind::kFound);
}

TEST_F(RouteAsyncTest, PublicRequestWaitsForItsRoute) {
  serve_app();
  make_proxy();
  h1_->on_client_bytes(bytes("GET /x HTTP/1.1\r\nHost: app.localhost\r\n\r\n"));
  EXPECT_EQ(output(), "");
  EXPECT_FALSE(h1_->exchange_active());
  EXPECT_EQ(request_streams(), 0u);
  ASSERT_TRUE(h1_->next_deadline());
  EXPECT_EQ(*h1_->next_deadline(), clock_.t + 1s) << "open_timeout, from the head";
  EXPECT_EQ(routes_->drain(), 1u);
  EXPECT_TRUE(h1_->exchange_active());
  EXPECT_GE(wakes_, 1) << "a late answer wakes the glue";
  ASSERT_EQ(request_streams(), 1u);
  const wt::StreamId id = std::prev(agent().streams.end())->first;
  EXPECT_FALSE(agent().streams[id].written.empty()) << "the request head went out";
  EXPECT_TRUE(agent().streams[id].fin);
  // The agent answers.
  tunnel::ResponseHead head;
  head.status = 200;
  head.content_length = 2;
  auto answer = tunnel::encode_response_head(head);
  answer.push_back('o');
  answer.push_back('k');
  agent().handler->on_stream_data(id, answer, true);
  const std::string out = output();
  EXPECT_TRUE(out.starts_with("HTTP/1.1 200 ")) << out;
  EXPECT_TRUE(out.ends_with("\r\n\r\nok")) << out;
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 200);
}

TEST_F(RouteAsyncTest, UnknownAndOfflineAreAnsweredLateToo) {
  serve_app();
  make_proxy();
  h1_->on_client_bytes(
      bytes("GET / HTTP/1.1\r\nHost: nobody.localhost\r\n\r\n"
            "GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n"));
  EXPECT_EQ(output(), "");
  agent().peer_closes(0, "agent quit");  // its release_all is queued behind the first lookup
  routes_->drain();
  const std::string out = output();
  EXPECT_TRUE(out.starts_with("HTTP/1.1 404 ")) << out;
  EXPECT_NE(out.find("HTTP/1.1 502 "), std::string::npos) << "the pipelined request, after the agent left";
  ASSERT_EQ(logs_.size(), 2u);
  EXPECT_EQ(logs_[0].status, 404);
  EXPECT_EQ(logs_[1].status, 502);
}

TEST_F(RouteAsyncTest, ClientGoneBeforeTheRouteArrives) {
  serve_app();
  make_proxy();
  h1_->on_client_bytes(bytes("GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n"));
  h1_->on_client_eof();
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 499);
  routes_->drain();
  EXPECT_EQ(request_streams(), 0u) << "the cancelled lookup's answer went nowhere";
  EXPECT_EQ(output(), "");
}

TEST_F(RouteAsyncTest, ProxyDestroyedBeforeTheRouteArrives) {
  serve_app();
  make_proxy();
  h1_->on_client_bytes(bytes("GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n"));
  h1_.reset();
  routes_->drain();
  EXPECT_EQ(request_streams(), 0u);
}

TEST_F(RouteAsyncTest, RouteThatDoesNotComeInTimeIs503) {
  serve_app();
  make_proxy();
  h1_->on_client_bytes(bytes("GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n"));
  clock_.t += 999ms;
  h1_->on_tick(clock_.t);
  EXPECT_EQ(output(), "");
  clock_.t += 1ms;
  h1_->on_tick(clock_.t);
  const std::string out = output();
  EXPECT_TRUE(out.starts_with("HTTP/1.1 503 ")) << out;
  EXPECT_FALSE(h1_->finished()) << "keep-alive: nothing of a body was left unread";
  routes_->drain();
  EXPECT_EQ(request_streams(), 0u);
  EXPECT_EQ(output(), "");
  // The next request on the connection is routed normally.
  h1_->on_client_bytes(bytes("GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n"));
  routes_->drain();
  EXPECT_EQ(request_streams(), 1u);
}

TEST_F(RouteAsyncTest, ServiceDestroyedWithALookupUnderWay) {
  serve_app();
  struct Answer final : RouteEvents {
    void on_route(const RouteLookup&) override { ++answers; }
    int answers = 0;
  } answer;
  EXPECT_NE(service_->route("app.localhost", &answer), 0u);
  agent().peer_closes(0, "");
  service_.reset();
  routes_->drain();
  EXPECT_EQ(answer.answers, 0);
}

TEST_F(RouteAsyncTest, CancelledLookupIsNotAnswered) {
  serve_app();
  struct Answer final : RouteEvents {
    void on_route(const RouteLookup&) override { ++answers; }
    int answers = 0;
  } a, b;
  const uint64_t ta = service_->route("app.localhost", &a);
  const uint64_t tb = service_->route("app.localhost", &b);
  EXPECT_NE(ta, tb);
  service_->cancel_route(ta);
  routes_->drain();
  EXPECT_EQ(a.answers, 0);
  EXPECT_EQ(b.answers, 1);
  service_->cancel_route(tb);  // answered already: no-op
}

}  // namespace
}  // namespace wtmesh::edge
