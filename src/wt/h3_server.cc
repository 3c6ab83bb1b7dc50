#include "wt/h3_server.h"

#include <algorithm>
#include <string>
#include <utility>

#include "h3/error_codes.h"

namespace wtmesh::wt {
namespace {

bool is_webtransport_connect(const h3::HeaderList& headers) {
  const std::string* method = h3::find_header(headers, ":method");
  const std::string* protocol = h3::find_header(headers, ":protocol");
  return method != nullptr && *method == "CONNECT" && protocol != nullptr &&
         (*protocol == "webtransport" || *protocol == "webtransport-h3");
}

std::string header_or_empty(const h3::HeaderList& headers, std::string_view name) {
  const std::string* v = h3::find_header(headers, name);
  return v == nullptr ? std::string() : *v;
}

}  // namespace

H3Server::H3Server(h3::Connection& conn, ServerConfig config, Acceptor acceptor)
    : H3SessionRegistry(conn, config), server_config_(std::move(config)), acceptor_(std::move(acceptor)) {
  conn_.set_handler(this);
}

H3Server::~H3Server() { conn_.set_handler(nullptr); }

std::optional<SteadyTime> H3Server::next_deadline() const {
  std::optional<SteadyTime> best = H3SessionRegistry::next_deadline();
  for (const auto& d : deferred_) {
    if (!best || d.deadline < *best) best = d.deadline;
  }
  for (const auto& u : undecided_) {
    if (!best || u.deadline < *best) best = u.deadline;
  }
  return best;
}

void H3Server::on_peer_settings(const h3::Settings& /*peer*/) {
  Entry entry(*this);
  std::vector<Deferred> waiting = std::exchange(deferred_, {});
  for (auto& d : waiting) {
    if (connection_closed_) return;
    process_connect(d.id, d.headers);
  }
}

void H3Server::on_headers(StreamId id, h3::HeaderList headers, bool fin) {
  Entry entry(*this);
  if (plain_.contains(id)) {  // trailers end a plain request's body
    if (fin) {
      requests_->on_request_trailers(id, headers);
      requests_->on_request_body(id, {}, true);
    }
    return;
  }
  if (H3Session* s = find_session(id)) {  // trailers on a CONNECT stream end its body
    if (fin) s->on_connect_data({}, true);
    return;
  }
  for (const auto& d : deferred_) {
    if (d.id == id) return;  // trailers before we decided: nothing to do
  }
  for (const auto& u : undecided_) {
    if (u.id == id) return;
  }
  if (!is_webtransport_connect(headers)) {
    forget_session_id(id, kWtSessionGone);
    if (requests_ != nullptr) {
      plain_.insert(id);
      requests_->on_request(id, headers, fin);
    } else {
      default_fallback(id);
    }
    return;
  }
  if (fin) {  // a CONNECT without a body cannot carry a session
    refuse_connect(id, 400);
    return;
  }
  if (!conn_.peer_settings()) {
    if (deferred_.size() >= server_config_.max_deferred_requests) {
      reject_request(id);
      return;
    }
    deferred_.push_back(Deferred{id, std::move(headers), now() + config_.buffered_stream_timeout});
    return;
  }
  process_connect(id, headers);
}

void H3Server::process_connect(StreamId id, const h3::HeaderList& headers) {
  const h3::Settings& peer = *conn_.peer_settings();
  if (!peer.webtransport || !peer.h3_datagram) {
    refuse_connect(id, 400);
    return;
  }
  const std::string origin = header_or_empty(headers, "origin");
  if (!origin.empty() && !origin_allowed(origin)) {
    refuse_connect(id, 403);
    return;
  }
  if (session_count() + undecided_.size() >= config_.max_sessions) {
    reject_request(id);
    return;
  }

  SessionInfo info;
  info.authority = header_or_empty(headers, ":authority");
  info.path = header_or_empty(headers, ":path");
  info.origin = origin;
  info.transport = Transport::kHttp3;
  info.request_id = id;
  for (const auto& h : headers) info.headers.emplace_back(h.name, h.value);
  const bool draft02 = header_or_empty(headers, "sec-webtransport-http3-draft02") == "1";
  Accept accept = acceptor_ ? acceptor_(info) : Accept{};
  if (connection_closed_) return;
  if (accept.status == Accept::kLater) {
    undecided_.push_back(Undecided{id, std::move(info), draft02, now() + config_.buffered_stream_timeout});
    return;
  }
  decide(id, std::move(info), draft02, std::move(accept));
}

bool H3Server::waiting(StreamId id) const {
  return !connection_closed_ &&
         std::any_of(undecided_.begin(), undecided_.end(), [id](const Undecided& u) { return u.id == id; });
}

bool H3Server::answer(StreamId id, Accept accept) {
  auto it =
      std::find_if(undecided_.begin(), undecided_.end(), [id](const Undecided& u) { return u.id == id; });
  if (it == undecided_.end() || connection_closed_) return false;
  Entry entry(*this);
  Undecided u = std::move(*it);
  undecided_.erase(it);
  if (accept.status == Accept::kLater) accept.status = 500;  // put off twice: an application error
  decide(id, std::move(u.info), u.draft02, std::move(accept));
  return true;
}

void H3Server::decide(StreamId id, SessionInfo info, bool draft02, Accept accept) {
  if (accept.status < 200 || accept.status > 599 || (accept.status < 300 && accept.handler == nullptr)) {
    accept.status = 500;
  }
  if (accept.status >= 300) {
    refuse_connect(id, accept.status, accept.headers);
    return;
  }
  h3::HeaderList response{{":status", std::to_string(accept.status)}};
  if (draft02) response.push_back({"sec-webtransport-http3-draft", "draft02"});
  for (const auto& [name, value] : accept.headers) response.push_back({name, value});

  H3Session& session = create_session(std::move(info), accept.handler);
  register_session(session, id);
  session.response_ = {accept.status, std::move(accept.headers)};
  if (!conn_.send_response(id, response, false)) {
    session.set_handler(nullptr);  // never opened: the app only hears about sessions it got
    session.end(kSessionGoneCode, "could not send the response", H3Session::EndMode::kStreamGone);
    return;
  }
  session.open();
  if (session.is_open()) deliver_buffered(session);
}

bool H3Server::origin_allowed(const std::string& origin) const {
  if (server_config_.allowed_origins.empty()) return true;
  for (const auto& allowed : server_config_.allowed_origins) {
    if (allowed == "*" || allowed == origin) return true;
  }
  return false;
}

void H3Server::refuse_connect(StreamId id, int status, const HeaderPairs& extra) {
  h3::HeaderList response{{":status", std::to_string(status)}};
  for (const auto& [name, value] : extra) response.push_back({name, value});
  conn_.send_response(id, response, true);
  forget_session_id(id, kWtSessionGone);
}

void H3Server::reject_request(StreamId id) {
  conn_.reset_request(id, h3::kH3RequestRejected);
  forget_session_id(id, kWtSessionGone);
}

void H3Server::default_fallback(StreamId id) {
  static constexpr std::string_view kBody = "not found\n";
  conn_.send_response(id, {{":status", "404"}, {"content-type", "text/plain"}}, false);
  conn_.send_body(id, std::span(reinterpret_cast<const uint8_t*>(kBody.data()), kBody.size()), true);
}

// --- plain requests: the handler's streams, routed to it; everything else as the registry does ---

void H3Server::on_body(StreamId id, std::span<const uint8_t> data, bool fin) {
  if (!plain_.contains(id)) return H3SessionRegistry::on_body(id, data, fin);
  Entry entry(*this);
  requests_->on_request_body(id, data, fin);
}

void H3Server::on_request_reset(StreamId id, uint64_t h3_error) {
  if (!plain_.contains(id)) return H3SessionRegistry::on_request_reset(id, h3_error);
  Entry entry(*this);
  requests_->on_request_reset(id, h3_error);  // our direction may go on: the id stays until closed
}

void H3Server::on_request_writable(StreamId id) {
  if (!plain_.contains(id)) return H3SessionRegistry::on_request_writable(id);
  Entry entry(*this);
  requests_->on_request_writable(id);
}

void H3Server::on_request_closed(StreamId id) {
  if (!plain_.contains(id)) return H3SessionRegistry::on_request_closed(id);
  Entry entry(*this);
  plain_.erase(id);
  requests_->on_request_closed(id);
}

void H3Server::on_connection_closed(uint64_t error_code, bool is_application, std::string_view reason) {
  H3SessionRegistry::on_connection_closed(error_code, is_application, reason);
  plain_.clear();
  undecided_.clear();
  if (requests_ != nullptr) requests_->on_connection_closed();
}

void H3Server::on_other_request_gone(StreamId id) {
  std::erase_if(deferred_, [id](const Deferred& d) { return d.id == id; });
  std::erase_if(undecided_, [id](const Undecided& u) { return u.id == id; });  // answer() finds nothing
}

void H3Server::on_tick_role(SteadyTime now) {
  std::vector<StreamId> expired;
  for (const auto& d : deferred_) {
    if (d.deadline <= now) expired.push_back(d.id);
  }
  std::erase_if(deferred_, [now](const Deferred& d) { return d.deadline <= now; });
  for (const auto& u : undecided_) {
    if (u.deadline <= now) expired.push_back(u.id);
  }
  std::erase_if(undecided_, [now](const Undecided& u) { return u.deadline <= now; });
  for (StreamId id : expired) reject_request(id);
}

}  // namespace wtmesh::wt
