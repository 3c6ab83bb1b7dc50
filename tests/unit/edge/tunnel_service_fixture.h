// The TunnelService fixture shared by tunnel_service_test.cc (over a LocalRouteTable, which answers
// inline) and route_async_test.cc (over a QueuedRouteTable, which answers when drained): a service
// with a settable clock and token keys, and helpers to connect fake agent sessions, register names
// on them, and ask the service for a route as the public side does.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "edge/tunnel_service.h"
#include "fakes.h"

namespace wtmesh::edge::test {

template <typename Table>
class TunnelServiceFixture : public ::testing::Test {
 protected:
  using json = nlohmann::json;

  void SetUp() override { make(); }
  void make(size_t max_sessions = 100, size_t max_offline = 4096) {
    sessions_.clear();
    service_.reset();
    routes_.reset();
    routes_.emplace(
        LocalRouteTable::Limits{.max_offline = max_offline, .offline_grace = std::chrono::seconds(60)});
    TunnelServiceConfig cfg;
    cfg.session.domain = "localhost";
    cfg.session.clock = clock_.fn();
    cfg.edge_id = "edge-t";
    cfg.wall_clock = [this] { return wall_; };
    cfg.max_sessions = max_sessions;
    if (tweak_) tweak_(cfg);
    cfg.revocation_file = revocation_file_;
    cfg.session_token_ttl = session_token_ttl_;
    cfg.max_replay_entries = max_replay_entries_;
    cfg.reload_keys = [this] {
      ++reloads_;
      tunnel::VerifierKeySet k;
      k.add_pem(key_.public_pem());
      k.add_pem(later_key_.public_pem());
      return k;
    };
    tunnel::VerifierKeySet keys;
    keys.add_pem(key_.public_pem());
    service_ = std::make_unique<TunnelService>(cfg, *routes_, keys);
  }
  std::string token(std::vector<std::string> hosts = {"app.localhost"},
                    std::chrono::seconds ttl = std::chrono::seconds(600),
                    const tunnel::SigningKey* key = nullptr) {
    return (key ? key : &key_)->sign(tunnel::make_claims("alice", std::move(hosts), ttl, wall_));
  }
  wt::SessionInfo info(const std::string& auth, const std::string& proto = "1") {
    wt::SessionInfo i;
    i.path = "/ingress-mesh";
    i.authority = "127.0.0.1:4433";
    if (!auth.empty()) i.headers.emplace_back("authorization", auth);
    if (!proto.empty()) i.headers.emplace_back("wtmesh-protocol", proto);
    return i;
  }
  // Accepts and attaches a fake session; returns the acceptance.
  wt::Accept connect(const wt::SessionInfo& i) {
    wt::Accept a = service_->accept(i);
    if (a.status == 200) {
      auto fake = std::make_unique<FakeSession>();
      fake->handler = a.handler;
      a.handler->on_attached(*fake);
      sessions_.push_back(std::move(fake));
    }
    return a;
  }
  static std::string header(const wt::Accept& a, const std::string& name) {
    const std::string* v = wt::find_header(a.headers, name);
    return v ? *v : "<none>";
  }
  void register_host(FakeSession& s, uint32_t id, const std::string& host) {
    s.handler->on_incoming_stream(0, true);
    std::vector<uint8_t> b{0x00};
    auto f = tunnel::encode_control_frame(tunnel::ControlType::kRegister,
                                          json{{"id", id}, {"type", "http"}, {"hostname", host}}.dump());
    b.insert(b.end(), f.begin(), f.end());
    s.handler->on_stream_data(0, b, false);
  }
  // Control frames the edge wrote to `s` (all of them, from the start).
  static std::vector<tunnel::ControlFrame> control_frames(const FakeSession& s) {
    std::vector<tunnel::ControlFrame> frames;
    auto it = s.streams.find(0);
    if (it == s.streams.end()) return frames;
    tunnel::ControlReader reader;
    EXPECT_EQ(reader.feed(it->second.written, frames), tunnel::WireError::kNone);
    return frames;
  }
  // What the public side hears for `host` once the table has answered.
  RouteLookup route(std::string_view host) {
    struct Answer final : RouteEvents {
      void on_route(const RouteLookup& r) override { got = r; }
      std::optional<RouteLookup> got;
    } answer;
    service_->route(host, &answer);
    if constexpr (requires(Table & t) { t.drain(); }) routes_->drain();
    EXPECT_TRUE(answer.got) << host;
    return answer.got.value_or(RouteLookup{});
  }
  void TearDown() override {
    for (auto& s : sessions_) {
      if (!s->closed) s->peer_closes(0, "test over");
    }
    service_.reset();
  }

  // Sends one more REGISTER on a session whose control stream is open (register_host opened it).
  void register_more(FakeSession& s, uint32_t id, const std::string& host) {
    auto f = tunnel::encode_control_frame(tunnel::ControlType::kRegister,
                                          json{{"id", id}, {"type", "http"}, {"hostname", host}}.dump());
    s.handler->on_stream_data(0, f, false);
  }
  static std::string control_text(const FakeSession& s) {
    auto it = s.streams.find(0);
    return it == s.streams.end() ? std::string()
                                 : std::string(it->second.written.begin(), it->second.written.end());
  }

  std::function<void(TunnelServiceConfig&)> tweak_;  // applied by make()
  FakeClock clock_;
  std::chrono::system_clock::time_point wall_ =
      std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  tunnel::SigningKey key_ = tunnel::SigningKey::generate();
  tunnel::SigningKey later_key_ = tunnel::SigningKey::generate();
  tunnel::SigningKey stranger_ = tunnel::SigningKey::generate();
  std::optional<Table> routes_;
  std::unique_ptr<TunnelService> service_;
  std::vector<std::unique_ptr<FakeSession>> sessions_;
  int reloads_ = 0;
  // Credentials (tunnel/credential.h): set before make().
  std::optional<std::filesystem::path> revocation_file_;
  std::chrono::seconds session_token_ttl_{300};
  size_t max_replay_entries_ = 65'536;
};

}  // namespace wtmesh::edge::test
