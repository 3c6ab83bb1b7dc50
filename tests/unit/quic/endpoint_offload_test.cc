// quic::Endpoint's data path on 127.0.0.1: bulk transfers leave in GSO trains and arrive through
// GRO reads, the per-datagram fallback and a socket that keeps reporting EAGAIN (parked trains,
// wait for writability) deliver the same bytes, and a larger max_udp_payload is reached by PMTUD.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <functional>
#include <random>

#include "../../support/pattern_stream.h"
#include "../../support/run_until.h"
#include "quic/certs.h"
#include "quic/endpoint.h"
#include "quic/tls_context.h"

namespace wtmesh::quic {
namespace {

namespace asio = boost::asio;
using asio::ip::udp;

using Sink = test::PatternSink;
using Source = test::PatternSource;

class EndpointOffload : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("wtmesh-offload-" + std::to_string(std::random_device{}()));
    files_ = ensure_state_certs(dir_);
    client_tls_.emplace(TlsClientContext::with_ca_file(files_.ca_cert));
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  void start(const TransportLimits& limits) {
    server_.emplace(io_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    ServerOptions opts;
    opts.tls = std::make_shared<TlsServerContext>(TlsServerContext::from_files(files_.cert, files_.key));
    opts.limits = limits;
    opts.on_connection = [this](Connection& c) {
      auto sink = std::make_unique<Sink>(c);
      sink_ = sink.get();
      c.set_handler(sink.get());
      c.set_app_state(std::move(sink));
    };
    server_->listen(opts);
    client_.emplace(io_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    limits_ = limits;
  }

  // Uploads `total` bytes and waits until the server has them all.
  Connection* upload(size_t total) {
    std::string error;
    Connection* c = client_->connect(server_->local_endpoint(), "localhost", *client_tls_, limits_, &error);
    EXPECT_NE(c, nullptr) << error;
    if (!c) return nullptr;
    source_ = std::make_unique<Source>(*c, total);
    c->set_handler(source_.get());
    EXPECT_TRUE(run_until([&] { return (sink_ && sink_->done) || source_->closed; }));
    EXPECT_NE(sink_, nullptr);
    if (sink_) {
      EXPECT_EQ(sink_->received.load(), total);
      EXPECT_EQ(sink_->corrupt.load(), 0u);
    }
    return c;
  }

  bool run_until(const std::function<bool()>& done, std::chrono::seconds limit = std::chrono::seconds(60)) {
    return test::run_io_until(io_, done, std::chrono::duration_cast<std::chrono::milliseconds>(limit),
                              test::Turn::kSlice);
  }

  std::filesystem::path dir_;
  CertFiles files_;
  std::optional<TlsClientContext> client_tls_;
  asio::io_context io_;
  std::unique_ptr<Source> source_;  // outlives the connections that call it
  std::optional<Endpoint> server_;
  std::optional<Endpoint> client_;
  Sink* sink_ = nullptr;
  TransportLimits limits_;
};

TEST_F(EndpointOffload, BulkUploadLeavesInGsoTrainsAndArrivesThroughGro) {
  start({});
  ASSERT_NE(upload(8 << 20), nullptr);
  const UdpIoStats& tx = client_->socket_io().stats();
  if (!client_->socket_io().gso_enabled()) GTEST_SKIP() << "kernel without UDP GSO";
  EXPECT_GT(tx.gso_sends, 0u);
  EXPECT_GT(tx.datagrams_out, 4 * tx.send_calls) << "most datagrams should leave in trains";
  if (server_->socket_io().gro_enabled()) {
    EXPECT_GT(server_->socket_io().stats().gro_reads, 0u);
    EXPECT_GT(server_->socket_io().stats().datagrams_in, 4 * server_->socket_io().stats().recv_calls);
  }
  EXPECT_EQ(client_->stats().send_blocked, 0u);
}

TEST_F(EndpointOffload, PerDatagramSendsCarryTheSameTransfer) {
  start({});
  client_->socket_io().disable_gso();
  server_->socket_io().disable_gso();
  ASSERT_NE(upload(4 << 20), nullptr);
  EXPECT_EQ(client_->socket_io().stats().gso_sends, 0u);
  EXPECT_EQ(client_->socket_io().stats().datagrams_out, client_->socket_io().stats().send_calls);
}

TEST_F(EndpointOffload, BlockedSocketParksTrainsAndResumes) {
  start({});
  // Every 7th client send and every 5th server send (ACKs) find the socket "full".
  client_->socket_io().block_every_nth_send_for_test(7);
  server_->socket_io().block_every_nth_send_for_test(5);
  ASSERT_NE(upload(8 << 20), nullptr);
  EXPECT_GT(client_->stats().send_blocked, 0u);
  EXPECT_GT(server_->stats().send_blocked, 0u);
  EXPECT_EQ(client_->stats().parked_dropped, 0u)
      << "a blocked connection stops writing, so nothing overflows";
}

TEST_F(EndpointOffload, DefaultPayloadStaysAtInternetSize) {
  start({});
  Connection* c = upload(1 << 20);
  ASSERT_NE(c, nullptr);
  EXPECT_LE(c->path_max_udp_payload(), 1452u);
}

TEST_F(EndpointOffload, LargerPayloadIsReachedByPmtud) {
  TransportLimits limits;
  limits.max_udp_payload = 16384;
  start(limits);
  Connection* c = upload(8 << 20);
  ASSERT_NE(c, nullptr);
  // Loopback's MTU is 65536: the first probe (16384) gets through.
  EXPECT_EQ(c->path_max_udp_payload(), 16384u);
  EXPECT_GT(c->max_datagram_payload(), 16000u) << "datagrams follow the path size";
}

}  // namespace
}  // namespace wtmesh::quic
