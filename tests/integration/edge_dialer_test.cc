// The agent's transport race (agent/edge_dialer.h) against a real EdgeServer on loopback: QUIC wins
// when UDP gets through; WebTransport over HTTP/2 wins when UDP is a black hole (a bound socket that
// never answers, in front of a TCP forwarder to the edge's HTTPS port); both failing ends the dial
// with both reasons; a dialer destroyed mid-race says nothing and leaks nothing (ASan build).
#include "agent/edge_dialer.h"

#include <gtest/gtest.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/write.hpp>

#include "../support/edge_thread.h"
#include "../support/run_until.h"
#include "../support/temp_dir.h"
#include "agent/wt_client.h"
#include "edge/edge_server.h"
#include "quic/tls_context.h"

namespace wtmesh {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using Clock = std::chrono::steady_clock;

// Accepts on a loopback TCP port and splices each connection to `target` both ways; the same port
// number is bound on UDP and never read: QUIC to it goes nowhere.
class UdpBlackHoleTcpForwarder {
 public:
  UdpBlackHoleTcpForwarder(asio::io_context& io, std::optional<uint16_t> target) : io_(io), target_(target) {
    for (int tries = 0; tries < 50; ++tries) {
      acceptor_.emplace(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
      port_ = acceptor_->local_endpoint().port();
      boost::system::error_code ec;
      udp_.emplace(io_);
      udp_->open(udp::v4(), ec);
      if (!ec) udp_->bind(udp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
      if (!ec) break;
      udp_.reset();
    }
    if (!target_) acceptor_.reset();  // nothing listens on TCP: connections are refused
    if (acceptor_) accept();
  }
  uint16_t port() const { return port_; }

 private:
  struct Pipe : std::enable_shared_from_this<Pipe> {
    Pipe(tcp::socket a, tcp::socket b) : a(std::move(a)), b(std::move(b)) {}
    void start() {
      pump(a, b, ab);
      pump(b, a, ba);
    }
    void pump(tcp::socket& from, tcp::socket& to, std::array<char, 16384>& buf) {
      from.async_read_some(asio::buffer(buf), [self = shared_from_this(), &from, &to, &buf](
                                                  boost::system::error_code ec, size_t n) {
        if (ec) {
          boost::system::error_code ignored;
          to.shutdown(tcp::socket::shutdown_send, ignored);
          return;
        }
        asio::async_write(to, asio::buffer(buf.data(), n),
                          [self, &from, &to, &buf](boost::system::error_code ec2, size_t) {
                            if (!ec2) self->pump(from, to, buf);
                          });
      });
    }
    tcp::socket a, b;
    std::array<char, 16384> ab{}, ba{};
  };
  void accept() {
    acceptor_->async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      auto out = std::make_shared<tcp::socket>(io_);
      out->async_connect(
          tcp::endpoint(asio::ip::make_address("127.0.0.1"), *target_),
          [out, in = std::make_shared<tcp::socket>(std::move(s))](boost::system::error_code e) {
            if (!e) std::make_shared<Pipe>(std::move(*in), std::move(*out))->start();
          });
      accept();
    });
  }
  asio::io_context& io_;
  std::optional<uint16_t> target_;
  std::optional<tcp::acceptor> acceptor_;
  std::optional<udp::socket> udp_;
  uint16_t port_ = 0;
};

class EdgeDialerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    edge::EdgeOptions opts;
    opts.listen = udp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
    opts.state_dir = dir_.path();
    opts.echo = true;
    edge_ = std::make_unique<test::EdgeThread>(opts);
  }
  agent::DialOptions options(uint16_t port, agent::EdgeTransport choice) {
    agent::DialOptions o;
    o.edge = {"127.0.0.1", port, ""};
    o.tls = std::make_shared<const quic::TlsClientContext>(
        quic::TlsClientContext::with_ca_file(dir_.path() / "ca.pem"));
    o.choice = choice;
    return o;
  }
  // Runs a dial to its end; the winner (or nullptr) and the error are kept.
  bool dial(agent::DialOptions o, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    bool done = false;
    agent::EdgeDialer dialer(io_, std::move(o),
                             [&](std::unique_ptr<agent::WtClient> w, const std::string& e) {
                               done = true;
                               winner_ = std::move(w);
                               error_ = e;
                             });
    std::string error;
    started_ = Clock::now();
    if (!dialer.start(&error)) {
      error_ = error;
      return false;
    }
    const bool ok = test::run_io_until(
        io_, [&] { return done; }, limit, test::Turn::kOneHandler);
    elapsed_ = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_);
    story_ = dialer.quic_story();
    raced_ = dialer.raced();
    return ok;
  }
  test::TempDir dir_;
  std::unique_ptr<test::EdgeThread> edge_;
  asio::io_context io_;
  std::unique_ptr<agent::WtClient> winner_;
  std::string error_, story_;
  bool raced_ = false;
  Clock::time_point started_;
  std::chrono::milliseconds elapsed_{0};
};

TEST_F(EdgeDialerTest, QuicWinsWhenUdpGetsThrough) {
  ASSERT_TRUE(dial(options(edge_->port(), agent::EdgeTransport::kAuto))) << error_;
  ASSERT_NE(winner_, nullptr) << error_;
  EXPECT_EQ(winner_->transport(), agent::EdgeTransport::kQuic);
  EXPECT_TRUE(winner_->handshake_completed());
  EXPECT_TRUE(story_.empty()) << story_;
}

TEST_F(EdgeDialerTest, Http2WinsWhenUdpIsABlackHoleAndTheSessionWorksOnIt) {
  UdpBlackHoleTcpForwarder hole(io_, edge_->server().https_endpoint()->port());
  ASSERT_TRUE(dial(options(hole.port(), agent::EdgeTransport::kAuto))) << error_;
  ASSERT_NE(winner_, nullptr) << error_;
  EXPECT_EQ(winner_->transport(), agent::EdgeTransport::kH2);
  EXPECT_TRUE(raced_);
  EXPECT_EQ(story_, "no QUIC handshake within 300 ms");
  EXPECT_GE(elapsed_.count(), 300);
  EXPECT_LT(elapsed_.count(), 3000) << "TCP + TLS + SETTINGS on loopback after the 300 ms head start";

  // The winner carries a session as any client does.
  struct Ready final : wt::SessionHandler {
    void on_ready() override { ready = true; }
    void on_incoming_stream(wt::StreamId, bool) override {}
    void on_stream_data(wt::StreamId, std::span<const uint8_t>, bool) override {}
    void on_stream_reset(wt::StreamId, std::optional<uint32_t>) override {}
    void on_datagram(std::span<const uint8_t>) override {}
    void on_closed(uint32_t, std::string_view) override { closed = true; }
    bool ready = false, closed = false;
  } handler;
  std::string error;
  ASSERT_NE(winner_->open_session("/echo", {}, &handler, &error), nullptr) << error;
  ASSERT_TRUE(test::run_io_until(
      io_, [&] { return handler.ready || handler.closed; }, std::chrono::seconds(10),
      test::Turn::kOneHandler));
  EXPECT_TRUE(handler.ready);
  winner_.reset();  // before the handler it reports to
}

TEST_F(EdgeDialerTest, QuicAloneFailsAtItsHandshakeTimeout) {
  UdpBlackHoleTcpForwarder hole(io_, edge_->server().https_endpoint()->port());
  auto o = options(hole.port(), agent::EdgeTransport::kQuic);
  o.transport.handshake_timeout = std::chrono::milliseconds(600);
  ASSERT_TRUE(dial(std::move(o))) << error_;
  EXPECT_EQ(winner_, nullptr);
  EXPECT_FALSE(error_.empty());
  EXPECT_FALSE(raced_) << "--transport quic never dials HTTP/2";
  EXPECT_GE(elapsed_.count(), 500);
}

TEST_F(EdgeDialerTest, BothFailingEndsTheDialWithBothReasons) {
  UdpBlackHoleTcpForwarder hole(io_, std::nullopt);  // UDP black hole, TCP refused
  auto o = options(hole.port(), agent::EdgeTransport::kAuto);
  o.transport.handshake_timeout = std::chrono::milliseconds(800);
  ASSERT_TRUE(dial(std::move(o))) << error_;
  EXPECT_EQ(winner_, nullptr);
  EXPECT_NE(error_.find("QUIC"), std::string::npos) << error_;
  EXPECT_NE(error_.find("HTTP/2"), std::string::npos) << error_;
  EXPECT_LT(elapsed_.count(), 8000) << "ends with QUIC's handshake timeout, not the caller's";
}

TEST_F(EdgeDialerTest, ADialerDestroyedMidRaceSaysNothing) {
  UdpBlackHoleTcpForwarder hole(io_, edge_->server().https_endpoint()->port());
  bool called = false;
  {
    agent::EdgeDialer dialer(io_, options(hole.port(), agent::EdgeTransport::kAuto),
                             [&](std::unique_ptr<agent::WtClient>, const std::string&) { called = true; });
    std::string error;
    ASSERT_TRUE(dialer.start(&error)) << error;
    test::run_io_until(
        io_, [&] { return dialer.raced(); }, std::chrono::seconds(5), test::Turn::kOneHandler);
    EXPECT_TRUE(dialer.raced());
  }
  // Whatever the clients had posted finds them gone.
  test::run_io_until(
      io_, [] { return false; }, std::chrono::milliseconds(300), test::Turn::kOneHandler);
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace wtmesh
