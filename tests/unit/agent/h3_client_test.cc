// H3UpstreamClient + MuxStreamDriver on real UDP sockets: a local HTTP/3 server built from our own
// quic::Endpoint and h3::Connection (server role), and the in-memory tunnel session. Requests spread
// over connections up to the peer's stream limit, RFC 9220 WebSocket through the whole driver (no
// HTTP/3 server with extended CONNECT installs here), the 502 without the setting, the bounded
// handshake toward a UDP port that never answers, idle expiry.
#include <gtest/gtest.h>

#include <boost/asio/ip/udp.hpp>
#include <functional>
#include <memory>
#include <set>

#include "../../support/run_until.h"
#include "../../support/temp_dir.h"
#include "agent/h3_upstream_driver.h"
#include "fake_session.h"
#include "h3/connection.h"
#include "quic/certs.h"
#include "quic/endpoint.h"
#include "request_head.h"

namespace wtmesh::agent {
namespace {

namespace asio = boost::asio;
using testing::FakeSession;

// Answers every complete request 200 "ok <path>" (except /hold: never); answers an extended CONNECT
// with 200 and echoes its DATA (FIN too).
class LocalH3Server {
 public:
  LocalH3Server(asio::io_context& io, bool connect_protocol, uint64_t max_streams)
      : dir_("wtmesh-h3-upstream"), endpoint_(io, {asio::ip::make_address("127.0.0.1"), 0}) {
    certs_ = quic::ensure_state_certs(dir_.path(), {"localhost"});
    quic::ServerOptions o;
    o.tls =
        std::make_shared<quic::TlsServerContext>(quic::TlsServerContext::from_files(certs_.cert, certs_.key));
    o.limits.max_streams_bidi = max_streams;
    o.on_connection = [this, connect_protocol](quic::Connection& c) {
      ++accepted;
      auto app = std::make_unique<App>(c, connect_protocol, &goaway_sent_);
      c.set_handler(&app->h3);
      c.set_app_state(std::move(app));
    };
    endpoint_.listen(std::move(o));
  }
  uint16_t port() const { return endpoint_.local_endpoint().port(); }
  const std::filesystem::path& ca() const { return certs_.ca_cert; }
  int accepted = 0;

 private:
  struct App final : quic::Connection::AppState, h3::NullHandler {
    App(quic::Connection& q, bool connect_protocol, bool* goaway)
        : h3(q, h3::Role::kServer, config(connect_protocol)), goaway_sent(goaway) {
      h3.set_handler(this);
    }
    static h3::Config config(bool connect_protocol) {
      h3::Config c;
      c.local.enable_connect_protocol = connect_protocol;
      return c;
    }
    void on_headers(h3::StreamId id, h3::HeaderList headers, bool fin) override {
      const std::string* method = h3::find_header(headers, ":method");
      const std::string* path = h3::find_header(headers, ":path");
      if (method && *method == "CONNECT") {
        const std::string* protocol = h3::find_header(headers, ":protocol");
        h3.send_response(id, {{":status", protocol && *protocol == "websocket" ? "200" : "400"}}, false);
        websockets.insert(id);
        return;
      }
      if (!fin || !path || *path == "/hold") return;
      if (*path == "/gone" && !*goaway_sent) {
        // GOAWAY naming this very stream: it and everything after it was not processed.
        *goaway_sent = true;
        h3.send_goaway(id);
        return;
      }
      const std::string body = "ok " + *path;
      h3.send_response(id, {{":status", "200"}, {"content-length", std::to_string(body.size())}}, false);
      h3.send_body(id, {reinterpret_cast<const uint8_t*>(body.data()), body.size()}, true);
    }
    void on_body(h3::StreamId id, std::span<const uint8_t> data, bool fin) override {
      h3.consume(id, data.size());
      if (websockets.count(id)) h3.send_body(id, data, fin);
    }
    h3::Connection h3;
    bool* goaway_sent;
    std::set<h3::StreamId> websockets;
  };

  wtmesh::test::TempDir dir_;
  bool goaway_sent_ = false;  // the first /gone gets a GOAWAY instead of an answer
  quic::CertFiles certs_;
  quic::Endpoint endpoint_;
};

class H3Client : public ::testing::Test {
 protected:
  bool run_until(const std::function<bool()>& done,
                 std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    return wtmesh::test::run_io_until(io_, done, limit, wtmesh::test::Turn::kOneHandler);
  }
  std::shared_ptr<MuxStreamDriver> start(H3UpstreamClient& client, wt::StreamId id, tunnel::RequestHead head,
                                         bool fin = true) {
    auto d = std::make_shared<MuxStreamDriver>(client, session_, id, std::move(head),
                                               [this, id](const ExchangeResult& r) { results_[id] = r; });
    d->start({}, fin);
    return d;
  }
  H3UpstreamTarget target(uint16_t port, const std::filesystem::path& ca) {
    H3UpstreamTarget t;
    t.endpoint = {asio::ip::make_address("127.0.0.1"), port};
    t.tls = std::make_shared<quic::TlsClientContext>(quic::TlsClientContext::with_ca_file(ca));
    return t;
  }
  static tunnel::RequestHead websocket_request() {
    auto head =
        testing::request("GET", "/ws", /*has_body=*/true);  // the tunnel stream goes on after the head
    head.headers = {{"host", "app.example.test"},
                    {"upgrade", "websocket"},
                    {"connection", "Upgrade"},
                    {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="},
                    {"sec-websocket-version", "13"}};
    return head;
  }

  asio::io_context io_;
  FakeSession session_;
  std::map<wt::StreamId, ExchangeResult> results_;
};

TEST_F(H3Client, RequestsSpreadOverConnectionsUpToThePeersStreamLimit) {
  LocalH3Server server(io_, false, 4);
  H3UpstreamClient client(io_, target(server.port(), server.ca()));
  std::vector<std::shared_ptr<MuxStreamDriver>> drivers;
  for (wt::StreamId id = 0; id < 96; id += 4) {
    drivers.push_back(start(client, id, testing::request("GET", "/r" + std::to_string(id))));
  }
  ASSERT_TRUE(run_until([&] { return results_.size() == drivers.size(); }));
  for (wt::StreamId id = 0; id < 96; id += 4) {
    auto r = session_.response(id);
    ASSERT_TRUE(r) << id;
    EXPECT_EQ(r->head.status, 200) << results_[id].error;
    EXPECT_EQ(r->body, "ok /r" + std::to_string(id));
  }
  // 24 requests, 4 streams per connection, at most 4 connections: more than one, never more than 4.
  EXPECT_GE(client.connections_opened(), 2u);
  EXPECT_LE(client.connections_opened(), 4u);
  EXPECT_EQ(server.accepted, static_cast<int>(client.connections_opened()));
}

TEST_F(H3Client, GoawayRefusedRequestIsReplayedOnANewConnection) {
  LocalH3Server server(io_, false, 100);
  H3UpstreamClient client(io_, target(server.port(), server.ca()));
  auto first = start(client, 0, testing::request("GET", "/first"));
  ASSERT_TRUE(run_until([&] { return results_.count(0) > 0; }));
  auto gone = start(client, 4, testing::request("GET", "/gone"));
  ASSERT_TRUE(run_until([&] { return results_.count(4) > 0; }));
  auto r = session_.response(4);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 200) << results_[4].error;
  EXPECT_EQ(r->body, "ok /gone");
  EXPECT_EQ(client.connections_opened(), 2u) << "the connection that sent GOAWAY takes no new stream";
  EXPECT_EQ(server.accepted, 2);
}

TEST_F(H3Client, WebSocketOverExtendedConnectEchoes) {
  LocalH3Server server(io_, true, 100);
  H3UpstreamClient client(io_, target(server.port(), server.ca()));
  auto d = start(client, 0, websocket_request(), false);
  const std::string frame(
      "\x82\x03"
      "abc",
      5);
  d->on_body({reinterpret_cast<const uint8_t*>(frame.data()), frame.size()}, false);
  ASSERT_TRUE(run_until([&] {
    auto r = session_.response(0);
    return r && r->body.size() >= frame.size();
  })) << (session_.response(0) ? std::to_string(session_.response(0)->head.status) + " body " +
                                     std::to_string(session_.response(0)->body.size())
                               : std::string("no head"))
      << " result " << (results_.count(0) ? results_[0].error : std::string("none"));
  auto r = session_.response(0);
  EXPECT_EQ(r->head.status, 101);
  bool accept = false;
  for (const auto& [n, v] : r->head.headers)
    accept = accept || (n == "sec-websocket-accept" && v == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_TRUE(accept);
  EXPECT_EQ(r->body, frame);
  // The tunnel's FIN ends our side; the echo's FIN ends the exchange.
  d->on_body({}, true);
  ASSERT_TRUE(run_until([&] { return results_.count(0) > 0; }));
  EXPECT_TRUE(results_[0].error.empty()) << results_[0].error;
  EXPECT_TRUE(session_.streams[0].fin);
}

TEST_F(H3Client, WebSocketWithoutTheSettingIs502) {
  LocalH3Server server(io_, false, 100);
  H3UpstreamClient client(io_, target(server.port(), server.ca()));
  auto d = start(client, 0, websocket_request(), false);
  ASSERT_TRUE(run_until([&] { return results_.count(0) > 0; }));
  EXPECT_EQ(session_.response(0)->head.status, 502);
  EXPECT_NE(results_[0].error.find("RFC 9220"), std::string::npos) << results_[0].error;
}

TEST_F(H3Client, HandshakeTowardASilentPortIsBounded) {
  asio::ip::udp::socket silent(io_, {asio::ip::make_address("127.0.0.1"), 0});  // reads nothing
  wtmesh::test::TempDir dir("wtmesh-h3-silent");
  const auto certs = quic::ensure_state_certs(dir.path(), {"localhost"});
  H3ClientLimits limits;
  limits.handshake_timeout = std::chrono::milliseconds(300);
  H3UpstreamClient client(io_, target(silent.local_endpoint().port(), certs.ca_cert), limits);
  const auto t0 = std::chrono::steady_clock::now();
  auto d = start(client, 0, testing::request("GET", "/"));
  ASSERT_TRUE(run_until([&] { return results_.count(0) > 0; }));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(session_.response(0)->head.status, 502);
  EXPECT_NE(results_[0].error.find("upstream HTTP/3 handshake timed out"), std::string::npos)
      << results_[0].error;
}

TEST_F(H3Client, IdleConnectionsExpireAndHeldRequestsDoNot) {
  LocalH3Server server(io_, false, 100);
  H3ClientLimits limits;
  limits.idle_timeout = std::chrono::milliseconds(150);
  H3UpstreamClient client(io_, target(server.port(), server.ca()), limits);
  auto held = start(client, 0, testing::request("GET", "/hold"));
  auto quick = start(client, 4, testing::request("GET", "/quick"));
  ASSERT_TRUE(run_until([&] { return results_.count(4) > 0; }));
  EXPECT_EQ(session_.response(4)->head.status, 200);
  // The connection holds /hold: it stays past the idle timeout.
  EXPECT_FALSE(run_until([&] { return client.connections() == 0; }, std::chrono::milliseconds(500)));
  held->on_reset(tunnel::kStreamCancelled);
  ASSERT_TRUE(run_until([&] { return client.connections() == 0; }));
}

}  // namespace
}  // namespace wtmesh::agent
