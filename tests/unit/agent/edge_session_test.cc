// EdgeSession on an in-memory session: control stream set-up, stream kinds, head parsing in any
// fragmentation, flow-control credit for every byte, and the heartbeat.
#include "agent/edge_session.h"

#include <gtest/gtest.h>

#include <functional>

#include "../../support/run_until.h"
#include "common/varint.h"
#include "fake_session.h"
#include "local_http_server.h"
#include "request_head.h"
#include "tunnel/framed_body.h"

namespace wtmesh::agent {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

class Session : public ::testing::Test {
 protected:
  Session() : pool_(io_, {asio::ip::make_address("127.0.0.1"), server_.port()}) {}

  void make(ControlOptions control = {}) {
    EdgeSession::Callbacks cb;
    cb.on_control = [this](const ControlEvent& e) { events_.push_back(e); };
    cb.on_request = [this](uint32_t id, const ExchangeResult& r) { results_.emplace_back(id, r); };
    ts_ = std::make_unique<EdgeSession>(io_, std::vector<TunnelRoute>{{{7, "app.localhost", "http"}, &pool_}},
                                        control, ExchangeLimits{}, std::move(cb));
    ts_->on_attached(fake_);
    ts_->on_ready();
  }
  bool run_until(const std::function<bool()>& done,
                 std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    return test::run_io_until(io_, done, limit, test::Turn::kOneHandler);
  }
  static std::vector<uint8_t> request_bytes(uint32_t tunnel, const std::string& target) {
    auto h = testing::request("GET", target);
    h.tunnel_id = tunnel;
    h.authority = "app.localhost";
    return tunnel::encode_request_open(h);
  }

  testing::LocalHttpServer server_;
  asio::io_context io_;
  UpstreamPool pool_;
  testing::FakeSession fake_;
  std::unique_ptr<EdgeSession> ts_;
  std::vector<ControlEvent> events_;
  std::vector<std::pair<uint32_t, ExchangeResult>> results_;
};

TEST_F(Session, OpensTheControlStreamAndRegisters) {
  make();
  ASSERT_EQ(fake_.streams.size(), 1u);
  const auto& out = fake_.streams.begin()->second.out;
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0], 0x00);  // stream kind: control
  tunnel::ControlReader r;
  std::vector<tunnel::ControlFrame> frames;
  ASSERT_EQ(r.feed(std::span<const uint8_t>(out).subspan(1), frames), tunnel::WireError::kNone);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].payload, R"({"hostname":"app.localhost","id":7,"options":{},"type":"http"})");
}

TEST_F(Session, ControlEventsAndEndOfControlStream) {
  make();
  const wt::StreamId control = fake_.streams.begin()->first;
  const auto reg =
      tunnel::encode_control_frame(tunnel::ControlType::kRegistered,
                                   R"({"id":7,"hostname":"app.localhost","url":"https://app.localhost/"})");
  ts_->on_stream_data(control, reg, false);
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].url, "https://app.localhost/");
  EXPECT_EQ(fake_.streams[control].consumed, reg.size());
  ts_->on_stream_data(control, {}, true);
  EXPECT_EQ(fake_.closed, tunnel::kCloseProtocolError);
}

TEST_F(Session, UnidirectionalStreamsAndBadHeadsAreRefusedWithoutEndingTheSession) {
  make();
  ts_->on_incoming_stream(3, false);
  EXPECT_EQ(fake_.streams[3].stopped, tunnel::kStreamProtocolError);
  ts_->on_incoming_stream(1, true);
  const std::vector<uint8_t> wrong_kind = {0x02, 0x01, 0x00};
  ts_->on_stream_data(1, wrong_kind, false);
  EXPECT_EQ(fake_.streams[1].reset, tunnel::kStreamProtocolError);
  EXPECT_EQ(fake_.streams[1].stopped, tunnel::kStreamProtocolError);
  EXPECT_EQ(fake_.streams[1].consumed, 3u);
  ts_->on_stream_data(1, wrong_kind, false);  // late bytes of a refused stream: credited, dropped
  EXPECT_EQ(fake_.streams[1].consumed, 6u);
  ts_->on_incoming_stream(5, true);
  ts_->on_stream_data(5, request_bytes(99, "/hello"), true);  // a tunnel id never registered
  EXPECT_EQ(fake_.streams[5].reset, tunnel::kStreamProtocolError);
  EXPECT_FALSE(fake_.closed);
}

TEST_F(Session, HeadInOneBytePiecesBecomesAnExchange) {
  make();
  ts_->on_incoming_stream(1, true);
  const auto bytes = request_bytes(7, "/hello");
  for (size_t i = 0; i < bytes.size(); ++i)
    ts_->on_stream_data(1, std::span<const uint8_t>(&bytes[i], 1), i + 1 == bytes.size());
  EXPECT_EQ(ts_->pending_heads(), 0u);
  EXPECT_EQ(ts_->active_requests(), 1u);
  ASSERT_TRUE(run_until([&] { return !results_.empty(); }));
  EXPECT_EQ(results_[0].first, 7u);
  EXPECT_EQ(results_[0].second.status, 200);
  EXPECT_EQ(fake_.response(1)->body, "hello");
  EXPECT_EQ(fake_.streams[1].consumed, bytes.size());
  ASSERT_TRUE(run_until([&] { return ts_->active_requests() == 0; }));
}

// Session feature `trailers` (docs/protocol.md §4.1): used only when the edge's 200 named it.
TEST_F(Session, AChunkedAnswerIsFramedOnlyWhenTheEdgeAcceptedTrailers) {
  for (bool accepted : {false, true}) {
    results_.clear();
    fake_.streams.clear();
    fake_.set_response({200, accepted ? wt::HeaderPairs{{"wtmesh-features", "trailers"}} : wt::HeaderPairs{}});
    make();
    ts_->on_incoming_stream(1, true);
    ts_->on_stream_data(1, request_bytes(7, "/sse?n=2&gap_ms=1"), true);
    ASSERT_TRUE(run_until([&] { return !results_.empty(); }));
    const auto& out = fake_.streams[1].out;
    tunnel::HeadReader<tunnel::ResponseHead> reader;
    tunnel::ResponseHead head;
    ASSERT_EQ(reader.feed(out, head), tunnel::WireError::kNone);
    EXPECT_EQ(head.framed, accepted);
    const auto rest = reader.take_body();
    std::string body;
    if (accepted) {
      tunnel::FramedBodyReader framed;
      std::vector<std::span<const uint8_t>> pieces;
      ASSERT_EQ(framed.feed(rest, pieces), tunnel::WireError::kNone);
      for (auto p : pieces) body.append(p.begin(), p.end());
      EXPECT_TRUE(framed.done());
      EXPECT_TRUE(framed.take_trailers().empty());
    } else {
      body.assign(rest.begin(), rest.end());
    }
    EXPECT_EQ(body, "data: 0\n\ndata: 1\n\n");
    ASSERT_TRUE(run_until([&] { return ts_->active_requests() == 0; }));
  }
}

TEST_F(Session, StreamsAreDispatchedByKindSplitAnywhere) {
  make();
  // Kind 1 as a four-byte varint, one byte at a time, then the head: still a request stream.
  ts_->on_incoming_stream(1, true);
  auto req = request_bytes(7, "/hello");
  std::vector<uint8_t> bytes = {0x80, 0x00, 0x00, 0x01};
  bytes.insert(bytes.end(), req.begin() + 1, req.end());
  for (size_t i = 0; i < 4; ++i) ts_->on_stream_data(1, std::span<const uint8_t>(&bytes[i], 1), false);
  EXPECT_EQ(ts_->pending_heads(), 1u);
  EXPECT_EQ(fake_.streams[1].consumed, 4u);
  ts_->on_stream_data(1, std::span<const uint8_t>(bytes).subspan(4), true);
  EXPECT_EQ(ts_->active_requests(), 1u);
  ASSERT_TRUE(run_until([&] { return !results_.empty(); }));
  EXPECT_EQ(results_[0].second.status, 200);
  // A control-kind stream is the agent's to open; a stream that ends inside its kind is refused.
  ts_->on_incoming_stream(5, true);
  ts_->on_stream_data(5, std::vector<uint8_t>{0x00, 'x'}, false);
  EXPECT_EQ(fake_.streams[5].reset, tunnel::kStreamProtocolError);
  EXPECT_EQ(fake_.streams[5].consumed, 2u);
  ts_->on_incoming_stream(9, true);
  ts_->on_stream_data(9, std::vector<uint8_t>{0x40}, true);
  EXPECT_EQ(fake_.streams[9].reset, tunnel::kStreamProtocolError);
  EXPECT_EQ(ts_->pending_heads(), 0u);
  EXPECT_FALSE(fake_.closed);
}

TEST_F(Session, HeadOverTheCapIsRefused) {
  make();
  ts_->on_incoming_stream(1, true);
  std::vector<uint8_t> huge = {0x01};
  append_varint(huge, tunnel::kMaxHeadLength + 1);
  ts_->on_stream_data(1, huge, false);
  EXPECT_EQ(fake_.streams[1].reset, tunnel::kStreamProtocolError);
}

TEST_F(Session, HeartbeatTimeoutClosesWithCode2) {
  ControlOptions c;
  c.ping_interval = std::chrono::milliseconds(30);
  make(c);
  ASSERT_TRUE(run_until([&] { return fake_.closed.has_value(); }));
  EXPECT_EQ(fake_.closed, tunnel::kCloseHeartbeatTimeout);
}

TEST_F(Session, SessionEndAbortsExchanges) {
  make();
  ts_->on_incoming_stream(1, true);
  ts_->on_stream_data(1, request_bytes(7, "/sse?n=100&gap_ms=50"), true);
  ASSERT_TRUE(run_until([&] { return fake_.response(1).has_value(); }));
  ts_->on_closed(0, "bye");
  EXPECT_TRUE(ts_->closed());
  EXPECT_EQ(ts_->active_requests(), 0u);
  ASSERT_TRUE(run_until([&] { return server_.open_connections() == 0; }));
}

}  // namespace
}  // namespace wtmesh::agent
