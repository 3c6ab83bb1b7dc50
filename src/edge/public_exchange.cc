// PublicExchange, the request half: route, open, the tunnel request head and the request body
// (edge/public_exchange.h). The response half is in public_exchange_response.cc.
#include "edge/public_exchange.h"

#include <algorithm>

#include "common/text.h"
#include "edge/connect_page.h"
#include "edge/http_codec.h"
#include "edge/visitor_gate.h"

namespace wtmesh::edge {

int tunnel_request_head(const ExchangeRequest& req, const ClientInfo& client, uint32_t tunnel_id,
                        tunnel::RequestHead& out, std::string* detail) {
  out = {};
  out.tunnel_id = tunnel_id;
  out.method = req.method;
  out.target = req.target;
  out.authority = req.authority;
  out.has_body = req.has_body;
  if (req.content_length) {
    out.content_length = req.content_length;
    out.has_body = *req.content_length > 0;
  }
  std::string xff, forwarded;
  out.headers.reserve(req.headers.size() + 6);  // + upgrade and the five forwarding fields
  for (const auto& [name, value] : req.headers) {
    if (name == "x-forwarded-proto" || name == "x-forwarded-host") continue;  // ours replace them
    // Single-address client-IP headers that services trust as they find them: a client could name
    // any address. Dropped; x-real-ip is set below to the address the edge saw.
    if (name == "x-real-ip" || name == "true-client-ip" || name == "x-client-ip" ||
        name == "cf-connecting-ip")
      continue;
    if (name == "x-forwarded-for") {
      xff += (xff.empty() ? "" : ", ") + std::string(trim(value));
      continue;
    }
    if (name == "forwarded") {
      forwarded += (forwarded.empty() ? "" : ", ") + std::string(trim(value));
      continue;
    }
    out.headers.emplace_back(name, value);
  }
  if (!req.upgrade.empty()) out.headers.emplace_back("upgrade", req.upgrade);
  const std::string_view proto = client.tls ? "https" : "http";
  const bool v6 = client.ip.find(':') != std::string::npos;
  if (!xff.empty()) xff += ", ";
  xff += client.ip;
  forwarded.reserve(forwarded.size() + client.ip.size() + req.authority.size() + 32);
  if (!forwarded.empty()) forwarded += ", ";
  forwarded += "for=";
  if (v6) forwarded += "\"[";
  forwarded += client.ip;
  if (v6) forwarded += "]\"";
  forwarded += ";host=\"";
  forwarded += req.authority;
  forwarded += "\";proto=";
  forwarded += proto;
  out.headers.emplace_back("x-forwarded-for", std::move(xff));
  out.headers.emplace_back("x-forwarded-proto", std::string(proto));
  out.headers.emplace_back("x-forwarded-host", req.authority);
  out.headers.emplace_back("forwarded", std::move(forwarded));
  out.headers.emplace_back("x-real-ip", client.ip);

  if (out.headers.size() > tunnel::kMaxHeaderCount) {
    *detail = "too many header fields";
    return 431;
  }
  // kind + head_length are at most 9 bytes on top of the head.
  if (tunnel::request_open_size(out) > tunnel::kMaxHeadLength + 9) {
    *detail = "the request header section is too large";
    return 431;
  }
  return 0;
}

PublicExchange::PublicExchange(TunnelDirectory& directory, ExchangeConfig config, ExchangeSink& sink)
    : dir_(directory), config_(std::move(config)), sink_(sink) {}

PublicExchange::~PublicExchange() {
  if (phase_ == Phase::kRouting) dir_.cancel_route(route_ticket_);
  if (attached_) {
    attached_ = false;
    dir_.cancel(ref_, tunnel::kStreamCancelled);
  }
}

SteadyTime PublicExchange::now() const {
  return config_.clock ? config_.clock() : std::chrono::steady_clock::now();
}

// --- begin: route and open ------------------------------------------------------------------------

void PublicExchange::begin(ExchangeRequest request, SteadyTime started) {
  reset();
  req_ = std::move(request);
  if (!req_.upgrade.empty()) {
    req_.has_body = true;  // an upgraded exchange sends bytes later, of no known length
    req_.content_length.reset();
  }
  started_ = started;
  // The route may be answered inline (on_route() runs before route() returns) or later.
  phase_ = Phase::kRouting;
  open_deadline_ = started_ + config_.limits.open_timeout;
  const uint64_t generation = ++generation_;
  const uint64_t ticket = dir_.route(req_.host, this);
  // Answered inline, the exchange may have ended and another begun: the ticket is not its.
  if (generation_ == generation && phase_ == Phase::kRouting) route_ticket_ = ticket;
}

void PublicExchange::on_route(const RouteLookup& route) {
  if (phase_ != Phase::kRouting) return;
  route_ticket_ = 0;
  route_ = route;
  routed();
  sink_.exchange_progress();
}

void PublicExchange::routed() {
  const bool body_unread = req_.has_body;  // nothing of it is read before a stream is open
  if (route_.kind == RouteLookup::Kind::kUnknown) {
    if (serve_connect_page()) return;
    respond_local(404, "No tunnel is serving " + req_.host + ".", !body_unread);
    return;
  }
  if (route_.kind == RouteLookup::Kind::kOffline) {
    respond_local(502, "The tunnel for " + req_.host + " is offline: its agent is not connected.",
                  !body_unread);
    return;
  }
  if (!admit_visitor(body_unread)) return;
  std::string detail;
  if (const int status = tunnel_request_head(req_, config_.client, route_.tunnel_id, head_, &detail);
      status != 0) {
    respond_local(status, detail, false);
    return;
  }
  phase_ = Phase::kOpening;  // open_deadline_ runs from the head, through the route lookup
  try_open();
}

void PublicExchange::try_open() {
  StreamRef ref;
  const std::string_view client =
      config_.client.limit_key.empty() ? config_.client.ip : config_.client.limit_key;
  const auto status = dir_.open_request(route_, client, this, &ref);
  switch (status) {
    case TunnelDirectory::OpenStatus::kOpened:
      ref_ = ref;
      attached_ = true;
      phase_ = Phase::kExchange;
      body_deadline_ = now() + config_.limits.body_timeout;
      body_stalled_since_.reset();
      head_.framed = framed_request_ =
          ref.request_trailers && req_.has_body && req_.may_have_trailers && req_.upgrade.empty();
      head_out_ = tunnel::encode_request_open(head_);
      head_out_pos_ = 0;
      head_ = {};
      if (req_.expect_continue) sink_.send_continue();
      pump_request();
      return;
    case TunnelDirectory::OpenStatus::kBusy:
    case TunnelDirectory::OpenStatus::kClientLimit:
      if (now() >= open_deadline_) return refuse_open(status, !req_.has_body);
      next_retry_ = now() + config_.limits.open_retry;
      return;
    case TunnelDirectory::OpenStatus::kGone:
      respond_local(502, "The tunnel's agent disconnected.", !req_.has_body);
      return;
  }
}

void PublicExchange::refuse_open(OpenStatus status, bool reusable) {
  if (status == OpenStatus::kClientLimit) {
    respond_local(429, "This client has too many requests in flight to the tunnel.", reusable);
  } else {
    respond_local(502, "The tunnel's agent has too many requests in flight.", reusable);
  }
}

// --- time -----------------------------------------------------------------------------------------

std::optional<SteadyTime> PublicExchange::next_deadline() const {
  std::optional<SteadyTime> d;
  if (phase_ == Phase::kRouting) d = open_deadline_;
  if (phase_ == Phase::kOpening) d = std::min(next_retry_, open_deadline_);
  if (body_clock_running() && (!d || body_deadline_ < *d)) d = body_deadline_;
  return d;
}

void PublicExchange::on_tick(SteadyTime t) {
  if (body_clock_running() && t >= body_deadline_) {
    respond_local(408, "The request body arrived too slowly.", false);
    return;
  }
  if (phase_ == Phase::kRouting && t >= open_deadline_) {
    // The route table did not answer (a shared store that is slow or unreachable).
    dir_.cancel_route(std::exchange(route_ticket_, 0));
    respond_local(503, "The edge could not find the tunnel for " + req_.host + " in time.", !req_.has_body);
    return;
  }
  if (phase_ == Phase::kOpening && t >= std::min(next_retry_, open_deadline_)) try_open();
}

bool PublicExchange::body_clock_running() const {
  // Only until the agent answers: after that a slow upload is the application's business (the idle
  // timeout still applies), and a full-duplex exchange may legitimately upload slowly.
  // An upgrade request sends nothing before its 101: its wait for the answer is not a slow body.
  return phase_ == Phase::kExchange && attached_ && req_.has_body && req_.upgrade.empty() && !req_fin_sent_ &&
         !req_stopped_ && !head_sent_ && !body_stalled_since_;
}

void PublicExchange::note_client_bytes(size_t n) {
  if (phase_ != Phase::kExchange || n == 0) return;
  const SteadyTime cap = now() + config_.limits.body_timeout;
  if (config_.limits.body_min_rate == 0) {
    body_deadline_ = cap;
    return;
  }
  const auto earned = std::chrono::duration_cast<SteadyTime::duration>(std::chrono::duration<double>(
      static_cast<double>(n) / static_cast<double>(config_.limits.body_min_rate)));
  body_deadline_ = std::min(body_deadline_ + earned, cap);
}

void PublicExchange::set_body_stalled(bool stalled) {
  if (stalled && !body_stalled_since_) {
    body_stalled_since_ = now();
  } else if (!stalled && body_stalled_since_) {
    body_deadline_ += now() - *body_stalled_since_;  // the edge was not reading: not the client's time
    body_stalled_since_.reset();
  }
}

// --- request body ---------------------------------------------------------------------------------

size_t PublicExchange::request_body_room() const {
  if (phase_ != Phase::kExchange || !attached_ || req_end_ || req_fin_sent_ || req_stopped_) return 0;
  if (head_out_pos_ < head_out_.size() || !head_out_.empty() || body_pos_ < body_.size()) return 0;
  return config_.limits.body_chunk;
}

void PublicExchange::on_request_body(std::span<const uint8_t> data) {
  if (phase_ != Phase::kExchange || req_end_) return;
  if (framed_request_) {
    tunnel::append_body_chunk(body_, data);
  } else {
    body_.insert(body_.end(), data.begin(), data.end());
  }
  pump_request();
}

void PublicExchange::on_request_end(const tunnel::HeaderPairs& trailers) {
  if (phase_ != Phase::kExchange || req_end_) return;
  if (framed_request_ && !tunnel::append_body_end(body_, tunnel::forwardable_trailers(trailers))) {
    return on_request_error("The request's trailer section is larger than the tunnel carries (" +
                            std::to_string(tunnel::kMaxTrailerLength / 1024) + " KiB, " +
                            std::to_string(tunnel::kMaxHeaderCount) + " fields).");
  }
  req_end_ = true;
  pump_request();
}

void PublicExchange::pump_request() {
  if (!attached_ || req_fin_sent_ || req_stopped_) {
    set_body_stalled(false);
    return;
  }
  // The head first; FIN with it when there is no body.
  while (head_out_pos_ < head_out_.size()) {
    const auto rest = std::span<const uint8_t>(head_out_).subspan(head_out_pos_);
    const bool fin = !req_.has_body;
    const size_t k = dir_.write(ref_, rest, fin);
    head_out_pos_ += k;
    if (k < rest.size()) {
      set_body_stalled(true);
      return;  // on_request_writable() resumes
    }
    if (fin) {
      req_fin_sent_ = true;
      head_out_.clear();
      set_body_stalled(false);
      maybe_finish();
      return;
    }
  }
  head_out_.clear();
  head_out_pos_ = 0;
  if (body_pos_ < body_.size()) {
    const auto rest = std::span<const uint8_t>(body_).subspan(body_pos_);
    body_pos_ += dir_.write(ref_, rest, false);
    if (body_pos_ < body_.size()) {
      set_body_stalled(true);
      return;
    }
  }
  body_.clear();
  body_pos_ = 0;
  set_body_stalled(false);
  if (req_end_) {
    dir_.write(ref_, {}, true);
    req_fin_sent_ = true;
    maybe_finish();
  }
}

void PublicExchange::on_request_error(const std::string& detail) {
  if (phase_ != Phase::kExchange) return;
  // The agent's request cannot complete.
  body_.clear();
  body_pos_ = 0;
  cancel_stream(tunnel::kStreamCancelled);
  if (!head_sent_) {
    respond_local(400, detail, false);
    return;
  }
  ExchangeOutcome o{status_, "bad request body", false, false};
  reset();
  sink_.exchange_done(o);
}

void PublicExchange::on_request_writable() {
  pump_request();
  sink_.exchange_progress();
}

void PublicExchange::on_request_stopped(std::optional<uint32_t> /*code*/) {
  req_stopped_ = true;
  if (!req_fin_sent_) close_after_ = true;  // the rest of the body will not be read
  set_body_stalled(false);
  maybe_finish();
  sink_.exchange_progress();
}

// --- end ------------------------------------------------------------------------------------------

std::optional<ExchangeOutcome> PublicExchange::cancel(std::string_view why) {
  if (phase_ == Phase::kIdle) return std::nullopt;
  if (attached_) cancel_stream(tunnel::kStreamCancelled);
  if (phase_ == Phase::kRouting) dir_.cancel_route(std::exchange(route_ticket_, 0));
  ExchangeOutcome o{head_sent_ ? status_ : 499, std::string(why), false, false};
  reset();
  return o;
}

void PublicExchange::cancel_stream(uint32_t code) {
  if (!attached_) return;
  attached_ = false;
  dir_.cancel(ref_, code);
}

void PublicExchange::respond_local(int status, std::string_view detail, bool reusable) {
  if (attached_) cancel_stream(tunnel::kStreamCancelled);
  if (!reusable) close_after_ = true;
  sink_.send_error(status, detail, reusable, false);
  head_sent_ = true;
  status_ = status;
  note_ = std::string(detail);
  resp_ = Resp::kDone;
  req_fin_sent_ = true;  // nothing more goes to an agent for this request
  maybe_finish();
}

bool PublicExchange::admit_visitor(bool body_unread) {
  VisitorGate* gate = dir_.visitor_gate(route_);
  if (gate == nullptr) return true;
  const VisitorGate::Decision d =
      gate->check(VisitorRequest{config_.client.ip, config_.client.limit_key, req_.host, req_.method,
                                 req_.target, req_.headers},
                  now());
  const auto own_page = [&](int status, std::string_view body, tunnel::HeaderPairs fields, std::string note) {
    tunnel::ResponseHead head;
    head.status = status;
    head.has_body = true;
    head.content_length = body.size();
    head.headers = std::move(fields);
    send_own_response(std::move(head), body, std::move(note), !body_unread);
  };
  switch (d.verdict) {
    case VisitorGate::Verdict::kAllow:
      VisitorGate::apply(d, req_.headers, req_.target);
      return true;
    case VisitorGate::Verdict::kForbidden:
      respond_local(403, d.detail, !body_unread);
      return false;
    case VisitorGate::Verdict::kRateLimited: {
      ErrorPage page = error_page(429, d.detail);
      page.fields.emplace_back("retry-after", "10");
      own_page(429, page.body, page.fields, d.detail);
      return false;
    }
    case VisitorGate::Verdict::kUnauthorized: {
      ErrorPage page = error_page(401, d.detail);
      page.fields.emplace_back("www-authenticate", gate->challenge(req_.host));
      own_page(401, page.body, page.fields, d.detail);
      return false;
    }
    case VisitorGate::Verdict::kChallenge:
      own_page(200, d.page,
               {{"content-type", "text/html; charset=utf-8"},
                {"cache-control", "no-store"},
                {"referrer-policy", "no-referrer"},
                {"x-content-type-options", "nosniff"},
                {"content-security-policy",
                 "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                 "frame-ancestors 'none'"}},
               d.detail);
      return false;
    case VisitorGate::Verdict::kPassed:
      own_page(303, "",
               {{"location", d.location}, {"set-cookie", d.set_cookie}, {"cache-control", "no-store"}},
               "browser check passed");
      return false;
  }
  return true;
}

void PublicExchange::send_own_response(tunnel::ResponseHead head, std::string_view body, std::string note,
                                       bool reusable) {
  if (!reusable) close_after_ = true;
  sink_.send_response_head(head, req_.head_request, reusable);
  if (!req_.head_request && !body.empty()) {
    sink_.send_response_body(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(body.data()), body.size()), StreamRef{});
  }
  sink_.send_response_end(true);
  head_sent_ = true;
  status_ = head.status;
  note_ = std::move(note);
  resp_ = Resp::kDone;
  req_fin_sent_ = true;  // nothing goes to an agent for this request
  maybe_finish();
}

bool PublicExchange::serve_connect_page() {
  // The edge's own page (edge/connect_page.h), on a host no tunnel has: GET or HEAD of exactly its path.
  if ((req_.method != "GET" && req_.method != "HEAD") || req_.has_body || !req_.upgrade.empty()) return false;
  if (std::string_view(req_.target).substr(0, req_.target.find('?')) != kConnectPagePath) return false;
  const std::string_view page = connect_page_html();
  tunnel::ResponseHead head;
  head.status = 200;
  head.has_body = true;
  head.content_length = page.size();
  head.headers = {{"content-type", "text/html; charset=utf-8"},
                  {"cache-control", "no-store"},
                  {"referrer-policy", "no-referrer"},
                  {"x-content-type-options", "nosniff"}};
  send_own_response(std::move(head), page, "the connect page", true);
  return true;
}

void PublicExchange::maybe_finish() {
  if (resp_ != Resp::kDone || phase_ == Phase::kIdle) return;
  if (!req_fin_sent_ && !req_stopped_) {
    if (upgraded_ && attached_) return;  // the client's direction of an upgraded exchange goes on
    // The response is complete before the request body: stop forwarding, not reusable.
    cancel_stream(tunnel::kStreamCancelled);
    close_after_ = true;
  } else if (attached_) {
    attached_ = false;
    dir_.release(ref_);
  }
  ExchangeOutcome o{status_, note_, !close_after_, true};
  reset();
  sink_.exchange_done(o);
}

void PublicExchange::reset() {
  phase_ = Phase::kIdle;
  req_ = {};
  started_ = {};
  route_ = {};
  route_ticket_ = 0;
  head_ = {};
  ref_ = {};
  attached_ = false;
  head_out_.clear();
  head_out_pos_ = 0;
  body_.clear();
  body_pos_ = 0;
  req_end_ = req_fin_sent_ = req_stopped_ = framed_request_ = false;
  body_stalled_since_.reset();
  resp_ = Resp::kAwaitHead;
  head_reader_ = {};
  interim_count_ = 0;
  framed_.reset();
  body_kind_ = Body::kNone;
  body_length_ = resp_in_ = 0;
  head_sent_ = upgraded_ = close_after_ = false;
  status_ = 0;
  note_.clear();
}

}  // namespace wtmesh::edge
