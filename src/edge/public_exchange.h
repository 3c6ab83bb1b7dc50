// One public request/response exchange on the edge, independent of the HTTP version that carried it
// (sans-I/O). A codec (today edge/http1_connection.h, HTTP/1.1) parses the client's request and hands the
// exchange a version-neutral ExchangeRequest, then the request body as plain bytes; the exchange
// answers through ExchangeSink, which the codec serialises for its version.
//
//   client ⇄ codec (Http1Connection: HTTP/1.1 framing, keep-alive, header deadline, output buffer)
//              │ begin() / on_request_body() / on_request_end() / cancel()      ▲ ExchangeSink
//              ▼                                                                │
//            PublicExchange (route, open retry, tunnel heads, body credit, error pages)
//              │ TunnelDirectory: route(), open_request(), write(), consume()
//              ▼
//            the agent's request stream
//
// The exchange owns: the route lookup (asynchronous, cancelled when the exchange is), opening a
// request stream with retries until open_timeout (then 502, 429 for a client over its stream limit,
// 503 when no route arrived), the tunnel request head (forwarding headers added) and the agent's
// response head, request body backpressure (at most body_chunk bytes taken ahead of the stream), the
// request body progress deadline (408), the response body's length checks, and the edge's own answers
// (404, 502, 503, 429, 408, 400 for a broken body). The response body is handed to the sink with the
// stream it came from: the sink returns that credit (TunnelDirectory::consume) once the client has
// taken the bytes, which may be after the exchange ended.
//
// An upgraded exchange (ExchangeRequest::upgrade set and the agent answering 101) becomes a byte
// stream both ways after the response head: request bytes go on the stream as they come, the agent's
// bytes go to the sink, each direction ends with its own FIN. The request stream carries `upgrade:
// <proto>` and has a body (the bytes after the 101); the codec feeds none before the answer, and the
// body progress clock does not run while the answer is awaited. Any other answer is a normal response
// to a bodiless request: the exchange ends the request (FIN) itself. HTTP/1.1 asks for it for
// WebSocket (Http1Connection), HTTP/2 and HTTP/3 for an extended CONNECT (H2Connection, RFC 8441;
// H3Requests, RFC 9220; both through ConnectWebSocket).
//
// An HTTP/2 stream or HTTP/3 request stream adds a codec beside Http1Connection that builds an
// ExchangeRequest from its pseudo-headers and fields, feeds DATA frames to on_request_body(), and
// implements ExchangeSink with HEADERS/DATA frames (an error page is a HEADERS + DATA; "not reusable"
// resets the stream instead of closing the connection). Nothing here changes for it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"
#include "edge/public_limits.h"
#include "edge/tunnel_directory.h"
#include "tunnel/framed_body.h"
#include "tunnel/wire.h"

namespace wtmesh::edge {

// What a visitor reads when the tunnel's agent could not get an answer from its local service (its
// reason stays in the agent's log and the edge's request log, never in the public response).
inline constexpr std::string_view kUpstreamFailedPage =
    "The tunnel's local service did not answer. Its owner can find why in the wtmesh agent's log.";

struct ClientInfo {
  std::string ip;         // textual address of the public client (IPv6 without brackets)
  bool tls = true;        // arrived on the HTTPS listener
  std::string limit_key;  // what per-client limits count (client_limit_key); "" = ip
};

// A request head as every HTTP version can state it.
struct ExchangeRequest {
  std::string method;
  std::string target;     // origin-form ("/path?q") or "*"
  std::string authority;  // as the client sent it (Host or :authority)
  std::string host;       // normalised (lower-case, no port): what routes match
  // End-to-end fields only: the codec drops its own connection-level ones (HTTP/1.1 hop-by-hop,
  // Host, Content-Length, Expect: 100-continue). Forwarding headers are the exchange's.
  tunnel::HeaderPairs headers;
  bool has_body = false;                   // body bytes follow (on_request_body ... on_request_end)
  std::optional<uint64_t> content_length;  // known length; nullopt: unknown (chunked, DATA frames)
  bool head_request = false;               // HEAD: the response has no body
  bool expect_continue = false;            // the client waits for 100 Continue before the body
  std::string upgrade;                     // protocol asked for ("websocket"); "" = none
  // The body may end with a trailer section (HTTP/2, HTTP/3, chunked HTTP/1.1): with the session
  // feature `trailers` the tunnel request body goes framed (§4.1) and on_request_end() carries them.
  bool may_have_trailers = false;
};

// The tunnel request head for `req`: its fields plus X-Forwarded-For/-Proto/-Host and Forwarded (the
// client's own merged in front). 0, or an HTTP status (431) with `detail` when it cannot be sent.
int tunnel_request_head(const ExchangeRequest& req, const ClientInfo& client, uint32_t tunnel_id,
                        tunnel::RequestHead& out, std::string* detail);

// How an exchange ended, for the request log and the connection.
struct ExchangeOutcome {
  int status = 0;         // sent to the client; 499 when the client left before a response head
  std::string note;       // why the edge answered itself, or how the exchange ended early
  bool reusable = true;   // the connection (or HTTP/1.1 keep-alive) may carry another request
  bool completed = true;  // the exchange ran to an end (false: broken off, the connection closes)
};

// What a codec implements for the exchange it carries. Calls come from the exchange's inputs (the
// codec's own calls, directory events, on_tick).
class ExchangeSink {
 public:
  virtual ~ExchangeSink() = default;
  // The stream is open and the client asked for 100-continue.
  virtual void send_continue() = 0;
  // The agent's final response head (status >= 200, or 101 for an upgrade). `reusable` false: the
  // connection cannot carry another request after this one.
  virtual void send_response_head(const tunnel::ResponseHead& head, bool head_request, bool reusable) = 0;
  // Response body bytes (raw bytes once upgraded). `credit`: give TunnelDirectory::consume(credit, n)
  // once the client has taken them, or when they are dropped.
  virtual void send_response_body(std::span<const uint8_t> data, const StreamRef& credit) = 0;
  // An interim response from the service (103 Early Hints, 102, 104; never 100, which is the edge's
  // own answer to Expect: send_continue; never 101). Before send_response_head. Default: dropped.
  virtual void send_interim(const tunnel::ResponseHead& /*head*/) {}
  // The response's trailer section (not empty), right before send_response_end(true). Default: dropped.
  virtual void send_trailers(const tunnel::HeaderPairs& /*trailers*/) {}
  // The response body ended; `complete` false when it is shorter than announced.
  virtual void send_response_end(bool complete) = 0;
  // A whole response generated by the edge (page with `detail`). `from_agent`: the agent's
  // wtmesh-error, not the edge's own answer.
  virtual void send_error(int status, std::string_view detail, bool reusable, bool from_agent) = 0;
  // The exchange is over: no more calls for it. The exchange may be begun again from here.
  virtual void exchange_done(const ExchangeOutcome& outcome) = 0;
  // Something changed during a directory event: more request body may be taken, output was added.
  virtual void exchange_progress() = 0;
};

struct ExchangeConfig {
  ClientInfo client;
  PublicLimits limits;  // open_timeout, open_retry, body_chunk, body_timeout, body_min_rate
  std::function<SteadyTime()> clock;
};

class PublicExchange final : public RequestStreamEvents, public RouteEvents {
 public:
  PublicExchange(TunnelDirectory& directory, ExchangeConfig config, ExchangeSink& sink);
  ~PublicExchange() override;
  PublicExchange(const PublicExchange&) = delete;
  PublicExchange& operator=(const PublicExchange&) = delete;

  // --- from the codec ---
  // A request head arrived (the exchange must be idle); `started` is when its first byte came.
  void begin(ExchangeRequest request, SteadyTime started);
  // Request body bytes the exchange can take now (0 while the stream holds back, before it opens,
  // and between exchanges). The codec decodes no more than this ahead.
  size_t request_body_room() const;
  // Decoded request body bytes (at most request_body_room()); raw bytes once upgraded.
  void on_request_body(std::span<const uint8_t> data);
  // The request body ended, with the client's trailer fields (forwarded only on a framed stream;
  // forbidden fields are dropped; a section over the tunnel's limits is a 400).
  void on_request_end(const tunnel::HeaderPairs& trailers = {});
  // Writes what the stream can take of the request head and body held here.
  void pump_request();
  // The request body cannot be decoded: 400 (or a broken-off exchange once a response is out).
  void on_request_error(const std::string& detail);
  // `n` bytes arrived from the client while this exchange reads its body (the progress clock).
  void note_client_bytes(size_t n);
  // The client left, or the connection is aborted: the stream and lookup are cancelled. Returns the
  // outcome to log when an exchange was under way (no exchange_done() follows).
  std::optional<ExchangeOutcome> cancel(std::string_view why);

  std::optional<SteadyTime> next_deadline() const;
  void on_tick(SteadyTime now);

  bool active() const { return phase_ != Phase::kIdle; }
  bool attached() const { return attached_; }
  bool response_started() const { return head_sent_; }
  bool upgraded() const { return upgraded_; }
  size_t buffered_body() const { return body_.size() - body_pos_; }

  // --- RequestStreamEvents ---
  void on_response_data(std::span<const uint8_t> data, bool fin) override;
  void on_request_writable() override;
  void on_stream_aborted(std::optional<uint32_t> code, std::string_view reason) override;
  void on_open_refused(OpenStatus status, std::string_view reason) override;
  void on_request_stopped(std::optional<uint32_t> code) override;
  // --- RouteEvents ---
  void on_route(const RouteLookup& route) override;

 private:
  enum class Phase { kIdle, kRouting, kOpening, kExchange };
  enum class Resp { kAwaitHead, kBody, kDiscard, kDone };
  enum class Body { kNone, kLength, kOpen };  // what the response body may carry

  SteadyTime now() const;
  void routed();
  void try_open();
  // The 429 (kClientLimit) or 502 (kBusy) of a stream that could not be opened in time.
  void refuse_open(OpenStatus status, bool reusable);
  void respond_local(int status, std::string_view detail, bool reusable);
  // GET /connect/ on a host no tunnel serves: the edge's demo page (edge/connect_page.h). False when
  // the request is not for it.
  bool serve_connect_page();
  // Visitor auth of the routed tunnel (edge/visitor_gate.h): false when the edge answered 401/403.
  bool admit_visitor(bool body_unread);
  // A whole response of the edge's own (a page it generates with extra fields, the connect page).
  void send_own_response(tunnel::ResponseHead head, std::string_view body, std::string note, bool reusable);
  void cancel_stream(uint32_t code);
  void start_response(tunnel::ResponseHead& head);
  void append_body(std::span<const uint8_t> data);
  void append_data(std::span<const uint8_t> data);
  void on_response_fin();
  void end_body();
  void response_complete();
  void maybe_finish();
  void reset();
  bool body_clock_running() const;
  void set_body_stalled(bool stalled);

  TunnelDirectory& dir_;
  ExchangeConfig config_;
  ExchangeSink& sink_;

  Phase phase_ = Phase::kIdle;
  ExchangeRequest req_;
  SteadyTime started_{};
  RouteLookup route_;
  uint64_t route_ticket_ = 0;
  uint64_t generation_ = 0;  // of begin() calls
  tunnel::RequestHead head_;
  SteadyTime open_deadline_{};
  SteadyTime next_retry_{};

  StreamRef ref_;
  bool attached_ = false;  // events flow; cancel/release pending
  std::vector<uint8_t> head_out_;
  size_t head_out_pos_ = 0;
  std::vector<uint8_t> body_;  // request body not yet taken by the stream (<= body_chunk)
  size_t body_pos_ = 0;
  bool req_end_ = false;         // the codec has no more request body
  bool framed_request_ = false;  // the request body goes framed (§4.1): chunks, then the trailers
  bool req_fin_sent_ = false;
  bool req_stopped_ = false;
  SteadyTime body_deadline_{};
  std::optional<SteadyTime> body_stalled_since_;

  Resp resp_ = Resp::kAwaitHead;
  tunnel::HeadReader<tunnel::ResponseHead> head_reader_;
  size_t interim_count_ = 0;                        // interim heads read (§4.1)
  std::optional<tunnel::FramedBodyReader> framed_;  // the head had the `framed` flag
  std::vector<std::span<const uint8_t>> pieces_;
  Body body_kind_ = Body::kNone;
  uint64_t body_length_ = 0;
  uint64_t resp_in_ = 0;
  bool head_sent_ = false;
  bool upgraded_ = false;     // 101: raw bytes both ways until each side's FIN
  bool close_after_ = false;  // not reusable
  int status_ = 0;
  std::string note_;
};

}  // namespace wtmesh::edge
