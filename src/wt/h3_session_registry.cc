#include "wt/h3_session_registry.h"

#include <algorithm>
#include <string>

#include "common/varint.h"
#include "h3/error_codes.h"

namespace wtmesh::wt {
namespace {

// Recently ended sessions / non-session requests remembered so their late streams are refused
// with WT_SESSION_GONE instead of being buffered.
constexpr size_t kMaxGoneIds = 64;

std::string hex(uint64_t v) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  do {
    out.insert(out.begin(), digits[v & 0xf]);
    v >>= 4;
  } while (v != 0);
  return "0x" + out;
}

}  // namespace

H3SessionRegistry::H3SessionRegistry(h3::Connection& conn, const CommonConfig& config)
    : config_(config), conn_(conn), pending_(config_) {}

H3SessionRegistry::~H3SessionRegistry() = default;

SteadyTime H3SessionRegistry::now() const {
  return config_.clock ? config_.clock() : std::chrono::steady_clock::now();
}

void H3SessionRegistry::destroy_finished() {
  if (depth_ == 0) finished_.clear();
}

H3Session* H3SessionRegistry::find_session(StreamId session_id) const {
  auto it = by_id_.find(session_id);
  return it == by_id_.end() ? nullptr : it->second;
}

std::vector<H3Session*> H3SessionRegistry::live_sessions() const {
  std::vector<H3Session*> out;
  for (const auto& s : sessions_) out.push_back(s.get());
  return out;
}

bool H3SessionRegistry::is_live(const H3Session* s) const {
  return std::any_of(sessions_.begin(), sessions_.end(), [s](const auto& p) { return p.get() == s; });
}

H3Session* H3SessionRegistry::session_owning(StreamId stream) const {
  for (const auto& s : sessions_) {
    if (s->owns(stream)) return s.get();
  }
  return nullptr;
}

H3Session& H3SessionRegistry::create_session(SessionInfo info, SessionHandler* handler) {
  sessions_.push_back(std::unique_ptr<H3Session>(new H3Session(*this, std::move(info), handler)));
  return *sessions_.back();
}

void H3SessionRegistry::register_session(H3Session& session, StreamId id) {
  session.id_ = id;
  by_id_[id] = &session;
}

size_t H3SessionRegistry::session_count() const { return sessions_.size(); }

size_t H3SessionRegistry::stream_state_size() const {
  size_t n = orphans_.size() + pending_.stream_count();
  for (const auto& s : sessions_) n += s->stream_table_size();
  return n;
}

void H3SessionRegistry::mark_gone(StreamId id) {
  if (is_gone(id)) return;
  gone_.push_back(id);
  if (gone_.size() > kMaxGoneIds) gone_.pop_front();
}

bool H3SessionRegistry::is_gone(StreamId id) const {
  return std::find(gone_.begin(), gone_.end(), id) != gone_.end();
}

void H3SessionRegistry::refuse_stream(StreamId id, uint64_t h3_error) {
  if (connection_closed_) return;
  const bool local = quic::is_client_initiated(id) == (conn_.role() == h3::Role::kClient);
  const bool bidi = quic::is_bidi(id);
  if (bidi || local) conn_.wt_reset(id, h3_error);
  if (bidi || !local) conn_.wt_stop_sending(id, h3_error);
  orphans_.insert(id);
}

void H3SessionRegistry::refuse_buffered(PendingBuffer::Stream& s, uint64_t h3_error) {
  if (s.closed) return;  // the transport already forgot it
  conn_.consume(s.id, s.data.size());
  refuse_stream(s.id, h3_error);
}

void H3SessionRegistry::forget_session_id(StreamId session_id, uint64_t h3_error) {
  mark_gone(session_id);
  for (auto& s : pending_.take_streams(session_id)) refuse_buffered(s, h3_error);
  pending_.take_datagrams(session_id);
}

void H3SessionRegistry::deliver_buffered(H3Session& session) {
  const StreamId id = session.id_;
  for (auto& d : pending_.take_datagrams(id)) session.on_datagram(d.payload);
  auto streams = pending_.take_streams(id);
  for (auto& s : streams) {
    if (!session.is_open()) {
      refuse_buffered(s, kWtSessionGone);
    } else if (!session.adopt_buffered(s)) {
      refuse_buffered(s, kWtFlowControlError);
    }
  }
}

void H3SessionRegistry::session_ended(H3Session& session, std::vector<StreamId> streams) {
  for (StreamId id : streams) refuse_stream(id, kWtSessionGone);
  if (session.id_ >= 0) {
    by_id_.erase(session.id_);
    forget_session_id(session.id_, kWtSessionGone);
  }
  auto it =
      std::find_if(sessions_.begin(), sessions_.end(), [&](const auto& p) { return p.get() == &session; });
  if (it != sessions_.end()) {
    finished_.push_back(std::move(*it));
    sessions_.erase(it);
  }
}

void H3SessionRegistry::on_tick(SteadyTime now) {
  destroy_finished();
  Busy busy(*this);
  for (auto& s : pending_.expire(now)) refuse_buffered(s, kWtBufferedStreamRejected);
  on_tick_role(now);
}

std::optional<SteadyTime> H3SessionRegistry::next_deadline() const { return pending_.next_deadline(); }

// ---- CONNECT stream events ----

void H3SessionRegistry::on_body(StreamId id, std::span<const uint8_t> data, bool fin) {
  Entry entry(*this);
  // Capsule bytes are parsed at once (the parser's buffer is bounded), and other request bodies
  // are dropped: either way the credit goes back now.
  conn_.consume(id, data.size());
  if (H3Session* s = find_session(id)) s->on_connect_data(data, fin);
}

void H3SessionRegistry::on_request_reset(StreamId id, uint64_t h3_error) {
  Entry entry(*this);
  if (H3Session* s = find_session(id)) {
    s->end(kSessionGoneCode, "CONNECT stream reset (" + hex(h3_error) + ")", H3Session::EndMode::kAbort,
           kWtSessionGone);
  } else {
    on_other_request_gone(id);
  }
  forget_session_id(id, kWtSessionGone);
}

void H3SessionRegistry::on_request_writable(StreamId id) {
  Entry entry(*this);
  if (H3Session* s = find_session(id)) s->on_connect_writable();
}

void H3SessionRegistry::on_request_closed(StreamId id) {
  Entry entry(*this);
  if (H3Session* s = find_session(id)) {
    s->end(kSessionGoneCode, "CONNECT stream closed", H3Session::EndMode::kStreamGone);
  } else {
    on_other_request_gone(id);
  }
  forget_session_id(id, kWtSessionGone);
}

// ---- WebTransport streams ----

void H3SessionRegistry::on_wt_stream(StreamId id, uint64_t session_id) {
  Entry entry(*this);
  // Session ids are client-initiated bidirectional stream ids (draft-ietf-webtrans-http3 §4.1).
  if (session_id % 4 != 0 || session_id > kVarintMax) {
    conn_.close(h3::kH3IdError, "WebTransport session id is not a client bidi stream");
    return;
  }
  const auto sid = static_cast<StreamId>(session_id);
  const bool bidi = quic::is_bidi(id);
  H3Session* s = find_session(sid);
  if (s != nullptr && s->is_open()) {
    // Over max_streams_per_session: refuse this stream only. WT_FLOW_CONTROL_ERROR is the
    // registered code that says "too many streams"; the session survives, because our limit is not
    // advertised (no WT_MAX_STREAMS) and so the peer broke no rule.
    if (!s->accept_peer_stream(id, bidi)) refuse_stream(id, kWtFlowControlError);
    return;
  }
  if (is_gone(sid) || (s == nullptr && !may_become_session(sid))) {
    refuse_stream(id, kWtSessionGone);
    return;
  }
  if (!pending_.add_stream(id, sid, bidi, now())) refuse_stream(id, kWtBufferedStreamRejected);
}

void H3SessionRegistry::on_wt_data(StreamId id, std::span<const uint8_t> data, bool fin) {
  Entry entry(*this);
  if (H3Session* s = session_owning(id)) {
    s->on_stream_data(id, data, fin);
    return;
  }
  if (PendingBuffer::Stream* p = pending_.find(id)) {
    if (!pending_.append(*p, data, fin)) {
      conn_.consume(id, data.size());
      refuse_buffered(*p, kWtBufferedStreamRejected);
      pending_.remove(id);
    }
    return;
  }
  conn_.consume(id, data.size());  // refused or gone: drop, keep the connection window moving
}

void H3SessionRegistry::on_wt_reset(StreamId id, uint64_t h3_error) {
  Entry entry(*this);
  if (H3Session* s = session_owning(id)) {
    s->on_stream_reset(id, h3_error);
  } else if (PendingBuffer::Stream* p = pending_.find(id)) {
    p->reset = h3_error;
  }
}

void H3SessionRegistry::on_wt_stop_sending(StreamId id, uint64_t h3_error) {
  Entry entry(*this);
  if (H3Session* s = session_owning(id)) {
    s->on_stream_stop_sending(id, h3_error);
  } else if (PendingBuffer::Stream* p = pending_.find(id)) {
    p->stop_sending = h3_error;
  }
}

void H3SessionRegistry::on_wt_writable(StreamId id) {
  Entry entry(*this);
  if (H3Session* s = session_owning(id)) s->on_stream_writable(id);
}

void H3SessionRegistry::on_wt_closed(StreamId id) {
  Entry entry(*this);
  if (H3Session* s = session_owning(id)) {
    s->on_stream_closed(id);
  } else if (PendingBuffer::Stream* p = pending_.find(id)) {
    p->closed = true;
  }
  orphans_.erase(id);
}

void H3SessionRegistry::on_datagram(uint64_t quarter_stream_id, std::span<const uint8_t> payload) {
  Entry entry(*this);
  if (quarter_stream_id > kVarintMax / 4) return;
  const auto sid = static_cast<StreamId>(quarter_stream_id * 4);
  H3Session* s = find_session(sid);
  if (s != nullptr && s->is_open()) {
    s->on_datagram(payload);
    return;
  }
  if (is_gone(sid) || (s == nullptr && !may_become_session(sid))) return;
  pending_.add_datagram(sid, payload, now());  // silently dropped when full: datagrams are unreliable
}

// ---- connection-wide events ----

void H3SessionRegistry::on_goaway(uint64_t /*id*/) {
  Entry entry(*this);
  std::vector<StreamId> ids;
  for (const auto& [id, s] : by_id_) ids.push_back(id);
  for (StreamId id : ids) {
    if (H3Session* s = find_session(id)) s->on_drain_signal();
  }
}

void H3SessionRegistry::on_streams_available() {
  Entry entry(*this);
  for (H3Session* s : live_sessions()) {
    if (is_live(s) && s->state() == H3Session::State::kOpen && s->handler_)
      s->handler_->on_streams_available();
  }
}

void H3SessionRegistry::on_connection_closed(uint64_t error_code, bool is_application,
                                             std::string_view reason) {
  Entry entry(*this);
  connection_closed_ = true;
  const std::string why = std::string("connection closed (") + (is_application ? "app " : "transport ") +
                          hex(error_code) + (reason.empty() ? "" : ": ") + std::string(reason) + ")";
  // Sessions may be removed while we walk: take them one at a time from the front.
  while (!sessions_.empty()) {
    H3Session* s = sessions_.front().get();
    s->end(kSessionGoneCode, why, H3Session::EndMode::kStreamGone);
    if (!sessions_.empty() && sessions_.front().get() == s) {  // end() was a no-op: should not happen
      finished_.push_back(std::move(sessions_.front()));
      sessions_.erase(sessions_.begin());
    }
  }
  pending_.clear();
  orphans_.clear();
}

}  // namespace wtmesh::wt
