// The edge's public listener against unauthenticated abuse, over real sockets (issue 9): per-address
// connection cap, TLS handshake / header / body deadlines, and a client that pipelines requests and
// never reads is no longer read. The attacks at full scale are tests/peers/edge_dos_*.sh.
#include <fcntl.h>

#include <iostream>

#include "tunnel_edge_support.h"

namespace wtmesh::tunnel_edge_test {
namespace {

class TunnelEdgeLimits : public TunnelEdgeTest {
 protected:
  void SetUp() override {
    start_edge([](edge::EdgeOptions& o) {
      o.public_limits.max_connections_per_ip = 2;
      o.public_limits.handshake_timeout = 400ms;
      o.public_limits.header_timeout = 400ms;
      o.public_limits.body_timeout = 400ms;
      o.http_listen = asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
    });
  }
  uint16_t http_port() { return edge_->server().http_endpoint()->port(); }
};

TEST_F(TunnelEdgeLimits, OneAddressGetsItsCapOthersStillConnect) {
  const auto r = in_background([&] {
    const std::filesystem::path p = ca();
    PublicClient a(port(), &p), b(port(), &p);
    const bool first_two = a.ok() && b.ok();
    PublicClient c(port(), &p);  // the edge resets it before the handshake
    PublicClient d(port(), &p, "", "127.0.0.2");
    return std::make_tuple(first_two, c.ok(), d.ok(), d.error);
  });
  EXPECT_TRUE(std::get<0>(r));
  EXPECT_FALSE(std::get<1>(r)) << "a third connection from 127.0.0.1 is over its cap";
  EXPECT_TRUE(std::get<2>(r)) << "127.0.0.2 is another client: " << std::get<3>(r);
}

TEST_F(TunnelEdgeLimits, AnUnfinishedTlsHandshakeIsCut) {
  const auto r = in_background([&] {
    PublicClient raw(port(), nullptr);
    raw.send(std::string_view("\x16\x03\x01", 3));  // the start of a ClientHello, then nothing
    const auto start = Clock::now();
    raw.read_until_eof(5s);
    return std::make_pair(raw.eof, Clock::now() - start);
  });
  EXPECT_TRUE(r.first);
  EXPECT_GE(r.second, 300ms);
  EXPECT_LT(r.second, 3s);
}

TEST_F(TunnelEdgeLimits, ASlowRequestHeaderGets408) {
  const auto r = in_background([&] {
    const std::filesystem::path p = ca();
    PublicClient c(port(), &p);
    c.send("GET / HTTP/1.1\r\nHo");
    c.read_until_eof(5s);
    return c.received;
  });
  const auto resp = parse_response(r);
  ASSERT_TRUE(resp) << r;
  EXPECT_EQ(resp->status, 408);
  EXPECT_EQ(resp->headers.at("connection"), "close");
}

TEST_F(TunnelEdgeLimits, ASlowRequestBodyGets408AndFreesTheStream) {
  TestAgent& a = agent_for("app.localhost");  // never answers
  const auto r = in_background([&] {
    const std::filesystem::path p = ca();
    PublicClient c(port(), &p);
    c.send("POST /up HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 1000\r\n\r\nx");
    c.read_until_eof(5s);
    return c.received;
  });
  const auto resp = parse_response(r);
  ASSERT_TRUE(resp) << r;
  EXPECT_EQ(resp->status, 408);
  ASSERT_TRUE(run_until([&] { return !a.requests.empty() && a.requests.begin()->second.cancelled(); }));
}

TEST_F(TunnelEdgeLimits, AClientThatNeverReadsStopsBeingRead) {
  // Pipelined 404s on plain HTTP, written without ever reading: the edge takes a bounded amount
  // (its buffers and the kernel's), then the client's writes block.
  const auto written = in_background([&] {
    PublicClient c(http_port(), nullptr);
    ::fcntl(c.fd(), F_SETFL, ::fcntl(c.fd(), F_GETFL) | O_NONBLOCK);
    std::string burst;
    for (int i = 0; i < 256; ++i) burst += "GET / HTTP/1.1\r\nHost: nosuch.localhost\r\n\r\n";
    size_t total = 0;
    auto last_progress = Clock::now();
    const auto deadline = Clock::now() + 20s;
    while (Clock::now() - last_progress < 1s && Clock::now() < deadline) {
      const ssize_t n = ::send(c.fd(), burst.data(), burst.size(), MSG_NOSIGNAL);
      if (n > 0) {
        total += static_cast<size_t>(n);
        last_progress = Clock::now();
      } else {
        std::this_thread::sleep_for(10ms);
      }
    }
    return total;
  });
  // Kernel socket buffers on loopback hold a few MiB each way; without the bound the edge read
  // everything for as long as the loop ran (hundreds of MiB).
  std::cout << "client wrote " << written << " bytes before its writes blocked\n";
  EXPECT_LT(written, size_t{32} << 20) << "bytes the client could write";
}

// Issue 14 item 4: TLS handshakes per second per address on the HTTPS port. A burst of 3, then one
// every 10 s: the fourth ClientHello from 127.0.0.1 in a row is reset before any crypto (counted in
// wtmesh_public_connections_shed_total{reason="handshake_rate"}); 127.0.0.2 has its own bucket. The
// connections are closed one by one, so the per-address connection cap (2) is never what refuses.
class TunnelEdgeHandshakeRate : public TunnelEdgeTest {
 protected:
  void SetUp() override {
    start_edge([](edge::EdgeOptions& o) {
      o.public_limits.max_connections_per_ip = 2;
      o.public_limits.tls_handshake_burst = 3;
      o.public_limits.tls_handshakes_per_ip = 0.1;
    });
  }
};

TEST_F(TunnelEdgeHandshakeRate, AnAddressOverItsHandshakeRateIsReset) {
  const auto r = in_background([&] {
    const std::filesystem::path p = ca();
    std::vector<std::string> errors;
    for (int i = 0; i < 4; ++i) {
      PublicClient c(port(), &p);
      errors.push_back(c.error);
    }
    PublicClient other(port(), &p, "", "127.0.0.2");
    errors.push_back(other.error);
    return errors;
  });
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0] + r[1] + r[2], "") << "the burst of 3 handshakes";
  EXPECT_NE(r[3], "") << "the fourth handshake in a row from 127.0.0.1 is reset";
  EXPECT_EQ(r[4], "") << "127.0.0.2 has its own bucket";
  EXPECT_EQ(edge_->server().metrics().public_shed(edge::PublicShed::kHandshakeRate), 1u);
  EXPECT_EQ(edge_->server().metrics().public_shed(edge::PublicShed::kAddressConnections), 0u);
  EXPECT_NE(edge_->server().metrics_text().find(
                "wtmesh_public_connections_shed_total{reason=\"handshake_rate\"} 1"),
            std::string::npos);
}

}  // namespace
}  // namespace wtmesh::tunnel_edge_test
