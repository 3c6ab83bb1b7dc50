// One tunnel request relayed to the local upstream (docs/protocol.md §4): the socket-free core.
//
// The agent's upstream side has three tiers:
//  - UpstreamExchange (here): the per-request state machine. Its stream side is the transport-neutral
//    wt::Session (request body in, ResponseHead + body out, credit, resets); its upstream side is an
//    UpstreamTransport (connect / write / read / close / release, completions come back as on_*()
//    calls). It owns no socket, timer or loop and never reads the clock.
//  - UpstreamCodec (upstream_codec.h): what the bytes mean (HTTP/1.1 today: Http1Codec).
//  - The driver (upstream_driver.h, AsioUpstreamDriver): the pooled TCP connection and the Asio reads
//    and writes; it implements UpstreamTransport and owns the core.
//
// Backpressure both ways:
//  - request body bytes are consume()d on the stream only once the transport wrote them upstream;
//  - the upstream is read only when the stream took everything decoded so far (on_writable resumes).
// A failure before the response head becomes an in-band 502 with `wtmesh-error`; after it, the stream
// is reset with code 1. A connection is released (to the pool) only after a clean, complete,
// keep-alive exchange; a reused connection that dies before answering is replayed once on a new one.
//
// Switching protocols (WebSocket, the codec's upgrade()): the head goes upstream at once, request body
// bytes wait for the 101. After a 101 the head goes to the stream and bytes are relayed raw both ways;
// the edge's FIN becomes the upstream's EOF (shutdown_write), the upstream's EOF the stream's FIN, and
// the connection is closed (never pooled) once both directions ended. Another answer is a normal
// response; the held bytes are dropped (credited) and the connection is not reused.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/upstream_codec.h"
#include "agent/upstream_http.h"
#include "common/read_size.h"
#include "tunnel/framed_body.h"
#include "tunnel/wire.h"
#include "wt/session.h"

namespace wtmesh::agent {

struct ExchangeLimits {
  size_t read_chunk = 64 * 1024;  // upstream bytes read at a time, at first
  // A response whose reads keep coming back full (a download: the upstream is ahead of us) gets
  // reads twice as large, up to this. Each read's bytes leave as QUIC trains of at most 64 KiB, and
  // a 64 KiB read made one full train and a ~1.6 KiB one: two sendmsg per read (bench/README.md,
  // "Bulk: the relay's buffers").
  size_t max_read_chunk = 256 * 1024;
  // Decoded body bytes handed to the stream at a time: at least max_read_chunk, so that one read is
  // decoded in one piece instead of moving the rest of the input forward after each slice.
  size_t wt_chunk = 256 * 1024;
  size_t max_request_hold = 16 << 20;  // request body bytes held unconsumed (flow control keeps it far lower)
  ResponseDecoder::Limits decoder;
  // The edge accepted the session feature `trailers` (docs/protocol.md §4.1): interim (1xx) heads are
  // forwarded and a response that may end with trailers is sent framed. Set per session.
  bool trailers = false;
};

// What happened, for the one-line request log.
struct ExchangeResult {
  std::string method;
  std::string target;
  int status = 0;               // 0 if no response head was sent
  uint64_t response_bytes = 0;  // body bytes sent toward the edge
  uint64_t request_bytes = 0;   // body bytes written to the upstream
  bool reused_connection = false;
  bool failed = false;                             // reset, aborted, or answered with a 502 of ours
  std::string error;                               // why, as a sentence
  std::chrono::steady_clock::duration duration{};  // filled in by the driver
};

// The upstream connection as the core sees it. Each call starts at most one operation of its kind;
// its completion comes back through the matching UpstreamExchange::on_*() call, never from inside the
// call itself, except connect(), which may call on_connected() inline with a pooled connection.
// close() and release() cancel whatever is pending: no completion arrives for it afterwards. close()
// may come more than once, and with no connection.
class UpstreamTransport {
 public:
  virtual ~UpstreamTransport() = default;
  // A connection: pooled (on_connected(true)) or new (on_connected(false) / on_connect_failed()).
  virtual void connect() = 0;
  // Writes all of `bytes` (kept valid by the caller until on_written() or close()).
  virtual void write(std::string_view bytes) = 0;
  // The request's last bytes (possibly none) for a codec whose end is the transport's (end_by_fin):
  // written, then the stream's request direction ends, with `trailers` as a trailer section when there
  // are any (HTTP/2 and HTTP/3 trailing HEADERS). on_written() as for write().
  virtual void write_last(std::string_view bytes, const tunnel::HeaderPairs& /*trailers*/) { write(bytes); }
  // Reads at most `max` bytes: on_read().
  virtual void read(size_t max) = 0;
  virtual void close() = 0;
  // Hands the idle connection back for another request (keep-alive).
  virtual void release() = 0;
  // Ends our direction (TCP FIN) once no write is pending; reads go on. A switched (101) exchange's
  // request direction ended.
  virtual void shutdown_write() = 0;
  // "127.0.0.1:8080", for error messages.
  virtual std::string name() const = 0;
  // The upstream said it did not process the request it failed (HTTP/2 REFUSED_STREAM or a stream
  // above GOAWAY's last id, HTTP/3 H3_REQUEST_REJECTED or GOAWAY): safe to replay whatever its method.
  // A dead HTTP/1.1 connection never says so.
  virtual bool unprocessed() const { return false; }
};

class UpstreamExchange {
 public:
  using DoneFn = std::function<void(const ExchangeResult&)>;

  UpstreamExchange(wt::Session& session, wt::StreamId id, UpstreamTransport& transport,
                   std::unique_ptr<UpstreamCodec> codec, tunnel::RequestHead head, DoneFn done,
                   ExchangeLimits limits = {});
  UpstreamExchange(const UpstreamExchange&) = delete;
  UpstreamExchange& operator=(const UpstreamExchange&) = delete;

  // --- the stream side ---
  // Starts with the body bytes that arrived with the head (`fin`: the request body is complete).
  void start(std::span<const uint8_t> early_body, bool fin);
  // More request body from the stream (not consumed yet: the exchange consumes once written).
  void on_body(std::span<const uint8_t> data, bool fin);
  void on_writable();
  // The edge reset its side (the public client went away, code 3) / asked us to stop sending.
  void on_reset(std::optional<uint32_t> code);
  void on_stop_sending(std::optional<uint32_t> code);
  // The transport forgot the stream (both directions over) while the exchange was still running: the
  // edge stopped it in a way we were not told about (e.g. STOP_SENDING after its FIN). Abort.
  void on_stream_closed();
  // The session is gone: drop the upstream connection and never touch the session again.
  void on_session_gone();

  // --- the upstream side (UpstreamTransport completions) ---
  void on_connected(bool reused);
  // `why` is a lower-case sentence fragment ("connection refused"); `tls`: TCP connected but the TLS
  // handshake failed ("certificate not trusted for localhost: ...").
  void on_connect_failed(const std::string& why, bool tls = false);
  // `error` empty: every byte was written.
  void on_written(const std::string& error);
  // Bytes read (may be empty), then `eof` or `error` (non-empty: the read failed).
  void on_read(std::span<const uint8_t> data, bool eof, const std::string& error);

  // The stream is finished in both directions from this exchange's point of view.
  bool finished() const { return response_done_ && request_done_; }
  wt::StreamId stream_id() const { return id_; }
  const ExchangeResult& result() const { return result_; }

 private:
  void connect();
  void pump_request();
  void start_read();
  void process_response();
  bool flush_to_stream();
  // Failure before any response head: the 502 page, or a retry on a fresh connection.
  void fail_before_head(const std::string& why, bool transport_error);
  void fail_after_head(const std::string& why);
  void send_bad_gateway(const std::string& why);
  void protocol_error(const std::string& why);
  void close_upstream();
  void maybe_finish();
  // Gives up on the request body: credits every held byte from now on; with `stop`, also asks the
  // edge to stop sending it. `stop` is only used once our side of the stream is finished too: the
  // quic layer currently answers our own STOP_SENDING by resetting our sending side (see
  // quic/connection.cc stream_stop_sending), which would cut a response still in flight.
  void abandon_request(uint32_t code, bool stop);
  void on_response_complete();
  // The request direction of a switched exchange ended: EOF upstream; closed when both ended.
  void end_switched_request();
  bool can_retry() const;
  void retry();

  wt::Session* session_;
  wt::StreamId id_;
  UpstreamTransport& transport_;
  std::unique_ptr<UpstreamCodec> codec_;
  tunnel::RequestHead head_;
  DoneFn done_;
  ExchangeLimits limits_;
  ExchangeResult result_;

  bool connected_ = false;  // the transport holds a connection for us
  bool reused_ = false;
  bool retried_ = false;
  bool connecting_ = false;
  bool head_written_ = false;

  // Request body: received from the stream, not yet accepted by the upstream (nor consumed).
  std::vector<uint8_t> body_held_;
  tunnel::FramedBodyReader request_reader_;  // a framed request body (head_.framed, §4.1)
  std::vector<std::span<const uint8_t>> pieces_;
  tunnel::HeaderPairs request_trailers_;  // its trailer section (forwardable fields), once read
  bool body_fin_ = false;
  uint64_t body_received_ = 0;
  bool writing_ = false;
  std::string write_buf_;
  size_t write_consumes_ = 0;
  bool end_sent_ = false;           // the codec's end of the request body is written (or being)
  bool request_complete_ = false;   // every request byte was written to the upstream
  bool request_abandoned_ = false;  // the rest of the request body is not wanted
  bool request_done_ = false;       // complete or abandoned

  // Response.
  bool reading_ = false;
  ReadSize read_size_;     // limits_.read_chunk, growing to limits_.max_read_chunk
  size_t read_asked_ = 0;  // the pending read's size
  bool got_response_bytes_ = false;
  std::vector<uint8_t> to_stream_;  // encoded head / body bytes not yet taken by the stream
  bool fin_after_ = false;          // send FIN once to_stream_ is empty
  bool framed_ = false;             // the head went out framed: chunks, then the trailer section
  std::vector<uint8_t> chunk_;      // decoded body bytes of a framed response, before framing
  size_t interim_sent_ = 0;
  bool response_done_ = false;      // FIN sent, or the stream was reset
  bool reported_ = false;
  bool aborted_ = false;  // the session or the stream is gone: no more I/O toward either side
};

}  // namespace wtmesh::agent
