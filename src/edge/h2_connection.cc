#include "edge/h2_connection.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <utility>

#include "edge/http_codec.h"
#include "edge/route_table.h"

namespace wtmesh::edge {
namespace {

std::string_view view(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

nghttp2_nv nv(std::string_view name, std::string_view value) {
  // NO_COPY is not set: nghttp2 copies both when the frame is submitted.
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}

bool bodiless_status(int status) { return status == 204 || status == 304 || (status >= 100 && status < 200); }

}  // namespace

// One request stream: what the callbacks recorded, the exchange, and the response waiting for
// nghttp2's data source.
class H2Connection::Stream final : public ExchangeSink {
 public:
  Stream(H2Connection& conn, int32_t id)
      : started_(conn.now()), conn_(conn), id_(id), ex_(conn.dir_, conn.config_.exchange, *this) {}
  ~Stream() override { drop_response(); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // --- recorded by the callbacks ---
  void on_header(std::string_view name, std::string_view value) {
    if (head_done_) return;  // a trailer section: dropped
    header_bytes_ += name.size() + value.size() + 32;
    if (header_bytes_ > conn_.config_.max_header_bytes) {
      too_large_ = true;
      fields_.clear();
      return;
    }
    if (!too_large_) fields_.emplace_back(name, value);
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
    if (done_) {
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
  ssize_t read(uint8_t* buf, size_t length, uint32_t* flags) {
    size_t n = 0;
    while (n < length && !resp_.empty()) {
      const auto run = resp_.front();
      const size_t k = std::min(run.size(), length - n);
      std::memcpy(buf + n, run.data(), k);
      resp_.consume(k);
      n += k;
    }
    if (const size_t c = std::min(n, resp_credited_); c > 0) {
      conn_.copied_.emplace_back(credit_, c);
      resp_credited_ -= c;
    }
    if (resp_.empty() && resp_eof_) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    } else if (n == 0) {
      deferred_ = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(n);
  }

  // --- run by the connection after the library returned ---
  // Returns false when the stream is over and can be forgotten.
  bool step() {
    if (closed_) {
      if (!done_) {
        if (auto o = ex_.cancel(close_code_ == NGHTTP2_NO_ERROR ? "client closed the stream"
                                                                : "client reset the stream")) {
          conn_.log(*this, o->status, o->note);
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
    if (head_done_ && !begun_) begin();
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

  void cancel_silently() {
    if (!done_) ex_.cancel("");
    done_ = true;
    drop_response();
  }
  std::optional<ExchangeOutcome> cancel(std::string_view why) {
    std::optional<ExchangeOutcome> o;
    if (!done_) o = ex_.cancel(why);
    done_ = true;
    drop_response();
    return o;
  }
  std::optional<SteadyTime> next_deadline() const { return done_ ? std::nullopt : ex_.next_deadline(); }
  void on_tick(SteadyTime now) {
    if (!done_) ex_.on_tick(now);
  }
  size_t buffered() const { return body_.size() - body_pos_ + ex_.buffered_body(); }

  // --- ExchangeSink ---
  void send_continue() override {
    const std::array<nghttp2_nv, 1> h{nv(":status", "100")};
    nghttp2_submit_headers(conn_.session_, NGHTTP2_FLAG_NONE, id_, nullptr, h.data(), h.size(), nullptr);
  }
  void send_response_head(const tunnel::ResponseHead& head, bool head_request, bool /*reusable*/) override {
    conn_.local_answers_ = 0;
    status_ = head.status;
    const bool bodiless = head_request || bodiless_status(head.status);
    tunnel::HeaderPairs fields = response_fields(head);
    for (auto& [n, v] : fields) n = lower_ascii(n);
    const bool known_length = head.content_length && head.status != 204 && !(head.status < 200);
    if (known_length) fields.emplace_back("content-length", std::to_string(*head.content_length));
    if (!conn_.config_.alt_svc.empty()) fields.emplace_back("alt-svc", conn_.config_.alt_svc);
    no_body_ = bodiless || !head.has_body || (head.content_length && *head.content_length == 0);
    if (!no_body_) announced_ = head.content_length;
    submit(std::to_string(head.status), fields, !no_body_);
  }
  void send_response_body(std::span<const uint8_t> data, const StreamRef& credit) override {
    if (data.empty()) return;
    if (no_body_ || rst_sent_) {
      conn_.dir_.consume(credit, data.size());
      return;
    }
    resp_.append(data);
    resp_credited_ += data.size();
    credit_ = credit;
    bytes_ += data.size();
    resume();
  }
  void send_response_end(bool complete) override {
    resp_eof_ = true;
    if (!complete) {
      // Shorter than announced: the client must not take it for a whole response.
      drop_response();
      rst_now(NGHTTP2_INTERNAL_ERROR);
      return;
    }
    resume();
  }
  void send_error(int status, std::string_view detail, bool /*reusable*/, bool from_agent) override {
    if (!from_agent && ++conn_.local_answers_ >= conn_.limits().max_local_answers) conn_.goaway();
    status_ = status;
    const ErrorPage page = error_page(status, detail);
    tunnel::HeaderPairs fields = page.fields;
    fields.emplace_back("content-length", std::to_string(page.body.size()));
    if (!conn_.config_.alt_svc.empty()) fields.emplace_back("alt-svc", conn_.config_.alt_svc);
    resp_.append({reinterpret_cast<const uint8_t*>(page.body.data()), page.body.size()});
    resp_eof_ = true;
    no_body_ = false;
    submit(std::to_string(status), fields, true);
  }
  void exchange_done(const ExchangeOutcome& outcome) override {
    done_ = true;
    conn_.log(*this, outcome.status, outcome.note);
    ++conn_.completed_;
    // The whole announced length arrived (the agent sending more ends the exchange without
    // send_response_end): the response is complete.
    if (no_body_ || (announced_ && bytes_ == *announced_)) resp_eof_ = true;
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
  void exchange_progress() override {
    conn_.process();
    if (conn_.hooks_.wake) conn_.hooks_.wake();
  }

  // Log fields.
  std::string method_, host_, target_;
  SteadyTime started_;
  int status_ = 0;
  uint64_t bytes_ = 0;

 private:
  void begin() {
    begun_ = true;
    conn_.seen_request_ = true;
    started_ = conn_.now();
    if (too_large_) return answer(431, "The request header section is larger than the edge accepts.");
    ExchangeRequest r;
    std::string path, cookie;
    std::optional<std::string> authority, host_field;
    for (auto& [name, value] : fields_) {
      if (name == ":method") {
        r.method = value;
      } else if (name == ":path") {
        path = value;
      } else if (name == ":authority") {
        authority = value;
      } else if (name.starts_with(':')) {
        continue;  // :scheme (nghttp2 checked it), :protocol (no extended CONNECT offered)
      } else if (name == "host") {
        host_field = value;
      } else if (name == "content-length") {
        uint64_t v = 0;
        const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
        if (ec == std::errc() && p == value.data() + value.size()) r.content_length = v;
      } else if (name == "cookie") {
        cookie += (cookie.empty() ? "" : "; ") + value;  // RFC 9113 §8.2.3: crumbs joined again
      } else {
        if (name == "expect" && value == "100-continue") r.expect_continue = true;
        if (name != "expect") r.headers.emplace_back(std::move(name), std::move(value));
      }
    }
    fields_.clear();
    if (!cookie.empty()) r.headers.emplace_back("cookie", std::move(cookie));
    method_ = r.method;
    target_ = path;
    if (r.method == "CONNECT") return answer(405, "CONNECT is not supported by tunnels.");
    if (!(path.starts_with("/") || (path == "*" && r.method == "OPTIONS")))
      return answer(400, "The request target is not a path.");
    r.authority = authority ? *authority : host_field.value_or("");
    const auto host = normalize_host(r.authority);
    if (!host) return answer(400, "The :authority is not a valid host name.");
    host_ = *host;
    r.host = *host;
    r.target = std::move(path);
    r.has_body = !client_ended_ || !body_.empty();
    if (r.content_length && *r.content_length == 0) r.has_body = false;
    if (!r.has_body) r.content_length.reset();
    r.head_request = r.method == "HEAD";
    r.expect_continue = r.expect_continue && r.has_body;
    ex_.begin(std::move(r), started_);
  }
  // Body bytes go to the exchange as far as it takes them; their window goes back to the client.
  void feed() {
    ex_.pump_request();
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
      ex_.on_request_end();
    }
  }
  // The edge answers by itself, before any exchange.
  void answer(int status, std::string_view detail) {
    done_ = true;
    send_error(status, detail, true, false);
    conn_.log(*this, status, std::string(detail));
    ++conn_.completed_;
    if (!client_ended_) rst_code_ = NGHTTP2_NO_ERROR;
  }
  void submit(const std::string& status, const tunnel::HeaderPairs& fields, bool with_body) {
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
  void resume() {
    if (deferred_) {
      deferred_ = false;
      nghttp2_session_resume_data(conn_.session_, id_);
    }
  }
  void rst_now(uint32_t code) {
    if (rst_sent_ || closed_) return;
    rst_sent_ = true;
    nghttp2_submit_rst_stream(conn_.session_, NGHTTP2_FLAG_NONE, id_, code);
  }
  // Response bytes that will never reach the client still owe their credit to the agent.
  void drop_response() {
    if (resp_credited_ > 0) conn_.dir_.consume(credit_, resp_credited_);
    resp_credited_ = 0;
    resp_.clear();
  }

  H2Connection& conn_;
  const int32_t id_;
  PublicExchange ex_;

  std::vector<std::pair<std::string, std::string>> fields_;
  size_t header_bytes_ = 0;
  bool too_large_ = false;
  bool head_done_ = false;
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

  ByteRing resp_;
  size_t resp_credited_ = 0;  // of resp_, bytes the agent is owed credit for (the first ones)
  StreamRef credit_;
  bool resp_eof_ = false;
  bool no_body_ = false;
  std::optional<uint64_t> announced_;  // the response's content-length
  bool deferred_ = false;
  bool response_sent_ = false;
  std::optional<uint32_t> rst_code_;  // reset once the response is out, if the client still sends
  bool rst_sent_ = false;
};

// nghttp2 callbacks: they record into the connection's streams and return; nothing else.
struct H2Connection::Callbacks {
  static H2Connection& conn(void* user) { return *static_cast<H2Connection*>(user); }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      auto& c = conn(user);
      c.streams_.emplace(frame->hd.stream_id, std::make_unique<Stream>(c, frame->hd.stream_id));
    }
    return 0;
  }
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    if (Stream* s = conn(user).find(frame->hd.stream_id))
      s->on_header(view(name, namelen), view(value, valuelen));
    return 0;
  }
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    Stream* s = conn(user).find(frame->hd.stream_id);
    if (s == nullptr) return 0;
    const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS) {
      s->on_head_done(end);
    } else if (frame->hd.type == NGHTTP2_DATA && end) {
      s->on_end_stream();
    }
    return 0;
  }
  static int on_data_chunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                           void* user) {
    auto& c = conn(user);
    if (Stream* s = c.find(stream_id)) {
      s->on_data({data, len});
    } else {
      c.unowned_ += len;
    }
    return 0;
  }
  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      if (Stream* s = conn(user).find(frame->hd.stream_id)) s->on_end_stream_sent();
    }
    return 0;
  }
  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t code, void* user) {
    auto& c = conn(user);
    if (Stream* s = c.find(stream_id)) {
      s->on_closed(code);
      c.closed_pending_ = true;
    }
    return 0;
  }
  static int on_error(nghttp2_session*, int, const char* msg, size_t len, void* user) {
    auto& c = conn(user);
    if (c.error_.empty()) c.error_.assign(msg, len);
    return 0;
  }
};

H2Connection::H2Connection(TunnelDirectory& directory, H2Config config, ConnectionHooks hooks)
    : dir_(directory), config_(std::move(config)), hooks_(std::move(hooks)) {
  started_ = now();
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &Callbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Callbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &Callbacks::on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Callbacks::on_stream_close);
  nghttp2_session_callbacks_set_error_callback2(cbs, &Callbacks::on_error);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_continuations(opt, config_.max_continuations);
  nghttp2_option_set_stream_reset_rate_limit(opt, config_.reset_burst, config_.reset_rate);
  nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);

  const std::array<nghttp2_settings_entry, 4> settings{{
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, static_cast<uint32_t>(limits().h2_max_concurrent_streams)},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(limits().h2_stream_window)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(config_.max_header_bytes)},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  }};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(limits().h2_connection_window));
  flush();
}

H2Connection::~H2Connection() {
  for (auto& [id, s] : streams_) s->cancel_silently();
  for (const auto& c : credits_) dir_.consume(c.ref, c.n);
  nghttp2_session_del(session_);
}

SteadyTime H2Connection::now() const {
  return config_.exchange.clock ? config_.exchange.clock() : std::chrono::steady_clock::now();
}

H2Connection::Stream* H2Connection::find(int32_t id) const {
  const auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

size_t H2Connection::buffered_input() const {
  size_t n = 0;
  for (const auto& [id, s] : streams_) n += s->buffered();
  return n;
}

// --- client side ----------------------------------------------------------------------------------

void H2Connection::bury() { graveyard_.clear(); }

size_t H2Connection::on_client_bytes(std::span<const uint8_t> data) {
  bury();
  if (finished_) return data.size();
  // A client that does not read its responses is not read either (its requests wait in the socket).
  if (out_.size() >= limits().max_pending_output) return 0;
  const ssize_t n = nghttp2_session_mem_recv(session_, data.data(), data.size());
  if (n < 0) {
    fail(nghttp2_strerror(static_cast<int>(n)));
    return data.size();
  }
  process();
  return static_cast<size_t>(n);
}

void H2Connection::on_client_eof() { abort("client closed the connection"); }

void H2Connection::abort(std::string_view why) {
  bury();
  if (finished_) return;
  finished_ = true;
  for (auto& [id, s] : streams_) {
    if (auto o = s->cancel(why)) log(*s, o->status, o->note);
  }
  for (const auto& c : credits_) dir_.consume(c.ref, c.n);
  credits_.clear();
  out_base_ += out_.size();
  out_.clear();
}

void H2Connection::on_client_written(size_t n) {
  bury();
  n = std::min(n, out_.size());
  const bool was_full = out_.size() >= limits().max_pending_output;
  out_.consume(n);
  out_base_ += n;
  while (!credits_.empty() && credits_.front().end <= out_base_) {
    dir_.consume(credits_.front().ref, credits_.front().n);
    credits_.pop_front();
  }
  if (was_full || nghttp2_session_want_write(session_)) process();
  if (out_.empty()) out_.release_if_empty();
}

void H2Connection::fail(std::string why) {
  if (error_.empty()) error_ = std::move(why);
  flush();  // nghttp2 may have queued a GOAWAY that says why
  for (auto& [id, s] : streams_) {
    if (auto o = s->cancel(error_)) log(*s, o->status, o->note);
  }
  finished_ = true;
}

void H2Connection::goaway() {
  if (goaway_sent_) return;
  goaway_sent_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
}

// --- time -----------------------------------------------------------------------------------------

std::optional<SteadyTime> H2Connection::next_deadline() const {
  if (finished_) return std::nullopt;
  std::optional<SteadyTime> d;
  if (!seen_request_) d = started_ + limits().header_timeout;
  for (const auto& [id, s] : streams_) {
    if (auto t = s->next_deadline(); t && (!d || *t < *d)) d = t;
  }
  return d;
}

void H2Connection::on_tick(SteadyTime t) {
  bury();
  if (finished_) return;
  if (!seen_request_ && t >= started_ + limits().header_timeout) {
    finished_ = true;  // no request came: close silently, as on HTTP/1.1
    return;
  }
  for (auto& [id, s] : streams_) s->on_tick(t);
  process();
}

// --- the exchanges --------------------------------------------------------------------------------

void H2Connection::process() {
  if (in_process_) {
    again_ = true;
    return;
  }
  in_process_ = true;
  do {
    again_ = false;
    step();
  } while (again_ && !finished_);
  in_process_ = false;
}

void H2Connection::step() {
  if (finished_) return;
  if (unowned_ > 0) {
    nghttp2_session_consume_connection(session_, unowned_);
    unowned_ = 0;
  }
  for (auto it = streams_.begin(); it != streams_.end();) {
    if (it->second->step()) {
      ++it;
    } else {
      // Not destroyed here: process() also runs from a stream's own exchange_progress(), with that
      // stream and its exchange on the stack. The glue's next call frees it (bury()).
      graveyard_.push_back(std::move(it->second));
      it = streams_.erase(it);
    }
  }
  flush();
  // Streams nghttp2 closed while it wrote (the response's END_STREAM ended them) are forgotten next.
  if (std::exchange(closed_pending_, false)) again_ = true;
  if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) finished_ = true;
}

void H2Connection::flush() {
  while (out_.size() < limits().max_pending_output) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      if (error_.empty()) error_ = nghttp2_strerror(static_cast<int>(n));
      finished_ = true;
      return;
    }
    if (n == 0) break;
    out_.append({data, static_cast<size_t>(n)});
    for (const auto& [ref, k] : copied_) credits_.push_back(Credit{out_base_ + out_.size(), ref, k});
    copied_.clear();
  }
}

void H2Connection::log(const Stream& s, int status, std::string note) {
  if (!hooks_.log) return;
  RequestLog l;
  l.method = s.method_.empty() ? "-" : s.method_;
  l.host = s.host_.empty() ? "-" : s.host_;
  l.target = s.target_.empty() ? "-" : s.target_;
  l.status = status;
  l.bytes = s.bytes_;
  l.duration = std::chrono::duration_cast<std::chrono::microseconds>(now() - s.started_);
  l.note = std::move(note);
  l.version = "HTTP/2";
  hooks_.log(l);
}

}  // namespace wtmesh::edge
