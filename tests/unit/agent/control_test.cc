#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "agent/tunnel_control.h"

namespace wtmesh::agent {
namespace {

using tunnel::ControlType;
using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::vector<uint8_t> frame(ControlType t, const json& j) { return tunnel::encode_control_frame(t, j.dump()); }

// Decodes everything the channel queued (after the stream-kind byte).
std::vector<tunnel::ControlFrame> drain(ControlChannel& c, bool skip_kind = false) {
  auto out = c.pending_output();
  std::vector<uint8_t> bytes(out.begin(), out.end());
  c.output_written(bytes.size());
  if (skip_kind) {
    EXPECT_EQ(bytes.at(0), 0x00);
    bytes.erase(bytes.begin());
  }
  tunnel::ControlReader r;
  std::vector<tunnel::ControlFrame> frames;
  EXPECT_EQ(r.feed(bytes, frames), tunnel::WireError::kNone);
  return frames;
}

class Control : public ::testing::Test {
 protected:
  SteadyTime t0 = SteadyTime() + seconds(1000);
  ControlChannel c{ControlOptions{}, t0};
};

TEST_F(Control, StartsWithKindAndOneRegisterPerTunnel) {
  c.start({{1, "app.localhost", "http"}, {2, "api.localhost", "http"}});
  auto frames = drain(c, true);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].type, static_cast<uint64_t>(ControlType::kRegister));
  const auto j = json::parse(frames[1].payload);
  EXPECT_EQ(j["id"], 2);
  EXPECT_EQ(j["type"], "http");
  EXPECT_EQ(j["hostname"], "api.localhost");
  EXPECT_TRUE(j["options"].is_object());
}

TEST_F(Control, ARegisterCarriesTheTunnelsVisitorAuth) {
  std::string error;
  TunnelRegistration t{1, "app.localhost", "http"};
  t.visitor.basic.push_back(*tunnel::make_basic_credential("alice:pw", &error));
  t.visitor.deny.push_back(*tunnel::parse_cidr("10.0.0.0/8", &error));
  c.start({t, {2, "api.localhost", "http"}});
  auto frames = drain(c, true);
  ASSERT_EQ(frames.size(), 2u);
  const auto d = tunnel::decode(frames[0]);
  ASSERT_TRUE(d.ok()) << d.describe();
  EXPECT_EQ(d.get<tunnel::Register>()->visitor, t.visitor);
  EXPECT_EQ(frames[0].payload.find("pw\""), std::string::npos) << "the password itself is not sent";
  EXPECT_FALSE(json::parse(frames[1].payload)["options"].contains("visitor")) << "none asked: none sent";
}

TEST_F(Control, RegisteredAndRefusedBecomeEventsInAnyFragmentation) {
  std::vector<uint8_t> in =
      frame(ControlType::kRegistered,
            {{"id", 1}, {"hostname", "app.localhost"}, {"url", "https://app.localhost:4433/"}});
  const auto refused = frame(ControlType::kRefused, {{"id", 2},
                                                     {"hostname", "x.localhost"},
                                                     {"code", "not_covered"},
                                                     {"message", "The token does not cover x.localhost."},
                                                     {"future", true}});
  in.insert(in.end(), refused.begin(), refused.end());
  std::vector<ControlEvent> ev;
  for (uint8_t b : in) ASSERT_TRUE(c.on_data(std::span<const uint8_t>(&b, 1), t0, ev));
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].kind, ControlEvent::Kind::kRegistered);
  EXPECT_EQ(ev[0].url, "https://app.localhost:4433/");
  EXPECT_EQ(ev[1].kind, ControlEvent::Kind::kRefused);
  EXPECT_EQ(ev[1].id, 2u);
  EXPECT_EQ(ev[1].code, "not_covered");
  EXPECT_EQ(ev[1].message, "The token does not cover x.localhost.");
}

TEST_F(Control, UnknownFrameTypesAreSkipped) {
  std::vector<uint8_t> in = {0x3f, 0x03, 'a', 'b', 'c'};  // type 0x3f, 3 bytes
  const auto ping = frame(ControlType::kPing, {{"seq", 7}});
  in.insert(in.end(), ping.begin(), ping.end());
  std::vector<ControlEvent> ev;
  ASSERT_TRUE(c.on_data(in, t0, ev));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, ControlEvent::Kind::kPing);
}

TEST_F(Control, PingIsAnsweredWithPongOfSameSeq) {
  std::vector<ControlEvent> ev;
  ASSERT_TRUE(c.on_data(frame(ControlType::kPing, {{"seq", 123456789012ull}}), t0, ev));
  auto frames = drain(c);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, static_cast<uint64_t>(ControlType::kPong));
  EXPECT_EQ(json::parse(frames[0].payload)["seq"], 123456789012ull);
}

TEST_F(Control, SendsPingEveryIntervalAndTimesOutAfterThreeSilentOnes) {
  EXPECT_EQ(c.next_deadline(), t0 + seconds(10));
  EXPECT_TRUE(c.on_tick(t0 + seconds(5)));
  EXPECT_TRUE(drain(c).empty());
  EXPECT_TRUE(c.on_tick(t0 + seconds(10)));
  auto frames = drain(c);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, static_cast<uint64_t>(ControlType::kPing));
  EXPECT_EQ(json::parse(frames[0].payload)["seq"], 1);
  EXPECT_TRUE(c.on_tick(t0 + seconds(20)));
  EXPECT_EQ(json::parse(drain(c).at(0).payload)["seq"], 2);
  // A PONG at 25 s resets the silence clock.
  std::vector<ControlEvent> ev;
  ASSERT_TRUE(c.on_data(frame(ControlType::kPong, {{"seq", 2}}), t0 + seconds(25), ev));
  EXPECT_TRUE(c.on_tick(t0 + seconds(54)));
  EXPECT_FALSE(c.on_tick(t0 + seconds(55)));
  EXPECT_TRUE(c.timed_out());
  EXPECT_NE(c.error().find("heartbeat timeout"), std::string::npos);
}

TEST_F(Control, PongOfItsPingGivesTheRoundTrip) {
  EXPECT_TRUE(c.on_tick(t0 + seconds(10)));
  const auto seq = json::parse(drain(c).at(0).payload)["seq"].get<uint64_t>();
  std::vector<ControlEvent> ev;
  ASSERT_TRUE(c.on_data(frame(ControlType::kPong, {{"seq", seq}}), t0 + seconds(10) + milliseconds(30), ev));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, ControlEvent::Kind::kPong);
  ASSERT_TRUE(c.heartbeat().rtt());
  EXPECT_EQ(*c.heartbeat().rtt(), milliseconds(30));
}

TEST_F(Control, RegisterCarriesTheTunnelsType) {
  c.send_register({3, "db.localhost", "tcp"});
  c.send_unregister(3);
  auto frames = drain(c);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].payload, R"({"hostname":"db.localhost","id":3,"options":{},"type":"tcp"})");
  EXPECT_EQ(frames[1].type, static_cast<uint64_t>(ControlType::kUnregister));
  EXPECT_EQ(frames[1].payload, R"({"id":3})");
}

TEST_F(Control, MalformedPayloadsAreProtocolErrors) {
  std::vector<ControlEvent> ev;
  {
    ControlChannel x(ControlOptions{}, t0);
    EXPECT_FALSE(x.on_data(tunnel::encode_control_frame(ControlType::kRegistered, "{not json"), t0, ev));
    EXPECT_FALSE(x.timed_out());
  }
  {
    ControlChannel x(ControlOptions{}, t0);
    EXPECT_FALSE(x.on_data(frame(ControlType::kRefused, {{"id", "one"}}), t0, ev));
  }
  {
    ControlChannel x(ControlOptions{}, t0);
    EXPECT_FALSE(x.on_data(frame(ControlType::kPing, json::object()), t0, ev));
  }
  {
    ControlChannel x(ControlOptions{}, t0);
    EXPECT_FALSE(x.on_data(frame(ControlType::kRegister, {{"id", 1}}), t0, ev));  // agent-only
  }
  {
    ControlChannel x(ControlOptions{}, t0);
    EXPECT_FALSE(x.on_data(frame(ControlType::kRegistered, {{"id", 1ull << 33}}), t0, ev));  // id over u32
  }
}

TEST_F(Control, OversizedFrameIsRefused) {
  std::vector<uint8_t> in = {0x02, 0x80, 0x00, 0x40, 0x01};  // REGISTERED, length 16 KiB + 1
  std::vector<ControlEvent> ev;
  EXPECT_FALSE(c.on_data(in, t0, ev));
  EXPECT_TRUE(c.failed());
}

TEST_F(Control, OutputQueueCapIsAnError) {
  ControlOptions o;
  o.max_output = 200;
  ControlChannel x(o, t0);
  std::vector<ControlEvent> ev;
  int answered = 0;
  for (; answered < 100 && !x.failed(); ++answered) {
    x.on_data(frame(ControlType::kPing, {{"seq", answered}}), t0, ev);  // never drained
  }
  EXPECT_TRUE(x.failed());
  EXPECT_LE(x.pending_output().size(), 200u);
  EXPECT_NE(x.error().find("not reading"), std::string::npos);
  EXPECT_FALSE(x.on_tick(t0));
}

}  // namespace
}  // namespace wtmesh::agent
