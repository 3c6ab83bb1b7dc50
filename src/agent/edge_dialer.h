// EdgeDialer: one connection attempt to the edge, up to a completed handshake (no session yet).
//
// With EdgeTransport::kQuic or kH2 it dials that transport. With kAuto it races the two the way
// happy eyeballs races address families (RFC 8305 §5): QUIC first; WebTransport over HTTP/2 on TCP
// `h2_after` later, or at once when QUIC fails before that (an ICMP port unreachable, a refused
// handshake); the first handshake to complete wins, QUIC on a tie, and the loser is closed. QUIC
// keeps its head start for the whole race: a QUIC handshake that completes while TCP + TLS is still
// under way wins even after the HTTP/2 dial started.
//
// `done` is called once, from a fresh handler (never inside a dial's own calls, so it may destroy the
// dialer): with the winner (its handshake complete; open the session on it), or with nullptr and the
// reasons when every dial failed. A dial that neither completes nor fails is the caller's to time
// out: destroying the dialer closes whatever it still holds.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/edge_url.h"
#include "agent/resumption_store.h"
#include "quic/connection.h"

namespace wtmesh::quic {
class TlsClientContext;
}

namespace wtmesh::agent {

class WtClient;

struct DialOptions {
  EdgeUrl edge;
  std::shared_ptr<const quic::TlsClientContext> tls;
  quic::TransportLimits transport;
  EdgeTransport choice = EdgeTransport::kAuto;
  // kAuto: how long QUIC dials alone. 300 ms: past a QUIC handshake on any path under ~250 ms RTT
  // (one round trip plus the edge's work), short enough that a blocked UDP costs little.
  std::chrono::milliseconds h2_after{300};
  // When the edge's name resolves to several addresses (a pair of edges), the first one that is not
  // this (a draining edge's, docs/protocol.md §3.6); the first one when none other is there.
  std::optional<boost::asio::ip::address> avoid;
  // QUIC resumes with this store's ticket for the edge and is ready at once (0-RTT); nullptr: never.
  std::shared_ptr<ResumptionStore> resumption;
};

class EdgeDialer {
 public:
  // winner: the client whose handshake completed, or nullptr (then `error` says why every dial failed).
  using Done = std::function<void(std::unique_ptr<WtClient> winner, const std::string& error)>;

  EdgeDialer(boost::asio::io_context& io, DialOptions options, Done done);
  ~EdgeDialer();
  EdgeDialer(const EdgeDialer&) = delete;
  EdgeDialer& operator=(const EdgeDialer&) = delete;

  // Starts dialling. False (and no `done`) when not even the first dial could start; `error` says why.
  bool start(std::string* error);
  // kAuto: whether the HTTP/2 dial was started (QUIC was slow or failed).
  bool raced() const { return raced_; }
  // Why QUIC lost, once it did under kAuto ("no handshake within 300 ms", its close reason); "" else.
  const std::string& quic_story() const { return quic_story_; }
  // The edge address dialled (both transports use it), once start() resolved the name.
  const boost::asio::ip::udp::endpoint& remote() const { return remote_; }

 private:
  // A client of transport `t`, dialling; nullptr (and `error`) when it cannot start.
  std::unique_ptr<WtClient> dial(EdgeTransport t, std::string* error);
  void start_h2();
  void on_change();
  // `error` by value: it may come from a client this call destroys.
  void finish(std::unique_ptr<WtClient> winner, std::string error);

  boost::asio::io_context& io_;
  DialOptions options_;
  Done done_;
  std::unique_ptr<WtClient> quic_;
  std::unique_ptr<WtClient> h2_;
  boost::asio::steady_timer race_timer_;
  bool raced_ = false;
  bool finished_ = false;
  bool quic_failure_told_ = false;  // quic_story_ names QUIC's failure
  std::string quic_story_;
  std::string h2_error_;
  boost::asio::ip::udp::endpoint remote_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::agent
