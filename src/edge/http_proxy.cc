#include "edge/http_proxy.h"

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

namespace wtmesh::edge {
namespace {

namespace http = boost::beast::http;

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

std::string_view view(boost::beast::string_view s) { return std::string_view(s.data(), s.size()); }

bool starts_with_icase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

}  // namespace

HttpProxy::HttpProxy(TunnelDirectory& directory, HttpProxyConfig config, Hooks hooks)
    : dir_(directory),
      config_(std::move(config)),
      hooks_(std::move(hooks)),
      // Room for a full header section plus some body bytes behind it.
      max_input_(config_.max_header_bytes + 16 * 1024) {
  head_deadline_ = now() + config_.header_timeout;  // the first request: counted from the connection's start
  on_chunk_header_ = [this](std::uint64_t, boost::beast::string_view extensions,
                            boost::system::error_code& ec) {
    if (extensions.size() > kMaxChunkExtension) {
      chunk_extension_too_long_ = true;
      ec = http::error::bad_chunk_extension;
    }
  };
}

HttpProxy::~HttpProxy() {
  if (phase_ == Phase::kRouting) dir_.cancel_route(route_ticket_);
  if (attached_) {
    attached_ = false;
    dir_.cancel(ref_, tunnel::kStreamCancelled);
  }
  drop_output();
}

SteadyTime HttpProxy::now() const {
  return config_.clock ? config_.clock() : std::chrono::steady_clock::now();
}

// --- client side ----------------------------------------------------------------------------------

size_t HttpProxy::on_client_bytes(std::span<const uint8_t> data) {
  if (finished_) return data.size();  // nothing more is read from a connection being closed
  const size_t room = max_input_ - std::min(max_input_, in_.size());
  const size_t n = std::min(room, data.size());
  in_.insert(in_.end(), data.begin(), data.begin() + static_cast<ptrdiff_t>(n));
  if (phase_ == Phase::kExchange && n > 0) note_body_bytes(n);
  process();
  return n;
}

void HttpProxy::on_client_eof() { abort("client closed the connection"); }

void HttpProxy::abort(std::string_view why) {
  if (finished_) return;
  if (attached_) cancel_stream(tunnel::kStreamCancelled);
  if (phase_ == Phase::kRouting) dir_.cancel_route(std::exchange(route_ticket_, 0));
  if (phase_ == Phase::kRouting || phase_ == Phase::kOpening || phase_ == Phase::kExchange) {
    write_log(head_sent_ ? status_ : 499, std::string(why));
  }
  finished_ = true;
  phase_ = Phase::kClosing;
  drop_output();
  in_.clear();
}

void HttpProxy::on_client_written(size_t n) {
  n = std::min(n, out_.size());
  const bool was_full = out_.size() >= config_.max_pending_output;
  out_.consume(n);
  out_base_ += n;
  while (!credits_.empty() && credits_.front().end <= out_base_) {
    dir_.consume(credits_.front().ref, credits_.front().n);
    credits_.pop_front();
  }
  // Requests held back while the client had too much unread output may be parsed now.
  if (was_full && out_.size() < config_.max_pending_output && phase_ == Phase::kHead && !in_.empty())
    process();
  // Between exchanges, an idle keep-alive connection gives back a large response's buffer.
  if (!attached_) out_.release_if_empty();
}

void HttpProxy::append_out(std::string_view bytes) {
  out_.append({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

void HttpProxy::append_body_out(std::span<const uint8_t> bytes) {
  out_.append(bytes);
  resp_bytes_ += bytes.size();
  if (!bytes.empty()) credits_.push_back(Credit{out_base_ + out_.size(), ref_, bytes.size()});
}

void HttpProxy::drop_output() {
  // Bytes that will never reach the client still owe their credit to the agent's connection window.
  for (const auto& c : credits_) dir_.consume(c.ref, c.n);
  credits_.clear();
  out_base_ += out_.size();
  out_.clear();
}

// --- time -----------------------------------------------------------------------------------------

std::optional<SteadyTime> HttpProxy::next_deadline() const {
  if (finished_) return std::nullopt;
  std::optional<SteadyTime> d;
  const auto take = [&d](SteadyTime t) {
    if (!d || t < *d) d = t;
  };
  if (phase_ == Phase::kRouting) take(open_deadline_);
  if (phase_ == Phase::kOpening) take(std::min(next_retry_, open_deadline_));
  if (phase_ == Phase::kHead && head_deadline_) take(*head_deadline_);
  if (body_clock_running()) take(body_deadline_);
  return d;
}

void HttpProxy::on_tick(SteadyTime t) {
  if (finished_) return;
  if (phase_ == Phase::kHead && head_deadline_ && t >= *head_deadline_) {
    on_slow_client(true);
    return;
  }
  if (body_clock_running() && t >= body_deadline_) {
    on_slow_client(false);
    return;
  }
  if (phase_ == Phase::kRouting && t >= open_deadline_) {
    // The route table did not answer (a shared store that is slow or unreachable).
    dir_.cancel_route(std::exchange(route_ticket_, 0));
    respond_local(503, "The edge could not find the tunnel for " + host_ + " in time.",
                  keep_alive_ && !req_has_body_);
    process();
    return;
  }
  if (phase_ != Phase::kOpening || t < std::min(next_retry_, open_deadline_)) return;
  try_open();
  process();
}

// --- slow clients ---------------------------------------------------------------------------------

bool HttpProxy::body_clock_running() const {
  // Only until the agent answers: after that a slow upload is the application's business (the idle
  // timeout still applies), and a full-duplex exchange may legitimately upload slowly.
  return phase_ == Phase::kExchange && attached_ && req_has_body_ && !req_fin_sent_ && !req_stopped_ &&
         !head_sent_ && !body_stalled_since_;
}

void HttpProxy::note_body_bytes(size_t n) {
  const SteadyTime cap = now() + config_.body_timeout;
  if (config_.body_min_rate == 0) {
    body_deadline_ = cap;
    return;
  }
  const auto earned = std::chrono::duration_cast<SteadyTime::duration>(
      std::chrono::duration<double>(static_cast<double>(n) / static_cast<double>(config_.body_min_rate)));
  body_deadline_ = std::min(body_deadline_ + earned, cap);
}

void HttpProxy::set_body_stalled(bool stalled) {
  if (stalled && !body_stalled_since_) {
    body_stalled_since_ = now();
  } else if (!stalled && body_stalled_since_) {
    body_deadline_ += now() - *body_stalled_since_;  // the edge was not reading: not the client's time
    body_stalled_since_.reset();
  }
}

void HttpProxy::on_slow_client(bool header) {
  if (header) {
    if (!head_started_ && in_.empty()) {
      // Nothing of a request came (a bare connection, or a preconnect never used): close silently.
      finished_ = true;
      phase_ = Phase::kClosing;
      return;
    }
    if (method_.empty()) method_ = "-";
    if (!started_.time_since_epoch().count()) started_ = now();
    respond_local(408, "The request header section did not arrive in time.", false);
    return;
  }
  respond_local(408, "The request body arrived too slowly.", false);
}

// --- request --------------------------------------------------------------------------------------

void HttpProxy::process() {
  if (in_process_) {
    again_ = true;
    return;
  }
  in_process_ = true;
  do {
    again_ = false;
    step();
  } while (again_);
  in_process_ = false;
}

void HttpProxy::step() {
  if (finished_) return;
  // A client with too much unread output gets no new request parsed until it reads (its input then
  // fills and the glue stops reading the socket).
  if (phase_ == Phase::kHead && out_.size() < config_.max_pending_output) parse_head();
  if (phase_ == Phase::kExchange) {
    pump_request();
    set_body_stalled(attached_ && (head_out_pos_ < head_out_.size() || body_pos_ < body_.size()));
  }
}

void HttpProxy::parse_head() {
  if (!parser_) {
    parser_.emplace();
    head_bytes_ = 0;
    parser_->header_limit(static_cast<std::uint32_t>(config_.max_header_bytes));
    parser_->body_limit(boost::none);  // bodies stream; only the header section is bounded
    parser_->eager(false);
    parser_->on_chunk_header(on_chunk_header_);
  }
  if (in_.empty()) return;
  if (!head_started_) {
    // The header clock of a later request starts with its first byte the edge looks at.
    head_started_ = true;
    if (!head_deadline_) head_deadline_ = now() + config_.header_timeout;
  }
  boost::system::error_code ec;
  const size_t n = parser_->put(boost::asio::buffer(in_.data(), in_.size()), ec);
  in_.erase(in_.begin(), in_.begin() + static_cast<ptrdiff_t>(n));
  // Beast bounds the request line and the fields separately when both arrive in one piece, and the
  // whole section when they do not: count it here so the limit does not depend on how it arrived.
  // (Not eager, a put that completes the header stops there, so all of `n` is header bytes.)
  head_bytes_ += n;
  if (!ec && parser_->is_header_done() && head_bytes_ > config_.max_header_bytes)
    ec = http::error::header_limit;
  if (ec == http::error::need_more) return;
  if (!started_.time_since_epoch().count()) started_ = now();
  if (ec == http::error::header_limit) {
    method_ = "-";
    respond_local(431, "The request header section is larger than the edge accepts.", false);
    return;
  }
  if (ec) {
    method_ = "-";
    respond_local(400, "The request could not be parsed: " + ec.message() + ".", false);
    return;
  }
  if (parser_->is_header_done()) {
    head_deadline_.reset();
    start_request();
  }
}

void HttpProxy::start_request() {
  const auto& req = parser_->get();
  started_ = now();
  version_ = req.version();
  keep_alive_ = parser_->keep_alive();
  method_ = std::string(view(req.method_string()));
  head_method_ = req.method() == http::verb::head;
  std::string target(view(req.target()));
  target_ = target;
  const std::optional<uint64_t> content_length =
      parser_->content_length() ? std::optional<uint64_t>(*parser_->content_length()) : std::nullopt;
  req_has_body_ = parser_->chunked() || (content_length && *content_length > 0);

  if (req.count(http::field::transfer_encoding) > 0 && req.count(http::field::content_length) > 0) {
    respond_local(400, "The request has both Transfer-Encoding and Content-Length.", false);
    return;
  }
  // Framing the edge and the origin could read differently is refused (RFC 9112 §6.3): no smuggling.
  if (std::string detail; const int status = transfer_encoding_status(req, &detail)) {
    respond_local(status, detail, false);
    return;
  }
  if (req.method() == http::verb::connect) {
    respond_local(405, "CONNECT is not supported by tunnels.", false);
    return;
  }
  // Authority: from an absolute-form target, else the Host header (exactly one).
  std::string authority;
  if (starts_with_icase(target, "http://") || starts_with_icase(target, "https://")) {
    const size_t start = target.find("//") + 2;
    const size_t slash = target.find_first_of("/?", start);
    authority = target.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    target = slash == std::string::npos ? "/" : target.substr(slash);
    if (target.front() == '?') target = "/" + target;
  } else {
    if (req.count(http::field::host) != 1) {
      respond_local(400,
                    req.count(http::field::host) == 0 ? "The request has no Host header."
                                                      : "The request has more than one Host header.",
                    false);
      return;
    }
    authority = std::string(view(req[http::field::host]));
    if (!(target.starts_with("/") || (target == "*" && req.method() == http::verb::options))) {
      respond_local(400, "The request target is not a path.", false);
      return;
    }
  }
  target_ = target;
  const auto host = normalize_host(authority);
  if (!host) {
    respond_local(400, "The Host header is not a valid host name.", false);
    return;
  }
  host_ = *host;
  authority_ = std::move(authority);
  expect_continue_ = req_has_body_ && expects_continue(req);

  // The route may be answered inline (on_route() runs before route() returns) or later.
  phase_ = Phase::kRouting;
  open_deadline_ = started_ + config_.open_timeout;
  route_ticket_ = 0;
  const uint64_t ticket = dir_.route(host_, this);
  if (phase_ == Phase::kRouting) route_ticket_ = ticket;
}

void HttpProxy::on_route(const RouteLookup& route) {
  if (phase_ != Phase::kRouting) return;
  route_ticket_ = 0;
  route_ = route;
  routed();
  if (in_process_) {
    again_ = true;  // answered inline, from start_request()
    return;
  }
  process();
  if (hooks_.wake) hooks_.wake();
}

void HttpProxy::routed() {
  const bool body_unread = req_has_body_;  // nothing of it is read before a stream is open
  if (route_.kind == RouteLookup::Kind::kUnknown) {
    respond_local(404, "No tunnel is serving " + host_ + ".", keep_alive_ && !body_unread);
    return;
  }
  if (route_.kind == RouteLookup::Kind::kOffline) {
    respond_local(502, "The tunnel for " + host_ + " is offline: its agent is not connected.",
                  keep_alive_ && !body_unread);
    return;
  }
  const std::optional<uint64_t> content_length =
      parser_->content_length() ? std::optional<uint64_t>(*parser_->content_length()) : std::nullopt;
  std::string detail;
  if (const int status =
          build_request_head(parser_->get(), target_, authority_, content_length, parser_->chunked(),
                             config_.client, route_.tunnel_id, head_, &detail);
      status != 0) {
    respond_local(status, detail, false);
    return;
  }
  phase_ = Phase::kOpening;  // open_deadline_ runs from the head, through the route lookup
  try_open();
}

void HttpProxy::try_open() {
  StreamRef ref;
  const std::string_view client =
      config_.client.limit_key.empty() ? config_.client.ip : config_.client.limit_key;
  const auto status = dir_.open_request(route_, client, this, &ref);
  switch (status) {
    case TunnelDirectory::OpenStatus::kOpened:
      ref_ = ref;
      attached_ = true;
      phase_ = Phase::kExchange;
      body_deadline_ = now() + config_.body_timeout;
      body_stalled_since_.reset();
      head_out_ = tunnel::encode_request_open(head_);
      head_out_pos_ = 0;
      head_ = {};
      if (expect_continue_) append_out(kContinue);
      return;
    case TunnelDirectory::OpenStatus::kBusy:
    case TunnelDirectory::OpenStatus::kClientLimit:
      if (now() >= open_deadline_) {
        if (status == TunnelDirectory::OpenStatus::kClientLimit) {
          respond_local(429, "This client has too many requests in flight to the tunnel.",
                        keep_alive_ && !req_has_body_);
        } else {
          respond_local(502, "The tunnel's agent has too many requests in flight.",
                        keep_alive_ && !req_has_body_);
        }
        return;
      }
      next_retry_ = now() + config_.open_retry;
      return;
    case TunnelDirectory::OpenStatus::kGone:
      respond_local(502, "The tunnel's agent disconnected.", keep_alive_ && !req_has_body_);
      return;
  }
}

void HttpProxy::pump_request() {
  if (!attached_ || req_fin_sent_ || req_stopped_) return;
  // The head first; FIN with it when there is no body.
  while (head_out_pos_ < head_out_.size()) {
    const auto rest = std::span<const uint8_t>(head_out_).subspan(head_out_pos_);
    const bool fin = !req_has_body_;
    const size_t k = dir_.write(ref_, rest, fin);
    head_out_pos_ += k;
    if (k < rest.size()) return;  // on_request_writable() resumes
    if (fin) {
      req_fin_sent_ = true;
      head_out_.clear();
      maybe_finish_request();
      return;
    }
  }
  head_out_.clear();
  head_out_pos_ = 0;
  // Then the body: decoded into a buffer of at most body_chunk bytes, which must be taken by the
  // stream before more is decoded. A short write makes the stream report on_request_writable().
  for (;;) {
    if (body_pos_ < body_.size()) {
      const auto rest = std::span<const uint8_t>(body_).subspan(body_pos_);
      body_pos_ += dir_.write(ref_, rest, false);
      if (body_pos_ < body_.size()) return;
    }
    body_.clear();
    body_pos_ = 0;
    if (parser_->is_done()) {
      dir_.write(ref_, {}, true);
      req_fin_sent_ = true;
      maybe_finish_request();
      return;
    }
    if (in_.empty()) return;
    // A body can't decode to more bytes than its input: size the buffer to that, so a small body
    // doesn't zero-fill a whole body_chunk.
    body_.resize(std::min(config_.body_chunk, in_.size()));
    auto& body = parser_->get().body();
    body.data = body_.data();
    body.size = body_.size();
    body.more = true;
    boost::system::error_code ec;
    const size_t n = parser_->put(boost::asio::buffer(in_.data(), in_.size()), ec);
    in_.erase(in_.begin(), in_.begin() + static_cast<ptrdiff_t>(n));
    body_.resize(body_.size() - body.size);
    body.data = nullptr;
    body.size = 0;
    if (ec && ec != http::error::need_buffer && ec != http::error::need_more) {
      fail_body(chunk_extension_too_long_ ? "A chunk extension of the request body is longer than " +
                                                std::to_string(kMaxChunkExtension) + " bytes."
                                          : "The request body could not be parsed: " + ec.message() + ".");
      return;
    }
    if (n == 0 && body_.empty() && !parser_->is_done()) {
      // Needs more input. Only a chunk-size line or the trailer section is taken whole by the
      // parser: one that cannot fit the input buffer would hold the stream until the idle timeout.
      if (in_.size() >= max_input_) {
        fail_body("A chunk-size line or trailer section of the request body does not fit in " +
                  std::to_string(max_input_) + " bytes.");
      }
      return;
    }
  }
}

void HttpProxy::fail_body(const std::string& detail) {
  // The agent's request cannot complete.
  body_.clear();
  body_pos_ = 0;
  cancel_stream(tunnel::kStreamCancelled);
  if (!head_sent_) {
    respond_local(400, detail, false);
  } else {
    close_after_ = true;
    finished_ = true;
    phase_ = Phase::kClosing;
    in_.clear();
    write_log(status_, "bad request body");
  }
}

void HttpProxy::on_request_writable() {
  process();
  if (hooks_.wake) hooks_.wake();
}

void HttpProxy::on_request_stopped(std::optional<uint32_t> /*code*/) {
  req_stopped_ = true;
  if (!req_fin_sent_) close_after_ = true;  // the rest of the body will not be read
  maybe_finish_request();
  if (hooks_.wake) hooks_.wake();
}

// --- end of a request -----------------------------------------------------------------------------

void HttpProxy::cancel_stream(uint32_t code) {
  if (!attached_) return;
  attached_ = false;
  dir_.cancel(ref_, code);
}

void HttpProxy::respond_local(int status, std::string_view detail, bool keep_alive) {
  if (attached_) cancel_stream(tunnel::kStreamCancelled);
  if (++local_answers_ >= config_.max_local_answers) keep_alive = false;
  append_out(error_response(status, detail, version_, keep_alive));
  head_sent_ = true;
  status_ = status;
  note_ = std::string(detail);
  if (!keep_alive) close_after_ = true;
  resp_ = Resp::kDone;
  req_fin_sent_ = true;  // nothing more goes to an agent for this request
  maybe_finish_request();
}

void HttpProxy::maybe_finish_request() {
  if (resp_ != Resp::kDone || finished_) return;
  if (!req_fin_sent_ && !req_stopped_) {
    // The response is complete before the request body: stop forwarding and close afterwards.
    cancel_stream(tunnel::kStreamCancelled);
    close_after_ = true;
  } else if (attached_) {
    attached_ = false;
    dir_.release(ref_);
  }
  write_log(status_, note_);
  ++completed_;
  if (close_after_ || !keep_alive_) {
    finished_ = true;
    phase_ = Phase::kClosing;
    in_.clear();
    return;
  }
  reset_request();
  again_ = true;  // a pipelined request may already be buffered
  if (!in_process_) process();
}

void HttpProxy::reset_request() {
  phase_ = Phase::kHead;
  parser_.reset();
  method_.clear();
  host_.clear();
  target_.clear();
  authority_.clear();
  head_ = {};
  route_ = {};
  route_ticket_ = 0;
  ref_ = {};
  attached_ = false;
  head_out_.clear();
  head_out_pos_ = 0;
  body_.clear();
  body_pos_ = 0;
  req_fin_sent_ = req_stopped_ = false;
  req_has_body_ = expect_continue_ = false;
  resp_ = Resp::kAwaitHead;
  head_reader_ = {};
  plan_ = {};
  resp_in_ = resp_bytes_ = 0;
  head_sent_ = close_after_ = false;
  status_ = 0;
  note_.clear();
  started_ = {};
  head_deadline_.reset();  // set again by the next request's first byte
  head_started_ = false;
  chunk_extension_too_long_ = false;
  body_stalled_since_.reset();
}

void HttpProxy::write_log(int status, std::string note) {
  if (!hooks_.log) return;
  RequestLog l;
  l.method = method_.empty() ? "-" : method_;
  l.host = host_.empty() ? "-" : host_;
  l.target = target_.empty() ? "-" : target_;
  l.status = status;
  l.bytes = resp_bytes_;
  const SteadyTime start = started_.time_since_epoch().count() ? started_ : now();
  l.duration = std::chrono::duration_cast<std::chrono::microseconds>(now() - start);
  l.note = std::move(note);
  hooks_.log(l);
}

}  // namespace wtmesh::edge
