// The Asio tier for HTTP/3 upstreams (`--upstream h3`): the HTTP/3 parts of the multiplexed upstream
// tier (agent/mux_upstream.h says how requests share connections and what a stream driver does).
//
//  - H3UpstreamClient (one per h3 tunnel): one UDP socket (a quic::Endpoint on the agent's
//    io_context, ephemeral port) and QUIC client connections to UDP LOCALPORT, TLS verified as for
//    `--upstream-tls` (the tunnel's TlsClientContext; ALPN h3). A connection joins the pool once the
//    handshake is done and the peer's SETTINGS arrived; a handshake that fails or does not finish in
//    handshake_timeout fails the waiting requests with a 502 ("upstream HTTP/3 handshake failed: ..."
//    / "... timed out"): UDP has no RST, so a service that is down is only noticed by this bound.
//  - H3UpstreamConn: one connection: its quic::Connection (owned by the endpoint) carries an
//    h3::Connection in client role and the sans-I/O H3UpstreamSession (agent/h3_upstream_session.h)
//    as app state; the conn reads their recorded events after the QUIC processing returned (posted)
//    and tells attached streams. QUIC timers and packet I/O are the endpoint's.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "agent/h3_upstream_session.h"
#include "agent/h3_upstream_target.h"
#include "agent/mux_upstream.h"
#include "quic/connection.h"
#include "quic/endpoint.h"
#include "quic/tls_context.h"

namespace wtmesh::agent {

struct H3ClientLimits : MuxClientLimits {
  H3UpstreamLimits session;
  quic::TransportLimits transport = default_transport();
  std::chrono::milliseconds handshake_timeout{3000};

  static quic::TransportLimits default_transport() {
    quic::TransportLimits t;
    t.max_streams_bidi = 0;  // the upstream opens no request streams toward us
    t.stream_window = 1 << 20;
    t.max_stream_window = 4 << 20;
    t.connection_window = 16 << 20;
    t.max_connection_window = 32 << 20;
    t.stream_send_buffer = 256 * 1024;
    t.max_udp_payload = 65507;  // loopback: PMTUD probes up from 1200
    return t;
  }
};

class H3UpstreamClient;

class H3UpstreamConn final : public MuxConn, public std::enable_shared_from_this<H3UpstreamConn> {
 public:
  H3UpstreamConn(H3UpstreamClient& client, quic::Connection& quic, const H3ClientLimits& limits);
  ~H3UpstreamConn() override;

  bool ready() const { return stack_ != nullptr && session().settings_received(); }
  quic::Connection* quic() const { return quic_; }
  // The endpoint drops the QUIC connection (the stack goes with it): streams and client hear it later.
  void on_removed();
  // Forgets the stack without telling anyone (the client is being destroyed).
  void drop_stack(std::string why);
  std::string why_failed() const;

  // MuxConn
  bool usable() const override;
  bool settled() const override { return stack_ != nullptr && session().settings_received(); }
  bool connect_protocol() const override { return stack_ != nullptr && session().connect_protocol(); }
  bool closed() const override { return closed_; }
  void shutdown_and_close() override;
  void close() override;
  std::optional<int64_t> open(const tunnel::HeaderPairs& fields, bool end_stream,
                              std::string* error) override;
  size_t send(int64_t id, std::span<const uint8_t> data, bool fin) override;
  bool send_trailers(int64_t id, const tunnel::HeaderPairs& trailers) override;
  std::vector<MuxHead> take_interim(int64_t id) override;
  std::optional<MuxHead> take_head(int64_t id) override;
  tunnel::HeaderPairs take_trailers(int64_t id) override;
  std::span<const uint8_t> received(int64_t id) const override;
  void consume(int64_t id, size_t n) override;
  bool finished(int64_t id) const override;
  std::optional<std::string> failure(int64_t id) const override;
  bool refused(int64_t id) const override;
  void detach(int64_t id, bool cancel) override;
  void pump() override;

 private:
  struct Stack;
  H3UpstreamSession& session() const;
  void post_dispatch();
  void dispatch();

  H3UpstreamClient& client_;
  std::weak_ptr<int> client_alive_;
  quic::Connection* quic_;
  Stack* stack_ = nullptr;  // owned by quic_ (app state); null once the endpoint dropped it
  std::string gone_;        // why, once the stack is gone
  bool dispatch_posted_ = false;
  bool closed_ = false;
  bool announced_ = false;  // told the client it is ready
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

class H3UpstreamClient final : public MuxUpstreamClient {
 public:
  H3UpstreamClient(boost::asio::io_context& io, H3UpstreamTarget target, H3ClientLimits limits = {});
  ~H3UpstreamClient() override;

  std::string name() const override;
  const char* protocol() const override { return "HTTP/3"; }
  bool tls() const override { return true; }

  // From the connections.
  std::weak_ptr<int> token() const { return alive(); }
  void on_ready(H3UpstreamConn* conn);
  void on_gone(H3UpstreamConn* conn);

 private:
  void open_connection() override;
  void on_handshake_timeout(H3UpstreamConn* conn);

  H3UpstreamTarget target_;
  H3ClientLimits limits_;
  std::unique_ptr<quic::Endpoint> endpoint_;
  struct Opening {
    std::shared_ptr<H3UpstreamConn> conn;
    std::unique_ptr<boost::asio::steady_timer> timer;
  };
  std::vector<Opening> opening_;
  std::vector<std::weak_ptr<H3UpstreamConn>> live_;  // every conn with a QUIC connection, to find on removal
};

}  // namespace wtmesh::agent
