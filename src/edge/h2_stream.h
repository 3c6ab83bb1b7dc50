// One request stream of a public HTTP/2 connection (edge/h2_connection.h), private to the codec: what
// nghttp2's callbacks recorded for it (header fields, DATA, END_STREAM, its close), the
// PublicExchange that carries it, and the response waiting for nghttp2's data source.
//
// The callbacks only call the on_*() recorders and read(); step() runs the exchange after the library
// returned. h2_stream.cc maps requests and responses; h2_websocket.cc the extended CONNECT (RFC 8441)
// that carries a WebSocket; h2_webtransport.cc the one that carries a WebTransport session.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "edge/connect_websocket.h"
#include "edge/h2_connection.h"
#include "edge/public_exchange.h"
#include "edge/response_body.h"
#include "wt/h2_session.h"

namespace wtmesh::edge {

class H2Connection::Stream final : public ExchangeSink, private wt::H2OutputListener {
 public:
  Stream(H2Connection& conn, int32_t id)
      : started_(conn.now()), conn_(conn), id_(id), ex_(conn.dir_, conn.config_.exchange, *this), resp_(conn.dir_) {}
  ~Stream() override {
    wt_cancel();
    drop_response();
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // --- recorded by the callbacks ---
  // Returns false once the header list (or trailer section) is more than twice max_header_bytes: a
  // header bomb (one large HPACK table entry referenced thousands of times in a 16 KiB frame), whose
  // remaining fields the connection has nghttp2 skip (H2Connection::Callbacks::on_header).
  bool on_header(std::string_view name, std::string_view value) {
    header_bytes_ += name.size() + value.size() + 32;
    if (header_bytes_ > 2 * conn_.config_.max_header_bytes) return false;
    if (head_done_) {  // a trailer section: kept for the end of the body, within the same bound
      if (header_bytes_ <= conn_.config_.max_header_bytes && !done_) req_trailers_.emplace_back(name, value);
      return true;
    }
    if (header_bytes_ > conn_.config_.max_header_bytes) {
      too_large_ = true;
      fields_.clear();
      return true;
    }
    if (!too_large_) fields_.emplace_back(name, value);
    return true;
  }
  void on_head_done(bool end_stream) {
    if (head_done_) {
      if (end_stream) client_ended_ = true;  // a trailer section ends the request
      return;
    }
    head_done_ = true;
    client_ended_ = end_stream;
  }
  void on_data(std::span<const uint8_t> data) {
    arrived_ += data.size();
    if (done_ && !wt_) {
      discard_ += data.size();
    } else {
      body_.insert(body_.end(), data.begin(), data.end());
    }
  }
  void on_end_stream() { client_ended_ = true; }
  void on_closed(uint32_t code) {
    closed_ = true;
    close_code_ = code;
  }
  void on_end_stream_sent() { response_sent_ = true; }
  // nghttp2's data source: copies buffered response bytes.
  ssize_t read(uint8_t* buf, size_t length, uint32_t* flags);

  // --- run by the connection after the library returned ---
  // Returns false when the stream is over and can be forgotten.
  bool step();
  void cancel_silently();
  std::optional<ExchangeOutcome> cancel(std::string_view why);
  std::optional<SteadyTime> next_deadline() const { return done_ ? std::nullopt : ex_.next_deadline(); }
  void on_tick(SteadyTime now) {
    if (!done_) ex_.on_tick(now);
  }
  size_t buffered() const { return body_.size() - body_pos_ + ex_.buffered_body(); }
  // A WebSocket runs on it (the agent switched protocols and the exchange goes on).
  bool upgraded() const { return (ws_.switched() && !done_) || webtransport(); }
  // A WebTransport session runs on it (accepted and not over).
  bool webtransport() const { return wt_ && wt_->state() != wt::H2Session::State::kClosed; }

  // --- ExchangeSink ---
  void send_continue() override;
  void send_response_head(const tunnel::ResponseHead& head, bool head_request, bool reusable) override;
  void send_response_body(std::span<const uint8_t> data, const StreamRef& credit) override;
  void send_interim(const tunnel::ResponseHead& head) override;
  void send_trailers(const tunnel::HeaderPairs& trailers) override;
  void send_response_end(bool complete) override;
  void send_error(int status, std::string_view detail, bool reusable, bool from_agent) override;
  void exchange_done(const ExchangeOutcome& outcome) override;
  void exchange_progress() override;

  // Log fields.
  std::string method_, host_, target_;
  SteadyTime started_;
  int status_ = 0;
  uint64_t bytes() const { return resp_.bytes(); }

 private:
  void begin();
  // Body bytes go to the exchange as far as it takes them; their window goes back to the client.
  void feed();
  // The edge answers by itself, before any exchange.
  void answer(int status, std::string_view detail);
  void submit(const std::string& status, const tunnel::HeaderPairs& fields, bool with_body);
  void resume();
  void rst_now(uint32_t code);
  // Response bytes that will never reach the client still owe their credit to the agent.
  void drop_response();

  // h2_websocket.cc. An extended CONNECT (`protocol` = :protocol) becomes the RFC 6455 handshake
  // request in `r`; false when the edge answered it itself.
  bool begin_websocket(ExchangeRequest& r, std::string_view protocol);
  // The agent's answer while asked: a 101 is checked against the edge's key and answered with a 200,
  // or a 502 when it does not match (true); any other status is a normal response (false).
  bool switch_websocket(const tunnel::ResponseHead& head);
  // The status the client got for an exchange's `status` (a switched WebSocket's 101 was a 200).
  int client_status(int status) const { return ws_.client_status(status); }
  // A clean close of an upgraded stream while the client's last bytes still wait for the agent.
  bool draining() const;

  // h2_webtransport.cc. An extended CONNECT with `:protocol webtransport` (draft-ietf-webtrans-http2-15):
  // the acceptor's answer is sent, and on 2xx an H2Session carries the DATA payload. False when the
  // connection offers no WebTransport (the caller answers 501 as for any other protocol).
  bool begin_webtransport(const tunnel::HeaderPairs& fields);
  // The edge refuses the session request itself (HEADERS with END_STREAM, no body).
  void refuse_webtransport(int status, const tunnel::HeaderPairs& fields);
  // The session's step: DATA in, output's progress, the stream's end. False when it is over.
  bool wt_step();
  // nghttp2's data source for the session's output: copies, and step() consumes after the library.
  ssize_t wt_read(uint8_t* buf, size_t length, uint32_t* flags);
  // The connection or stream is gone: the session hears a reset (its handler's on_closed).
  void wt_cancel();
  void on_output_ready() override;

  H2Connection& conn_;
  const int32_t id_;
  PublicExchange ex_;

  std::vector<std::pair<std::string, std::string>> fields_;
  size_t header_bytes_ = 0;
  bool too_large_ = false;
  bool head_done_ = false;
  tunnel::HeaderPairs req_trailers_;  // the client's trailing HEADERS (what fits max_header_bytes)
  std::vector<uint8_t> body_;  // request body bytes not yet taken by the exchange, from body_pos_
  size_t body_pos_ = 0;
  size_t discard_ = 0;  // request body bytes received after the exchange ended
  size_t arrived_ = 0;  // request body bytes received since the exchange last heard of them
  bool client_ended_ = false;
  bool closed_ = false;
  uint32_t close_code_ = 0;

  bool begun_ = false;
  bool end_delivered_ = false;
  bool done_ = false;
  ConnectWebSocket ws_;  // an extended CONNECT for a WebSocket (RFC 8441); DATA waits while asked

  ResponseBody resp_;
  bool resp_eof_ = false;
  tunnel::HeaderPairs trailers_;  // sent as a trailing HEADERS after the last DATA
  bool trailers_due_ = false;     // read() ended the DATA without END_STREAM: submit them
  bool no_body_ = false;
  std::optional<uint64_t> announced_;  // the response's content-length
  bool deferred_ = false;
  bool response_sent_ = false;
  std::optional<uint32_t> rst_code_;  // reset once the response is out, if the client still sends
  bool rst_sent_ = false;

  std::unique_ptr<wt::H2Session> wt_;  // an accepted WebTransport session (h2_webtransport.cc)
  size_t wt_taken_ = 0;                // output bytes the data source copied, consumed at step()
  bool wt_fin_delivered_ = false;      // the client's END_STREAM was given to the session
};

}  // namespace wtmesh::edge
