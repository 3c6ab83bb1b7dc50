// The Asio tier for HTTP/2 upstreams (`--upstream h2c`): many tunnel requests share few connections.
//
//  - H2UpstreamClient (one per tunnel, beside the HTTP/1.1 UpstreamPool): the upstream's HTTP/2
//    connections. A request gets a stream on a connection with room (under the upstream's
//    SETTINGS_MAX_CONCURRENT_STREAMS and our cap); when none has room a new connection is opened, up
//    to max_connections; beyond that requests wait in a bounded queue (over it: a 502). A connection
//    with no stream for idle_timeout is closed (GOAWAY). After the upstream's GOAWAY a connection takes
//    no new streams; the open ones finish, refused ones are replayed once on another connection.
//  - H2UpstreamConn: one connection: an UpstreamConnection (plain TCP today; TLS fits the same) and
//    the sans-I/O H2UpstreamSession; it moves bytes between them and tells attached streams when
//    their state changed.
//  - H2StreamDriver: one request, an UpstreamDriver whose UpstreamTransport is a stream of a shared
//    connection, with the usual UpstreamExchange core and the H2Codec (agent/h2_codec.h says what
//    crosses between them). Backpressure: request bytes count as written (consumed on the tunnel
//    stream) once the session's per-stream send buffer took them; response bytes are credited to the
//    upstream (WINDOW_UPDATE) once the exchange took them, which it does only when the tunnel stream
//    had room.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/h2_upstream_session.h"
#include "agent/upstream_connection.h"
#include "agent/upstream_driver.h"
#include "agent/upstream_exchange.h"

namespace wtmesh::agent {

struct H2ClientLimits {
  H2UpstreamLimits session;
  size_t max_connections = 4;  // per upstream
  size_t max_waiting = 1024;   // requests waiting for a stream when every connection is full
  std::chrono::milliseconds idle_timeout{30000};
};

class H2StreamDriver;
class H2UpstreamClient;

class H2UpstreamConn final : public std::enable_shared_from_this<H2UpstreamConn> {
 public:
  H2UpstreamConn(H2UpstreamClient& client, std::shared_ptr<UpstreamConnection> conn, H2UpstreamLimits limits);
  H2UpstreamSession& session() { return session_; }
  void attach(int32_t id, H2StreamDriver* driver) { streams_[id] = driver; }
  // The driver is done with the stream (cancelled or finished).
  void detach(int32_t id, bool cancel);
  // Moves bytes and tells streams what changed; call after any session call.
  void pump();
  bool usable() const { return !closed_ && session_.can_open(); }
  bool session_settled() const { return session_.settings_received(); }
  bool session_connect_protocol() const { return session_.connect_protocol(); }
  bool closed() const { return closed_; }
  size_t streams() const { return streams_.size(); }
  std::chrono::steady_clock::time_point idle_since() const { return idle_since_; }
  void close();

 private:
  void start_io();
  void dispatch();

  H2UpstreamClient& client_;
  std::shared_ptr<UpstreamConnection> conn_;
  H2UpstreamSession session_;
  std::map<int32_t, H2StreamDriver*> streams_;
  std::string write_buf_;
  bool writing_ = false;
  bool reading_ = false;
  bool pumping_ = false;
  bool again_ = false;
  bool closed_ = false;
  std::chrono::steady_clock::time_point idle_since_ = std::chrono::steady_clock::now();
};

class H2UpstreamClient {
 public:
  H2UpstreamClient(boost::asio::io_context& io, UpstreamTarget target, H2ClientLimits limits = {});
  ~H2UpstreamClient();
  H2UpstreamClient(const H2UpstreamClient&) = delete;
  H2UpstreamClient& operator=(const H2UpstreamClient&) = delete;

  boost::asio::io_context& io() { return io_; }
  std::string name() const;
  bool tls() const { return target_.tls != nullptr; }
  // A stream for `driver`: H2StreamDriver::on_attached(), inline when a connection has room, or
  // later; or on_connect_failed().
  void acquire(const std::shared_ptr<H2StreamDriver>& driver);
  // A stream ended or a connection changed: waiting requests may go now.
  void serve_waiters();
  // A connection opened elsewhere whose ALPN said h2 (agent/upstream_select.h).
  void adopt(std::shared_ptr<UpstreamConnection> conn);
  void on_conn_closed(H2UpstreamConn* conn);

  size_t connections() const { return conns_.size(); }
  uint64_t connections_opened() const { return opened_; }
  size_t waiting() const { return waiting_.size(); }
  void clear();

 private:
  enum class Fit { kYes, kNo, kLater, kRefuses };
  static Fit fit(const H2UpstreamConn& c, const H2StreamDriver& d);
  void open_connection();
  void arm_sweep();

  boost::asio::io_context& io_;
  UpstreamTarget target_;
  H2ClientLimits limits_;
  std::vector<std::shared_ptr<H2UpstreamConn>> conns_;
  std::deque<std::weak_ptr<H2StreamDriver>> waiting_;
  size_t opening_ = 0;
  uint64_t opened_ = 0;
  boost::asio::steady_timer sweep_;
  bool sweep_armed_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

class H2StreamDriver final : private UpstreamTransport,
                             public ExchangeDriver,
                             public std::enable_shared_from_this<H2StreamDriver> {
 public:
  H2StreamDriver(H2UpstreamClient& client, wt::Session& session, wt::StreamId id, tunnel::RequestHead head,
                 DoneFn done, ExchangeLimits limits = {});
  ~H2StreamDriver() override;

  // From the client and the connection.
  void on_attached(const std::shared_ptr<H2UpstreamConn>& conn);
  void on_connect_failed(const std::string& why, bool tls);
  void on_stream_event();
  bool waiting() const { return waiting_; }
  bool websocket() const { return websocket_; }

 private:
  // UpstreamTransport
  void connect() override;
  void write(std::string_view bytes) override { start_write(bytes, false); }
  void write_last(std::string_view bytes) override { start_write(bytes, true); }
  void read(size_t max) override;
  void close() override;
  void release() override;
  void shutdown_write() override;
  std::string name() const override { return client_.name(); }

  void start_write(std::string_view bytes, bool fin);
  void progress_write();
  void progress_read();
  void detach(bool cancel);

  H2UpstreamClient& client_;
  bool websocket_;  // the request asks for a WebSocket: an extended CONNECT (RFC 8441)
  std::shared_ptr<H2UpstreamConn> conn_;
  int32_t h2_id_ = 0;
  uint64_t gen_ = 0;
  bool waiting_ = false;
  // The write in progress.
  bool writing_ = false;
  std::string_view pending_;
  size_t pending_off_ = 0;
  bool pending_fin_ = false;
  // The read in progress.
  bool reading_ = false;
  size_t read_max_ = 0;
  bool head_delivered_ = false;
  bool framed_ = false;  // the head went to the codec framed: the end carries the trailers
  std::vector<uint8_t> read_buf_;
};

}  // namespace wtmesh::agent
