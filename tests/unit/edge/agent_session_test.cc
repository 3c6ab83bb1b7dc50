#include "edge/agent_session.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent_session_fixture.h"
#include "edge/tunnel_service.h"

namespace wtmesh::edge {
namespace {

using test::bytes;

TEST_F(AgentSessionTest, RegisterIsAnsweredWithTheUrl) {
  open_control();
  auto [type, j] = register_one(3, "App.Localhost");
  EXPECT_EQ(type, static_cast<uint64_t>(tunnel::ControlType::kRegistered));
  EXPECT_EQ(j["id"], 3);
  EXPECT_EQ(j["hostname"], "app.localhost");
  EXPECT_EQ(j["url"], "https://app.localhost:8443/");
  const RouteMatch route = routes_.find(kHttp, "app.localhost", clock_.t);
  ASSERT_TRUE(route.live());
  EXPECT_EQ(route.owner, "edge-x/1");
  EXPECT_EQ(route.tunnel_id, 3u);
  EXPECT_EQ(ts_->tunnel_count(), 1u);
  EXPECT_EQ(fake_->streams[kControl].consumed,
            1 + tunnel::encode_control_frame(tunnel::ControlType::kRegister, reg(3, "App.Localhost").dump())
                    .size());
}

TEST_F(AgentSessionTest, RefusalCodes) {
  open_control();
  auto code = [&](uint32_t id, const std::string& host) {
    auto [type, j] = register_one(id, host);
    EXPECT_EQ(type, static_cast<uint64_t>(tunnel::ControlType::kRefused)) << host;
    EXPECT_EQ(j["id"], id);
    EXPECT_FALSE(j["message"].get<std::string>().empty());
    return j["code"].get<std::string>();
  };
  EXPECT_EQ(code(1, "nope.localhost"), "not_covered");
  EXPECT_EQ(code(2, "app.example.com"), "invalid");
  EXPECT_EQ(code(3, "localhost"), "invalid");
  EXPECT_EQ(code(4, "bad_name!.localhost"), "invalid");
  EXPECT_EQ(code(5, ""), "invalid");
  routes_.claim({kHttp, "other.localhost"}, {"someone-else", "edge-y", 60s}, 1, clock_.t, nullptr);
  EXPECT_EQ(code(6, "other.localhost"), "taken");
  EXPECT_EQ(register_one(7, "app.localhost").first, static_cast<uint64_t>(tunnel::ControlType::kRegistered));
  EXPECT_EQ(code(7, "x.wild.localhost"), "duplicate_id");
  EXPECT_EQ(code(8, "app.localhost"), "taken") << "already registered on this very session";
  // Type other than http.
  send(tunnel::ControlType::kRegister, json{{"id", 9}, {"type", "tcp"}, {"hostname", "app.localhost"}});
  EXPECT_EQ(replies()[0].second["code"], "invalid");
  EXPECT_FALSE(fake_->closed);
}

TEST_F(AgentSessionTest, VisitorAuthIsKeptWithTheRegistrationAndBadOnesAreRefused) {
  open_control();
  std::string error;
  tunnel::VisitorPolicy p;
  p.basic.push_back(*tunnel::make_basic_credential("alice:pw", &error));
  p.allow.push_back(*tunnel::parse_cidr("127.0.0.0/8", &error));
  json r = reg(3, "app.localhost");
  r["options"] = {{"visitor", tunnel::encode_visitor_policy(p)}};
  send(tunnel::ControlType::kRegister, r);
  auto answers = replies();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].first, static_cast<uint64_t>(tunnel::ControlType::kRegistered));
  VisitorGate* gate = ts_->visitor_gate(3);
  ASSERT_NE(gate, nullptr);
  EXPECT_EQ(gate->policy(), p);
  EXPECT_EQ(ts_->visitor_gate(99), nullptr);
  // Malformed: refused as invalid, with the reason; nothing registered.
  json bad = reg(4, "other.localhost");
  bad["options"] = {{"visitor", {{"allow_cidr", json::array({"10.1.0.0/8"})}}}};
  send(tunnel::ControlType::kRegister, bad);
  answers = replies();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].second["code"], "invalid");
  EXPECT_NE(answers[0].second["message"].get<std::string>().find("visitor auth: "), std::string::npos);
  EXPECT_FALSE(routes_.find(kHttp, "other.localhost", clock_.t).live());
  // Without any: no gate.
  EXPECT_EQ(register_one(5, "other.localhost").first,
            static_cast<uint64_t>(tunnel::ControlType::kRegistered));
  EXPECT_EQ(ts_->visitor_gate(5), nullptr);
  EXPECT_FALSE(fake_->closed);
}

TEST_F(AgentSessionTest, AnEdgeThatRequiresVisitorAuthRefusesTunnelsWithout) {
  cfg_.require_visitor_auth = true;
  start({"app.localhost", "other.localhost"});
  open_control();
  auto [type, j] = register_one(1, "app.localhost");
  EXPECT_EQ(type, static_cast<uint64_t>(tunnel::ControlType::kRefused));
  EXPECT_EQ(j["code"], "invalid");
  EXPECT_NE(j["message"].get<std::string>().find("requires visitor auth"), std::string::npos);
  std::string error;
  tunnel::VisitorPolicy p;
  p.allow.push_back(*tunnel::parse_cidr("10.0.0.0/8", &error));
  json r = reg(2, "other.localhost");
  r["options"] = {{"visitor", tunnel::encode_visitor_policy(p)}};
  send(tunnel::ControlType::kRegister, r);
  EXPECT_EQ(replies().at(0).first, static_cast<uint64_t>(tunnel::ControlType::kRegistered));
  cfg_.require_visitor_auth = false;
}

TEST_F(AgentSessionTest, AnEdgeWithVisitorAuthMinCredentialsRefusesTheChallengeAlone) {
  cfg_.visitor_auth_min = tunnel::VisitorAuthMin::kCredentials;
  start({"app.localhost", "other.localhost"});
  open_control();
  tunnel::VisitorPolicy weak;
  weak.challenge = true;
  json r = reg(1, "app.localhost");
  r["options"] = {{"visitor", tunnel::encode_visitor_policy(weak)}};
  send(tunnel::ControlType::kRegister, r);
  auto got = replies();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got.at(0).first, static_cast<uint64_t>(tunnel::ControlType::kRefused));
  EXPECT_NE(got.at(0).second["message"].get<std::string>().find("requires credentials"), std::string::npos);
  tunnel::VisitorPolicy strong;
  strong.token_keys.push_back(tunnel::SigningKey::generate().public_pem());
  r = reg(2, "other.localhost");
  r["options"] = {{"visitor", tunnel::encode_visitor_policy(strong)}};
  send(tunnel::ControlType::kRegister, r);
  EXPECT_EQ(replies().at(0).first, static_cast<uint64_t>(tunnel::ControlType::kRegistered));
  cfg_.visitor_auth_min = tunnel::VisitorAuthMin::kNone;
}

TEST_F(AgentSessionTest, TypesAreCheckedAgainstTheRegistry) {
  open_control();
  auto refused = [&](const json& reg) {
    send(tunnel::ControlType::kRegister, reg);
    auto r = replies();
    EXPECT_EQ(r.size(), 1u);
    EXPECT_EQ(r.at(0).first, static_cast<uint64_t>(tunnel::ControlType::kRefused));
    EXPECT_EQ(r.at(0).second["code"], "invalid");
    return r.at(0).second["message"].get<std::string>();
  };
  // Without a UdpPublisher (an edge started with --udp-ports none) udp is not served.
  EXPECT_NE(refused({{"id", 1}, {"type", "udp"}, {"hostname", "app.localhost"}}).find("not served here"),
            std::string::npos);
  EXPECT_NE(refused({{"id", 2}, {"type", "quic"}, {"hostname", "app.localhost"}}).find("unknown tunnel type"),
            std::string::npos);
  EXPECT_NE(refused({{"id", 3}, {"hostname", "app.localhost"}}).find("unknown tunnel type"),
            std::string::npos);
  EXPECT_NE(refused({{"id", 4}, {"type", "HTTP"}, {"hostname", "app.localhost"}}).find("unknown"),
            std::string::npos)
      << "types are compared exactly";
  EXPECT_FALSE(routes_.find(kHttp, "app.localhost", clock_.t).live());
  EXPECT_FALSE(fake_->closed);
}

TEST_F(AgentSessionTest, RefusalQuotingACutMultibyteNameDoesNotThrow) {
  // The "invalid" message quotes the first 64 bytes of the name, which can end inside a UTF-8
  // character: the frame carries U+FFFD there instead of the encoder throwing out of the event loop.
  open_control();
  const std::string host = std::string(63, 'a') + "\xc3\xa9.localhost";
  auto [type, j] = register_one(1, host);
  EXPECT_EQ(type, static_cast<uint64_t>(tunnel::ControlType::kRefused));
  EXPECT_EQ(j["code"], "invalid");
  EXPECT_EQ(j["hostname"], host);
  EXPECT_NE(j["message"].get<std::string>().find("\xef\xbf\xbd"), std::string::npos);
  EXPECT_FALSE(fake_->closed);
}

TEST_F(AgentSessionTest, PongsMeasureTheRoundTripAndAreNeverAnError) {
  open_control();
  clock_.t += 10s;
  ts_->on_tick(clock_.t);
  EXPECT_TRUE(replies().empty()) << "heard 10 s ago: no PING yet";
  clock_.t += 10s;
  ts_->on_tick(clock_.t);
  auto r = replies();
  ASSERT_EQ(r.size(), 1u);
  clock_.t += 25ms;
  send(tunnel::ControlType::kPong, json{{"seq", r[0].second["seq"]}});
  ASSERT_TRUE(ts_->heartbeat().rtt());
  EXPECT_EQ(*ts_->heartbeat().rtt(), 25ms);
  send(tunnel::ControlType::kPong, json{{"seq", "not a number"}});  // v1 never checked PONGs
  send(tunnel::ControlType::kRegistered, json::object());           // nor edge→agent frames
  EXPECT_FALSE(fake_->closed);
  EXPECT_TRUE(replies().empty());
}

TEST_F(AgentSessionTest, WildcardRegistrationNeedsTheSameWildcardInTheToken) {
  open_control();
  EXPECT_EQ(register_one(1, "a.wild.localhost").first,
            static_cast<uint64_t>(tunnel::ControlType::kRegistered));
  EXPECT_EQ(register_one(2, "*.wild.localhost").first,
            static_cast<uint64_t>(tunnel::ControlType::kRegistered));
  EXPECT_EQ(routes_.find(kHttp, "zzz.wild.localhost", clock_.t).tunnel_id, 2u);
  EXPECT_EQ(register_one(3, "*.localhost").second["code"], "not_covered");
}

TEST_F(AgentSessionTest, TunnelLimitPerSession) {
  start({"*.localhost"}, 2);
  open_control();
  EXPECT_EQ(register_one(1, "a.localhost").first, static_cast<uint64_t>(tunnel::ControlType::kRegistered));
  EXPECT_EQ(register_one(2, "b.localhost").first, static_cast<uint64_t>(tunnel::ControlType::kRegistered));
  EXPECT_EQ(register_one(3, "c.localhost").second["code"], "limit");
  send(tunnel::ControlType::kUnregister, json{{"id", 1}});
  EXPECT_FALSE(routes_.find(kHttp, "a.localhost", clock_.t).live());
  EXPECT_EQ(register_one(3, "c.localhost").first, static_cast<uint64_t>(tunnel::ControlType::kRegistered));
  send(tunnel::ControlType::kUnregister, json{{"id", 99}});  // unknown: ignored
  EXPECT_FALSE(fake_->closed);
}

TEST_F(AgentSessionTest, PingPongAndEdgePings) {
  open_control();
  send(tunnel::ControlType::kPing, json{{"seq", 41}});
  auto r = replies();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].first, static_cast<uint64_t>(tunnel::ControlType::kPong));
  EXPECT_EQ(r[0].second["seq"], 41);
  ASSERT_TRUE(ts_->next_deadline());
  EXPECT_EQ(*ts_->next_deadline(), clock_.t + 10s);
  // The agent PINGed 10 s ago: the edge only answers (docs/protocol.md §3).
  clock_.t += 10s;
  ts_->on_tick(clock_.t);
  EXPECT_TRUE(replies().empty());
  EXPECT_EQ(*ts_->next_deadline(), clock_.t + 10s) << "the schedule moves on";
  // Silent for 20 s: the edge PINGs.
  clock_.t += 10s;
  ts_->on_tick(clock_.t);
  r = replies();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].first, static_cast<uint64_t>(tunnel::ControlType::kPing));
  EXPECT_EQ(r[0].second["seq"], 1);
  send(tunnel::ControlType::kPong, json{{"seq", 1}});
  // Unknown frame types are skipped; unknown members ignored.
  auto unknown = tunnel::encode_control_frame(static_cast<tunnel::ControlType>(0x3f), "whatever");
  ts_->on_stream_data(kControl, unknown, false);
  EXPECT_FALSE(fake_->closed);
}

TEST_F(AgentSessionTest, HeartbeatTimeoutClosesWithCode2AndReleasesRoutes) {
  open_control();
  register_one(1, "app.localhost");
  clock_.t += 29s;
  ts_->on_tick(clock_.t);
  EXPECT_FALSE(fake_->closed);
  send(tunnel::ControlType::kPong, json{{"seq", 1}});  // any control bytes count
  clock_.t += 29s;
  ts_->on_tick(clock_.t);
  EXPECT_FALSE(fake_->closed);
  clock_.t += 1s;
  ts_->on_tick(clock_.t);
  EXPECT_TRUE(fake_->closed);
  EXPECT_EQ(fake_->close_code, tunnel::kCloseHeartbeatTimeout);
  EXPECT_TRUE(ts_->closed());
  EXPECT_FALSE(routes_.find(kHttp, "app.localhost", clock_.t).live());
  EXPECT_EQ(ended_, std::vector<std::string>{"app.localhost"});
}

// Routes are leases: the edge's heartbeat PINGs renew them, so they live as long as the session;
// an edge that stops ticking (it died) loses them after lease_ttl().
TEST_F(AgentSessionTest, HeartbeatsRenewTheRouteLeases) {
  open_control();
  register_one(1, "app.localhost");
  EXPECT_EQ(ts_->lease_ttl(), 40s) << "3 missed heartbeats + 1 interval";
  for (int i = 0; i < 10; ++i) {
    clock_.t += 10s;
    send(tunnel::ControlType::kPong, json{{"seq", i}});
    ts_->on_tick(clock_.t);
  }
  EXPECT_TRUE(routes_.find(kHttp, "app.localhost", clock_.t).live()) << "100 s, renewed every 10 s";
  clock_.t += 40s;
  EXPECT_EQ(routes_.find(kHttp, "app.localhost", clock_.t).state, RouteMatch::State::kOffline)
      << "not renewed for lease_ttl: expired";
}

TEST_F(AgentSessionTest, NoControlStreamAtAllTimesOutToo) {
  clock_.t += 30s;
  ts_->on_tick(clock_.t);
  EXPECT_EQ(fake_->close_code, tunnel::kCloseHeartbeatTimeout);
}

TEST_F(AgentSessionTest, TokenExpiryClosesWithCode3) {
  open_control();
  for (int i = 0; i < 60; ++i) {
    clock_.t += 10s;
    send(tunnel::ControlType::kPing, json{{"seq", i}});
    ts_->on_tick(clock_.t);
  }
  EXPECT_TRUE(fake_->closed);
  EXPECT_EQ(fake_->close_code, tunnel::kCloseTokenExpired);
}

TEST_F(AgentSessionTest, ProtocolErrorsCloseWithCode1) {
  auto expect_close = [&](auto&& act, const char* what) {
    start({"app.localhost"});
    seen_ = 0;
    open_control();
    act();
    EXPECT_TRUE(fake_->closed) << what;
    EXPECT_EQ(fake_->close_code, tunnel::kCloseProtocolError) << what;
  };
  expect_close([&] { send(tunnel::ControlType::kRegister, "not an object"); }, "REGISTER string");
  expect_close([&] { ts_->on_stream_data(kControl, bytes("\x01\x03{x}"), false); }, "bad JSON");
  expect_close([&] { send(tunnel::ControlType::kRegister, json{{"hostname", "app.localhost"}}); }, "no id");
  expect_close([&] { send(tunnel::ControlType::kRegister, json{{"id", 1ull << 33}}); }, "id > u32");
  expect_close([&] { send(tunnel::ControlType::kPing, json::object()); }, "PING without seq");
  expect_close([&] { send(tunnel::ControlType::kUnregister, json{{"id", -1}}); }, "bad UNREGISTER");
  expect_close(
      [&] {
        std::vector<uint8_t> f{0x01, 0x80, 0x00, 0x40, 0x01};  // REGISTER of 16 KiB + 1
        ts_->on_stream_data(kControl, f, false);
      },
      "oversized frame");
  expect_close(
      [&] {
        ts_->on_incoming_stream(4, true);
        const uint8_t kind = 0;
        ts_->on_stream_data(4, {&kind, 1}, false);
      },
      "second control stream");
  expect_close([&] { ts_->on_stream_reset(kControl, 0); }, "control reset");
}

TEST_F(AgentSessionTest, ControlFinEndsTheSessionNormally) {
  open_control();
  ts_->on_stream_data(kControl, {}, true);
  EXPECT_EQ(fake_->close_code, tunnel::kCloseNormal);
}

TEST_F(AgentSessionTest, UnknownKindsAndUniStreamsAreRefusedWithoutEndingTheSession) {
  open_control();
  ts_->on_incoming_stream(4, true);
  const std::vector<uint8_t> kind{0x40, 0x25, 'x', 'y'};  // two-byte varint 0x25, split across calls
  ts_->on_stream_data(4, std::span<const uint8_t>(kind).first(1), false);
  EXPECT_FALSE(fake_->streams[4].stop);
  ts_->on_stream_data(4, std::span<const uint8_t>(kind).subspan(1), false);
  EXPECT_EQ(fake_->streams[4].stop, tunnel::kStreamProtocolError);
  EXPECT_EQ(fake_->streams[4].reset, tunnel::kStreamProtocolError);
  EXPECT_EQ(fake_->streams[4].consumed, 4u);
  ts_->on_stream_data(4, bytes("late"), true);
  EXPECT_EQ(fake_->streams[4].consumed, 8u) << "data on a refused stream is dropped, with credit";
  // A request-kind stream is the edge's to open.
  ts_->on_incoming_stream(8, true);
  ts_->on_stream_data(8, bytes("\x01"), false);
  EXPECT_EQ(fake_->streams[8].stop, tunnel::kStreamProtocolError);
  ts_->on_incoming_stream(2, false);
  EXPECT_EQ(fake_->streams[2].stop, tunnel::kStreamProtocolError);
  EXPECT_FALSE(fake_->closed);
}

TEST_F(AgentSessionTest, RefusedStreamsAreCountedByReason) {
  EdgeMetrics metrics;
  cfg_.metrics = &metrics;
  start({"app.localhost"});
  open_control();
  ts_->on_incoming_stream(2, false);  // uni
  ts_->on_incoming_stream(4, true);
  ts_->on_stream_data(4, bytes("\x01"), false);  // http-request: the edge's to open
  ts_->on_incoming_stream(8, true);
  ts_->on_stream_data(8, bytes("\x40"), true);  // a FIN inside the kind varint
  ts_->on_incoming_stream(12, true);
  ts_->on_stream_data(12, bytes("\x05"), true);  // connect-stream ended inside its head
  EXPECT_EQ(metrics.streams_refused(StreamRefusal::kUni), 1u);
  EXPECT_EQ(metrics.streams_refused(StreamRefusal::kKind), 1u);
  EXPECT_EQ(metrics.streams_refused(StreamRefusal::kMalformed), 2u);
  const std::string text = metrics.render({}, {});
  EXPECT_NE(text.find("wtmesh_tunnel_stream_refusals_total{reason=\"malformed\"} 2"), std::string::npos)
      << text;
  EXPECT_FALSE(fake_->closed);
}

// An agent sending 10,000 REGISTERs past its cap gets 10,000 REFUSED answers but does not get 10,000
// log lines (tests/peers/edge_attacks_quic.sh, "an agent registering 10k names").
TEST_F(AgentSessionTest, TenThousandRefusedRegistersAreAnsweredButLoggedRateLimited) {
  std::ostringstream log;
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("capture", std::make_shared<spdlog::sinks::ostream_sink_st>(log)));
  start({"*.localhost"}, 4);
  open_control();
  size_t refused = 0, registered = 0;
  for (uint32_t i = 1; i <= 10000; ++i) {
    send(tunnel::ControlType::kRegister, reg(i, "n" + std::to_string(i) + ".localhost"));
    if (i % 1000 == 0) clock_.t += 1s;
  }
  for (const auto& [type, j] : replies()) {  // parsed once: replies() reads the stream from its start
    if (type == static_cast<uint64_t>(tunnel::ControlType::kRefused) && j["code"] == "limit") ++refused;
    if (type == static_cast<uint64_t>(tunnel::ControlType::kRegistered)) ++registered;
  }
  spdlog::set_default_logger(previous);
  EXPECT_EQ(registered, 4u);
  EXPECT_EQ(refused, 9996u);
  const std::string text = log.str();
  const auto lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  EXPECT_LT(lines, 60u) << "refusals logged one line each";
  EXPECT_NE(text.find("similar lines suppressed"), std::string::npos);
  EXPECT_FALSE(fake_->closed);
}

TEST_F(AgentSessionTest, ControlKindSplitAcrossCallsThenFrames) {
  ts_->on_incoming_stream(kControl, true);
  // Kind 0 as a non-minimal two-byte varint, its first byte alone, then the rest with a PING.
  std::vector<uint8_t> in{0x40, 0x00};
  const auto ping = tunnel::encode(tunnel::Ping{9});
  in.insert(in.end(), ping.begin(), ping.end());
  ts_->on_stream_data(kControl, std::span<const uint8_t>(in).first(1), false);
  EXPECT_FALSE(ts_->has_control_stream());
  ts_->on_stream_data(kControl, std::span<const uint8_t>(in).subspan(1), false);
  EXPECT_TRUE(ts_->has_control_stream());
  auto r = replies();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].first, static_cast<uint64_t>(tunnel::ControlType::kPong));
  EXPECT_EQ(r[0].second["seq"], 9);
  EXPECT_EQ(fake_->streams[kControl].consumed, in.size());
}

TEST_F(AgentSessionTest, ControlBacklogIsCapped) {
  cfg_.max_control_backlog = 100;
  start({"app.localhost"});
  open_control();
  fake_->streams[kControl].capacity = 20;
  for (int i = 0; i < 20 && !fake_->closed; ++i) send(tunnel::ControlType::kPing, json{{"seq", i}});
  EXPECT_TRUE(fake_->closed);
  EXPECT_EQ(fake_->close_code, tunnel::kCloseProtocolError);
  EXPECT_LE(ts_->control_backlog(), 100u);
}

TEST_F(AgentSessionTest, ControlBacklogDrainsWhenWritable) {
  open_control();
  fake_->streams[kControl].capacity = 5;
  send(tunnel::ControlType::kPing, json{{"seq", 1}});
  EXPECT_GT(ts_->control_backlog(), 0u);
  fake_->streams[kControl].capacity = 1000;
  ts_->on_stream_writable(kControl);
  EXPECT_EQ(ts_->control_backlog(), 0u);
  auto r = replies();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].second["seq"], 1);
}

TEST_F(AgentSessionTest, RequestStreamsCarryEventsBothWays) {
  open_control();
  RecordedStreamEvents ev;
  wt::StreamId id = -1;
  ASSERT_EQ(ts_->open_request("c", &ev, &id), TunnelDirectory::OpenStatus::kOpened);
  EXPECT_EQ(ts_->write(id, bytes("req"), true), 3u);
  EXPECT_TRUE(fake_->streams[id].fin);
  ts_->on_stream_data(id, bytes("resp"), true);
  EXPECT_EQ(ev.data, "resp");
  EXPECT_TRUE(ev.fin);
  EXPECT_EQ(fake_->streams[id].consumed, 0u) << "the public side consumes";
  ts_->consume(id, 4);
  EXPECT_EQ(fake_->streams[id].consumed, 4u);
  ts_->on_stream_writable(id);
  EXPECT_EQ(ev.writable, 1);
  ts_->on_stop_sending(id, 0);
  EXPECT_EQ(ev.stopped, 0u);
  ts_->release(id);
  ts_->on_stream_data(id, bytes("x"), false);
  EXPECT_EQ(ev.data, "resp") << "no events after release";
  EXPECT_EQ(fake_->streams[id].consumed, 5u);
}

TEST_F(AgentSessionTest, QuietRequestStreamsProbeTheAgentOncePerSecond) {
  const auto t0 = clock_.t;
  open_control();
  const auto ping = static_cast<uint64_t>(tunnel::ControlType::kPing);
  ASSERT_TRUE(ts_->next_deadline());
  EXPECT_EQ(*ts_->next_deadline(), t0 + 10s) << "no request streams: the heartbeat schedule only";
  RecordedStreamEvents ev;
  wt::StreamId id = -1;
  ASSERT_EQ(ts_->open_request("c", &ev, &id), TunnelDirectory::OpenStatus::kOpened);
  EXPECT_EQ(*ts_->next_deadline(), t0 + 1s);
  clock_.t += 500ms;
  ts_->on_stream_data(id, bytes("HTTP"), false);  // the agent is talking
  clock_.t += 900ms;
  ts_->on_tick(clock_.t);
  EXPECT_TRUE(replies().empty()) << "heard from 0.9 s ago: no probe";
  EXPECT_EQ(*ts_->next_deadline(), clock_.t + 100ms);
  clock_.t += 100ms;
  ts_->on_tick(clock_.t);
  auto r = replies();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].first, ping);
  // Still quiet: the next probe one second later, not before.
  EXPECT_EQ(*ts_->next_deadline(), clock_.t + 1s);
  clock_.t += 999ms;
  ts_->on_tick(clock_.t);
  EXPECT_TRUE(replies().empty());
  clock_.t += 1ms;
  ts_->on_tick(clock_.t);
  r = replies();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].first, ping);
  // No request stream left: back to the heartbeat schedule.
  ts_->release(id);
  EXPECT_EQ(*ts_->next_deadline(), t0 + 10s);
  EXPECT_FALSE(fake_->closed);
}

TEST_F(AgentSessionTest, ResetAndCancelAndBusy) {
  open_control();
  RecordedStreamEvents a, b;
  wt::StreamId ia = -1, ib = -1;
  ts_->open_request("c", &a, &ia);
  ts_->open_request("c", &b, &ib);
  ts_->on_stream_reset(ia, tunnel::kStreamUpstreamFailed);
  EXPECT_TRUE(a.aborted);
  EXPECT_EQ(a.code, tunnel::kStreamUpstreamFailed);
  EXPECT_EQ(fake_->streams[ia].reset, tunnel::kStreamCancelled);
  ts_->cancel(ib, tunnel::kStreamCancelled);
  EXPECT_EQ(fake_->streams[ib].reset, tunnel::kStreamCancelled);
  EXPECT_EQ(fake_->streams[ib].stop, tunnel::kStreamCancelled);
  EXPECT_EQ(ts_->request_stream_count(), 0u);
  fake_->max_local = 2;
  RecordedStreamEvents c;
  wt::StreamId ic = -1;
  EXPECT_EQ(ts_->open_request("c", &c, &ic), TunnelDirectory::OpenStatus::kBusy);
}

TEST_F(AgentSessionTest, OneClientHoldsAtMostItsShareOfTheStreams) {
  cfg_.max_streams_per_client = 2;
  start({"app.localhost"});
  open_control();
  RecordedStreamEvents e[6];
  wt::StreamId id[6] = {-1, -1, -1, -1, -1, -1};
  using S = TunnelDirectory::OpenStatus;
  EXPECT_EQ(ts_->open_request("198.51.100.7", &e[0], &id[0]), S::kOpened);
  EXPECT_EQ(ts_->open_request("198.51.100.7", &e[1], &id[1]), S::kOpened);
  EXPECT_EQ(ts_->open_request("198.51.100.7", &e[2], &id[2]), S::kClientLimit);
  EXPECT_EQ(fake_->open_local, 2u) << "no stream is opened for a refused request";
  EXPECT_EQ(ts_->open_request("203.0.113.9", &e[3], &id[3]), S::kOpened) << "others still get streams";
  EXPECT_EQ(ts_->client_stream_count("198.51.100.7"), 2u);
  // Every way a request ends gives its client's slot back.
  ts_->release(id[0]);
  EXPECT_EQ(ts_->open_request("198.51.100.7", &e[4], &id[4]), S::kOpened);
  ts_->cancel(id[1], tunnel::kStreamCancelled);
  ts_->on_stream_reset(id[4], tunnel::kStreamUpstreamFailed);
  EXPECT_EQ(ts_->client_stream_count("198.51.100.7"), 0u);
  EXPECT_EQ(ts_->open_request("198.51.100.7", &e[5], &id[5]), S::kOpened);
  ts_->on_stream_closed(id[5]);
  EXPECT_EQ(ts_->client_stream_count("198.51.100.7"), 0u);
  EXPECT_EQ(ts_->client_stream_count("203.0.113.9"), 1u);
  fake_->peer_closes(0, "bye");
  EXPECT_EQ(ts_->client_stream_count("203.0.113.9"), 0u);
}

TEST_F(AgentSessionTest, NoPerClientCapWhenItIsZero) {
  cfg_.max_streams_per_client = 0;
  start({"app.localhost"});
  open_control();
  std::vector<RecordedStreamEvents> e(50);
  for (auto& ev : e) {
    wt::StreamId id = -1;
    EXPECT_EQ(ts_->open_request("one", &ev, &id), TunnelDirectory::OpenStatus::kOpened);
  }
}

TEST_F(AgentSessionTest, SessionEndTellsEveryRequestAndReleasesRoutes) {
  open_control();
  register_one(1, "app.localhost");
  RecordedStreamEvents a, b;
  wt::StreamId ia = -1, ib = -1;
  ts_->open_request("c", &a, &ia);
  ts_->open_request("c", &b, &ib);
  fake_->peer_closes(0, "bye");
  EXPECT_TRUE(a.aborted);
  EXPECT_TRUE(b.aborted);
  EXPECT_FALSE(a.code);
  EXPECT_NE(a.reason.find("bye"), std::string::npos);
  EXPECT_FALSE(routes_.find(kHttp, "app.localhost", clock_.t).live());
  RecordedStreamEvents c;
  wt::StreamId ic = -1;
  EXPECT_EQ(ts_->open_request("c", &c, &ic), TunnelDirectory::OpenStatus::kGone);
  EXPECT_EQ(ts_->write(ia, bytes("x"), false), 0u);
  EXPECT_FALSE(ts_->next_deadline());
}

}  // namespace
}  // namespace wtmesh::edge

namespace wtmesh::edge {
namespace {

struct RelayPeer final : WtRelayPeer {
  RequestStreamEvents* on_agent_stream(const StreamRef& ref, bool is_uni) override {
    streams.push_back(ref.id);
    uni = is_uni;
    return refuse ? nullptr : &events;
  }
  void on_relay_datagram(std::span<const uint8_t> p) override { datagrams.append(p.begin(), p.end()); }
  void on_relay_refused(std::string_view /*reason*/) override {
    ADD_FAILURE() << "a session never refuses later";
  }
  RecordedStreamEvents events;
  std::vector<wt::StreamId> streams;
  bool uni = false, refuse = false;
  std::string datagrams;
};

TEST_F(AgentSessionTest, RelayedStreamsAndDatagramsReachTheirRelay) {
  open_control();
  RelayPeer peer;
  const uint64_t relay = ts_->add_relay(&peer);
  ASSERT_EQ(relay, 1u);
  // A relayed stream (kind 0x03) the agent opens: relay id 1, uni, then bytes; split inside the opening.
  ts_->on_incoming_stream(4, true);
  const std::vector<uint8_t> open{0x03, 0x01, 0x01, 'h', 'i'};
  ts_->on_stream_data(4, std::span<const uint8_t>(open).first(2), false);
  EXPECT_TRUE(peer.streams.empty());
  ts_->on_stream_data(4, std::span<const uint8_t>(open).subspan(2), true);
  ASSERT_EQ(peer.streams, std::vector<wt::StreamId>{4});
  EXPECT_TRUE(peer.uni);
  EXPECT_EQ(peer.events.data, "hi");
  EXPECT_TRUE(peer.events.fin);
  EXPECT_EQ(fake_->streams[4].consumed, 3u) << "the opening is credited here, the payload by the relay";
  EXPECT_EQ(ts_->write(4, bytes(""), true), 0u);
  EXPECT_TRUE(fake_->streams[4].fin) << "held like a request stream: the relay writes on it";
  // Unknown relay id, unknown flag bits, a relay that refuses: refused, the session lives on.
  ts_->on_incoming_stream(8, true);
  ts_->on_stream_data(8, bytes("\x03\x09"), false);
  ts_->on_stream_data(8, std::vector<uint8_t>{0x00}, false);
  EXPECT_EQ(fake_->streams[8].stop, tunnel::kStreamProtocolError);
  ts_->on_incoming_stream(12, true);
  ts_->on_stream_data(12, std::vector<uint8_t>{0x03, 0x01, 0x02}, false);
  EXPECT_EQ(fake_->streams[12].reset, tunnel::kStreamProtocolError);
  peer.refuse = true;
  ts_->on_incoming_stream(16, true);
  ts_->on_stream_data(16, std::vector<uint8_t>{0x03, 0x01, 0x00, 'x'}, false);
  EXPECT_EQ(fake_->streams[16].stop, tunnel::kStreamProtocolError);
  EXPECT_EQ(fake_->streams[16].consumed, 4u);
  // Session streams (0x02) are the edge's to open.
  ts_->on_incoming_stream(20, true);
  ts_->on_stream_data(20, std::vector<uint8_t>{0x02, 0x01}, false);
  EXPECT_EQ(fake_->streams[20].stop, tunnel::kStreamProtocolError);
  // Datagrams: flow = relay id; other flows are dropped.
  ts_->on_datagram(std::vector<uint8_t>{0x01, 'd'});
  ts_->on_datagram(std::vector<uint8_t>{0x05, 'x'});
  ts_->on_datagram(std::vector<uint8_t>{});
  EXPECT_EQ(peer.datagrams, "d");
  EXPECT_FALSE(ts_->send_relay_datagram(relay, bytes("too big for a session without datagrams")));
  EXPECT_EQ(ts_->relay_datagrams_dropped(), 1u);
  EXPECT_FALSE(fake_->closed);
}

TEST_F(AgentSessionTest, RelayedSessionsPerTunnelSessionAreCapped) {
  open_control();
  std::vector<RelayPeer> peers(tunnel::kMaxRelayedSessions + 1);
  for (size_t i = 0; i < tunnel::kMaxRelayedSessions; ++i) EXPECT_EQ(ts_->add_relay(&peers[i]), i + 1);
  EXPECT_EQ(ts_->add_relay(&peers.back()), 0u) << "the 65th relayed session is refused";
  ts_->remove_relay(3);
  EXPECT_EQ(ts_->add_relay(&peers.back()), tunnel::kMaxRelayedSessions + 1)
      << "a freed slot is usable again; ids keep counting up (reused only after a wrap)";
  EXPECT_EQ(ts_->relay_count(), tunnel::kMaxRelayedSessions);
  EXPECT_FALSE(ts_->add_relay_as(AgentSession::kRelayIdBlock + 1, &peers.back())) << "full";
  ts_->remove_relay(4);
  EXPECT_FALSE(ts_->add_relay_as(1, &peers.back())) << "in use";
  EXPECT_FALSE(ts_->add_relay_as(0, &peers.back()));
  EXPECT_FALSE(ts_->add_relay_as(tunnel::kMaxRelayId + 1, &peers.back()));
  EXPECT_TRUE(ts_->add_relay_as(AgentSession::kRelayIdBlock + 1, &peers.back()))
      << "another worker's block (edge/worker_directory.h)";
  EXPECT_EQ(ts_->relay_count(), tunnel::kMaxRelayedSessions);
}

}  // namespace
}  // namespace wtmesh::edge
