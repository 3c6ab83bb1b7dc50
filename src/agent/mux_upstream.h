// The Asio tier shared by the multiplexed upstreams (HTTP/2: agent/h2_upstream_driver.h; HTTP/3:
// agent/h3_upstream_driver.h): many tunnel requests share few connections to the local service.
//
//  - MuxConn: one multiplexed connection as its streams see it (open a request stream, send body
//    bytes, take the response head and body, credit what was taken, learn the stream's end or
//    failure). HTTP/2 implements it on nghttp2 over a TCP/TLS byte stream, HTTP/3 on h3::Connection
//    over our QUIC client.
//  - MuxUpstreamClient (one per tunnel and protocol): the connections. A request gets a stream on a
//    connection with room (under the peer's stream limit and ours); when none has room a new
//    connection is opened, up to max_connections; beyond that requests wait in a bounded queue (over
//    it: a 502). A connection with no stream for idle_timeout is closed (GOAWAY). After the peer's
//    GOAWAY a connection takes no new streams; the open ones finish, refused ones are replayed once on
//    another connection. How a connection is opened is the protocol's (open_connection()).
//  - MuxStreamDriver: one request, an UpstreamDriver whose UpstreamTransport is a stream of a shared
//    connection, with the usual UpstreamExchange core and the H2Codec (whose HTTP semantics are the
//    same for HTTP/2 and HTTP/3; agent/h2_codec.h says what crosses between them). Backpressure:
//    request bytes count as written (consumed on the tunnel stream) once the connection's per-stream
//    send buffer took them; response bytes are credited to the upstream (WINDOW_UPDATE / QUIC
//    MAX_STREAM_DATA) once the exchange took them, which it does only when the tunnel stream had room.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "agent/upstream_driver.h"
#include "agent/upstream_exchange.h"
#include "tunnel/wire.h"

namespace wtmesh::agent {

class MuxStreamDriver;
class MuxUpstreamClient;

// A response head as a multiplexed stream delivers it.
struct MuxHead {
  int status = 0;
  tunnel::HeaderPairs headers;  // regular fields, lower-case, pseudo-headers removed
  bool end_stream = false;      // no body follows
};

// The request's fields for a multiplexed stream from the codec's head (tunnel encoding): pseudo-headers
// first; a CONNECT (the codec's WebSocket) gets `:protocol: websocket` (RFC 8441 / RFC 9220).
tunnel::HeaderPairs request_fields(tunnel::RequestHead head, bool tls);

class MuxConn {
 public:
  virtual ~MuxConn() = default;

  // --- for the client ---
  // Can take a new stream now (open, settled enough, not going away, under the stream limits).
  virtual bool usable() const = 0;
  // The peer's SETTINGS were seen (extended CONNECT is known).
  virtual bool settled() const = 0;
  virtual bool connect_protocol() const = 0;
  virtual bool closed() const = 0;
  // Sends GOAWAY (no new streams) and closes the connection.
  virtual void shutdown_and_close() = 0;
  virtual void close() = 0;
  size_t streams() const { return streams_.size(); }
  std::chrono::steady_clock::time_point idle_since() const { return idle_since_; }

  // --- for a stream ---
  // Opens a request stream with `fields` (pseudo-headers first); nullopt with `error` when refused.
  virtual std::optional<int64_t> open(const tunnel::HeaderPairs& fields, bool end_stream,
                                      std::string* error) = 0;
  // Request body bytes: takes what fits in the stream's send buffer; `fin` once everything was taken.
  virtual size_t send(int64_t id, std::span<const uint8_t> data, bool fin) = 0;
  // Ends the request direction with a trailing HEADERS of `trailers` (regular fields) after every byte
  // send() took, instead of a plain END_STREAM/FIN. False when the stream cannot take it.
  virtual bool send_trailers(int64_t id, const tunnel::HeaderPairs& trailers) = 0;
  // Interim (1xx, not 101) heads received before the final head, oldest first (at most
  // tunnel::kMaxInterimHeads kept).
  virtual std::vector<MuxHead> take_interim(int64_t id) = 0;
  virtual std::optional<MuxHead> take_head(int64_t id) = 0;
  // The trailer section (regular fields), complete once finished(id).
  virtual tunnel::HeaderPairs take_trailers(int64_t id) = 0;
  virtual std::span<const uint8_t> received(int64_t id) const = 0;
  // The exchange took `n` received bytes: flow-control credit for the upstream.
  virtual void consume(int64_t id, size_t n) = 0;
  // The response ended and every received byte was consumed.
  virtual bool finished(int64_t id) const = 0;
  // The stream failed (reset, GOAWAY, connection gone): why, as a sentence.
  virtual std::optional<std::string> failure(int64_t id) const = 0;
  // The stream failed because the upstream refused it unprocessed (REFUSED_STREAM, GOAWAY,
  // H3_REQUEST_REJECTED): a request on it may be replayed whatever its method.
  virtual bool refused(int64_t id) const = 0;
  void attach(int64_t id, MuxStreamDriver* driver) { streams_[id] = driver; }
  // The driver is done with the stream (cancelled or finished).
  virtual void detach(int64_t id, bool cancel) = 0;
  // Moves bytes and tells streams what changed; call after any stream call.
  virtual void pump() = 0;

 protected:
  // Drops `id` from the attached streams (and stamps the idle time when it was the last).
  void forget_stream(int64_t id);
  // Tells every attached stream to look at its state again (the connection failed).
  void notify_all();

  std::map<int64_t, MuxStreamDriver*> streams_;
  std::chrono::steady_clock::time_point idle_since_ = std::chrono::steady_clock::now();
};

struct MuxClientLimits {
  size_t max_connections = 4;  // per upstream
  size_t max_waiting = 1024;   // requests waiting for a stream when every connection is full
  std::chrono::milliseconds idle_timeout{30000};
};

class MuxUpstreamClient {
 public:
  MuxUpstreamClient(const MuxUpstreamClient&) = delete;
  MuxUpstreamClient& operator=(const MuxUpstreamClient&) = delete;
  virtual ~MuxUpstreamClient();

  boost::asio::io_context& io() { return io_; }
  // "127.0.0.1:PORT", for messages.
  virtual std::string name() const = 0;
  // "HTTP/2", "HTTP/3": for messages.
  virtual const char* protocol() const = 0;
  virtual bool tls() const = 0;
  // A stream for `driver`: MuxStreamDriver::on_attached(), inline when a connection has room, or
  // later; or on_connect_failed().
  void acquire(const std::shared_ptr<MuxStreamDriver>& driver);
  // A stream ended or a connection changed: waiting requests may go now.
  void serve_waiters();
  void on_conn_closed(MuxConn* conn);

  size_t connections() const { return conns_.size(); }
  uint64_t connections_opened() const { return opened_; }
  size_t waiting() const { return waiting_.size(); }
  // Closes every connection (derived destructors call it while their parts are alive).
  void clear();

 protected:
  MuxUpstreamClient(boost::asio::io_context& io, MuxClientLimits limits, size_t streams_per_connection);
  // Starts a new connection; it ends in connection_ready() or connection_failed().
  virtual void open_connection() = 0;
  void connection_ready(std::shared_ptr<MuxConn> conn);
  // An opening connection failed: every waiter hears `why` (the next request tries again).
  void connection_failed(const std::string& why, bool tls_failed);
  // A connection that is already open (ALPN probe) joins.
  void add_connection(std::shared_ptr<MuxConn> conn);
  std::weak_ptr<int> alive() const { return alive_; }

 private:
  enum class Fit { kYes, kNo, kLater, kRefuses };
  static Fit fit(const MuxConn& c, const MuxStreamDriver& d);
  void start_opening();
  void arm_sweep();
  std::string no_websocket() const;

  boost::asio::io_context& io_;
  MuxClientLimits limits_;
  size_t streams_per_connection_;
  std::vector<std::shared_ptr<MuxConn>> conns_;
  std::deque<std::weak_ptr<MuxStreamDriver>> waiting_;
  size_t opening_ = 0;
  uint64_t opened_ = 0;
  boost::asio::steady_timer sweep_;
  bool sweep_armed_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

class MuxStreamDriver final : private UpstreamTransport,
                              public ExchangeDriver,
                              public std::enable_shared_from_this<MuxStreamDriver> {
 public:
  MuxStreamDriver(MuxUpstreamClient& client, wt::Session& session, wt::StreamId id,
                  const tunnel::RequestHead& head, DoneFn done, ExchangeLimits limits = {});
  ~MuxStreamDriver() override;

  // From the client and the connection.
  void on_attached(const std::shared_ptr<MuxConn>& conn);
  void on_connect_failed(const std::string& why, bool tls);
  void on_stream_event();
  bool waiting() const { return waiting_; }
  bool websocket() const { return websocket_; }

 private:
  // UpstreamTransport
  void connect() override;
  void write(std::string_view bytes) override { start_write(bytes, false); }
  void write_last(std::string_view bytes, const tunnel::HeaderPairs& trailers) override {
    pending_trailers_ = trailers;
    start_write(bytes, true);
  }
  void read(size_t max) override;
  void close() override;
  void release() override;
  void shutdown_write() override;
  std::string name() const override { return client_.name(); }
  bool unprocessed() const override;

  void start_write(std::string_view bytes, bool fin);
  void report_write(std::string error);
  void progress_write();
  void progress_read();
  void detach(bool cancel);

  MuxUpstreamClient& client_;
  bool websocket_;  // the request asks for a WebSocket: an extended CONNECT (RFC 8441 / RFC 9220)
  std::shared_ptr<MuxConn> conn_;
  std::optional<int64_t> sid_;
  uint64_t gen_ = 0;
  bool waiting_ = false;
  // The write in progress.
  bool writing_ = false;
  std::string_view pending_;
  size_t pending_off_ = 0;
  bool pending_fin_ = false;
  tunnel::HeaderPairs pending_trailers_;  // the request's trailers: sent after the last byte (§4.1)
  // The read in progress.
  bool reading_ = false;
  size_t read_max_ = 0;
  bool head_delivered_ = false;
  bool framed_ = false;  // the head went to the codec framed: the end carries the trailers
  std::vector<uint8_t> read_buf_;
};

}  // namespace wtmesh::agent
