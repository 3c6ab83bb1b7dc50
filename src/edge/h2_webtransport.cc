// WebTransport over the public HTTP/2 side (draft-ietf-webtrans-http2-15): an extended CONNECT with
// `:protocol webtransport` is put to the acceptor the edge gave the connection (H2Config); on 2xx the
// stream's DATA payload is a wt::H2Session's capsule sequence, both ways, and the session's handler
// (an agent's tunnel session) never learns which transport carries it.
//
// House rules kept: nghttp2's callbacks only record (DATA into the stream's body buffer, END_STREAM,
// the close); the data source copies session output and the step after the library returned
// consumes it; the session is started only once its 2xx is submitted (§3.2: no capsule is processed
// before), and its DATA is handed in after that. HTTP/2 flow control: a stream's window comes back as
// the session takes the bytes (the session's own WT_MAX_DATA / WT_MAX_STREAM_DATA bound what it keeps).
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "edge/h2_stream.h"

namespace wtmesh::edge {

bool H2Connection::Stream::begin_webtransport(const tunnel::HeaderPairs& fields) {
  if (!conn_.config_.webtransport_acceptor) return false;
  wt::SessionInfo info;
  info.transport = wt::Transport::kHttp2;
  info.peer = conn_.config_.exchange.client.ip;
  std::string scheme;
  for (const auto& [n, v] : fields) {
    if (n == ":method") {
      method_ = v;
    } else if (n == ":scheme") {
      scheme = v;
    } else if (n == ":authority") {
      info.authority = v;
    } else if (n == ":path") {
      info.path = v;
    } else if (!n.empty() && n[0] != ':') {
      if (n == "origin") info.origin = v;
      info.headers.emplace_back(n, v);
    }
  }
  target_ = info.path.substr(0, info.path.find('?'));  // a token may ride in the query: not logged
  host_ = info.authority;
  // nghttp2 let :protocol through only on a CONNECT with :scheme, :path and :authority.
  if (scheme != "https") {
    refuse_webtransport(400, {{"wtmesh-error", "WebTransport needs :scheme https"}});
    return true;
  }
  if (conn_.webtransport_sessions() >= conn_.config_.max_webtransport_sessions) {
    refuse_webtransport(429, {{"wtmesh-error", "too many WebTransport sessions on this HTTP/2 connection"}});
    return true;
  }
  wt::Accept a = conn_.config_.webtransport_acceptor(info);
  if (a.status < 200 || a.status >= 300 || a.handler == nullptr) {
    refuse_webtransport(a.status >= 200 && a.status < 300 ? 500 : a.status, a.headers);
    return true;
  }
  conn_.local_answers_ = 0;
  done_ = true;  // no exchange runs on this stream; DATA is the session's (on_data keeps it for wt_)
  status_ = a.status;
  wt::H2SessionConfig config = conn_.config_.webtransport;
  config.peer = conn_.peer_wt_;  // the client's SETTINGS came with its preface, before any request
  wt_ = std::make_unique<wt::H2Session>(wt::Role::kServer, std::move(config), std::move(info), a.handler);
  wt_->set_output_listener(this);
  submit(std::to_string(a.status), a.headers, true);
  conn_.log(*this, a.status, "WebTransport session");
  wt_->start(wt::ConnectResponse{a.status, a.headers});
  return true;
}

void H2Connection::Stream::refuse_webtransport(int status, const tunnel::HeaderPairs& fields) {
  if (++conn_.local_answers_ >= conn_.limits().max_local_answers) conn_.goaway();
  done_ = true;
  status_ = status;
  no_body_ = true;
  submit(std::to_string(status), fields, false);
  const std::string* why = wt::find_header(fields, "wtmesh-error");
  conn_.log(*this, status, why ? "WebTransport refused: " + *why : std::string("WebTransport refused"));
  ++conn_.completed_;
  if (!client_ended_) rst_code_ = NGHTTP2_NO_ERROR;
}

ssize_t H2Connection::Stream::wt_read(uint8_t* buf, size_t length, uint32_t* flags) {
  const auto out = wt_->output();
  if (wt_taken_ < out.size()) {
    const size_t k = std::min(length, out.size() - wt_taken_);
    std::memcpy(buf, out.data() + wt_taken_, k);
    wt_taken_ += k;
    conn_.step_pending_ = true;  // consumed once the library returned
    return static_cast<ssize_t>(k);
  }
  if (wt_taken_ == 0 && wt_->output_fin()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
  }
  deferred_ = true;
  return NGHTTP2_ERR_DEFERRED;
}

bool H2Connection::Stream::wt_step() {
  if (wt_taken_ > 0) wt_->consume_output(std::exchange(wt_taken_, 0));
  if (body_pos_ < body_.size()) {
    const std::vector<uint8_t> in = std::exchange(body_, {});
    const size_t from = std::exchange(body_pos_, 0);
    wt_->receive(std::span<const uint8_t>(in).subspan(from), false);
    nghttp2_session_consume(conn_.session_, id_, in.size() - from);
  }
  if (client_ended_ && !wt_fin_delivered_) {
    wt_fin_delivered_ = true;
    wt_->receive({}, true);
  }
  if (closed_) {
    // Reset by the client, or both directions ended: the session hears it (a no-op once it is over).
    if (wt_->state() != wt::H2Session::State::kClosed) wt_->on_connect_reset(close_code_);
    return false;
  }
  if (const auto code = wt_->output_reset()) {
    rst_now(*code);
    return true;
  }
  if (wt_->output_size() > 0 || wt_->output_fin()) resume();
  return true;
}

void H2Connection::Stream::wt_cancel() {
  if (wt_ && wt_->state() != wt::H2Session::State::kClosed) wt_->on_connect_reset(NGHTTP2_CANCEL);
}

void H2Connection::Stream::on_output_ready() {
  // Inside the session's own call: only note it. Within process() the next step resumes the data
  // source; from outside (a handler's timer), the glue's wake runs process() (H2Connection::on_wake).
  conn_.step_pending_ = true;
  conn_.wt_wake_ = true;
  if (conn_.hooks_.wake) conn_.hooks_.wake();
}

}  // namespace wtmesh::edge
