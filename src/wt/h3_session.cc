#include "wt/h3_session.h"

#include <utility>

#include "common/varint.h"
#include "h3/error_codes.h"
#include "wt/h3_session_registry.h"
#include "wt/utf8.h"

namespace wtmesh::wt {

// Methods that call into h3 hold an H3SessionRegistry::Busy: should h3 ever call back re-entrantly, no
// finished session is destroyed under them.

H3Session::H3Session(H3SessionRegistry& host, SessionInfo info, SessionHandler* handler)
    : host_(host),
      conn_(host.conn_),
      info_(std::move(info)),
      handler_(handler),
      streams_(host.conn_.role() == h3::Role::kServer ? Role::kServer : Role::kClient,
               host.config_.max_streams_per_session, host.config_.max_streams_per_session) {}

H3Session::~H3Session() = default;

void H3Session::attach() {
  if (attached_) return;
  attached_ = true;
  if (handler_ != nullptr) handler_->on_attached(*this);
}

void H3Session::open() {
  state_ = State::kOpen;
  attach();
  if (is_open() && handler_ != nullptr) handler_->on_ready();
}

std::optional<StreamId> H3Session::open_stream(bool bidi) {
  H3SessionRegistry::Busy busy(host_);
  if (!is_open() || !streams_.local_slot_free()) return std::nullopt;
  const auto id = conn_.open_wt_stream(static_cast<uint64_t>(id_), bidi);
  if (!id) return std::nullopt;
  streams_.add_local(*id, bidi);  // cannot fail: the slot was checked above
  return id;
}

size_t H3Session::write(StreamId id, std::span<const uint8_t> data, bool fin) {
  H3SessionRegistry::Busy busy(host_);
  if (!is_open() || !owns(id)) return 0;
  return conn_.wt_write(id, data, fin);
}

size_t H3Session::send_capacity(StreamId id) const {
  if (!is_open() || !owns(id)) return 0;
  return conn_.wt_send_capacity(id);
}

void H3Session::consume(StreamId id, size_t n) {
  H3SessionRegistry::Busy busy(host_);
  // Forwarded even for streams already forgotten (an app that relays bytes consumes after the
  // peer's FIN closed the stream): the connection-level window still needs those bytes back. The
  // transport ignores ids it does not know. The CONNECT stream is ours to credit, never the app's.
  if (id >= 0 && id != id_) conn_.consume(id, n);
}

void H3Session::reset_stream(StreamId id, uint32_t code) {
  H3SessionRegistry::Busy busy(host_);
  if (is_open() && owns(id)) conn_.wt_reset(id, wt_to_h3_error(code));
}

void H3Session::stop_sending(StreamId id, uint32_t code) {
  H3SessionRegistry::Busy busy(host_);
  if (is_open() && owns(id)) conn_.wt_stop_sending(id, wt_to_h3_error(code));
}

std::chrono::nanoseconds H3Session::smoothed_rtt() const { return conn_.transport().smoothed_rtt(); }

size_t H3Session::max_datagram_size() const { return is_open() ? conn_.max_datagram_payload(id_) : 0; }

bool H3Session::send_datagram(std::span<const uint8_t> payload) {
  H3SessionRegistry::Busy busy(host_);
  return is_open() && conn_.send_datagram(id_, payload);
}

bool H3Session::delivered() const {
  if (!is_open()) return true;
  return pending_out_.empty() &&
         !streams_.any_of([this](StreamId id) { return conn_.wt_unacked_bytes(id) > 0; });
}

void H3Session::close(uint32_t code, std::string_view reason) {
  H3SessionRegistry::Busy busy(host_);
  switch (state_) {
    case State::kUnsent:
      end(code, reason, EndMode::kStreamGone);
      break;
    case State::kRequested:  // no session yet: withdraw the CONNECT
      end(code, reason, EndMode::kAbort, h3::kH3RequestCancelled);
      break;
    case State::kOpen:
      end(code, reason, EndMode::kLocalClose);
      break;
    case State::kClosed:
      break;
  }
}

void H3Session::drain() {
  H3SessionRegistry::Busy busy(host_);
  if (!is_open() || drain_sent_) return;
  drain_sent_ = true;
  if (!write_capsule_bytes(serialize_capsule(DrainSessionCapsule{}))) {
    end(kSessionGoneCode, "capsule queue full", EndMode::kAbort, kWtSessionGone);
  }
}

bool H3Session::write_capsule_bytes(std::span<const uint8_t> bytes) {
  const size_t cap = host_.config_.max_pending_capsule_bytes;
  if (pending_out_.empty()) bytes = bytes.subspan(conn_.send_body(id_, bytes, false));
  if (bytes.empty()) return true;
  if (bytes.size() > cap - std::min(cap, pending_out_.size())) return false;
  pending_out_.insert(pending_out_.end(), bytes.begin(), bytes.end());
  return true;
}

bool H3Session::flush_pending() {
  if (pending_out_.empty()) return true;
  const size_t n = conn_.send_body(id_, pending_out_, false);
  pending_out_.erase(pending_out_.begin(), pending_out_.begin() + static_cast<ptrdiff_t>(n));
  return pending_out_.empty();
}

void H3Session::on_connect_writable() {
  if (is_open()) flush_pending();
}

void H3Session::on_connect_data(std::span<const uint8_t> data, bool fin) {
  if (!is_open()) return;  // capsules before the 2xx (or after the end) are ignored
  std::vector<Capsule> capsules;
  const CapsuleError err = parser_.feed(data, capsules);
  for (Capsule& c : capsules) {
    if (!is_open()) return;
    handle_capsule(c);
  }
  if (!is_open()) return;
  if (err != CapsuleError::kNone) {
    end(kSessionGoneCode, std::string("capsule error: ") + to_string(err), EndMode::kAbort,
        h3::kH3MessageError);
    return;
  }
  if (!fin) return;
  if (const CapsuleError e = parser_.finish(); e != CapsuleError::kNone) {
    end(kSessionGoneCode, std::string("capsule error: ") + to_string(e), EndMode::kAbort,
        h3::kH3MessageError);
    return;
  }
  end(0, "", EndMode::kPeerClosed);
}

void H3Session::handle_capsule(Capsule& capsule) {
  if (auto* c = std::get_if<CloseSessionCapsule>(&capsule)) {
    end(c->code, c->message, EndMode::kPeerClosed);
  } else if (std::holds_alternative<DrainSessionCapsule>(capsule)) {
    on_drain_signal();
  } else if (auto* d = std::get_if<DatagramCapsule>(&capsule)) {
    on_datagram(d->payload);
  } else if (std::holds_alternative<Http2OnlyCapsule>(capsule)) {
    end(kSessionGoneCode, "HTTP/2-only capsule on HTTP/3", EndMode::kAbort, h3::kH3MessageError);
  }
  // WT_MAX_DATA / WT_MAX_STREAMS / *_BLOCKED: flow control is never negotiated (we send none of the
  // initial-limit settings), so draft §5 says to ignore them.
}

bool H3Session::accept_peer_stream(StreamId id, bool bidi) {
  if (!is_open() || !streams_.accept_peer(id, bidi)) return false;
  if (handler_ != nullptr) handler_->on_incoming_stream(id, bidi);
  return true;
}

bool H3Session::adopt_buffered(PendingBuffer::Stream& s) {
  if (!s.closed && !accept_peer_stream(s.id, s.bidi)) return false;
  if (s.closed && handler_ != nullptr) handler_->on_incoming_stream(s.id, s.bidi);
  if (handler_ == nullptr) {
    if (!s.closed) conn_.consume(s.id, s.data.size());
    return true;
  }
  if (is_open() && (!s.data.empty() || s.fin)) handler_->on_stream_data(s.id, s.data, s.fin);
  if (is_open() && s.reset && handler_ != nullptr) handler_->on_stream_reset(s.id, h3_to_wt_error(*s.reset));
  if (is_open() && s.stop_sending && handler_ != nullptr) {
    handler_->on_stop_sending(s.id, h3_to_wt_error(*s.stop_sending));
  }
  if (is_open() && s.closed && handler_ != nullptr) handler_->on_stream_closed(s.id);
  return true;
}

void H3Session::on_stream_data(StreamId id, std::span<const uint8_t> data, bool fin) {
  if (handler_ != nullptr) {
    handler_->on_stream_data(id, data, fin);
  } else {
    conn_.consume(id, data.size());  // nobody to read it: do not wedge the connection window
  }
}

void H3Session::on_stream_reset(StreamId id, uint64_t h3_error) {
  if (handler_ != nullptr) handler_->on_stream_reset(id, h3_to_wt_error(h3_error));
}

void H3Session::on_stream_stop_sending(StreamId id, uint64_t h3_error) {
  if (handler_ != nullptr) handler_->on_stop_sending(id, h3_to_wt_error(h3_error));
}

void H3Session::on_stream_writable(StreamId id) {
  if (handler_ != nullptr) handler_->on_stream_writable(id);
}

void H3Session::on_stream_closed(StreamId id) {
  if (!streams_.close(id)) return;
  if (handler_ != nullptr) handler_->on_stream_closed(id);
}

void H3Session::on_datagram(std::span<const uint8_t> payload) {
  if (is_open() && handler_ != nullptr) handler_->on_datagram(payload);
}

void H3Session::on_drain_signal() {
  if (!is_open() || drain_received_) return;
  drain_received_ = true;
  if (handler_ != nullptr) handler_->on_drain();
}

void H3Session::end(uint32_t code, std::string_view reason, EndMode mode, uint64_t h3_error) {
  if (state_ == State::kClosed) return;
  H3SessionRegistry::Busy busy(host_);
  const State prev = state_;
  state_ = State::kClosed;
  // `reason` may point into a capsule or the caller's buffer; what we report is a copy.
  std::string message =
      mode == EndMode::kLocalClose ? sanitize_utf8(reason, kMaxCloseMessage) : std::string(reason);

  const bool stream_usable = id_ >= 0 && prev != State::kUnsent && !host_.connection_closed_;
  if (stream_usable) {
    switch (mode) {
      case EndMode::kLocalClose: {
        // Never wait for credit (CVE-2026-21435): the whole capsule, in one DATA frame, must fit
        // in the send buffer now (h3 would otherwise queue part of it until credit arrives);
        // otherwise the CONNECT stream is reset with WT_SESSION_GONE.
        const std::vector<uint8_t> capsule = serialize_capsule(CloseSessionCapsule{code, message});
        const size_t frame = 1 + varint_size(capsule.size()) + capsule.size();
        const bool fits = pending_out_.empty() && conn_.transport().send_capacity(id_) >= frame;
        if (!fits || conn_.send_body(id_, capsule, true) != capsule.size()) {
          conn_.reset_request(id_, kWtSessionGone);
        }
        break;
      }
      case EndMode::kPeerClosed:
        if (flush_pending()) {
          conn_.send_body(id_, {}, true);
        } else {
          conn_.reset_request(id_, kWtSessionGone);
        }
        break;
      case EndMode::kAbort:
        conn_.reset_request(id_, h3_error);
        break;
      case EndMode::kStreamGone:
        break;
    }
  }
  pending_out_.clear();

  host_.session_ended(*this, streams_.take_all());

  if (SessionHandler* h = std::exchange(handler_, nullptr)) h->on_closed(code, message);
}

}  // namespace wtmesh::wt
