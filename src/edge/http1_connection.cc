#include "edge/http1_connection.h"

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <iterator>
#include <utility>

#include "common/beast_chunked.h"

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

Http1Connection::Http1Connection(TunnelDirectory& directory, Http1Config config, Hooks hooks)
    : dir_(directory),
      config_(std::move(config)),
      hooks_(std::move(hooks)),
      // Room for a full header section plus some body bytes behind it.
      max_input_(config_.max_header_bytes + 16 * 1024),
      ex_(directory, ExchangeConfig{config_.client, config_.limits, config_.clock}, *this) {
  head_deadline_ =
      now() + config_.limits.header_timeout;  // the first request: counted from the connection's start
  on_chunk_header_ = [this](std::uint64_t, boost::beast::string_view extensions,
                            boost::system::error_code& ec) {
    if (extensions.size() > kMaxChunkExtension) {
      chunk_extension_too_long_ = true;
      ec = http::error::bad_chunk_extension;
    }
  };
}

Http1Connection::~Http1Connection() {
  ex_.cancel("");
  drop_output();
}

SteadyTime Http1Connection::now() const {
  return config_.clock ? config_.clock() : std::chrono::steady_clock::now();
}

// --- client side ----------------------------------------------------------------------------------

size_t Http1Connection::on_client_bytes(std::span<const uint8_t> data) {
  if (finished_) return data.size();  // nothing more is read from a connection being closed
  const size_t room = max_input_ - std::min(max_input_, in_.size());
  const size_t n = std::min(room, data.size());
  in_.insert(in_.end(), data.begin(), data.begin() + static_cast<ptrdiff_t>(n));
  ex_.note_client_bytes(n);  // counts while the exchange reads a request body
  process();
  return n;
}

void Http1Connection::on_client_eof() {
  if (upgrade_ == Upgrade::kSwitched && !finished_) {
    // The client ended its direction of the upgraded connection: FIN to the agent once its bytes
    // are through; the agent's direction goes on. (The glue repeats this call: once is enough.)
    if (!client_eof_) {
      client_eof_ = true;
      process();
    }
    return;
  }
  abort("client closed the connection");
}

void Http1Connection::abort(std::string_view why) {
  if (finished_) return;
  if (auto outcome = ex_.cancel(why)) write_log(outcome->status, outcome->note);
  close_connection();
  drop_output();
}

void Http1Connection::on_client_written(size_t n) {
  n = std::min(n, out_.size());
  const bool was_full = out_.size() >= config_.limits.max_pending_output;
  out_.consume(n);
  out_base_ += n;
  while (!credits_.empty() && credits_.front().end <= out_base_) {
    dir_.consume(credits_.front().ref, credits_.front().n);
    credits_.pop_front();
  }
  // Requests held back while the client had too much unread output may be parsed now.
  if (was_full && out_.size() < config_.limits.max_pending_output && phase_ == Phase::kHead && !in_.empty())
    process();
  // Between exchanges, an idle keep-alive connection gives back a large response's buffer.
  if (!ex_.attached()) out_.release_if_empty();
}

void Http1Connection::append_head(std::string head) {
  const size_t end = head.find("\r\n\r\n");
  if (!config_.alt_svc.empty() && end != std::string::npos) {
    head.insert(end + 2, "alt-svc: " + config_.alt_svc + "\r\n");
  }
  append_out(head);
}

void Http1Connection::append_out(std::string_view bytes) {
  out_.append({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

void Http1Connection::drop_output() {
  // Bytes that will never reach the client still owe their credit to the agent's connection window.
  for (const auto& c : credits_) dir_.consume(c.ref, c.n);
  credits_.clear();
  out_base_ += out_.size();
  out_.clear();
}

void Http1Connection::drain() {
  if (finished_ || draining_) return;
  draining_ = true;
  // Idle between requests (no byte of a next one yet): close now; a client retries a request on a
  // reused connection that closed, on a new one, which the drained edge no longer accepts. A fresh
  // connection stays open for its first request (its response then says Connection: close). Else the
  // response under way is the last one.
  if (phase_ == Phase::kHead && !head_started_ && !ex_.attached() && completed_ > 0) close_connection();
}

void Http1Connection::close_connection() {
  finished_ = true;
  phase_ = Phase::kClosing;
  in_.clear();
}

// --- time -----------------------------------------------------------------------------------------

std::optional<SteadyTime> Http1Connection::next_deadline() const {
  if (finished_) return std::nullopt;
  std::optional<SteadyTime> d = ex_.next_deadline();
  if (phase_ == Phase::kHead && head_deadline_ && (!d || *head_deadline_ < *d)) d = *head_deadline_;
  return d;
}

void Http1Connection::on_tick(SteadyTime t) {
  if (finished_) return;
  if (phase_ == Phase::kHead && head_deadline_ && t >= *head_deadline_) {
    on_slow_head();
    return;
  }
  ex_.on_tick(t);
  process();
}

void Http1Connection::on_slow_head() {
  if (!head_started_ && in_.empty()) {
    // Nothing of a request came (a bare connection, or a preconnect never used): close silently.
    finished_ = true;
    phase_ = Phase::kClosing;
    return;
  }
  if (method_.empty()) method_ = "-";
  if (!started_.time_since_epoch().count()) started_ = now();
  answer(408, "The request header section did not arrive in time.");
}

// --- request --------------------------------------------------------------------------------------

void Http1Connection::process() {
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

void Http1Connection::step() {
  if (finished_) return;
  // A client with too much unread output gets no new request parsed until it reads (its input then
  // fills and the glue stops reading the socket).
  if (phase_ == Phase::kHead && out_.size() < config_.limits.max_pending_output) parse_head();
  if (phase_ == Phase::kExchange) feed_body();
}

void Http1Connection::parse_head() {
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
    if (!head_deadline_) head_deadline_ = now() + config_.limits.header_timeout;
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
    answer(431, "The request header section is larger than the edge accepts.");
    return;
  }
  if (ec) {
    method_ = "-";
    answer(400, "The request could not be parsed: " + ec.message() + ".");
    return;
  }
  if (parser_->is_header_done()) {
    head_deadline_.reset();
    start_request();
  }
}

void Http1Connection::start_request() {
  const auto& req = parser_->get();
  started_ = now();
  version_ = req.version();
  keep_alive_ = parser_->keep_alive();
  method_ = std::string(view(req.method_string()));
  std::string target(view(req.target()));
  target_ = target;
  const std::optional<uint64_t> content_length =
      parser_->content_length() ? std::optional<uint64_t>(*parser_->content_length()) : std::nullopt;

  if (req.count(http::field::transfer_encoding) > 0 && req.count(http::field::content_length) > 0) {
    answer(400, "The request has both Transfer-Encoding and Content-Length.");
    return;
  }
  // Framing the edge and the origin could read differently is refused (RFC 9112 §6.3): no smuggling.
  if (std::string detail; const int status = transfer_encoding_status(req, &detail)) {
    answer(status, detail);
    return;
  }
  if (req.method() == http::verb::connect) {
    answer(405, "CONNECT is not supported by tunnels.");
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
      answer(400, req.count(http::field::host) == 0 ? "The request has no Host header."
                                                    : "The request has more than one Host header.");
      return;
    }
    authority = std::string(view(req[http::field::host]));
    if (!(target.starts_with("/") || (target == "*" && req.method() == http::verb::options))) {
      answer(400, "The request target is not a path.");
      return;
    }
  }
  target_ = target;
  const auto host = normalize_host(authority);
  if (!host) {
    answer(400, "The Host header is not a valid host name.");
    return;
  }
  host_ = *host;

  ExchangeRequest r;
  r.method = method_;
  r.target = target_;
  r.authority = std::move(authority);
  r.host = host_;
  r.headers = end_to_end_fields(req);
  r.has_body = parser_->chunked() || (content_length && *content_length > 0);
  if (!parser_->chunked()) r.content_length = content_length;
  r.head_request = req.method() == http::verb::head;
  r.expect_continue = r.has_body && expects_continue(req);
  r.may_have_trailers = parser_->chunked();  // a chunked body's trailer section (RFC 9112 §7.1.2)
  head_fields_ = static_cast<size_t>(std::distance(req.begin(), req.end()));
  te_trailers_ = accepts_trailers(req);
  trailers_.clear();
  // WebSocket: a bodiless GET with Connection: upgrade + Upgrade: websocket. Another Upgrade is
  // hop-by-hop and dropped: the request goes on as a plain one.
  if (!r.has_body) {
    r.upgrade = requested_upgrade(req);
    if (!r.upgrade.empty()) upgrade_ = Upgrade::kAsked;
  }
  phase_ = Phase::kExchange;  // the exchange may end inline (a route answered at once)
  body_ended_ = false;
  body_input_ = 0;
  ex_.begin(std::move(r), started_);
}

void Http1Connection::feed_body() {
  if (upgrade_ == Upgrade::kAsked) {
    ex_.pump_request();  // what follows the head is the new protocol's: it waits for the 101
    return;
  }
  if (upgrade_ == Upgrade::kSwitched) {
    relay_raw();
    return;
  }
  ex_.pump_request();
  // Body bytes are decoded from the input only as far as the exchange (and so the stream) takes
  // them: a slow agent leaves the rest in the bounded input buffer and the glue stops reading.
  while (phase_ == Phase::kExchange && !body_ended_ && !finished_) {
    const size_t room = ex_.request_body_room();
    if (room == 0) return;
    if (parser_->is_done()) {
      body_ended_ = true;
      ex_.on_request_end(request_trailers());
      return;
    }
    if (in_.empty()) return;
    if (hold_chunked_body_start(parser_->chunked(), body_input_, in_)) return;  // common/beast_chunked.h
    // A body can't decode to more bytes than its input: size the buffer to that, so a small body
    // doesn't zero-fill a whole body_chunk.
    decoded_.resize(std::min(room, in_.size()));
    auto& body = parser_->get().body();
    body.data = decoded_.data();
    body.size = decoded_.size();
    body.more = true;
    boost::system::error_code ec;
    const size_t n = parser_->put(boost::asio::buffer(in_.data(), in_.size()), ec);
    in_.erase(in_.begin(), in_.begin() + static_cast<ptrdiff_t>(n));
    body_input_ += n;
    decoded_.resize(decoded_.size() - body.size);
    body.data = nullptr;
    body.size = 0;
    if (ec && ec != http::error::need_buffer && ec != http::error::need_more) {
      ex_.on_request_error(chunk_extension_too_long_
                               ? "A chunk extension of the request body is longer than " +
                                     std::to_string(kMaxChunkExtension) + " bytes."
                               : "The request body could not be parsed: " + ec.message() + ".");
      return;
    }
    if (n == 0 && decoded_.empty() && !parser_->is_done()) {
      // Needs more input. Only a chunk-size line or the trailer section is taken whole by the
      // parser: one that cannot fit the input buffer would hold the stream until the idle timeout.
      if (in_.size() >= max_input_) {
        ex_.on_request_error("A chunk-size line or trailer section of the request body does not fit in " +
                             std::to_string(max_input_) + " bytes.");
      }
      return;
    }
    if (!decoded_.empty()) ex_.on_request_body(decoded_);
  }
}

// Beast's parser adds a chunked body's trailer fields to the message after the head's (bounded by the
// input buffer, which must hold the whole trailer section): those after head_fields_.
tunnel::HeaderPairs Http1Connection::request_trailers() const {
  tunnel::HeaderPairs out;
  if (!parser_->chunked()) return out;
  size_t i = 0;
  for (const auto& f : parser_->get()) {
    if (i++ >= head_fields_)
      out.emplace_back(std::string(view(f.name_string())), std::string(view(f.value())));
  }
  return out;
}

void Http1Connection::relay_raw() {
  ex_.pump_request();
  // The agent ended its direction: the connection closes once its bytes are out (exchange_done), and
  // what the client still sends is not forwarded.
  if (upstream_ended_ && !body_ended_) {
    in_.clear();
    client_eof_ = true;
  }
  while (!body_ended_ && !finished_ && phase_ == Phase::kExchange && !in_.empty()) {
    const size_t n = std::min(ex_.request_body_room(), in_.size());
    if (n == 0) return;  // the stream holds back: the input fills and the glue stops reading
    decoded_.assign(in_.begin(), in_.begin() + static_cast<ptrdiff_t>(n));
    in_.erase(in_.begin(), in_.begin() + static_cast<ptrdiff_t>(n));
    ex_.on_request_body(decoded_);
  }
  if (client_eof_ && in_.empty() && !body_ended_ && !finished_ && phase_ == Phase::kExchange) {
    body_ended_ = true;
    ex_.on_request_end();  // FIN once the bytes held by the exchange are on the stream
  }
}

// --- ExchangeSink: the exchange's answer as HTTP/1.1 ------------------------------------------------

void Http1Connection::send_continue() { append_out(kContinue); }

void Http1Connection::send_interim(const tunnel::ResponseHead& head) {
  // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client; 101 is the switch (send_response_head).
  if (version_ >= 11 && upgrade_ != Upgrade::kAsked) append_out(interim_head_bytes(head));
}

void Http1Connection::send_trailers(const tunnel::HeaderPairs& trailers) {
  if (te_trailers_ && framing_ == Framing::kChunked) trailers_ = trailers;  // else dropped (RFC 9110 §6.5.1)
}

void Http1Connection::send_response_head(const tunnel::ResponseHead& head, bool head_request, bool reusable) {
  local_answers_ = 0;
  if (head.status == 101 && upgrade_ == Upgrade::kAsked) {
    // Switched: raw bytes both ways until each side ends, then the connection closes.
    append_out(switching_head_bytes(head, "websocket"));
    framing_ = Framing::kClose;
    close_after_ = true;
    upgrade_ = Upgrade::kSwitched;
    return;
  }
  upgrade_ = Upgrade::kNone;  // an upgrade declined (or never asked): a normal response
  const bool keep = keep_alive_ && reusable && !close_after_ && !draining_;
  ResponsePlan plan;
  append_head(response_head_bytes(head, head_request, version_, keep, &plan));
  framing_ = plan.framing;
  if (!plan.keep_alive) close_after_ = true;
}

void Http1Connection::send_response_body(std::span<const uint8_t> data, const StreamRef& credit) {
  if (data.empty()) return;
  if (framing_ == Framing::kNone) {
    dir_.consume(credit, data.size());
    return;
  }
  if (framing_ == Framing::kChunked) append_out(chunk_header(data.size()));
  out_.append(data);
  resp_bytes_ += data.size();
  credits_.push_back(Credit{out_base_ + out_.size(), credit, data.size()});
  if (framing_ == Framing::kChunked) append_out(kChunkTrailer);
}

void Http1Connection::send_response_end(bool complete) {
  if (upgrade_ == Upgrade::kSwitched) upstream_ended_ = true;  // relay_raw() ends the client's side
  if (framing_ == Framing::kChunked) {
    if (trailers_.empty()) {
      append_out(kLastChunk);
    } else {
      append_out(last_chunk_with_trailers(std::exchange(trailers_, {})));
    }
  }
  if (!complete || framing_ == Framing::kClose) close_after_ = true;
}

void Http1Connection::send_error(int status, std::string_view detail, bool reusable, bool from_agent) {
  bool keep = keep_alive_ && reusable && !draining_;
  if (!from_agent && ++local_answers_ >= config_.limits.max_local_answers) keep = false;
  append_head(error_response(status, detail, version_, keep));
  if (!keep) close_after_ = true;
}

void Http1Connection::exchange_done(const ExchangeOutcome& outcome) {
  write_log(outcome.status, outcome.note);
  if (!outcome.completed) {
    close_connection();
    return;
  }
  ++completed_;
  if (close_after_ || draining_ || !outcome.reusable || !keep_alive_) {
    close_connection();
    return;
  }
  reset_request();
  again_ = true;  // a pipelined request may already be buffered
  if (!in_process_) process();
}

void Http1Connection::exchange_progress() {
  if (in_process_) {
    again_ = true;  // during a call from the glue (a route answered inline)
    return;
  }
  process();
  if (hooks_.wake) hooks_.wake();
}

// --- end of a request -----------------------------------------------------------------------------

void Http1Connection::answer(int status, std::string_view detail) {
  ++local_answers_;
  append_head(error_response(status, detail, version_, false));
  write_log(status, std::string(detail));
  ++completed_;
  close_connection();
}

void Http1Connection::reset_request() {
  phase_ = Phase::kHead;
  parser_.reset();
  method_.clear();
  host_.clear();
  target_.clear();
  started_ = {};
  head_deadline_.reset();  // set again by the next request's first byte
  head_started_ = false;
  chunk_extension_too_long_ = false;
  body_ended_ = false;
  body_input_ = 0;
  framing_ = Framing::kNone;
  resp_bytes_ = 0;
  close_after_ = false;
  upgrade_ = Upgrade::kNone;
  client_eof_ = upstream_ended_ = false;
}

void Http1Connection::write_log(int status, std::string note) {
  if (!hooks_.log) return;
  const SteadyTime start = started_.time_since_epoch().count() ? started_ : now();
  hooks_.log(make_request_log(method_, host_, target_, status, resp_bytes_, now() - start, std::move(note),
                              version_ >= 11 ? "HTTP/1.1" : "HTTP/1.0"));
}

}  // namespace wtmesh::edge
