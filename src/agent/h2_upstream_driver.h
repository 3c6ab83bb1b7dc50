// The Asio tier for HTTP/2 upstreams (`--upstream h2c`, and h2 chosen by ALPN over TLS): the HTTP/2
// parts of the multiplexed upstream tier (agent/mux_upstream.h says how requests share connections).
//
//  - H2UpstreamClient (one per tunnel, beside the HTTP/1.1 UpstreamPool): opens connections over TCP
//    (plain, or TLS offering only h2) and adopts the ALPN probe's h2 connection.
//  - H2UpstreamConn: one connection: an UpstreamConnection (plain TCP or TLS) and the sans-I/O
//    H2UpstreamSession; it moves bytes between them and tells attached streams when their state
//    changed.
//  - H2StreamDriver: the shared MuxStreamDriver.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "agent/h2_upstream_session.h"
#include "agent/mux_upstream.h"
#include "agent/upstream_connection.h"

namespace wtmesh::agent {

struct H2ClientLimits : MuxClientLimits {
  H2UpstreamLimits session;
};

using H2StreamDriver = MuxStreamDriver;
class H2UpstreamClient;

class H2UpstreamConn final : public MuxConn, public std::enable_shared_from_this<H2UpstreamConn> {
 public:
  H2UpstreamConn(H2UpstreamClient& client, std::shared_ptr<UpstreamConnection> conn, H2UpstreamLimits limits);
  H2UpstreamSession& session() { return session_; }

  // MuxConn
  bool usable() const override { return !closed_ && session_.can_open(); }
  bool settled() const override { return session_.settings_received(); }
  bool connect_protocol() const override { return session_.connect_protocol(); }
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
  void start_io();
  void dispatch();

  H2UpstreamClient& client_;
  std::shared_ptr<UpstreamConnection> conn_;
  H2UpstreamSession session_;
  std::string write_buf_;
  bool writing_ = false;
  bool reading_ = false;
  bool pumping_ = false;
  bool again_ = false;
  bool closed_ = false;
};

class H2UpstreamClient final : public MuxUpstreamClient {
 public:
  H2UpstreamClient(boost::asio::io_context& io, UpstreamTarget target, H2ClientLimits limits = {});
  ~H2UpstreamClient() override;

  std::string name() const override;
  const char* protocol() const override { return "HTTP/2"; }
  bool tls() const override { return target_.tls != nullptr; }
  // A connection opened elsewhere whose ALPN said h2 (agent/upstream_select.h).
  void adopt(std::shared_ptr<UpstreamConnection> conn);

 private:
  void open_connection() override;

  UpstreamTarget target_;
  H2ClientLimits limits_;
};

}  // namespace wtmesh::agent
