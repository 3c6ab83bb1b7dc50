// One public HTTP/1.1 connection on the edge, sans-I/O: plaintext bytes from the client in, bytes
// for the client out. The Asio glue (edge/public_listener.h) only moves bytes between this, the socket
// and TLS, and runs timers. This is the HTTP/1.1 codec side: each request it parses becomes a
// version-neutral PublicExchange (edge/public_exchange.h), which routes it, opens the tunnel request
// stream and answers through ExchangeSink, implemented here as HTTP/1.1 bytes.
//
// Per request: the head is parsed with Beast (bounded: kMaxPublicHeaderBytes → 431; malformed →
// 400 and close; smuggling-prone framing → 400/501; CONNECT → 405; Host checked), then handed over as
// an ExchangeRequest (end-to-end fields only). The exchange's response head becomes an HTTP/1.1 head
// (Content-Length when given, else chunked, or close-delimited for HTTP/1.0; no body for HEAD,
// 204, 304) and its body is streamed back. One request at a time per connection (no pipelining),
// keep-alive between them.
//
// WebSocket (RFC 6455): a GET without a body that asks `Connection: upgrade` + `Upgrade: websocket`
// becomes an exchange with `upgrade` set (other Upgrade values stay hop-by-hop and are dropped);
// nothing after its head is read until the answer. A 101 is written as `101 Switching Protocols` with
// Upgrade/Connection and the agent's Sec-WebSocket-* fields; from then on the connection is a raw byte
// relay: client bytes go to the exchange as request body (within request_body_room()), the agent's
// bytes to the client unframed, frames untouched. The client's EOF ends its direction (FIN to the
// agent) while the agent's goes on; the agent's FIN ends the other, and the connection closes once its
// bytes are out (what the client still sends is dropped). Any other answer is a normal response.
// upgraded() tells the glue to use websocket_idle_timeout.
//
// Backpressure both ways, nothing buffered whole:
//  - request body: decoded from the input buffer at most body_chunk bytes ahead of what the stream
//    took, so a slow agent leaves bytes in the (bounded) input buffer and the glue stops reading;
//  - response body: bytes from the stream are held until the glue reports them written to the
//    client (on_client_written), and only then consume()d, returning flow-control credit.
// The client going away (EOF, error, idle timeout → abort()) cancels the stream with code 3.
//
// Slow and greedy clients (the fields of PublicLimits, edge/public_limits.h; docs/architecture.md, "Limits"):
//  - output: no new request is parsed while more than max_pending_output bytes wait for the client,
//    whoever wrote them (the agent or the edge's own 404/502 pages), so a client that pipelines
//    requests and never reads stops being read instead of growing memory; and the
//    max_local_answers-th answer of the edge's own in a row closes the connection;
//  - header deadline: the first request's header section must be complete header_timeout after the
//    connection started, a later request's header_timeout after its first byte (408, or a silent
//    close when no byte came);
//  - body progress (kept by the exchange): the body deadline starts body_timeout ahead; each byte
//    received moves it 1/body_min_rate s later, never more than body_timeout ahead of now; while the
//    edge itself is not reading (the agent's stream is full) the clock stops. Missing it: 408 and close;
//  - streams (the exchange): at most max_streams_per_client of one tunnel's request streams per client
//    address (TunnelDirectory counts them); over it a request waits open_timeout for one of its own,
//    then 429;
//  - chunked framing: a chunk extension over kMaxChunkExtension bytes, or a chunk-size line or trailer
//    section that cannot fit the input buffer, is a 400.
#pragma once

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/byte_ring.h"
#include "common/time.h"
#include "edge/http_codec.h"
#include "edge/public_connection.h"
#include "edge/public_exchange.h"
#include "edge/public_limits.h"
#include "edge/tunnel_directory.h"
#include "tunnel/wire.h"

namespace wtmesh::edge {

struct Http1Config {
  ClientInfo client;
  size_t max_header_bytes = kMaxPublicHeaderBytes;
  // header_timeout, max_pending_output, max_local_answers here; the rest go to the exchange.
  PublicLimits limits;
  std::function<SteadyTime()> clock;  // default: steady_clock::now
  std::string alt_svc;                // "": none; else every response carries Alt-Svc: this
};

class Http1Connection final : public PublicConnection, public ExchangeSink {
 public:
  // Longest chunk extension of a chunked request body (400 beyond). A chunk-size line or trailer
  // section that does not fit the input buffer at all is a 400 too, instead of a stall.
  static constexpr size_t kMaxChunkExtension = 4 * 1024;

  using Hooks = ConnectionHooks;

  Http1Connection(TunnelDirectory& directory, Http1Config config, Hooks hooks);
  ~Http1Connection() override;
  Http1Connection(const Http1Connection&) = delete;
  Http1Connection& operator=(const Http1Connection&) = delete;

  // --- client side ---
  // Takes as much of `data` as the input buffer has room for and processes it; returns the count.
  size_t on_client_bytes(std::span<const uint8_t> data) override;
  // The client closed its side or the socket failed: any exchange in progress is cancelled.
  void on_client_eof() override;
  // The glue gives up on the connection (idle timeout, shutdown): same as on_client_eof().
  void abort(std::string_view why) override;
  // The next bytes for the client: the first contiguous run of the output (call again after
  // on_client_written() for the rest). Empty when there is nothing to send.
  std::span<const uint8_t> client_output() const override { return out_.front(); }
  void on_client_written(size_t n) override;
  // Close the connection once client_output() is empty.
  bool finished() const override { return finished_; }
  bool upgraded() const override { return upgrade_ == Upgrade::kSwitched; }
  void drain() override;
  // A fresh connection that sent nothing yet is not waited for (the drain's cut may end it).
  bool busy() const override { return !out_.empty() || (!finished_ && (head_started_ || ex_.attached())); }
  bool draining() const { return draining_; }

  // --- time ---
  std::optional<SteadyTime> next_deadline() const override;
  void on_tick(SteadyTime now) override;

  // --- introspection (tests, limits) ---
  size_t buffered_input() const override { return in_.size() + ex_.buffered_body(); }
  size_t buffered_output() const override { return out_.size(); }
  size_t output_capacity() const { return out_.capacity(); }
  size_t input_capacity() const { return max_input_; }
  bool exchange_active() const { return ex_.attached(); }
  uint64_t requests_completed() const { return completed_; }

  // --- ExchangeSink ---
  void send_continue() override;
  void send_interim(const tunnel::ResponseHead& head) override;
  void send_trailers(const tunnel::HeaderPairs& trailers) override;
  void send_response_head(const tunnel::ResponseHead& head, bool head_request, bool reusable) override;
  void send_response_body(std::span<const uint8_t> data, const StreamRef& credit) override;
  void send_response_end(bool complete) override;
  void send_error(int status, std::string_view detail, bool reusable, bool from_agent) override;
  void exchange_done(const ExchangeOutcome& outcome) override;
  void exchange_progress() override;

 private:
  enum class Phase { kHead, kExchange, kClosing };
  enum class Upgrade { kNone, kAsked, kSwitched };  // of the current request
  using Parser = boost::beast::http::request_parser<boost::beast::http::buffer_body>;
  struct Credit {
    uint64_t end = 0;  // absolute output offset after which `n` bytes of `ref` were written
    StreamRef ref;
    size_t n = 0;
  };

  SteadyTime now() const;
  void process();
  void step();
  void parse_head();
  void start_request();
  void feed_body();  // decodes request body bytes as far as the exchange takes them
  void relay_raw();  // after a 101: client bytes to the exchange as they are
  tunnel::HeaderPairs request_trailers() const;  // a finished chunked body's trailer fields
  // The H1 side answers by itself (400, 431, 405, 408 for the header section): no exchange.
  void answer(int status, std::string_view detail);
  void append_out(std::string_view bytes);
  // A response head with the Alt-Svc field added (when configured) before its final CRLF.
  void append_head(std::string head);
  void drop_output();
  void write_log(int status, std::string note);
  void close_connection();
  void reset_request();
  void on_slow_head();

  TunnelDirectory& dir_;
  Http1Config config_;
  Hooks hooks_;
  size_t max_input_;
  PublicExchange ex_;

  Phase phase_ = Phase::kHead;
  std::vector<uint8_t> in_;
  std::optional<Parser> parser_;
  // Beast keeps a reference to its chunk-header callback: it lives here, as long as the proxy.
  std::function<void(std::uint64_t, boost::beast::string_view, boost::system::error_code&)> on_chunk_header_;
  bool chunk_extension_too_long_ = false;
  size_t head_bytes_ = 0;  // of the current request's header section, counted by us (see parse_head)
  std::optional<SteadyTime> head_deadline_;  // set while a header section is due
  bool head_started_ = false;                // a byte of the current request arrived
  bool body_ended_ = false;                  // the exchange has the whole request body
  size_t body_input_ = 0;                    // input bytes the parser consumed after the head
  size_t head_fields_ = 0;                   // fields of the request head (the trailers come after)
  std::vector<uint8_t> decoded_;             // scratch for request body decoding
  bool in_process_ = false;
  bool again_ = false;

  // Current request, as the H1 side sees it.
  std::string method_, host_, target_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  SteadyTime started_{};
  Framing framing_ = Framing::kNone;  // of the response body being written
  bool te_trailers_ = false;          // the request said TE: trailers
  tunnel::HeaderPairs trailers_;      // for the last chunk
  uint64_t resp_bytes_ = 0;           // response body bytes put into the output
  bool close_after_ = false;          // close the connection after this response
  Upgrade upgrade_ = Upgrade::kNone;
  bool client_eof_ = false;      // upgraded: the client ended its direction
  bool upstream_ended_ = false;  // upgraded: the agent ended its direction

  // Output to the client.
  ByteRing out_;
  uint64_t out_base_ = 0;  // absolute offset of out_.front()[0] in the connection's output
  std::deque<Credit> credits_;
  bool finished_ = false;
  bool draining_ = false;  // drain(): this response is the last (Connection: close)
  uint64_t completed_ = 0;
  size_t local_answers_ = 0;  // the edge's own answers since the agent last answered
};

}  // namespace wtmesh::edge
