// wt::H2Session: what arrives on the CONNECT stream. Each handler returns false once the session is
// over, which stops the capsule parser. Section numbers are draft-ietf-webtrans-http2-15's.
#include <string>

#include "wt/errors.h"
#include "wt/h2_session.h"

namespace wtmesh::wt {
namespace {

std::string sid(StreamId id) { return "stream " + std::to_string(id); }

}  // namespace

void H2Session::receive(std::span<const uint8_t> data, bool fin) {
  if (!is_open()) return;  // a server is created open; a client gets no DATA before its 2xx
  deliver_deferred();
  const CapsuleError err = parser_.feed(data, *this);
  if (!is_open()) return;
  if (err != CapsuleError::kNone) {
    protocol_error(H2SessionError::kWtError, std::string("capsule error: ") + to_string(err));
    return;
  }
  if (!fin) return;
  if (const CapsuleError e = parser_.finish(); e != CapsuleError::kNone) {
    protocol_error(H2SessionError::kWtError, std::string("capsule error: ") + to_string(e));
    return;
  }
  end(0, "", EndMode::kPeerClosed);  // a clean end = WT_CLOSE_SESSION(0, "") (§6.12)
}

void H2Session::on_connect_reset(uint32_t h2_error) {
  end(kSessionGoneCode, "CONNECT stream reset (HTTP/2 error " + std::to_string(h2_error) + ")",
      EndMode::kStreamGone);
}

H2Session::Stream* H2Session::peer_stream(StreamId id, bool& stop) {
  stop = false;
  const bool bidi = is_bidi(id);
  ReceiveCredit& credit = recv_streams_[bidi ? 0 : 1];
  switch (streams_.classify(id, credit.limit())) {
    case StreamTable::PeerId::kOpen:
      return &records_.at(id);
    case StreamTable::PeerId::kClosed:
      return nullptr;
    case StreamTable::PeerId::kNew: {
      // §6.7: ids cannot be skipped; opening this one opens every lower unopened id of its type.
      // credit.received() is the number of the peer's streams of this type opened so far.
      const uint64_t first = credit.received();
      const uint64_t index = stream_index(id);
      credit.on_received(index + 1);  // cannot fail: classify() checked the limit
      const Role peer = role() == Role::kClient ? Role::kServer : Role::kClient;
      for (uint64_t k = first; k <= index; ++k) {
        const StreamId opened = *make_stream_id(peer, bidi, k);
        // The table holds as many peer streams as the stream credit we grant allows, so this fits.
        if (!streams_.accept_peer(opened, bidi)) {
          stop = !protocol_error(H2SessionError::kFlowControlError, "too many peer streams");
          return nullptr;
        }
        add_stream(opened, bidi, false);
        if (handler_ != nullptr) handler_->on_incoming_stream(opened, bidi);
        if (!is_open()) {
          stop = true;
          return nullptr;
        }
      }
      const auto it = records_.find(id);
      return it == records_.end() ? nullptr : &it->second;
    }
    case StreamTable::PeerId::kOverLimit:
      stop = !protocol_error(H2SessionError::kFlowControlError,
                             sid(id) + " is beyond the WT_MAX_STREAMS we gave");
      return nullptr;
    case StreamTable::PeerId::kNotOpened:
      stop = !protocol_error(H2SessionError::kStreamStateError, sid(id) + " is ours and not opened yet");
      return nullptr;
    case StreamTable::PeerId::kInvalid:
      stop = !protocol_error(H2SessionError::kWtError, "invalid stream id");
      return nullptr;
  }
  return nullptr;
}

bool H2Session::on_stream_data(StreamId id, std::span<const uint8_t> data, bool fin) {
  bool stop = false;
  Stream* s = peer_stream(id, stop);
  if (stop) return false;
  // §6.4: no WT_STREAM after the stream's FIN or reset, nor on a stream only we send on.
  if (s == nullptr)
    return protocol_error(H2SessionError::kStreamStateError, "WT_STREAM on closed " + sid(id));
  if (s->recv != Side::kOpen) {
    return protocol_error(H2SessionError::kStreamStateError,
                          "WT_STREAM on " + sid(id) + ", which the peer cannot send on");
  }
  if (!s->recv_credit.on_received_more(data.size())) {
    return protocol_error(H2SessionError::kFlowControlError, sid(id) + " data beyond WT_MAX_STREAM_DATA");
  }
  if (!recv_data_.on_received_more(data.size())) {
    return protocol_error(H2SessionError::kFlowControlError, "stream data beyond WT_MAX_DATA");
  }
  if (fin) s->recv = Side::kFin;
  if (s->stop_sending_sent || handler_ == nullptr) {
    consume(id, data.size());  // nobody wants it: return the credit at once
  } else if (!data.empty() || fin) {
    handler_->on_stream_data(id, data, fin);
  }
  if (!is_open()) return false;
  if (fin) maybe_forget(id);
  return is_open();
}

bool H2Session::on_reset_received(const WtResetStreamCapsule& c) {
  bool stop = false;
  Stream* s = peer_stream(c.id, stop);
  if (stop) return false;
  if (s == nullptr)
    return protocol_error(H2SessionError::kStreamStateError, "WT_RESET_STREAM on closed " + sid(c.id));
  if (s->recv != Side::kOpen) {
    return protocol_error(H2SessionError::kStreamStateError,
                          "WT_RESET_STREAM on " + sid(c.id) + " in a wrong state");
  }
  // §6.2: over an ordered stream the Reliable Size is exactly what arrived.
  if (c.reliable_size != s->recv_credit.received()) {
    return protocol_error(H2SessionError::kStreamStateError,
                          "WT_RESET_STREAM Reliable Size " + std::to_string(c.reliable_size) + " but " +
                              std::to_string(s->recv_credit.received()) + " bytes arrived on " + sid(c.id));
  }
  s->recv = Side::kReset;
  if (handler_ != nullptr) handler_->on_stream_reset(c.id, c.code);
  if (!is_open()) return false;
  maybe_forget(c.id);
  return is_open();
}

bool H2Session::on_stop_sending_received(const WtStopSendingCapsule& c) {
  bool stop = false;
  Stream* s = peer_stream(c.id, stop);
  if (stop) return false;
  if (s == nullptr) return true;  // we already finished the stream: the peer had not seen it yet
  if (s->send == Side::kNone) {
    return protocol_error(H2SessionError::kStreamStateError,
                          "WT_STOP_SENDING on " + sid(c.id) + ", which we do not send on");
  }
  if (s->stop_sending_received) {
    return protocol_error(H2SessionError::kStreamStateError, "second WT_STOP_SENDING on " + sid(c.id));
  }
  s->stop_sending_received = true;
  want_writable_.erase(c.id);
  if (handler_ != nullptr) handler_->on_stop_sending(c.id, c.code);
  if (!is_open()) return false;
  // §6.3 / RFC 9000 §3.5: answer with WT_RESET_STREAM unless the application ended the stream itself.
  const auto it = records_.find(c.id);
  if (it != records_.end() && it->second.send == Side::kOpen) reset_stream(c.id, c.code);
  return is_open();
}

bool H2Session::on_max_stream_data(const WtMaxStreamDataCapsule& c) {
  bool stop = false;
  Stream* s = peer_stream(c.id, stop);
  if (stop) return false;
  if (s == nullptr) return true;  // finished on our side already
  if (s->send == Side::kNone) {
    return protocol_error(H2SessionError::kStreamStateError,
                          "WT_MAX_STREAM_DATA on " + sid(c.id) + ", which we do not send on");
  }
  if (s->stop_sending_received) {  // §6.6
    return protocol_error(H2SessionError::kStreamStateError,
                          "WT_MAX_STREAM_DATA after WT_STOP_SENDING on " + sid(c.id));
  }
  if (c.max_stream_data < s->send_credit.limit()) {
    return protocol_error(H2SessionError::kFlowControlError, "WT_MAX_STREAM_DATA decreased on " + sid(c.id));
  }
  if (s->send_credit.on_max(c.max_stream_data) == MaxUpdate::kRaised && s->send == Side::kOpen)
    notify_writable();
  return is_open();
}

bool H2Session::on_stream_capsule(const H2StreamCapsule& capsule) {
  if (const auto* c = std::get_if<WtResetStreamCapsule>(&capsule)) return on_reset_received(*c);
  if (const auto* c = std::get_if<WtStopSendingCapsule>(&capsule)) return on_stop_sending_received(*c);
  if (const auto* c = std::get_if<WtMaxStreamDataCapsule>(&capsule)) return on_max_stream_data(*c);
  const auto& blocked = std::get<WtStreamDataBlockedCapsule>(capsule);
  bool stop = false;
  const Stream* s = peer_stream(blocked.id, stop);
  if (stop) return false;
  if (s != nullptr && s->recv == Side::kNone) {
    return protocol_error(H2SessionError::kStreamStateError,
                          "WT_STREAM_DATA_BLOCKED on " + sid(blocked.id) + ", which only we send on");
  }
  return true;  // informational: our credit goes out as the application consumes (§4.4)
}

bool H2Session::on_capsule(Capsule& capsule) {
  if (auto* c = std::get_if<CloseSessionCapsule>(&capsule)) {
    end(c->code, c->message, EndMode::kPeerClosed);
    return false;
  }
  if (std::holds_alternative<DrainSessionCapsule>(capsule)) {
    if (!drain_received_) {
      drain_received_ = true;
      if (handler_ != nullptr) handler_->on_drain();
    }
    return is_open();
  }
  if (auto* d = std::get_if<DatagramCapsule>(&capsule)) {
    if (handler_ != nullptr) handler_->on_datagram(d->payload);
    return is_open();
  }
  if (auto* m = std::get_if<MaxDataCapsule>(&capsule)) {
    if (m->max_data < send_data_.limit()) {  // §6.5
      return protocol_error(H2SessionError::kFlowControlError, "WT_MAX_DATA decreased");
    }
    if (send_data_.on_max(m->max_data) == MaxUpdate::kRaised) notify_writable();
    return is_open();
  }
  if (auto* m = std::get_if<MaxStreamsCapsule>(&capsule)) {
    SendCredit& credit = send_streams_[m->bidi ? 0 : 1];
    if (m->max_streams < credit.limit()) {  // §6.7
      return protocol_error(H2SessionError::kFlowControlError, "WT_MAX_STREAMS decreased");
    }
    const MaxUpdate update = credit.on_max(m->max_streams);
    if (update == MaxUpdate::kInvalid) {
      return protocol_error(H2SessionError::kFlowControlError, "WT_MAX_STREAMS above 2^60");
    }
    if (update == MaxUpdate::kRaised && want_streams_ && streams_.local_slot_free() && handler_ != nullptr) {
      want_streams_ = false;
      handler_->on_streams_available();
    }
    return is_open();
  }
  if (auto* b = std::get_if<StreamsBlockedCapsule>(&capsule)) {
    if (b->limit > kMaxStreamCount) {  // §6.10
      return protocol_error(H2SessionError::kFlowControlError, "WT_STREAMS_BLOCKED above 2^60");
    }
    return true;
  }
  return true;  // WT_DATA_BLOCKED: informational
}

}  // namespace wtmesh::wt
