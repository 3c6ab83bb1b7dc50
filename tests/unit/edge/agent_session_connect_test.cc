// Connect streams (kind 0x05, docs/protocol.md §4.3) on the edge's AgentSession: the head is read in
// any fragmentation, NAME alone means NAME.DOMAIN, the token's `connect` claim and the per-session
// cap are checked before the ConnectBroker hears of the stream, and a refusal is a connect reply
// with FIN (the agent's later bytes are credited and dropped).
#include <gtest/gtest.h>

#include "agent_session_fixture.h"
#include "tunnel/connect_stream.h"

namespace wtmesh::edge {
namespace {

struct FakeBroker final : ConnectBroker {
  RequestStreamEvents* on_connect(const StreamRef& ref, std::string_view name) override {
    refs.push_back(ref);
    names.emplace_back(name);
    events.push_back(std::make_unique<RecordedStreamEvents>());
    return events.back().get();
  }
  std::vector<StreamRef> refs;
  std::vector<std::string> names;
  std::vector<std::unique_ptr<RecordedStreamEvents>> events;
};

class AgentSessionConnectTest : public AgentSessionTest {
 protected:
  void SetUp() override {
    cfg_.connect = &broker_;
    cfg_.max_connect_streams = 2;
    start({"b.localhost"}, 64, nullptr, nullptr, {"db.localhost", "*.mesh.localhost"});
    open_control();
  }
  // The agent opens stream `id` and sends `bytes` on it.
  void agent_sends(wt::StreamId id, const std::vector<uint8_t>& bytes, bool fin = false) {
    ts_->on_incoming_stream(id, true);
    ts_->on_stream_data(id, bytes, fin);
  }
  tunnel::ConnectReply reply_on(wt::StreamId id) {
    tunnel::ConnectReplyReader r;
    tunnel::ConnectReply reply;
    size_t used = 0;
    EXPECT_EQ(r.feed(fake_->streams[id].written, used, reply), tunnel::WireError::kNone);
    return reply;
  }
  FakeBroker broker_;
};

TEST_F(AgentSessionConnectTest, InScopeGoesToTheBrokerWithItsEarlyBytesInAnyFragmentation) {
  std::vector<uint8_t> wire = tunnel::encode_connect_stream_head({"db"});
  wire.insert(wire.end(), {'h', 'i'});
  ts_->on_incoming_stream(4, true);
  for (uint8_t b : wire) ts_->on_stream_data(4, {&b, 1}, false);
  ASSERT_EQ(broker_.names.size(), 1u);
  EXPECT_EQ(broker_.names[0], "db.localhost") << "NAME alone is NAME.DOMAIN";
  EXPECT_EQ(broker_.refs[0].session, 1u);
  EXPECT_EQ(broker_.refs[0].id, 4);
  EXPECT_EQ(broker_.events[0]->data, "hi");
  EXPECT_EQ(fake_->streams[4].consumed, wire.size() - 2) << "the head is credited, the bytes wait for the broker";
  EXPECT_EQ(ts_->connect_stream_count(), 1u);
  // The stream is the broker's like a request stream: writes reach it.
  EXPECT_EQ(ts_->write(4, std::vector<uint8_t>{0, 0}, false), 2u);
  EXPECT_TRUE(fake_->streams[4].written.size() == 2);
}

TEST_F(AgentSessionConnectTest, WildcardScope) {
  agent_sends(4, tunnel::encode_connect_stream_head({"Redis.Mesh.localhost"}));
  ASSERT_EQ(broker_.names.size(), 1u);
  EXPECT_EQ(broker_.names[0], "redis.mesh.localhost");
}

TEST_F(AgentSessionConnectTest, OutOfScopeIsRefusedWithAReplyAndFin) {
  std::vector<uint8_t> wire = tunnel::encode_connect_stream_head({"secret"});
  wire.insert(wire.end(), {'x', 'y'});
  agent_sends(4, wire);
  EXPECT_TRUE(broker_.names.empty()) << "the broker never hears of it";
  const auto reply = reply_on(4);
  EXPECT_EQ(reply.status, static_cast<uint64_t>(tunnel::ConnectStatus::kNotInScope));
  EXPECT_EQ(reply.message, "not in token scope");
  EXPECT_TRUE(fake_->streams[4].fin);
  EXPECT_EQ(fake_->streams[4].consumed, wire.size()) << "every byte credited";
  ts_->on_stream_data(4, std::vector<uint8_t>(100, 'z'), false);
  EXPECT_EQ(fake_->streams[4].consumed, wire.size() + 100) << "later bytes dropped and credited";
  EXPECT_FALSE(fake_->closed) << "the session lives on";
  EXPECT_EQ(ts_->connect_stream_count(), 0u);
}

TEST_F(AgentSessionConnectTest, ATokenWithoutTheClaimReachesNothing) {
  start({"b.localhost"}, 64, nullptr, nullptr, {});
  open_control();
  agent_sends(4, tunnel::encode_connect_stream_head({"db"}));
  EXPECT_TRUE(broker_.names.empty());
  EXPECT_EQ(reply_on(4).status, static_cast<uint64_t>(tunnel::ConnectStatus::kNotInScope));
}

TEST_F(AgentSessionConnectTest, CapPerSessionThenRoomAgain) {
  agent_sends(4, tunnel::encode_connect_stream_head({"db"}));
  agent_sends(8, tunnel::encode_connect_stream_head({"db"}));
  agent_sends(12, tunnel::encode_connect_stream_head({"db"}));
  EXPECT_EQ(broker_.names.size(), 2u);
  const auto reply = reply_on(12);
  EXPECT_EQ(reply.status, static_cast<uint64_t>(tunnel::ConnectStatus::kLimit));
  EXPECT_NE(reply.message.find("2 connections"), std::string::npos) << reply.message;
  ts_->release(4);  // one ends
  agent_sends(16, tunnel::encode_connect_stream_head({"db"}));
  EXPECT_EQ(broker_.names.size(), 3u) << "room again";
}

TEST_F(AgentSessionConnectTest, MalformedHeadIsAProtocolErrorOfTheStreamOnly) {
  agent_sends(4, {0x05, 0x03, 0x02, 0x01, 'a'});  // flag bit 1: unknown
  EXPECT_EQ(fake_->streams[4].reset, tunnel::kStreamProtocolError);
  EXPECT_EQ(fake_->streams[4].stop, tunnel::kStreamProtocolError);
  agent_sends(8, {0x05, 0x04, 0x00}, true);  // FIN inside the head
  EXPECT_EQ(fake_->streams[8].reset, tunnel::kStreamProtocolError);
  agent_sends(12, {0x05, 0x04, 0x00, 0x02, 'a', '!'});  // not a name
  EXPECT_EQ(reply_on(12).status, static_cast<uint64_t>(tunnel::ConnectStatus::kInvalid));
  EXPECT_TRUE(broker_.names.empty());
  EXPECT_FALSE(fake_->closed);
}

TEST_F(AgentSessionConnectTest, SessionEndAbortsTheBrokersStreams) {
  agent_sends(4, tunnel::encode_connect_stream_head({"db"}));
  fake_->peer_closes(0, "bye");
  ASSERT_EQ(broker_.events.size(), 1u);
  EXPECT_TRUE(broker_.events[0]->aborted);
}

TEST_F(AgentSessionConnectTest, NoBrokerRefusesUnknown) {
  cfg_.connect = nullptr;
  start({"b.localhost"}, 64, nullptr, nullptr, {"db.localhost"});
  open_control();
  agent_sends(4, tunnel::encode_connect_stream_head({"db"}));
  EXPECT_EQ(reply_on(4).status, static_cast<uint64_t>(tunnel::ConnectStatus::kUnknown));
}

}  // namespace
}  // namespace wtmesh::edge
