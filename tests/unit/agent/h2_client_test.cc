// H2UpstreamClient + H2StreamDriver on real sockets: a local HTTP/2 server (nghttp2's server session,
// h2_test_server.h, behind an Asio acceptor) and the in-memory tunnel session. Multiplexing on one
// connection, the wait-queue cap (a 502 beyond it), idle expiry.
#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <functional>
#include <memory>
#include <set>

#include "../../support/run_until.h"
#include "agent/h2_upstream_driver.h"
#include "fake_session.h"
#include "h2_test_server.h"
#include "request_head.h"

namespace wtmesh::agent {
namespace {

namespace asio = boost::asio;
using testing::FakeSession;

// Answers every complete request 200 "ok <path>", except /hold, which never gets an answer.
class LocalH2Server {
 public:
  LocalH2Server(asio::io_context& io, std::vector<nghttp2_settings_entry> settings)
      : acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}), settings_(std::move(settings)) {
    accept();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  int accepted = 0;

 private:
  struct Conn {
    explicit Conn(asio::ip::tcp::socket s, std::vector<nghttp2_settings_entry> settings)
        : sock(std::move(s)), h2(std::move(settings)) {}
    asio::ip::tcp::socket sock;
    test::H2TestServer h2;
    std::array<uint8_t, 16384> buf{};
    std::set<int32_t> answered;
  };
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, asio::ip::tcp::socket s) {
      if (ec) return;
      ++accepted;
      auto c = std::make_shared<Conn>(std::move(s), settings_);
      flush(c);
      read(c);
      accept();
    });
  }
  void read(const std::shared_ptr<Conn>& c) {
    c->sock.async_read_some(asio::buffer(c->buf), [this, c](boost::system::error_code ec, size_t n) {
      if (ec) return;
      c->h2.feed({c->buf.data(), n});
      for (auto& [id, r] : c->h2.requests) {
        if (r.ended && !c->answered.count(id) && r.field(":path") != "/hold") {
          c->answered.insert(id);
          c->h2.respond(id, 200, {}, "ok " + r.field(":path"));
        }
      }
      flush(c);
      read(c);
    });
  }
  void flush(const std::shared_ptr<Conn>& c) {
    auto out = std::make_shared<std::vector<uint8_t>>(c->h2.output());
    if (out->empty()) return;
    asio::async_write(c->sock, asio::buffer(*out), [out, c](boost::system::error_code, size_t) {});
  }
  asio::ip::tcp::acceptor acceptor_;
  std::vector<nghttp2_settings_entry> settings_;
};

class H2Client : public ::testing::Test {
 protected:
  bool run_until(const std::function<bool()>& done,
                 std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    return wtmesh::test::run_io_until(io_, done, limit, wtmesh::test::Turn::kOneHandler);
  }
  std::shared_ptr<H2StreamDriver> start(H2UpstreamClient& client, wt::StreamId id, std::string path) {
    auto d = std::make_shared<H2StreamDriver>(client, session_, id, testing::request("GET", std::move(path)),
                                              [this, id](const ExchangeResult& r) { results_[id] = r; });
    d->start({}, true);
    return d;
  }
  UpstreamTarget target(uint16_t port) {
    return UpstreamTarget{.endpoint = {asio::ip::make_address("127.0.0.1"), port}};
  }

  asio::io_context io_;
  FakeSession session_;
  std::map<wt::StreamId, ExchangeResult> results_;
};

TEST_F(H2Client, ManyRequestsShareOneConnection) {
  LocalH2Server server(io_, {});
  H2UpstreamClient client(io_, target(server.port()));
  std::vector<std::shared_ptr<H2StreamDriver>> drivers;
  for (wt::StreamId id = 0; id < 40; id += 4) drivers.push_back(start(client, id, "/r" + std::to_string(id)));
  ASSERT_TRUE(run_until([&] { return results_.size() == drivers.size(); }));
  for (wt::StreamId id = 0; id < 40; id += 4) {
    auto r = session_.response(id);
    ASSERT_TRUE(r) << id;
    EXPECT_EQ(r->head.status, 200);
    EXPECT_EQ(r->body, "ok /r" + std::to_string(id));
  }
  EXPECT_EQ(server.accepted, 1);
  EXPECT_EQ(client.connections_opened(), 1u);
}

TEST_F(H2Client, WaitQueueIsCappedAndIdleConnectionsExpire) {
  LocalH2Server server(io_, {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1}});
  H2ClientLimits limits;
  limits.max_connections = 1;
  limits.max_waiting = 1;
  limits.idle_timeout = std::chrono::milliseconds(150);
  H2UpstreamClient client(io_, target(server.port()), limits);
  // The first request settles the peer's limit (one stream), then holds it.
  auto first = start(client, 0, "/first");
  ASSERT_TRUE(run_until([&] { return results_.count(0) > 0; }));
  auto hold = start(client, 4, "/hold");
  auto waits = start(client, 8, "/waits");  // the connection is full: waits
  auto over = start(client, 12, "/over");   // the queue is full: 502
  ASSERT_TRUE(run_until([&] { return results_.count(12) > 0; }));
  auto r = session_.response(12);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 502);
  EXPECT_NE(results_[12].error.find("requests wait"), std::string::npos) << results_[12].error;
  EXPECT_EQ(results_.count(8), 0u);  // still waiting behind /hold
  EXPECT_EQ(client.waiting(), 1u);
  // The held request goes away: the waiting one gets the stream.
  hold->on_reset(tunnel::kStreamCancelled);
  ASSERT_TRUE(run_until([&] { return results_.count(8) > 0; }));
  EXPECT_EQ(session_.response(8)->head.status, 200);
  EXPECT_EQ(server.accepted, 1);
  // Nothing in flight: the connection expires.
  ASSERT_TRUE(run_until([&] { return client.connections() == 0; }));
}

}  // namespace
}  // namespace wtmesh::agent
