#include "wt/h3_client.h"

#include <charconv>
#include <utility>

#include "h3/error_codes.h"

namespace wtmesh::wt {

H3Client::H3Client(h3::Connection& conn, ClientConfig config) : H3SessionRegistry(conn, config) {
  conn_.set_handler(this);
}

H3Client::~H3Client() { conn_.set_handler(nullptr); }

H3Session* H3Client::connect(std::string_view authority, std::string_view path,
                             const h3::HeaderList& extra_headers, SessionHandler* handler) {
  Busy busy(*this);
  if (connection_closed_) {
    last_error_ = "connection closed";
    return nullptr;
  }
  if (session_count() >= config_.max_sessions) {
    last_error_ = "too many sessions on this connection";
    return nullptr;
  }
  h3::HeaderList headers = {
      {":method", "CONNECT"},       {":scheme", "https"},          {":authority", std::string(authority)},
      {":path", std::string(path)}, {":protocol", "webtransport"}, {"sec-webtransport-http3-draft02", "1"},
  };
  headers.insert(headers.end(), extra_headers.begin(), extra_headers.end());

  SessionInfo info;
  info.authority = std::string(authority);
  info.path = std::string(path);
  if (const std::string* origin = h3::find_header(extra_headers, "origin")) info.origin = *origin;
  info.transport = Transport::kHttp3;
  for (const auto& h : headers) info.headers.emplace_back(h.name, h.value);

  H3Session& session = create_session(std::move(info), handler);
  session.request_headers_ = std::move(headers);
  if (conn_.peer_settings()) {
    if (!send_connect(session)) {
      session.set_handler(nullptr);
      session.end(kSessionGoneCode, last_error_, H3Session::EndMode::kStreamGone);
      return nullptr;
    }
  }  // else: stays kUnsent until on_peer_settings
  session.attach();
  return &session;
}

bool H3Client::send_connect(H3Session& session) {
  const h3::Settings& peer = *conn_.peer_settings();
  if (!peer.webtransport || !peer.h3_datagram) {
    last_error_ = "server SETTINGS do not enable WebTransport and HTTP datagrams";
    return false;
  }
  const auto id = conn_.send_request(session.request_headers_, false);
  if (!id) {
    last_error_ = "no request stream available";
    return false;
  }
  register_session(session, *id);
  session.state_ = H3Session::State::kRequested;
  return true;
}

void H3Client::on_peer_settings(const h3::Settings& /*peer*/) {
  Entry entry(*this);
  for (H3Session* s : live_sessions()) {
    // end() may run app code that closes other sessions: re-check each one.
    if (!is_live(s) || s->state() != H3Session::State::kUnsent) continue;
    if (!send_connect(*s)) s->end(kSessionGoneCode, last_error_, H3Session::EndMode::kStreamGone);
  }
}

void H3Client::on_headers(StreamId id, h3::HeaderList headers, bool fin) {
  Entry entry(*this);
  H3Session* s = find_session(id);
  if (s == nullptr) return;
  if (s->state() == H3Session::State::kOpen) {  // trailers end the CONNECT stream's body
    if (fin) s->on_connect_data({}, true);
    return;
  }
  if (s->state() != H3Session::State::kRequested) return;

  int status = 0;
  if (const std::string* v = h3::find_header(headers, ":status")) {
    const auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), status);
    if (ec != std::errc() || ptr != v->data() + v->size()) status = 0;
  }
  if (status >= 100 && status < 200) return;  // interim response
  s->response_.status = status;
  for (auto& h : headers) {
    if (!h.name.starts_with(':')) s->response_.headers.emplace_back(std::move(h.name), std::move(h.value));
  }
  if (status >= 200 && status < 300) {
    s->open();
    if (s->is_open()) deliver_buffered(*s);
    if (fin && s->is_open()) s->on_connect_data({}, true);  // 2xx + FIN: opened and cleanly closed
    return;
  }
  if (status == 0) {
    s->end(kSessionGoneCode, "malformed response", H3Session::EndMode::kAbort, h3::kH3MessageError);
  } else {
    if (s->handler_ != nullptr) s->handler_->on_refused(s->response_);
    s->end(0, "HTTP " + std::to_string(status), H3Session::EndMode::kAbort, h3::kH3RequestCancelled);
  }
}

}  // namespace wtmesh::wt
