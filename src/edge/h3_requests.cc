#include "edge/h3_requests.h"

#include <algorithm>
#include <utility>

#include "edge/connect_websocket.h"
#include "edge/field_request.h"
#include "edge/http_codec.h"
#include "edge/response_body.h"
#include "edge/route_table.h"
#include "h3/error_codes.h"

namespace wtmesh::edge {
// One request stream: the request body waiting for the exchange, the exchange, and the response
// waiting for the stream's send buffer.
class H3Requests::Stream final : public ExchangeSink {
 public:
  Stream(H3Requests& owner, StreamId id)
      : started_(owner.now()),
        owner_(owner),
        id_(id),
        ex_(owner.dir_, owner.config_.exchange, *this),
        resp_(owner.dir_) {}
  ~Stream() override { drop_response(); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // --- from the connection ---
  void start(const h3::HeaderList& headers, bool fin) {
    client_ended_ = fin;
    tunnel::HeaderPairs fields;
    fields.reserve(headers.size());
    for (const auto& h : headers) fields.emplace_back(h.name, h.value);
    FieldRequest fr = request_from_fields(std::move(fields), !fin);
    method_ = std::move(fr.method);
    target_ = std::move(fr.path);
    host_ = std::move(fr.host);
    if (fr.refuse != 0) return answer(fr.refuse, fr.detail);
    if (owner_.conn_.transport().in_early_data()) {
      // 0-RTT: an attacker may replay this request (RFC 8446 §8). Safe methods go on, marked
      // Early-Data: 1 for the service (RFC 8470 §5.1); anything else gets 425, and the client sends
      // it again once the handshake is done (RFC 8470 §5.2).
      const bool safe = fr.protocol.empty() && !fr.request.has_body &&
                        (method_ == "GET" || method_ == "HEAD" || method_ == "OPTIONS");
      if (!safe) return answer(425, "Too Early: sent in 0-RTT, send it again after the handshake");
      const auto& h = fr.request.headers;
      if (std::none_of(h.begin(), h.end(), [](const auto& f) { return f.first == "early-data"; }))
        fr.request.headers.emplace_back("early-data", "1");
    }
    // h3/ let :protocol through only on a CONNECT with :scheme, :path and :authority, our SETTINGS
    // enabling it (RFC 9220 §3); wt::H3Server kept the WebTransport ones.
    if (!fr.protocol.empty()) {
      if (auto refusal = ws_.begin(fr.request, fr.protocol, "RFC 9220")) return answer(501, *refusal);
    }
    begun_ = true;
    ex_.begin(std::move(fr.request), started_);
    step();
  }
  void on_body(std::span<const uint8_t> data, bool fin) {
    if (fin) client_ended_ = true;
    if (done_ || !begun_) {
      owner_.conn_.consume(id_, data.size());  // nobody wants them
    } else if (held() + data.size() > owner_.config_.max_buffered_body) {
      owner_.conn_.consume(id_, data.size());
      abort("request body beyond the edge's buffer", h3::kH3ExcessiveLoad);
      return;
    } else {
      body_.insert(body_.end(), data.begin(), data.end());
      arrived_ += data.size();
    }
    step();
  }
  // The request's trailing HEADERS (h3/ bounded its size): kept for the end of the body.
  void on_trailers(const h3::HeaderList& trailers) {
    if (done_ || !begun_) return;
    for (const auto& h : trailers) req_trailers_.emplace_back(h.name, h.value);
  }
  // The client reset its request, or asked us to stop the response: nothing more goes either way.
  void on_reset() { abort(client_ended_ ? "client cancelled the response" : "client reset the stream", 0); }
  void on_writable() { write_out(); }
  // The connection is gone: the exchange is cancelled, the agent's credit returned.
  void on_connection_gone() {
    if (!done_) {
      if (auto o = ex_.cancel("client connection closed")) log(o->status, o->note);
    }
    done_ = true;
    drop_response();
  }
  std::optional<SteadyTime> next_deadline() const { return done_ ? std::nullopt : ex_.next_deadline(); }
  void on_tick(SteadyTime now) {
    if (!done_) ex_.on_tick(now);
  }

  // --- ExchangeSink ---
  void send_continue() override { owner_.conn_.send_response(id_, {{":status", "100"}}, false); }
  void send_interim(const tunnel::ResponseHead& head) override {
    if (ws_.active()) return;  // a WebSocket's answer has none
    h3::HeaderList fields{{":status", std::to_string(head.status)}};
    for (auto& [n, v] : response_fields(head)) fields.push_back({lower_ascii(n), std::move(v)});
    owner_.conn_.send_response(id_, fields, false);  // a HEADERS before the final one (RFC 9114 §4.1)
  }
  void send_trailers(const tunnel::HeaderPairs& trailers) override {
    if (no_body_ || aborted_ || ws_.active()) return;  // none to send
    for (auto& [n, v] : trailer_fields(trailers)) trailers_.push_back({std::move(n), std::move(v)});
  }
  void send_response_head(const tunnel::ResponseHead& head, bool head_request, bool /*reusable*/) override {
    if (ws_.asked() && switch_websocket(head)) return;  // else declined: a normal response
    owner_.local_answers_ = 0;
    status_ = head.status;
    FinalHead f = final_head(head, head_request);
    h3::HeaderList fields{{":status", std::to_string(head.status)}};
    for (auto& [n, v] : f.fields) fields.push_back({std::move(n), std::move(v)});
    no_body_ = f.no_body;
    announced_ = f.announced;
    send_head(fields);
  }
  void send_response_body(std::span<const uint8_t> data, const StreamRef& credit) override {
    if (data.empty()) return;
    if (no_body_ || aborted_) {
      owner_.dir_.consume(credit, data.size());
      return;
    }
    resp_.append(data, credit);
    write_out();
  }
  void send_response_end(bool complete) override {
    if (!complete) return cut();  // shorter than announced: the client must not take it as whole
    resp_eof_ = true;
    write_out();
  }
  void send_error(int status, std::string_view detail, bool /*reusable*/, bool from_agent) override {
    if (!from_agent && ++owner_.local_answers_ >= owner_.config_.exchange.limits.max_local_answers) {
      owner_.goaway();
    }
    ws_.forget();
    status_ = status;
    const ErrorPage page = error_page(status, detail);
    h3::HeaderList fields{{":status", std::to_string(status)}};
    for (const auto& [n, v] : page.fields) fields.push_back({n, v});
    fields.push_back({"content-length", std::to_string(page.body.size())});
    no_body_ = false;
    if (!send_head(fields)) return;
    resp_.append_local({reinterpret_cast<const uint8_t*>(page.body.data()), page.body.size()});
    resp_eof_ = true;
    write_out();
  }
  void exchange_done(const ExchangeOutcome& outcome) override {
    done_ = true;
    log(outcome.status, outcome.note);
    ++owner_.completed_;
    // The whole announced length arrived (the agent sending more ends the exchange without
    // send_response_end): the response is complete.
    if (no_body_ || (announced_ && resp_.bytes() == *announced_)) resp_eof_ = true;
    if (!resp_eof_ || !outcome.completed) {
      cut();
    } else {
      write_out();
      stop_body();
      release_body();  // what a declined upgrade's client sent early is nobody's
    }
    if (closed_) owner_.retire(id_);
  }
  void exchange_progress() override {
    step();
    if (owner_.hooks_.wake) owner_.hooks_.wake();
  }

  // The QUIC stream closed (both directions done). A switched WebSocket whose client said its last
  // word cleanly may still hold bytes for the agent: it stays until the exchange delivered them.
  // False: the stream is over.
  bool on_closed() {
    closed_ = true;
    if (ws_.switched() && !done_ && !aborted_ && client_ended_ && fin_sent_) {
      step();
      return !done_;
    }
    on_connection_gone();
    return false;
  }

  // Log fields.
  std::string method_, host_, target_;
  SteadyTime started_;
  int status_ = 0;
  uint64_t bytes() const { return resp_.bytes(); }

 private:
  size_t held() const { return body_.size() - body_pos_; }

  void step() {
    if (!begun_ || done_) return;
    if (arrived_ > 0) ex_.note_client_bytes(std::exchange(arrived_, 0));  // the body progress clock
    ex_.pump_request();
    // An extended CONNECT's DATA (and FIN) wait for the switch: they are the WebSocket's, and a
    // declined upgrade drops them.
    if (ws_.asked()) return;
    // Body bytes go to the exchange as far as it takes them; their credit goes back to the client.
    while (!done_ && body_pos_ < body_.size()) {
      const size_t n = std::min(ex_.request_body_room(), held());
      if (n == 0) break;
      const std::span<const uint8_t> chunk(body_.data() + body_pos_, n);
      body_pos_ += n;
      ex_.on_request_body(chunk);
      owner_.conn_.consume(id_, n);
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

  // The edge answers by itself, before any exchange.
  void answer(int status, std::string_view detail) {
    done_ = true;
    send_error(status, detail, true, false);
    log(status, std::string(detail));
    ++owner_.completed_;
    stop_body();
  }
  bool send_head(const h3::HeaderList& fields) {
    if (!owner_.conn_.send_response(id_, fields, no_body_)) {
      // Gone, or the peer's SETTINGS_MAX_FIELD_SECTION_SIZE refuses the fields: nothing can follow.
      cut();
      return false;
    }
    head_sent_ = true;
    if (no_body_) fin_sent_ = true;
    return true;
  }
  // DATA frames as far as the send buffer takes them; taken bytes are the agent's credit again.
  void write_out() {
    if (aborted_ || fin_sent_ || !head_sent_) return;
    while (!resp_.empty()) {
      const auto run = resp_.front();
      const bool last = resp_eof_ && trailers_.empty() && run.size() == resp_.size();
      const size_t n = owner_.conn_.send_body(id_, run, last);
      resp_.credit(resp_.take(n));
      if (n < run.size()) return;  // on_request_writable resumes
      if (last) {
        fin_sent_ = true;
        return;
      }
    }
    if (resp_eof_ && !trailers_.empty()) {
      // The trailing HEADERS with FIN (RFC 9114 §4.1); refused fields (the peer's section size) cut it.
      if (!owner_.conn_.send_response(id_, std::exchange(trailers_, {}), true)) return cut();
      fin_sent_ = true;
    } else if (resp_eof_) {
      owner_.conn_.send_body(id_, {}, true);
      fin_sent_ = true;
    }
  }
  // The whole response is on its way and the request body is still coming: not wanted.
  void stop_body() {
    if (client_ended_) return;
    owner_.conn_.stop_request_body(id_, h3::kH3NoError);
    release_body();
  }
  void release_body() {
    if (held() > 0) owner_.conn_.consume(id_, held());
    body_.clear();
    body_pos_ = 0;
  }
  // The response broke off: reset, so the client sees it incomplete.
  void cut() {
    if (aborted_) return;
    aborted_ = true;
    drop_response();
    release_body();
    owner_.conn_.reset_request(id_, h3::kH3InternalError);
  }
  // Ends everything now: the exchange (if under way), the response, the stream. `code` 0: the client
  // ended it (H3_REQUEST_CANCELLED back).
  void abort(std::string_view why, uint64_t code) {
    if (!done_) {
      done_ = true;
      if (auto o = ex_.cancel(why)) log(o->status, o->note);
    }
    if (aborted_) return;
    aborted_ = true;
    drop_response();
    release_body();
    owner_.conn_.reset_request(id_, code != 0 ? code : h3::kH3RequestCancelled);
  }
  // The agent's answer while asked: a 101 is checked against the edge's key and answered with a 200
  // (RFC 9220 §3 / RFC 8441 §5), or a 502 when it does not match (true); any other status is a normal
  // response (false).
  bool switch_websocket(const tunnel::ResponseHead& head) {
    ConnectWebSocket::Answer a = ws_.answer(head);
    if (a.kind == ConnectWebSocket::Answer::Kind::kDeclined) return false;
    if (a.kind == ConnectWebSocket::Answer::Kind::kBroken) {
      ex_.cancel(a.detail);  // the agent's stream is reset; the exchange is over
      done_ = true;
      send_error(502, a.detail, false, true);  // the upstream's fault, not the client's
      log(502, a.detail);
      ++owner_.completed_;
      stop_body();
      return true;
    }
    owner_.local_answers_ = 0;
    status_ = 200;
    no_body_ = false;
    h3::HeaderList fields{{":status", "200"}};
    for (auto& [n, v] : a.fields) fields.push_back({std::move(n), std::move(v)});
    send_head(fields);
    step();  // the client's DATA that waited for the switch
    return true;
  }
  void log(int status, std::string note) { owner_.log(*this, ws_.client_status(status), std::move(note)); }

  // Response bytes that will never reach the client still owe their credit to the agent.
  void drop_response() { resp_.drop(); }

  H3Requests& owner_;
  const StreamId id_;
  PublicExchange ex_;

  std::vector<uint8_t> body_;  // request body bytes not yet taken by the exchange, from body_pos_
  size_t body_pos_ = 0;
  size_t arrived_ = 0;  // request body bytes received since the exchange last heard of them
  bool client_ended_ = false;
  bool begun_ = false;
  bool end_delivered_ = false;
  bool done_ = false;  // the exchange is over (or never began)

  ResponseBody resp_;
  bool head_sent_ = false;
  bool resp_eof_ = false;
  h3::HeaderList trailers_;           // the trailing HEADERS, after the last DATA
  tunnel::HeaderPairs req_trailers_;  // the client's trailing HEADERS, for the end of the request body
  bool fin_sent_ = false;
  bool no_body_ = false;
  bool aborted_ = false;  // reset: nothing more is written
  bool closed_ = false;   // the QUIC stream is gone (a WebSocket draining to the agent)
  std::optional<uint64_t> announced_;
  ConnectWebSocket ws_;  // an extended CONNECT for a WebSocket (RFC 9220); DATA waits while asked
};

H3Requests::H3Requests(TunnelDirectory& directory, h3::Connection& conn, H3RequestsConfig config,
                       ConnectionHooks hooks)
    : dir_(directory), conn_(conn), config_(std::move(config)), hooks_(std::move(hooks)) {}

H3Requests::~H3Requests() { on_connection_closed(); }

SteadyTime H3Requests::now() const {
  return config_.exchange.clock ? config_.exchange.clock() : std::chrono::steady_clock::now();
}

void H3Requests::bury() { graveyard_.clear(); }

H3Requests::Stream* H3Requests::find(StreamId id) const {
  const auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

void H3Requests::on_request(StreamId id, const h3::HeaderList& headers, bool fin) {
  bury();
  if (closed_) return;
  next_id_ = std::max(next_id_, id + 4);
  if (goaway_sent_) {  // a request above the GOAWAY id: not processed, the client may retry it
    conn_.reset_request(id, h3::kH3RequestRejected);
    return;
  }
  auto [it, inserted] = streams_.emplace(id, std::make_unique<Stream>(*this, id));
  if (!inserted) return;  // h3/ hands each request over once
  it->second->start(headers, fin);
}

void H3Requests::on_request_body(StreamId id, std::span<const uint8_t> data, bool fin) {
  bury();
  if (Stream* s = find(id)) {
    s->on_body(data, fin);
  } else {
    conn_.consume(id, data.size());
  }
}

void H3Requests::on_request_trailers(StreamId id, const h3::HeaderList& trailers) {
  if (Stream* s = find(id)) s->on_trailers(trailers);
}

void H3Requests::on_request_reset(StreamId id, uint64_t /*h3_error*/) {
  bury();
  if (Stream* s = find(id)) s->on_reset();
}

void H3Requests::on_request_writable(StreamId id) {
  bury();
  if (Stream* s = find(id)) s->on_writable();
}

void H3Requests::on_request_closed(StreamId id) {
  const auto it = streams_.find(id);
  if (it == streams_.end()) return;
  // Normally over already; a stream closed early is cancelled, a draining WebSocket stays.
  if (!it->second->on_closed()) retire(id);
}

void H3Requests::retire(StreamId id) {
  const auto it = streams_.find(id);
  if (it == streams_.end()) return;
  graveyard_.push_back(std::move(it->second));  // it may be on the stack
  streams_.erase(it);
}

void H3Requests::on_connection_closed() {
  bury();
  closed_ = true;
  for (auto& [id, s] : streams_) s->on_connection_gone();
  streams_.clear();
}

std::optional<SteadyTime> H3Requests::next_deadline() const {
  std::optional<SteadyTime> d;
  for (const auto& [id, s] : streams_) {
    if (auto t = s->next_deadline(); t && (!d || *t < *d)) d = t;
  }
  return d;
}

void H3Requests::on_tick(SteadyTime t) {
  bury();
  for (auto& [id, s] : streams_) s->on_tick(t);
}

void H3Requests::goaway() {
  if (goaway_sent_) return;
  goaway_sent_ = true;
  // After every stream the client opened: a WebTransport session's CONNECT (not ours) is no request
  // that should look unprocessed.
  conn_.send_goaway(std::max<uint64_t>(next_id_, conn_.next_peer_bidi_id()));
}

void H3Requests::log(const Stream& s, int status, std::string note) {
  if (!hooks_.log) return;
  hooks_.log(make_request_log(s.method_, s.host_, s.target_, status, s.bytes(), now() - s.started_,
                              std::move(note), "HTTP/3"));
}

}  // namespace wtmesh::edge
