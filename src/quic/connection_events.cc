// The event side of quic::Connection: ngtcp2's callbacks record() what happened (connection_callbacks.cc);
// once the library call has returned, deliver_events() hands each event to the handler, so the
// handler may call any Connection method (and so ngtcp2) while it runs.
#include <algorithm>

#include "quic/connection.h"

namespace wtmesh::quic {

void Connection::record(Event e, std::span<const uint8_t> bytes) {
  if (!bytes.empty()) {
    e.offset = event_bytes_.size();
    e.length = bytes.size();
    event_bytes_.insert(event_bytes_.end(), bytes.begin(), bytes.end());
  }
  events_.push_back(e);
}

void Connection::apply_deferred_close() {
  if (!deferred_close_ || in_library_ > 0) return;
  auto [code, reason] = std::move(*deferred_close_);
  deferred_close_.reset();
  close(code, reason);
}

void Connection::deliver_events() {
  // Not inside ngtcp2, and not again from a handler call: the loop below takes what it records.
  if (in_library_ > 0 || delivering_now_) return;
  delivering_now_ = true;
  while (!events_.empty()) {
    // Events recorded while this batch is delivered go to the (empty) other buffers, so the bytes
    // handed to the handler stay where they are.
    delivering_.swap(events_);
    delivering_bytes_.swap(event_bytes_);
    for (const Event& e : delivering_) {
      deliver(e, std::span<const uint8_t>(delivering_bytes_).subspan(e.offset, e.length));
    }
    delivering_.clear();
    delivering_bytes_.clear();
  }
  delivering_now_ = false;
}

void Connection::deliver(const Event& e, std::span<const uint8_t> bytes) {
  using K = Event::Kind;
  if (e.kind == K::kStreamClosed && !e.local && conn_ != nullptr &&
      (state_ == State::kOpen || state_ == State::kHandshaking)) {
    // Peer stream credit comes back as the peer's streams close, in batches of an eighth of the
    // limit (at most 16): a MAX_STREAMS frame per closed stream cost, at everyday request rates, a
    // packet of its own and the peer's acknowledgement of it for every request. The peer can keep
    // at least limit - batch + 1 streams open.
    const bool bidi = is_bidi(e.id);
    const uint64_t limit = bidi ? limits_.max_streams_bidi : limits_.max_streams_uni;
    uint64_t& owed = bidi ? credit_owed_bidi_ : credit_owed_uni_;
    if (++owed >= std::clamp<uint64_t>(limit / 8, 1, 16)) {
      if (bidi) {
        ngtcp2_conn_extend_max_streams_bidi(conn_, owed);
      } else {
        ngtcp2_conn_extend_max_streams_uni(conn_, owed);
      }
      owed = 0;
    }
  }
  if (closed_notified_) return;  // the handler has heard the connection is gone
  if (e.kind == K::kEarlyDataRejected) {
    // ngtcp2 still counts the streams written early as open (ngtcp2_conn_tls_early_data_rejected
    // would reset them, but only inside its handshake callback, where we make no calls), so nothing
    // more is said on this connection: the owner dials again without the ticket.
    close(0, "0-RTT rejected by the server");
    return;
  }
  if (early_rejected_) return;  // closing, see above: nothing reaches the handler but the close
  if (e.kind == K::kHandshakeCompleted) {  // with or without a handler
    send_ticket();
    release_tls();
  }
  if (handler_ == nullptr) {
    if (e.kind == K::kStreamData) consume(e.id, bytes.size());  // nobody reads: keep the peer going
    return;
  }
  switch (e.kind) {
    case K::kHandshakeCompleted:
      handler_->on_handshake_completed();
      if (handshake_hook_) handshake_hook_();
      break;
    case K::kEarlyDataRejected:
      break;  // handled above
    case K::kApplicationKeys:
      handler_->on_application_keys();
      break;
    case K::kStreamData:
      handler_->on_stream_data(e.id, bytes, e.fin);
      break;
    case K::kStreamWritable:
      handler_->on_stream_writable(e.id);
      break;
    case K::kStreamClosed:
      handler_->on_stream_closed(e.id);
      break;
    case K::kStreamReset:
      handler_->on_stream_reset(e.id, e.code);
      break;
    case K::kStopSending:
      if (streams_.count(e.id) != 0) handler_->on_stop_sending(e.id, e.code);
      break;
    case K::kStreamsAvailable:
      if (state_ == State::kOpen) handler_->on_streams_available();
      break;
    case K::kDatagram:
      handler_->on_datagram(bytes);
      break;
  }
}

void Connection::finish(uint64_t code, bool is_app, std::string_view reason) {
  if (closed_notified_) return;
  closed_notified_ = true;
  if (handler_) handler_->on_connection_closed(code, is_app, reason);
}

}  // namespace wtmesh::quic
