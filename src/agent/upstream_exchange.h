// One tunnel request relayed to the local upstream over HTTP/1.1: the Asio side of a request
// stream (docs/protocol.md §4). It takes a pooled keep-alive connection (or connects), writes the
// request head, streams the request body from the WebTransport stream to TCP and the response from
// TCP back to the stream, with backpressure both ways:
//  - request body bytes are consume()d on the stream only once TCP accepted them;
//  - the upstream is read only when the stream took everything decoded so far (on_writable resumes).
// Memory per exchange is a few 64 KiB buffers plus what the stream's flow-control window lets in.
// A failure before the response head becomes an in-band 502 with `wtmesh-error`; after it, the
// stream is reset with code 1. A connection goes back to the pool only after a clean, complete,
// keep-alive exchange.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/upstream_http.h"
#include "agent/upstream_pool.h"
#include "tunnel/wire.h"
#include "wt/session.h"

namespace wtmesh::agent {

struct ExchangeLimits {
  size_t read_chunk = 64 * 1024;       // upstream bytes read at a time
  size_t wt_chunk = 64 * 1024;         // decoded body bytes handed to the stream at a time
  size_t max_request_hold = 16 << 20;  // request body bytes held unconsumed (flow control keeps it far lower)
  ResponseDecoder::Limits decoder;
};

// What happened, for the one-line request log.
struct ExchangeResult {
  std::string method;
  std::string target;
  int status = 0;               // 0 if no response head was sent
  uint64_t response_bytes = 0;  // body bytes sent toward the edge
  uint64_t request_bytes = 0;   // body bytes written to the upstream
  bool reused_connection = false;
  bool failed = false;  // reset, aborted, or answered with a 502 of ours
  std::string error;    // why, as a sentence
  std::chrono::steady_clock::duration duration{};
};

class UpstreamExchange : public std::enable_shared_from_this<UpstreamExchange> {
 public:
  using DoneFn = std::function<void(const ExchangeResult&)>;

  UpstreamExchange(boost::asio::io_context& io, wt::Session& session, wt::StreamId id, UpstreamPool& pool,
                   tunnel::RequestHead head, DoneFn done, ExchangeLimits limits = {});
  ~UpstreamExchange();

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
  // The stream is finished in both directions from this exchange's point of view.
  bool finished() const { return response_done_ && request_done_; }
  wt::StreamId stream_id() const { return id_; }

 private:
  void connect();
  void on_connected(std::unique_ptr<UpstreamPool::Socket> socket, bool reused);
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
  bool can_retry() const;
  void retry();
  std::string upstream_name() const;

  boost::asio::io_context& io_;
  wt::Session* session_;
  wt::StreamId id_;
  UpstreamPool& pool_;
  tunnel::RequestHead head_;
  DoneFn done_;
  ExchangeLimits limits_;
  std::chrono::steady_clock::time_point started_;
  ExchangeResult result_;

  std::unique_ptr<UpstreamPool::Socket> socket_;
  bool reused_ = false;
  bool retried_ = false;
  bool connecting_ = false;
  std::string request_head_;  // kept until written, and for a retry
  bool chunked_ = false;
  bool head_written_ = false;

  // Request body: received from the stream, not yet accepted by TCP (nor consumed).
  std::vector<uint8_t> body_held_;
  bool body_fin_ = false;
  uint64_t body_received_ = 0;
  bool writing_ = false;
  std::string write_buf_;
  size_t write_consumes_ = 0;
  bool last_chunk_sent_ = false;
  bool request_complete_ = false;   // every request byte was written to the upstream
  bool request_abandoned_ = false;  // the rest of the request body is not wanted
  bool request_done_ = false;       // complete or abandoned
  uint64_t gen_ = 0;                // bumped when the upstream connection is dropped: stale handlers ignore

  // Response.
  std::optional<ResponseDecoder> decoder_;
  // Allocated on the first read, never zero-filled (a 64 KiB memset per exchange was ~15 % of the
  // agent's CPU).
  std::unique_ptr<uint8_t[]> read_buf_;
  bool reading_ = false;
  bool got_response_bytes_ = false;
  std::vector<uint8_t> to_stream_;  // encoded head / body bytes not yet taken by the stream
  bool fin_after_ = false;          // send FIN once to_stream_ is empty
  bool response_done_ = false;      // FIN sent, or the stream was reset
  bool reported_ = false;
  bool aborted_ = false;  // the session or the stream is gone: no more I/O toward either side
};

}  // namespace wtmesh::agent
