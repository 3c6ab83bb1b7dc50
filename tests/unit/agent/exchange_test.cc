// The Asio driver (AsioUpstreamDriver + its UpstreamExchange core) against a real local HTTP/1.1 server and
// an in-memory session: keep-alive reuse, streaming both ways with backpressure, 502s of ours, resets, and
// the caps.
#include <gtest/gtest.h>

#include <functional>

#include "../../support/run_until.h"
#include "agent/upstream_driver.h"
#include "fake_session.h"
#include "local_http_server.h"
#include "request_head.h"

namespace wtmesh::agent {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using testing::FakeSession;
using testing::LocalHttpServer;

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class Exchange : public ::testing::Test {
 protected:
  asio::ip::tcp::endpoint server_ep() const { return {asio::ip::make_address("127.0.0.1"), server_.port()}; }
  bool run_until(const std::function<bool()>& done,
                 std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    return test::run_io_until(io_, done, limit, test::Turn::kOneHandler);
  }
  void run_for(std::chrono::milliseconds d) {
    run_until([] { return false; }, d);
  }

  // Starts an exchange for `head` on stream `id`; results land in results_[id].
  std::shared_ptr<AsioUpstreamDriver> start(wt::StreamId id, tunnel::RequestHead head, UpstreamPool& pool,
                                            std::string_view early = {}, bool fin = true,
                                            ExchangeLimits limits = {}) {
    auto ex = std::make_shared<AsioUpstreamDriver>(
        io_, session_, id, pool, std::move(head), [this, id](const ExchangeResult& r) { results_[id] = r; },
        limits);
    ex->start(bytes(early), fin);
    return ex;
  }
  // With the forwarding header the edge adds (the local server echoes headers back).
  static tunnel::RequestHead request(std::string method, std::string target, bool has_body = false,
                                     std::optional<uint64_t> length = std::nullopt) {
    auto h = testing::request(std::move(method), std::move(target), has_body, length);
    h.headers = {{"x-forwarded-for", "192.0.2.1"}};
    return h;
  }

  LocalHttpServer server_;
  asio::io_context io_;
  FakeSession session_;
  std::map<wt::StreamId, ExchangeResult> results_;
};

TEST_F(Exchange, SimpleGetAndKeepAliveReuse) {
  UpstreamPool pool(io_, server_ep());
  for (int i = 0; i < 3; ++i) {
    const wt::StreamId id = 4 * i;
    auto ex = start(id, request("GET", "/hello"), pool);
    ASSERT_TRUE(run_until([&] { return results_.count(id) > 0; }));
    auto r = session_.response(id);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->head.status, 200);
    EXPECT_EQ(r->head.content_length, 5u);
    EXPECT_TRUE(r->head.has_body);
    EXPECT_EQ(r->body, "hello");
    EXPECT_TRUE(session_.streams[id].fin);
    EXPECT_FALSE(results_[id].failed);
    EXPECT_EQ(results_[id].status, 200);
    EXPECT_EQ(results_[id].response_bytes, 5u);
    EXPECT_EQ(results_[id].reused_connection, i > 0);
    EXPECT_EQ(pool.idle_count(), 1u);
  }
  EXPECT_EQ(server_.connections(), 1);
  EXPECT_EQ(server_.requests(), 3);
  EXPECT_EQ(pool.reuses(), 2u);
}

TEST_F(Exchange, HostIsThePublicAuthorityAndHeadersPassThrough) {
  UpstreamPool pool(io_, server_ep());
  auto ex = start(0, request("GET", "/headers"), pool);
  ASSERT_TRUE(run_until([&] { return results_.count(0) > 0; }));
  const auto body = session_.response(0)->body;
  EXPECT_NE(body.find("GET /headers HTTP/1.1\r\n"), std::string::npos) << body;
  EXPECT_NE(body.find("Host: app.localhost:4433\r\n"), std::string::npos) << body;
  EXPECT_NE(body.find("x-forwarded-for: 192.0.2.1\r\n"), std::string::npos) << body;
}

TEST_F(Exchange, RefusedUpstreamIsAnInBand502) {
  // A port with nobody listening.
  asio::ip::tcp::acceptor probe(io_, {asio::ip::make_address("127.0.0.1"), 0});
  const uint16_t port = probe.local_endpoint().port();
  probe.close();
  UpstreamPool pool(io_, {asio::ip::make_address("127.0.0.1"), port});
  auto ex = start(0, request("GET", "/"), pool);
  ASSERT_TRUE(run_until([&] { return results_.count(0) > 0; }));
  auto r = session_.response(0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 502);
  const std::string want = "upstream refused: connection refused (127.0.0.1:" + std::to_string(port) + ")";
  ASSERT_EQ(r->head.headers.size(), 2u);
  EXPECT_EQ(r->head.headers[0], (std::pair<std::string, std::string>{"wtmesh-error", want}));
  EXPECT_NE(r->body.find(want), std::string::npos);
  EXPECT_EQ(r->head.content_length, r->body.size());
  EXPECT_TRUE(session_.streams[0].fin);
  EXPECT_TRUE(results_[0].failed);
  EXPECT_EQ(results_[0].status, 502);
}

TEST_F(Exchange, ClosedBeforeAnsweringIs502AndMidResponseFailureResets) {
  UpstreamPool pool(io_, server_ep());
  start(0, request("GET", "/drop"), pool);
  ASSERT_TRUE(run_until([&] { return results_.count(0) > 0; }));
  auto r = session_.response(0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 502);
  EXPECT_NE(r->head.headers[0].second.find("before responding"), std::string::npos)
      << r->head.headers[0].second;

  start(4, request("GET", "/cut"), pool);
  ASSERT_TRUE(run_until([&] { return results_.count(4) > 0; }));
  EXPECT_EQ(session_.streams[4].reset, tunnel::kStreamUpstreamFailed);
  EXPECT_FALSE(session_.streams[4].fin);
  EXPECT_TRUE(results_[4].failed);
  EXPECT_EQ(pool.idle_count(), 0u);
}

TEST_F(Exchange, RequestBodyIsConsumedOnlyAsTcpTakesIt) {
  UpstreamPool pool(io_, server_ep());
  const std::string part(100000, 'q');
  auto ex = start(0, request("POST", "/count", true, 300000), pool, part, false);
  ASSERT_TRUE(run_until([&] { return session_.streams[0].consumed == part.size(); }));
  ex->on_body(bytes(part), false);
  ex->on_body(bytes(part), true);
  ASSERT_TRUE(run_until([&] { return results_.count(0) > 0; }));
  EXPECT_EQ(session_.streams[0].consumed, 300000u);
  EXPECT_EQ(session_.response(0)->body, "received 300000");
  EXPECT_EQ(results_[0].request_bytes, 300000u);
  EXPECT_EQ(pool.idle_count(), 1u);
}

TEST_F(Exchange, BodyWithoutLengthIsSentChunkedAndEchoStreams) {
  UpstreamPool pool(io_, server_ep());
  auto ex = start(0, request("POST", "/echo", true), pool, "first ", false);
  // The echo of the first piece arrives before the request body is finished.
  ASSERT_TRUE(run_until([&] {
    auto r = session_.response(0);
    return r && r->body == "first ";
  }));
  EXPECT_FALSE(session_.response(0)->head.content_length);
  ex->on_body(bytes("second"), true);
  ASSERT_TRUE(run_until([&] { return results_.count(0) > 0; }));
  EXPECT_EQ(session_.response(0)->body, "first second");
  EXPECT_EQ(server_.body_bytes_received(), 12u);
  EXPECT_TRUE(session_.streams[0].fin);
  EXPECT_EQ(pool.idle_count(), 1u);
}

TEST_F(Exchange, ResponseWaitsForStreamCapacity) {
  UpstreamPool pool(io_, server_ep());
  session_.capacity = 0;
  const uint64_t size = 64ull << 20;
  auto ex = start(0, request("GET", "/download?bytes=" + std::to_string(size)), pool);
  run_for(std::chrono::milliseconds(300));
  // Nothing could be written; the upstream is stuck behind TCP flow control, far from done.
  EXPECT_TRUE(session_.streams[0].out.empty());
  EXPECT_LT(server_.bytes_sent(), size / 2);
  // Trickle capacity: every grant is used, in order, and reading resumes.
  uint64_t body = 0;
  while (!results_.count(0)) {
    session_.capacity = 1 << 20;
    ex->on_writable();
    run_for(std::chrono::milliseconds(1));
    ASSERT_LT(body, size + 1000);
    body = session_.streams[0].out.size();
  }
  auto r = session_.response(0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body.size(), size);
  EXPECT_EQ(results_[0].response_bytes, size);
}

TEST_F(Exchange, ServerSentEventsArriveAsWritten) {
  UpstreamPool pool(io_, server_ep());
  auto ex = start(0, request("GET", "/sse?n=3&gap_ms=200"), pool);
  ASSERT_TRUE(run_until([&] {
    auto r = session_.response(0);
    return r && r->body == "data: 0\n\n";
  }));
  EXPECT_FALSE(results_.count(0));  // still open: the other events are not written yet
  ASSERT_TRUE(run_until([&] { return results_.count(0) > 0; }));
  EXPECT_EQ(session_.response(0)->body, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
}

TEST_F(Exchange, EdgeResetClosesTheUpstreamConnection) {
  UpstreamPool pool(io_, server_ep());
  auto ex = start(0, request("GET", "/sse?n=50&gap_ms=50"), pool);
  ASSERT_TRUE(run_until([&] { return session_.response(0).has_value(); }));
  ASSERT_EQ(server_.open_connections(), 1);
  ex->on_reset(tunnel::kStreamCancelled);
  ASSERT_TRUE(results_.count(0));
  EXPECT_EQ(session_.streams[0].reset, tunnel::kStreamCancelled);
  EXPECT_TRUE(results_[0].failed);
  EXPECT_EQ(pool.idle_count(), 0u);
  // The server's next write fails: its connection is gone, not pooled.
  ASSERT_TRUE(run_until([&] { return server_.open_connections() == 0; }));
}

TEST_F(Exchange, EarlyResponseDropsTheRestOfTheRequestBody) {
  UpstreamPool pool(io_, server_ep());
  auto ex = start(0, request("POST", "/reject", true, 1 << 20), pool, "some", false);
  ASSERT_TRUE(run_until([&] { return results_.count(0) > 0; }));
  EXPECT_EQ(session_.response(0)->head.status, 413);
  // The edge is asked to stop sending the body (code 0); the response is not reset.
  EXPECT_EQ(session_.streams[0].stopped, std::optional<uint32_t>(0));
  EXPECT_FALSE(session_.streams[0].reset.has_value());
  EXPECT_EQ(session_.streams[0].consumed, 4u);
  // Bytes still in flight from the edge are credited and dropped.
  ex->on_body(bytes("more"), false);
  EXPECT_EQ(session_.streams[0].consumed, 8u);
  EXPECT_EQ(pool.idle_count(), 0u);
}

TEST_F(Exchange, ConnectionCloseResponseIsNotPooled) {
  UpstreamPool pool(io_, server_ep());
  start(0, request("GET", "/close"), pool);
  ASSERT_TRUE(run_until([&] { return results_.count(0) > 0; }));
  EXPECT_EQ(session_.response(0)->body, "bye");
  EXPECT_EQ(pool.idle_count(), 0u);
}

TEST_F(Exchange, ProtocolViolationsResetWithCode2) {
  UpstreamPool pool(io_, server_ep());
  // A body on a request that announced none.
  start(0, request("GET", "/hello"), pool, "junk", false);
  EXPECT_EQ(session_.streams[0].reset, tunnel::kStreamProtocolError);
  EXPECT_EQ(session_.streams[0].consumed, 4u);
  // More body than content-length.
  start(4, request("POST", "/count", true, 3), pool, "four", false);
  EXPECT_EQ(session_.streams[4].reset, tunnel::kStreamProtocolError);
  // A head that could smuggle a second request.
  auto bad = request("GET", "/hello");
  bad.headers.push_back({"x-evil", "a\r\nGET /admin HTTP/1.1"});
  start(8, bad, pool);
  EXPECT_EQ(session_.streams[8].reset, tunnel::kStreamProtocolError);
  run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(server_.requests(), 0);
}

TEST_F(Exchange, HeldRequestBodyCap) {
  UpstreamPool pool(io_, server_ep());
  ExchangeLimits limits;
  limits.max_request_hold = 1000;
  // Before the connection is up nothing can be written, so the bytes are held: over the cap is an error.
  auto ex = start(0, request("POST", "/count", true), pool, std::string(1000, 'a'), false, limits);
  EXPECT_FALSE(session_.streams[0].reset);
  ex->on_body(bytes("b"), false);
  EXPECT_EQ(session_.streams[0].reset, tunnel::kStreamProtocolError);
  EXPECT_EQ(session_.streams[0].consumed, 1001u);
}

TEST_F(Exchange, StreamClosedUnderARunningExchangeAbortsIt) {
  UpstreamPool pool(io_, server_ep());
  auto ex = start(0, request("GET", "/sse?n=50&gap_ms=50"), pool);
  ASSERT_TRUE(run_until([&] { return session_.response(0).has_value(); }));
  ex->on_stream_closed();
  ASSERT_TRUE(results_.count(0));
  EXPECT_TRUE(results_[0].failed);
  ASSERT_TRUE(run_until([&] { return server_.open_connections() == 0; }));
  // After a normal finish it is a no-op.
  auto done = start(4, request("GET", "/hello"), pool);
  ASSERT_TRUE(run_until([&] { return results_.count(4) > 0; }));
  done->on_stream_closed();
  EXPECT_FALSE(results_[4].failed);
}

TEST_F(Exchange, SessionGoneDropsEverything) {
  UpstreamPool pool(io_, server_ep());
  auto ex = start(0, request("GET", "/sse?n=50&gap_ms=50"), pool);
  ASSERT_TRUE(run_until([&] { return session_.response(0).has_value(); }));
  ex->on_session_gone();
  EXPECT_TRUE(results_.count(0));
  EXPECT_EQ(pool.idle_count(), 0u);
  ASSERT_TRUE(run_until([&] { return server_.open_connections() == 0; }));
}

TEST(Pool, IdleConnectionsAreCappedExpiredAndDroppedWhenTheUpstreamCloses) {
  LocalHttpServer server;
  asio::io_context io;
  PoolLimits limits;
  limits.max_idle = 2;
  limits.idle_timeout = std::chrono::milliseconds(200);
  UpstreamPool pool(io, {asio::ip::make_address("127.0.0.1"), server.port()}, limits);
  auto connect = [&] {
    asio::ip::tcp::socket s(io);
    s.connect(pool.endpoint());
    return s;
  };
  pool.put(UpstreamConnection::from_socket(connect()));
  pool.put(UpstreamConnection::from_socket(connect()));
  pool.put(UpstreamConnection::from_socket(connect()));
  EXPECT_EQ(pool.idle_count(), 2u);  // the oldest went
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (pool.idle_count() > 0 && Clock::now() < deadline) io.run_one_for(std::chrono::milliseconds(5));
  EXPECT_EQ(pool.idle_count(), 0u);  // idle timeout

  // An idle connection the upstream closes leaves the pool by itself.
  limits.idle_timeout = std::chrono::seconds(30);
  UpstreamPool pool2(io, pool.endpoint(), limits);
  auto s = connect();
  asio::write(s, asio::buffer(std::string("GET /close HTTP/1.1\r\nHost: x\r\n\r\n")));
  char buf[256];
  s.read_some(asio::buffer(buf));
  pool2.put(UpstreamConnection::from_socket(std::move(s)));
  EXPECT_EQ(pool2.idle_count(), 1u);
  deadline = Clock::now() + std::chrono::seconds(5);
  while (pool2.idle_count() > 0 && Clock::now() < deadline) io.run_one_for(std::chrono::milliseconds(5));
  EXPECT_EQ(pool2.idle_count(), 0u);
  EXPECT_FALSE(pool2.take());
}

}  // namespace
}  // namespace wtmesh::agent
