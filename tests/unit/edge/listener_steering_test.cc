// edge::PortSteering with two real PublicListeners on loopback (one io_context; on their own ports,
// so the test picks which one a client reaches): a connection whose first request names a tunnel
// held by the other worker is served by that worker's listener and directory, with its bytes
// intact; anything else is served where it landed; a connection for a worker whose listener is gone
// is reset and its count given back. (TLS by SNI, with curl and several worker threads:
// tests/peers/edge_workers.sh.)
#include "edge/listener_steering.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <chrono>
#include <memory>
#include <string>

#include "../../support/run_until.h"
#include "edge/public_listener.h"
#include "edge/shared_route_table.h"
#include "fakes.h"

namespace wtmesh::edge {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

class ListenerSteeringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    claim("app.localhost", "E/w1/1", "E/w1");
    claim("here.localhost", "E/w0/1", "E/w0");
    RouteLookup found;
    found.kind = RouteLookup::Kind::kFound;
    found.session = 1;
    found.tunnel_id = 1;
    dirs_[1].routes["app.localhost"] = found;
    dirs_[0].routes["here.localhost"] = found;
    for (unsigned i = 0; i < 2; ++i) listeners_[i] = listen(i);
  }
  void claim(const std::string& name, const std::string& owner, const std::string& edge_id) {
    routes_.claim(RouteKey{kHttp, name}, RouteLease{owner, edge_id, 60s}, 1, std::chrono::steady_clock::now(),
                  [](const ClaimReply& r) { EXPECT_EQ(r.result, ClaimResult::kOk); });
  }
  std::unique_ptr<PublicListener> listen(unsigned worker) {
    PublicListenerOptions o;
    o.bind = tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
    o.tls = false;
    o.shared = counts_;
    o.steering = steering_;
    o.worker = worker;
    return std::make_unique<PublicListener>(io_, dirs_[worker], o);
  }
  // A client of worker `to`'s port that sent `request`.
  std::unique_ptr<tcp::socket> send(unsigned to, const std::string& request) {
    auto s = std::make_unique<tcp::socket>(io_);
    s->connect(listeners_[to]->local_endpoint());
    asio::write(*s, asio::buffer(request));
    return s;
  }
  bool run_until(const std::function<bool()>& done) { return wtmesh::test::run_io_until(io_, done, 5s); }
  // What the client reads until the edge closes (or 2 s pass).
  std::string read_all(tcp::socket& s) {
    std::string got;
    std::array<char, 4096> buf{};
    bool done = false;
    std::function<void()> next = [&] {
      s.async_read_some(asio::buffer(buf), [&](boost::system::error_code ec, size_t n) {
        got.append(buf.data(), n);
        if (ec) {
          done = true;
          return;
        }
        next();
      });
    };
    next();
    run_until([&] { return done || got.find("\r\n\r\n") != std::string::npos; });
    return got;
  }

  asio::io_context io_;
  SharedRouteTable routes_;
  std::shared_ptr<PublicListenerShared> counts_ = std::make_shared<PublicListenerShared>(PublicLimits{});
  std::shared_ptr<PortSteering> steering_ = std::make_shared<PortSteering>(routes_, "E", counts_, 2);
  std::array<test::FakeDirectory, 2> dirs_;
  std::array<std::unique_ptr<PublicListener>, 2> listeners_;
};

TEST_F(ListenerSteeringTest, AConnectionForAnotherWorkersTunnelIsServedThere) {
  auto client = send(0, "GET /x HTTP/1.1\r\nHost: App.localhost\r\nX-Test: 1\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return dirs_[1].open_calls == 1; }));
  EXPECT_EQ(dirs_[0].open_calls, 0);
  EXPECT_EQ(listeners_[0]->steered_out_count(), 1u);
  EXPECT_EQ(listeners_[0]->connection_count(), 0u);
  EXPECT_EQ(listeners_[1]->connection_count(), 1u);
  EXPECT_EQ(counts_->total(), 1u) << "counted once, on the port";
  std::string head(dirs_[1].streams[dirs_[1].last].written.begin(),
                   dirs_[1].streams[dirs_[1].last].written.end());
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_NE(head.find("/x"), std::string::npos);
  EXPECT_NE(head.find("x-test"), std::string::npos) << "the bytes read before the hand-over went along";
  client.reset();
  EXPECT_TRUE(run_until([&] { return counts_->total() == 0; })) << "its end is counted where it ended";
}

TEST_F(ListenerSteeringTest, ConnectionsForThisWorkerOrNoTunnelStayWhereTheyLanded) {
  auto here = send(0, "GET / HTTP/1.1\r\nHost: here.localhost\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return dirs_[0].open_calls == 1; }));
  auto unknown = send(0, "GET / HTTP/1.1\r\nHost: nobody.localhost\r\n\r\n");
  EXPECT_EQ(read_all(*unknown).rfind("HTTP/1.1 404", 0), 0u) << "worker 0 answers it";
  auto partial = send(0, "GET / HTTP/1.1\r\nHo");  // the head is not whole in the first read
  const auto later = std::chrono::steady_clock::now() + 100ms;
  run_until([&] { return std::chrono::steady_clock::now() >= later; });
  ASSERT_EQ(listeners_[0]->connection_count(), 3u);
  asio::write(*partial, asio::buffer(std::string("st: app.localhost\r\n\r\n")));
  EXPECT_EQ(read_all(*partial).rfind("HTTP/1.1 404", 0), 0u)
      << "worker 0 answers it: its tunnel is elsewhere";
  EXPECT_EQ(dirs_[1].open_calls, 0);
  EXPECT_EQ(listeners_[0]->steered_out_count(), 0u);
}

TEST_F(ListenerSteeringTest, AConnectionForADrainingWorkerIsServedThereAsOneAcceptedBeforeTheDrain) {
  listeners_[1]->drain();  // the edge's workers drain together; worker 0 steered this one just before
  auto client = send(0, "GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return dirs_[1].open_calls == 1; })) << "its first request is served";
  EXPECT_EQ(listeners_[0]->steered_out_count(), 1u);
}

TEST_F(ListenerSteeringTest, AConnectionForAWorkerWithoutAListenerIsResetAndUncounted) {
  listeners_[1].reset();
  auto client = send(0, "GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
  const std::string got = read_all(*client);
  EXPECT_EQ(got, "");
  EXPECT_EQ(listeners_[0]->steered_out_count(), 1u);
  EXPECT_TRUE(run_until([&] { return counts_->total() == 0; }));
}

}  // namespace
}  // namespace wtmesh::edge
