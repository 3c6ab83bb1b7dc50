// H2Connection::Stream (edge/h2_stream.h): a request stream's fields become an ExchangeRequest, its
// DATA the request body, and the exchange's answer HEADERS + DATA through nghttp2's data source.
#include "edge/h2_stream.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

#include "edge/field_request.h"
#include "edge/http_codec.h"
#include "edge/route_table.h"

namespace wtmesh::edge {
namespace {

nghttp2_nv nv(std::string_view name, std::string_view value) {
  // NO_COPY is not set: nghttp2 copies both when the frame is submitted.
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

ssize_t H2Connection::Stream::read(uint8_t* buf, size_t length, uint32_t* flags) {
  if (wt_) return wt_read(buf, length, flags);
  size_t n = 0;
  size_t owed = 0;
  while (n < length && !resp_.empty()) {
    const auto run = resp_.front();
    const size_t k = std::min(run.size(), length - n);
    std::memcpy(buf + n, run.data(), k);
    owed += resp_.take(k);
    n += k;
  }
  if (owed > 0) conn_.copied_.emplace_back(resp_.credit_ref(), owed);  // credited after the library call
  if (resp_.empty() && resp_eof_) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!trailers_.empty()) {
      // The trailer section ends the stream instead; step() submits it once the library returned.
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      trailers_due_ = true;
      conn_.step_pending_ = true;
    }
  } else if (n == 0) {
    deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

// --- run by the connection after the library returned -----------------------------------------------

bool H2Connection::Stream::step() {
  if (wt_) return wt_step();
  if (closed_ && draining()) {
    feed();
    if (!done_) return true;
  }
  if (closed_) {
    if (!done_) {
      if (auto o = ex_.cancel(close_code_ == NGHTTP2_NO_ERROR ? "client closed the stream"
                                                              : "client reset the stream")) {
        conn_.log(*this, client_status(o->status), o->note);
      }
      done_ = true;
    }
    drop_response();
    // Request bytes never handed on still count against the connection's window.
    const size_t unread = body_.size() - body_pos_ + discard_;
    if (unread > 0) nghttp2_session_consume_connection(conn_.session_, unread);
    body_.clear();
    body_pos_ = discard_ = 0;
    return false;
  }
  if (trailers_due_) {
    trailers_due_ = false;
    std::vector<nghttp2_nv> h;
    h.reserve(trailers_.size());
    for (const auto& [n, v] : trailers_) h.push_back(nv(n, v));
    if (!rst_sent_) nghttp2_submit_trailer(conn_.session_, id_, h.data(), h.size());
    trailers_.clear();
  }
  if (head_done_ && !begun_) {
    begin();
    if (wt_) return wt_step();
  }
  if (begun_ && !done_) {
    if (arrived_ > 0) ex_.note_client_bytes(std::exchange(arrived_, 0));  // the body progress clock
    feed();
  }
  if (discard_ > 0 || (done_ && body_pos_ < body_.size())) {
    nghttp2_session_consume(conn_.session_, id_, discard_ + body_.size() - body_pos_);
    discard_ = 0;
    body_.clear();
    body_pos_ = 0;
  }
  if (rst_code_ && response_sent_ && !rst_sent_ && !client_ended_) {
    rst_sent_ = true;
    nghttp2_submit_rst_stream(conn_.session_, NGHTTP2_FLAG_NONE, id_, *rst_code_);
  }
  return true;
}

void H2Connection::Stream::cancel_silently() {
  wt_cancel();
  if (!done_) ex_.cancel("");
  done_ = true;
  drop_response();
}

std::optional<ExchangeOutcome> H2Connection::Stream::cancel(std::string_view why) {
  wt_cancel();
  std::optional<ExchangeOutcome> o;
  if (!done_) o = ex_.cancel(why);
  done_ = true;
  drop_response();
  return o;
}

// --- ExchangeSink -----------------------------------------------------------------------------------

void H2Connection::Stream::send_continue() {
  const std::array<nghttp2_nv, 1> h{nv(":status", "100")};
  nghttp2_submit_headers(conn_.session_, NGHTTP2_FLAG_NONE, id_, nullptr, h.data(), h.size(), nullptr);
}

void H2Connection::Stream::send_interim(const tunnel::ResponseHead& head) {
  if (ws_.active()) return;
  const std::string status = std::to_string(head.status);
  const tunnel::HeaderPairs fields = response_fields(head);
  std::vector<nghttp2_nv> h;
  h.reserve(fields.size() + 1);
  h.push_back(nv(":status", status));
  for (const auto& [n, v] : fields) h.push_back(nv(n, v));
  nghttp2_submit_headers(conn_.session_, NGHTTP2_FLAG_NONE, id_, nullptr, h.data(), h.size(), nullptr);
}

void H2Connection::Stream::send_trailers(const tunnel::HeaderPairs& trailers) {
  if (no_body_ || rst_sent_ || ws_.active()) return;  // a response without DATA ended with its HEADERS
  trailers_ = trailer_fields(trailers);
}

void H2Connection::Stream::send_response_head(const tunnel::ResponseHead& head, bool head_request,
                                              bool /*reusable*/) {
  if (ws_.asked() && switch_websocket(head)) return;  // else declined: a normal response
  conn_.local_answers_ = 0;
  status_ = head.status;
  FinalHead f = final_head(head, head_request);
  if (!conn_.config_.alt_svc.empty()) f.fields.emplace_back("alt-svc", conn_.config_.alt_svc);
  no_body_ = f.no_body;
  announced_ = f.announced;
  submit(std::to_string(head.status), f.fields, !no_body_);
}

void H2Connection::Stream::send_response_body(std::span<const uint8_t> data, const StreamRef& credit) {
  if (data.empty()) return;
  if (no_body_ || rst_sent_) {
    conn_.dir_.consume(credit, data.size());
    return;
  }
  resp_.append(data, credit);
  resume();
}

void H2Connection::Stream::send_response_end(bool complete) {
  resp_eof_ = true;
  if (!complete) {
    // Shorter than announced: the client must not take it for a whole response.
    drop_response();
    rst_now(NGHTTP2_INTERNAL_ERROR);
    return;
  }
  resume();
}

void H2Connection::Stream::send_error(int status, std::string_view detail, bool /*reusable*/,
                                      bool from_agent) {
  if (!from_agent && ++conn_.local_answers_ >= conn_.limits().max_local_answers) conn_.goaway();
  ws_.forget();
  status_ = status;
  const ErrorPage page = error_page(status, detail);
  tunnel::HeaderPairs fields = page.fields;
  fields.emplace_back("content-length", std::to_string(page.body.size()));
  if (!conn_.config_.alt_svc.empty()) fields.emplace_back("alt-svc", conn_.config_.alt_svc);
  resp_.append_local({reinterpret_cast<const uint8_t*>(page.body.data()), page.body.size()});
  resp_eof_ = true;
  no_body_ = false;
  submit(std::to_string(status), fields, true);
}

void H2Connection::Stream::exchange_done(const ExchangeOutcome& outcome) {
  done_ = true;
  conn_.log(*this, client_status(outcome.status), outcome.note);
  ++conn_.completed_;
  // The whole announced length arrived (the agent sending more ends the exchange without
  // send_response_end): the response is complete.
  if (no_body_ || (announced_ && resp_.bytes() == *announced_)) resp_eof_ = true;
  if (!resp_eof_ || !outcome.completed) {
    // Cut short (the agent went away mid-body): only a reset tells an HTTP/2 client.
    drop_response();
    rst_now(NGHTTP2_INTERNAL_ERROR);
    return;
  }
  resume();
  // The response went out before the request body ended: the client should stop sending it.
  if (!client_ended_) rst_code_ = NGHTTP2_NO_ERROR;
}

void H2Connection::Stream::exchange_progress() {
  conn_.process();
  if (conn_.hooks_.wake) conn_.hooks_.wake();
}

// --- the request ------------------------------------------------------------------------------------

void H2Connection::Stream::begin() {
  begun_ = true;
  conn_.seen_request_ = true;
  started_ = conn_.now();
  if (too_large_) return answer(431, "The request header section is larger than the edge accepts.");
  for (const auto& [n, v] : fields_) {
    if (n == ":protocol" && v == "webtransport" && begin_webtransport(fields_)) return;
  }
  tunnel::HeaderPairs fields = std::move(fields_);
  fields_.clear();
  // nghttp2 let :protocol through only on a CONNECT, with our SETTINGS enabling it.
  FieldRequest fr = request_from_fields(std::move(fields), !client_ended_ || !body_.empty());
  method_ = fr.method;
  target_ = fr.path;
  host_ = fr.host;
  if (fr.refuse != 0) return answer(fr.refuse, fr.detail);
  if (!fr.protocol.empty() && !begin_websocket(fr.request, fr.protocol)) return;
  ex_.begin(std::move(fr.request), started_);
}

void H2Connection::Stream::feed() {
  ex_.pump_request();
  // An extended CONNECT's DATA (and END_STREAM) wait for the switch: they are the WebSocket's, and a
  // declined upgrade drops them.
  if (ws_.asked()) return;
  while (!done_ && body_pos_ < body_.size()) {
    const size_t n = std::min(ex_.request_body_room(), body_.size() - body_pos_);
    if (n == 0) return;
    const std::span<const uint8_t> chunk(body_.data() + body_pos_, n);
    body_pos_ += n;
    ex_.on_request_body(chunk);
    nghttp2_session_consume(conn_.session_, id_, n);
  }
  if (body_pos_ == body_.size()) {
    body_.clear();
    body_pos_ = 0;
  }
  if (!done_ && client_ended_ && body_.empty() && !end_delivered_ && ex_.request_body_room() > 0) {
    end_delivered_ = true;
    ex_.on_request_end(std::exchange(req_trailers_, {}));
  }
}

void H2Connection::Stream::answer(int status, std::string_view detail) {
  done_ = true;
  send_error(status, detail, true, false);
  conn_.log(*this, status, std::string(detail));
  ++conn_.completed_;
  if (!client_ended_) rst_code_ = NGHTTP2_NO_ERROR;
}

// --- the response -----------------------------------------------------------------------------------

void H2Connection::Stream::submit(const std::string& status, const tunnel::HeaderPairs& fields,
                                  bool with_body) {
  std::vector<nghttp2_nv> h;
  h.reserve(fields.size() + 1);
  h.push_back(nv(":status", status));
  for (const auto& [n, v] : fields) h.push_back(nv(n, v));
  nghttp2_data_provider provider{};
  provider.source.ptr = this;
  provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                              nghttp2_data_source* source, void*) -> ssize_t {
    return static_cast<Stream*>(source->ptr)->read(buf, length, flags);
  };
  nghttp2_submit_response(conn_.session_, id_, h.data(), h.size(), with_body ? &provider : nullptr);
}

void H2Connection::Stream::resume() {
  if (deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(conn_.session_, id_);
  }
}

void H2Connection::Stream::rst_now(uint32_t code) {
  if (rst_sent_ || closed_) return;
  rst_sent_ = true;
  nghttp2_submit_rst_stream(conn_.session_, NGHTTP2_FLAG_NONE, id_, code);
}

void H2Connection::Stream::drop_response() {
  resp_.drop();
}

}  // namespace wtmesh::edge
