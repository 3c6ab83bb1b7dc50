// The fixture of the AgentSession tests (agent_session_test.cc, agent_session_tcp_test.cc): a session
// on a fake WebTransport session and a fake clock, its control stream driven frame by frame.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "edge/agent_session.h"
#include "fakes.h"

namespace wtmesh::edge {

using json = nlohmann::json;
using test::FakeClock;
using test::FakeSession;
using namespace std::chrono_literals;

inline constexpr wt::StreamId kControl = 0;  // the agent's first bidi stream

struct RecordedStreamEvents final : RequestStreamEvents {
  void on_response_data(std::span<const uint8_t> d, bool fin) override {
    data.append(d.begin(), d.end());
    this->fin |= fin;
  }
  void on_request_writable() override { ++writable; }
  void on_stream_aborted(std::optional<uint32_t> c, std::string_view r) override {
    aborted = true;
    code = c;
    reason = std::string(r);
  }
  void on_request_stopped(std::optional<uint32_t> c) override { stopped = c; }
  std::string data;
  bool fin = false, aborted = false;
  int writable = 0;
  std::optional<uint32_t> code, stopped;
  std::string reason;
};

class AgentSessionTest : public ::testing::Test {
 protected:
  void SetUp() override { start({"app.localhost", "*.wild.localhost", "other.localhost"}); }
  void start(std::vector<std::string> hosts, size_t max_tunnels = 64, TcpPublisher* tcp = nullptr,
             UdpPublisher* udp = nullptr, std::vector<std::string> connect = {}) {
    cfg_.domain = "localhost";
    cfg_.tcp = tcp;
    cfg_.udp = udp;
    seen_ = 0;
    cfg_.public_port = 8443;
    cfg_.ping_interval = 10s;
    cfg_.max_tunnels = max_tunnels;
    cfg_.clock = clock_.fn();
    tunnel::TokenClaims claims = tunnel::make_claims("alice", std::move(hosts), 600s);
    claims.connect = std::move(connect);
    ts_.reset();  // before the fake session it points at
    fake_ = std::make_unique<FakeSession>();
    ended_.clear();
    ts_ = std::make_unique<AgentSession>(
        cfg_, routes_, 1, "edge-x/1", claims, clock_.t + 600s,
        AgentSession::Hooks{[this](uint64_t, const std::vector<std::string>& h) { ended_ = h; }});
    fake_->handler = ts_.get();
    ts_->on_attached(*fake_);
    ts_->on_ready();
  }
  // Opens the control stream (kind 0x00) and sends frames on it.
  void open_control() {
    ts_->on_incoming_stream(kControl, true);
    const uint8_t kind = 0x00;
    ts_->on_stream_data(kControl, {&kind, 1}, false);
  }
  void send(tunnel::ControlType type, const json& j) {
    auto f = tunnel::encode_control_frame(type, j.dump());
    ts_->on_stream_data(kControl, f, false);
  }
  // Frames the edge wrote on the control stream since the last call.
  std::vector<std::pair<uint64_t, json>> replies() {
    auto& w = fake_->streams[kControl].written;
    std::vector<tunnel::ControlFrame> frames;
    tunnel::ControlReader r;
    EXPECT_EQ(r.feed(w, frames), tunnel::WireError::kNone);
    std::vector<std::pair<uint64_t, json>> out;
    for (size_t i = seen_; i < frames.size(); ++i)
      out.emplace_back(frames[i].type, json::parse(frames[i].payload));
    seen_ = frames.size();
    return out;
  }
  json reg(uint32_t id, const std::string& host) {
    return json{{"id", id}, {"type", "http"}, {"hostname", host}, {"options", json::object()}, {"future", 1}};
  }
  std::pair<uint64_t, json> register_one(uint32_t id, const std::string& host) {
    send(tunnel::ControlType::kRegister, reg(id, host));
    auto r = replies();
    EXPECT_EQ(r.size(), 1u);
    return r.empty() ? std::pair<uint64_t, json>{} : r[0];
  }

  void TearDown() override { ts_.reset(); }

  FakeClock clock_;
  AgentSessionConfig cfg_;
  LocalRouteTable routes_;
  std::unique_ptr<FakeSession> fake_;
  std::unique_ptr<AgentSession> ts_;
  std::vector<std::string> ended_;
  size_t seen_ = 0;
};

}  // namespace wtmesh::edge
