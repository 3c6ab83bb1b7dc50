// Test support: two real quic::Connections (ngtcp2 + GnuTLS, a real handshake) wired through memory,
// with time as a parameter (like quinn's test `Pair`), so the transport is tested without sockets:
// handshake, loss, idle timeout, stream credit, close.
//
//   test::QuicPair pair;                      // certificates in a temp dir, default limits
//   pair.start(&client_handler, &server_handler);
//   pair.pump();                              // packets both ways until neither side sends
//   pair.advance(std::chrono::milliseconds(300));  // the clock moves; timers fire; pump
//   pair.drop_next(test::QuicPair::kClient, 2);    // the next two client packets are lost
//
// The server side routes every packet through a real quic::Dispatcher, as quic::Endpoint does: the
// connection is accepted from the client's first Initial, later packets go to it by connection id,
// and once it is gone (crash_server()) the client's packets are answered with a Stateless Reset.
#pragma once

#include <netinet/in.h>
#include <ngtcp2/ngtcp2.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "quic/certs.h"
#include "quic/connection.h"
#include "quic/dispatcher.h"
#include "quic/tls_context.h"
#include "temp_dir.h"

namespace wtmesh::test {

class QuicPair {
 public:
  enum Side { kClient = 0, kServer = 1 };

  explicit QuicPair(quic::TransportLimits client_limits = {}, quic::TransportLimits server_limits = {})
      : client_limits_(client_limits), server_limits_(server_limits), dir_("wtmesh-quic-pair") {
    const auto certs = quic::ensure_state_certs(dir_.path(), {"localhost"});
    server_tls_ =
        std::make_shared<quic::TlsServerContext>(quic::TlsServerContext::from_files(certs.cert, certs.key));
    client_tls_ =
        std::make_unique<quic::TlsClientContext>(quic::TlsClientContext::with_ca_file(certs.ca_cert));
    set_addr(addr_[kClient], 40000);
    set_addr(addr_[kServer], 4433);
  }

  // Creates the client (its first flight is queued at the next pump) and remembers the handler the
  // server connection gets when it is accepted.
  void start(quic::TransportHandler* client_handler, quic::TransportHandler* server_handler) {
    server_handler_ = server_handler;
    std::string error;
    const ngtcp2_path path = path_of(kClient);
    client_ = quic::Connection::connect(path, "localhost", *client_tls_, client_limits_, client_ids_, now_,
                                        &error, client_token_);
    if (!client_) throw std::runtime_error("QuicPair: connect: " + error);
    client_->set_clock([this] { return now_; });
    client_->set_handler(client_handler);
  }

  quic::Connection& client() { return *client_; }
  quic::Connection* server() { return server_.get(); }
  quic::Connection* side(Side s) { return s == kClient ? client_.get() : server_.get(); }
  bool alive(Side s) const { return alive_[s]; }
  quic::Timestamp now() const { return now_; }
  size_t packets_sent(Side s) const { return sent_[s]; }
  size_t bytes_sent(Side s) const { return bytes_[s]; }
  // Before start(): a token the client sends in its Initials (tests forge one).
  void set_client_token(std::vector<uint8_t> token) { client_token_ = std::move(token); }

  // The next `n` packets `from` sends are lost.
  void drop_next(Side from, size_t n) { drop_[from] += n; }

  // The server connection vanishes without a word, as when the process restarts: its ids leave the
  // dispatcher (which keeps its reset secret) and the connection is destroyed.
  void crash_server() {
    if (!server_) return;
    server_ids_.forget(server_.get());
    server_.reset();
    alive_[kServer] = false;
  }
  quic::Dispatcher& server_dispatcher() { return server_ids_; }
  // Queues a packet as if `from` had sent it (delivered at the next pump).
  void inject(Side from, std::span<const uint8_t> pkt) { queue_[from].emplace_back(pkt.begin(), pkt.end()); }

  // Moves packets both ways until neither side has anything to send (at most `max_rounds` rounds).
  // Time does not move. Returns how many packets were delivered.
  size_t pump(size_t max_rounds = 1000) {
    size_t delivered = 0;
    for (size_t round = 0; round < max_rounds; ++round) {
      const size_t before = delivered;
      for (Side from : {kClient, kServer}) {
        write(from);
        delivered += deliver(from == kClient ? kServer : kClient);
      }
      if (delivered == before && queue_[kClient].empty() && queue_[kServer].empty()) break;
    }
    return delivered;
  }

  // Moves the clock `d` ahead without writing or firing anything, as a driver does between events;
  // returns false (and stops at the first expiry) if a timer would have fired on the way.
  bool skip(std::chrono::nanoseconds d) {
    const quic::Timestamp end = now_ + static_cast<quic::Timestamp>(d.count());
    for (Side s : {kClient, kServer}) {
      if (quic::Connection* c = side(s); c && alive_[s] && c->expiry() < end) {
        now_ = std::max(now_, c->expiry());
        return false;
      }
    }
    now_ = end;
    return true;
  }

  // Moves the clock `d` ahead in steps that stop at every expiry on the way, firing each, pumping
  // after each.
  void advance(std::chrono::nanoseconds d) {
    const quic::Timestamp end = now_ + static_cast<quic::Timestamp>(d.count());
    for (int guard = 0; guard < 100000; ++guard) {
      quic::Timestamp next = end;
      for (Side s : {kClient, kServer}) {
        if (quic::Connection* c = side(s); c && alive_[s]) next = std::min(next, std::max(now_, c->expiry()));
      }
      now_ = next;
      for (Side s : {kClient, kServer}) {
        quic::Connection* c = side(s);
        if (c && alive_[s] && c->expiry() <= now_ && !c->handle_expiry(now_)) alive_[s] = false;
      }
      pump();
      if (now_ >= end) return;
    }
  }

 private:
  static void set_addr(sockaddr_in& a, uint16_t port) {
    a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  ngtcp2_path path_of(Side s) {
    ngtcp2_path p{};
    p.local.addr = reinterpret_cast<sockaddr*>(&addr_[s]);
    p.local.addrlen = sizeof(sockaddr_in);
    p.remote.addr = reinterpret_cast<sockaddr*>(&addr_[s == kClient ? kServer : kClient]);
    p.remote.addrlen = sizeof(sockaddr_in);
    return p;
  }

  void write(Side from) {
    quic::Connection* c = side(from);
    if (!c || !alive_[from]) return;
    c->write_packets(now_, [&](const ngtcp2_path&, std::span<const uint8_t> pkt) {
      ++sent_[from];
      bytes_[from] += pkt.size();
      if (drop_[from] > 0) {
        --drop_[from];
        return;
      }
      queue_[from].emplace_back(pkt.begin(), pkt.end());
    });
  }

  // Delivers what the other side queued to `to`. Packets for the server go through its dispatcher.
  size_t deliver(Side to) {
    auto& q = queue_[to == kClient ? kServer : kClient];
    size_t n = 0;
    while (!q.empty()) {
      std::vector<uint8_t> pkt = std::move(q.front());
      q.pop_front();
      const ngtcp2_path path = path_of(to);
      const ngtcp2_pkt_info pi{};
      quic::Connection* c = to == kClient && alive_[kClient] ? client_.get() : nullptr;
      if (to == kServer) {
        using Kind = quic::Dispatcher::Decision::Kind;
        const ngtcp2_path from = path_of(kServer);
        const quic::Dispatcher::Decision d =
            server_ids_.classify(pkt, server_ ? 1 : 0, from.remote.addr, from.remote.addrlen, now_);
        if (d.kind == Kind::kReply) {
          const auto reply = server_ids_.reply();
          queue_[kServer].emplace_back(reply.begin(), reply.end());
          continue;
        }
        if (d.kind == Kind::kAccept) {
          std::string error;
          server_ =
              quic::Connection::accept(d.header, path, server_tls_, server_limits_, server_ids_, now_, &error,
                                       d.retry_original_dcid ? &*d.retry_original_dcid : nullptr);
          if (!server_) throw std::runtime_error("QuicPair: accept: " + error);
          server_->set_clock([this] { return now_; });
          server_->set_handler(server_handler_);
          alive_[kServer] = true;
          c = server_.get();
        } else if (d.kind == Kind::kRoute && alive_[kServer]) {
          c = d.conn;
        }
      }
      if (!c) continue;
      if (!c->read_packet(path, pi, pkt, now_)) alive_[to] = false;
      ++n;
    }
    return n;
  }

  quic::TransportLimits client_limits_, server_limits_;
  TempDir dir_;
  std::shared_ptr<const quic::TlsServerContext> server_tls_;
  std::unique_ptr<quic::TlsClientContext> client_tls_;
  quic::Dispatcher client_ids_{quic::DispatcherOptions{.server = false}};
  quic::Dispatcher server_ids_{quic::DispatcherOptions{.server = true, .max_connections = 1}};
  sockaddr_in addr_[2]{};
  quic::TransportHandler* server_handler_ = nullptr;
  std::unique_ptr<quic::Connection> client_, server_;
  quic::Timestamp now_ = 1'000'000'000;  // 1 s: ngtcp2 treats 0 as "unset" in places
  std::deque<std::vector<uint8_t>> queue_[2];
  size_t drop_[2] = {0, 0};
  size_t sent_[2] = {0, 0};
  size_t bytes_[2] = {0, 0};
  std::vector<uint8_t> client_token_;
  bool alive_[2] = {true, true};
};

}  // namespace wtmesh::test
