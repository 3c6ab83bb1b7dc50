// The QuicLoopback fixture: our client endpoint against our echoing server endpoint on 127.0.0.1
// (ngtcp2 + GnuTLS both sides), shared by quic_loopback_test.cc and quic_resumption_test.cc.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "../support/run_until.h"
#include "../support/temp_dir.h"
#include "quic/certs.h"
#include "quic/endpoint.h"
#include "quic/tls_context.h"

namespace wtmesh::quic::test_support {

namespace asio = boost::asio;
using asio::ip::udp;
using wtmesh::test::TempDir;

// A UDP relay between a client and the server. cut(): from then on packets vanish both ways, as when
// the peer's process is killed or its host goes away (no CONNECTION_CLOSE, no ICMP). first_flight():
// the client's datagrams sent before the server's first answer (its ClientHello and 0-RTT packets).
class UdpRelay {
 public:
  UdpRelay(asio::io_context& io, udp::endpoint server)
      : front_(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        back_(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        server_(server) {
    read_front();
    read_back();
  }
  udp::endpoint endpoint() const { return front_.local_endpoint(); }
  void cut() { cut_ = true; }
  const std::vector<std::vector<uint8_t>>& first_flight() const { return first_flight_; }

 private:
  void read_front() {
    front_.async_receive_from(asio::buffer(fbuf_), client_, [this](boost::system::error_code ec, size_t n) {
      if (ec) return;
      if (!answered_) first_flight_.emplace_back(fbuf_.begin(), fbuf_.begin() + static_cast<long>(n));
      if (!cut_) back_.send_to(asio::buffer(fbuf_.data(), n), server_, 0, ec);
      read_front();
    });
  }
  void read_back() {
    back_.async_receive_from(asio::buffer(bbuf_), from_, [this](boost::system::error_code ec, size_t n) {
      if (ec) return;
      answered_ = true;
      if (!cut_) front_.send_to(asio::buffer(bbuf_.data(), n), client_, 0, ec);
      read_back();
    });
  }
  udp::socket front_, back_;
  udp::endpoint server_, client_, from_;
  std::array<uint8_t, 65536> fbuf_{}, bbuf_{};
  std::vector<std::vector<uint8_t>> first_flight_;
  bool answered_ = false;
  bool cut_ = false;
};

// Server side: echoes every stream (bidi on the same stream, uni on a new server uni stream) and
// every datagram. Holds bytes it could not write yet and only consumes what it has written, so
// flow control is the backpressure.
class EchoHandler : public TransportHandler {
 public:
  explicit EchoHandler(Transport& t) : t_(t) {}
  void on_stream_data(StreamId id, std::span<const uint8_t> data, bool fin) override {
    if (t_.in_early_data()) early_bytes += data.size();
    auto& p = pending_[id];
    if (p.out < 0) p.out = is_bidi(id) ? id : t_.open_uni_stream().value_or(-1);
    p.bytes.insert(p.bytes.end(), data.begin(), data.end());
    p.fin = p.fin || fin;
    pump(id);
  }
  void on_stream_writable(StreamId id) override {
    for (auto& [in, p] : pending_) {
      if (p.out == id) pump(in);
    }
  }
  void on_stream_reset(StreamId, uint64_t) override {}
  void on_stop_sending(StreamId, uint64_t) override {}
  void on_stream_closed(StreamId id) override {
    closed_streams++;
    auto it = pending_.find(id);
    if (it != pending_.end() && it->second.bytes.empty()) pending_.erase(it);
  }
  void on_datagram(std::span<const uint8_t> payload) override { t_.send_datagram(payload); }
  void on_connection_closed(uint64_t, bool, std::string_view) override {}

  int closed_streams = 0;
  size_t early_bytes = 0;  // stream bytes that arrived as 0-RTT (before the handshake completed)

 private:
  struct Pending {
    StreamId out = -1;
    std::vector<uint8_t> bytes;
    bool fin = false;
    bool fin_sent = false;
  };
  void pump(StreamId in) {
    auto& p = pending_[in];
    if (p.out < 0) return;
    const size_t n = t_.write(p.out, p.bytes, p.fin);
    t_.consume(in, n);
    p.bytes.erase(p.bytes.begin(), p.bytes.begin() + static_cast<long>(n));
    if (p.bytes.empty() && p.fin) p.fin_sent = true;
  }
  Transport& t_;
  std::map<StreamId, Pending> pending_;
};

struct ClientRecorder : TransportHandler {
  explicit ClientRecorder(Transport& t) : t_(t) {}
  void on_handshake_completed() override { handshake = true; }
  void on_stream_data(StreamId id, std::span<const uint8_t> data, bool fin) override {
    auto& r = received[id];
    r.insert(r.end(), data.begin(), data.end());
    if (fin) fins[id] = true;
    if (!hold_credit) t_.consume(id, data.size());
  }
  void on_stream_reset(StreamId id, uint64_t code) override { resets[id] = code; }
  void on_stop_sending(StreamId id, uint64_t code) override { stops[id] = code; }
  void on_stream_closed(StreamId) override {}
  void on_stream_writable(StreamId) override { writable++; }
  void on_datagram(std::span<const uint8_t> payload) override {
    datagrams.emplace_back(payload.begin(), payload.end());
  }
  void on_connection_closed(uint64_t code, bool, std::string_view reason) override {
    closed = true;
    close_code = code;
    close_reason = std::string(reason);
  }
  Transport& t_;
  bool hold_credit = false;  // never consume: the peer's writes become flow-control blocked
  bool handshake = false;
  bool closed = false;
  uint64_t close_code = 0;
  std::string close_reason;
  int writable = 0;
  std::map<StreamId, std::vector<uint8_t>> received;
  std::map<StreamId, bool> fins;
  std::map<StreamId, uint64_t> resets;
  std::map<StreamId, uint64_t> stops;
  std::vector<std::vector<uint8_t>> datagrams;
};

struct ServerApp : Connection::AppState {
  explicit ServerApp(Connection& c) : echo(c) {}
  EchoHandler echo;
};

class QuicLoopback : public ::testing::Test {
 protected:
  void SetUp() override {
    files_ = ensure_state_certs(dir_.path());
    server_tls_ = std::make_shared<TlsServerContext>(TlsServerContext::from_files(files_.cert, files_.key));
    client_tls_.emplace(TlsClientContext::with_ca_file(files_.ca_cert));
    server_.emplace(io_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    ServerOptions opts;
    opts.tls = server_tls_;
    opts.limits = server_limits_;
    opts.on_connection = [this](Connection& c) {
      auto app = std::make_unique<ServerApp>(c);
      server_echo_ = &app->echo;
      server_conn_ = &c;
      c.set_handler(&app->echo);
      c.set_app_state(std::move(app));
    };
    server_->listen(opts);
    client_ep_.emplace(io_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  }

  Connection* dial(const TransportLimits& limits = {}, std::optional<udp::endpoint> via = std::nullopt,
                   const ResumptionTicket* resume = nullptr) {
    std::string error;
    Connection* c = client_ep_->connect(via.value_or(server_->local_endpoint()), "localhost", *client_tls_,
                                        limits, &error, resume);
    EXPECT_NE(c, nullptr) << error;
    return c;
  }

  // Runs the loop until `done` or the deadline; never spins forever.
  bool run_until(const std::function<bool()>& done,
                 std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    return test::run_io_until(io_, done, limit, test::Turn::kSlice);
  }

  // Handlers are owned here, declared before the endpoints so they outlive the connections.
  ClientRecorder& attach(Connection& c) {
    recorders_.push_back(std::make_unique<ClientRecorder>(c));
    c.set_handler(recorders_.back().get());
    return *recorders_.back();
  }

  TempDir dir_;
  CertFiles files_;
  asio::io_context io_;
  std::vector<std::unique_ptr<ClientRecorder>> recorders_;
  TransportLimits server_limits_;
  std::shared_ptr<TlsServerContext> server_tls_;
  std::optional<TlsClientContext> client_tls_;
  std::optional<Endpoint> server_;
  std::optional<Endpoint> client_ep_;
  EchoHandler* server_echo_ = nullptr;
  Connection* server_conn_ = nullptr;
};

}  // namespace wtmesh::quic::test_support
