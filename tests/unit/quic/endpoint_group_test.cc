// quic::EndpointGroup: endpoints on worker threads, one address, connections owned by the worker that
// took their Initial. A UDP relay between the client and the workers plays the kernel's part: it
// delivers the client's packets to one worker's socket, then switches them to the other (as
// SO_REUSEPORT does when the client's address changes), optionally from a new address of its own
// (a NAT rebinding: path validation runs across the hand-over too). Every byte must arrive, the
// connection must stay with its first worker, and the hand-over must be what carried it.
#include "quic/endpoint_group.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <filesystem>
#include <optional>
#include <random>
#include <thread>

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

// Client ⇄ relay ⇄ a worker's socket. to_worker() switches where the client's packets go; with a new
// `back` socket the workers see the client at a new address.
class Relay {
 public:
  Relay(asio::io_context& io, udp::endpoint target)
      : io_(io), front_(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)), target_(target) {
    open_back();
    read_front();
  }
  udp::endpoint address() const { return front_.local_endpoint(); }
  void to_worker(udp::endpoint target, bool rebind) {
    target_ = target;
    if (rebind) open_back();
  }

 private:
  void open_back() {
    if (back_)
      old_backs_.push_back(std::move(back_));  // late answers to the old address are lost, as at a NAT
    back_ = std::make_unique<udp::socket>(io_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    read_back(*back_);
  }
  void read_front() {
    front_.async_receive_from(asio::buffer(fbuf_), client_, [this](boost::system::error_code ec, size_t n) {
      if (ec) return;
      boost::system::error_code ignored;
      back_->send_to(asio::buffer(fbuf_.data(), n), target_, 0, ignored);
      read_front();
    });
  }
  void read_back(udp::socket& s) {
    s.async_receive_from(asio::buffer(bbuf_), from_, [this, &s](boost::system::error_code ec, size_t n) {
      if (ec) return;
      if (&s == back_.get()) {
        boost::system::error_code ignored;
        front_.send_to(asio::buffer(bbuf_.data(), n), client_, 0, ignored);
      }
      read_back(s);
    });
  }

  asio::io_context& io_;
  udp::socket front_;
  std::unique_ptr<udp::socket> back_;
  std::vector<std::unique_ptr<udp::socket>> old_backs_;
  udp::endpoint target_, client_, from_;
  std::array<uint8_t, 65536> fbuf_{}, bbuf_{};
};

struct Worker {
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::optional<Endpoint> endpoint;
  std::atomic<Sink*> sink{nullptr};  // the latest connection's
  std::atomic<size_t> finished{0};   // uploads that arrived whole
  std::thread thread;
};

class EndpointGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("wtmesh-group-" + std::to_string(std::random_device{}()));
    files_ = ensure_state_certs(dir_);
    client_tls_.emplace(TlsClientContext::with_ca_file(files_.ca_cert));
    server_tls_ = std::make_shared<TlsServerContext>(TlsServerContext::from_files(files_.cert, files_.key));
  }
  void TearDown() override {
    stop();
    std::filesystem::remove_all(dir_);
  }

  // Two workers; `shared_port`: both bind one port with SO_REUSEPORT (else each its own port, so the
  // relay can pick the socket).
  void start(bool shared_port, size_t max_connections = ServerOptions{}.max_connections) {
    uint16_t port = 0;
    for (size_t i = 0; i < workers_.size(); ++i) {
      Worker& w = workers_[i];
      w.guard.emplace(w.io.get_executor());
      w.endpoint.emplace(w.io, udp::endpoint(asio::ip::make_address("127.0.0.1"), shared_port ? port : 0),
                         shared_port);
      if (shared_port) port = w.endpoint->local_endpoint().port();
      w.endpoint->join_group(group_, i);
      ServerOptions opts;
      opts.tls = server_tls_;
      opts.max_connections = max_connections;
      opts.on_connection = [&w](Connection& c) {
        auto sink = std::make_unique<Sink>(c);
        sink->finished = &w.finished;
        w.sink.store(sink.get());
        c.set_handler(sink.get());
        c.set_app_state(std::move(sink));
      };
      w.endpoint->listen(opts);
    }
    for (Worker& w : workers_) w.thread = std::thread([&w] { w.io.run(); });
  }
  // Joins the threads; the endpoints' state may be read after this.
  void stop() {
    for (Worker& w : workers_) {
      if (!w.thread.joinable()) continue;
      w.guard.reset();
      asio::post(w.io, [&w] { w.io.stop(); });
      w.thread.join();
    }
  }
  bool run_until(const std::function<bool()>& done) {
    return test::run_io_until(io_, done, std::chrono::seconds(60), test::Turn::kSlice);
  }

  // `n` clients, each from its own port, each uploading `total` bytes to the workers' shared port.
  void connect_clients(size_t n, size_t total, std::vector<std::unique_ptr<Source>>& sources,
                       std::vector<std::unique_ptr<Endpoint>>& clients) {
    const udp::endpoint server = workers_[0].endpoint->local_endpoint();
    for (size_t i = 0; i < n; ++i) {
      clients.push_back(
          std::make_unique<Endpoint>(io_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)));
      std::string error;
      Connection* c = clients.back()->connect(server, "localhost", *client_tls_, TransportLimits{}, &error);
      ASSERT_NE(c, nullptr) << error;
      sources.push_back(std::make_unique<Source>(*c, total));
      c->set_handler(sources.back().get());
    }
  }

  // An upload through the relay that moves to worker 1's socket once a quarter has arrived.
  void upload_across(bool rebind) {
    start(false);
    Relay relay(io_, workers_[0].endpoint->local_endpoint());
    std::unique_ptr<Source> src;  // outlives the client's connection, which tells it its end
    Endpoint client(io_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    std::string error;
    Connection* c = client.connect(relay.address(), "localhost", *client_tls_, TransportLimits{}, &error);
    ASSERT_NE(c, nullptr) << error;
    constexpr size_t kTotal = 8 << 20;
    src = std::make_unique<Source>(*c, kTotal);
    Source& source = *src;
    c->set_handler(&source);
    ASSERT_TRUE(run_until([&] {
      Sink* s = workers_[0].sink.load();
      return source.closed || (s != nullptr && s->received.load() > kTotal / 4);
    }));
    relay.to_worker(workers_[1].endpoint->local_endpoint(), rebind);
    ASSERT_TRUE(run_until([&] {
      Sink* s = workers_[0].sink.load();
      return source.closed || (s != nullptr && s->done.load());
    })) << "stalled after the move";
    EXPECT_FALSE(source.closed) << source.reason;
    stop();
    Sink* s = workers_[0].sink.load();
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->received.load(), kTotal);
    EXPECT_EQ(s->corrupt.load(), 0u);
    EXPECT_EQ(workers_[1].sink.load(), nullptr) << "the connection never moved to worker 1";
    EXPECT_EQ(workers_[1].endpoint->connection_count(), 0u);
    const EndpointStats w0 = workers_[0].endpoint->stats(), w1 = workers_[1].endpoint->stats();
    EXPECT_GT(w1.forwarded_out, 100u) << "worker 1 read the client's packets after the move";
    EXPECT_EQ(w1.forwarded_dropped, 0u);
    EXPECT_EQ(w0.forwarded_in, w1.forwarded_out);
    EXPECT_EQ(w1.stateless_resets, 0u);
  }

  std::filesystem::path dir_;
  CertFiles files_;
  std::optional<TlsClientContext> client_tls_;
  std::shared_ptr<TlsServerContext> server_tls_;
  EndpointGroup group_{2};
  std::array<Worker, 2> workers_;
  asio::io_context io_;  // the client's and the relay's
};

TEST_F(EndpointGroupTest, PacketsThatReachAnotherWorkersSocketAreHandedToTheOwner) { upload_across(false); }

TEST_F(EndpointGroupTest, AClientAtANewAddressOnAnotherWorkersSocketKeepsItsConnection) {
  upload_across(true);
}

TEST_F(EndpointGroupTest, WorkersShareOnePortAndEachServesTheConnectionsItTook) {
  start(true);
  ASSERT_EQ(workers_[1].endpoint->local_endpoint(), workers_[0].endpoint->local_endpoint());
  // Sixteen clients, each from its own port: the kernel spreads them over the two sockets (all on
  // one has probability 2^-15).
  constexpr size_t kClients = 16, kTotal = 64 << 10;
  std::vector<std::unique_ptr<Source>> sources;  // outlive the clients' connections
  std::vector<std::unique_ptr<Endpoint>> clients;
  connect_clients(kClients, kTotal, sources, clients);
  ASSERT_TRUE(
      run_until([&] { return workers_[0].finished.load() + workers_[1].finished.load() == kClients; }));
  for (const auto& s : sources) EXPECT_FALSE(s->closed) << s->reason;
  stop();
  size_t served = 0;
  for (Worker& w : workers_) {
    EXPECT_GT(w.finished.load(), 0u) << "each socket of the port took some clients";
    EXPECT_EQ(w.endpoint->connection_count(), w.finished.load());
    served += w.endpoint->connection_count();
    EXPECT_EQ(w.endpoint->stats().forwarded_out, 0u) << "no client moved";
  }
  EXPECT_EQ(served, kClients);
}

// --quic-max-connections is the edge's: two workers with a cap of 2 hold 2 connections in all, not
// 2 each. Eight clients from their own ports: the kernel spreads them over both sockets (all on one
// has probability 2^-7), so each worker takes new ones after the cap was reached on the other.
TEST_F(EndpointGroupTest, TheConnectionCapCountsEveryWorkersConnections) {
  start(true, 2);
  constexpr size_t kClients = 8, kTotal = 16 << 10;
  std::vector<std::unique_ptr<Source>> sources;
  std::vector<std::unique_ptr<Endpoint>> clients;
  connect_clients(kClients, kTotal, sources, clients);
  ASSERT_TRUE(run_until([&] { return workers_[0].finished.load() + workers_[1].finished.load() >= 2; }));
  // Every client's first Initial has long arrived; give the refused ones a retransmission, too.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  run_until([&] { return std::chrono::steady_clock::now() >= until; });
  stop();
  size_t served = 0, refused = 0;
  for (Worker& w : workers_) {
    served += w.endpoint->connection_count();
    refused += w.endpoint->stats().refused;
  }
  EXPECT_EQ(served, 2u);
  EXPECT_EQ(group_.connections()->load(), 2u);
  EXPECT_GE(refused, kClients - 2) << "each of the others had its Initials refused";
}

TEST(EndpointGroupQueue, AWorkersQueueHoldsAtMostKMaxQueuedPackets) {
  EndpointGroup group(2);
  asio::io_context io0, io1;
  Endpoint e0(io0, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  Endpoint e1(io1, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  e0.join_group(group, 0);
  e1.join_group(group, 1);
  // Packets with worker 1's ids whose connection is gone: worker 1 answers each with a stateless reset.
  std::vector<uint8_t> pkt(60, 0x77);
  pkt[0] = 0x41;
  pkt[1] = 1;
  const auto from = e0.local_endpoint();
  auto batch = [&](size_t n) {
    ForwardBatch b;
    for (size_t i = 0; i < n; ++i) b.add(pkt, reinterpret_cast<const sockaddr*>(from.data()), from.size());
    return b;
  };
  EXPECT_EQ(group.forward(1, batch(EndpointGroup::kMaxQueued - 10)), EndpointGroup::kMaxQueued - 10);
  EXPECT_EQ(group.forward(1, batch(50)), 10u) << "only what fits";
  EXPECT_EQ(group.forward(1, batch(1)), 0u) << "full until worker 1 runs";
  EXPECT_EQ(group.forward(5, batch(1)), 0u) << "no such worker";
  io1.poll();
  EXPECT_EQ(e1.stats().forwarded_in, EndpointGroup::kMaxQueued);
  EXPECT_EQ(group.forward(1, batch(1)), 1u) << "room again";
}

TEST(EndpointGroupQueue, AGoneWorkerTakesNothing) {
  EndpointGroup group(2);
  asio::io_context io;
  auto e1 = std::make_unique<Endpoint>(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  e1->join_group(group, 1);
  ForwardBatch b;
  std::vector<uint8_t> pkt(60, 1);
  const auto from = e1->local_endpoint();
  b.add(pkt, reinterpret_cast<const sockaddr*>(from.data()), from.size());
  e1.reset();
  EXPECT_EQ(group.forward(1, b), 0u);
  EXPECT_THROW(EndpointGroup(1), std::invalid_argument);
}

}  // namespace
}  // namespace wtmesh::quic
