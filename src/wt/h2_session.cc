// wt::H2Session: session calls, output and the end of the session. What arrives from the peer is
// h2_session_receive.cc.
#include "wt/h2_session.h"

#include <algorithm>
#include <utility>

#include "common/varint.h"
#include "wt/errors.h"
#include "wt/utf8.h"

namespace wtmesh::wt {

uint32_t h2_error_code(H2SessionError error) {
  switch (error) {
    case H2SessionError::kWtError:
      return 0x1;  // PROTOCOL_ERROR
    case H2SessionError::kStreamStateError:
      return 0x5;  // STREAM_CLOSED
    case H2SessionError::kFlowControlError:
      return 0x3;  // FLOW_CONTROL_ERROR
    case H2SessionError::kCancel:
      return 0x8;  // CANCEL
  }
  return 0x1;
}

const char* to_string(H2SessionError error) {
  switch (error) {
    case H2SessionError::kWtError:
      return "WT_ERROR";
    case H2SessionError::kStreamStateError:
      return "WT_STREAM_STATE_ERROR";
    case H2SessionError::kFlowControlError:
      return "WT_FLOW_CONTROL_ERROR";
    case H2SessionError::kCancel:
      return "CANCEL";
  }
  return "?";
}

H2WtSettings H2SessionConfig::default_local() {
  H2WtSettings s;
  s.initial_max_data = 1024 * 1024;
  s.initial_max_stream_data_uni = 256 * 1024;
  s.initial_max_stream_data_bidi_local = 256 * 1024;
  s.initial_max_stream_data_bidi_remote = 256 * 1024;
  s.initial_max_streams_uni = 100;
  s.initial_max_streams_bidi = 100;
  return s;
}

H2Session::H2Session(Role role, H2SessionConfig config, SessionInfo info, SessionHandler* handler)
    : config_(std::move(config)),
      info_(std::move(info)),
      handler_(handler),
      parser_(
          H2CapsuleLimits{config_.max_datagram_payload, config_.max_stream_capsule, config_.fin_convention}),
      streams_(role, config_.max_local_streams,
               size_t{config_.local.initial_max_streams_bidi} + config_.local.initial_max_streams_uni),
      send_data_(SendCredit::bytes(config_.peer.initial_max_data)),
      recv_data_(ReceiveCredit::bytes(config_.local.initial_max_data)),
      send_streams_{SendCredit::streams(config_.peer.initial_max_streams_bidi),
                    SendCredit::streams(config_.peer.initial_max_streams_uni)},
      recv_streams_{ReceiveCredit::streams(config_.local.initial_max_streams_bidi),
                    ReceiveCredit::streams(config_.local.initial_max_streams_uni)} {
  info_.transport = Transport::kHttp2;
}

H2Session::~H2Session() = default;

// --- opening ---

void H2Session::set_peer_settings(const H2WtSettings& peer) {
  if (state_ != State::kRequested || !records_.empty()) return;
  config_.peer = peer;
  send_data_ = SendCredit::bytes(peer.initial_max_data);
  send_streams_[0] = SendCredit::streams(peer.initial_max_streams_bidi);
  send_streams_[1] = SendCredit::streams(peer.initial_max_streams_uni);
}

void H2Session::start(ConnectResponse response) {
  if (state_ != State::kRequested) return;
  response_ = std::move(response);
  state_ = State::kOpen;
  attached_ = true;
  if (handler_ != nullptr) handler_->on_attached(*this);
  if (is_open() && handler_ != nullptr) handler_->on_ready();
}

void H2Session::on_response(ConnectResponse response) {
  if (state_ != State::kRequested) return;
  if (!attached_) {
    attached_ = true;
    if (handler_ != nullptr) handler_->on_attached(*this);
    if (state_ != State::kRequested) return;
  }
  response_ = std::move(response);
  if (response_.accepted()) {
    state_ = State::kOpen;
    if (handler_ != nullptr) handler_->on_ready();
    return;
  }
  if (handler_ != nullptr) handler_->on_refused(response_);
  end(0, "HTTP " + std::to_string(response_.status), EndMode::kStreamGone);
}

// --- streams ---

void H2Session::add_stream(StreamId id, bool bidi, bool local) {
  const H2WtSettings& peer = config_.peer;
  const H2WtSettings& ours = config_.local;
  Stream s;
  s.send = bidi || local ? Side::kOpen : Side::kNone;
  s.recv = bidi || !local ? Side::kOpen : Side::kNone;
  // -15 §11.2: BIDI_LOCAL covers bidi streams opened by the setting's sender, BIDI_REMOTE those opened
  // by its receiver, UNI the receiver's unidirectional streams.
  const uint64_t send_initial = !bidi   ? peer.initial_max_stream_data_uni
                                : local ? peer.initial_max_stream_data_bidi_remote
                                        : peer.initial_max_stream_data_bidi_local;
  const uint64_t recv_initial = !bidi   ? ours.initial_max_stream_data_uni
                                : local ? ours.initial_max_stream_data_bidi_local
                                        : ours.initial_max_stream_data_bidi_remote;
  s.send_credit = SendCredit::bytes(send_initial);
  s.recv_credit = ReceiveCredit::bytes(recv_initial);
  records_.emplace(id, s);
}

std::optional<StreamId> H2Session::open_stream(bool bidi) {
  if (!is_open()) return std::nullopt;
  SendCredit& credit = send_streams_[bidi ? 0 : 1];
  if (!streams_.local_slot_free() || credit.available() == 0) {
    want_streams_ = true;
    if (credit.available() == 0) {
      if (const auto limit = credit.blocked()) put_control(StreamsBlockedCapsule{bidi, *limit});
    }
    return std::nullopt;
  }
  const auto id = streams_.open_local(bidi);
  if (!id) return std::nullopt;
  credit.take(1);
  add_stream(*id, bidi, true);
  // Nothing goes on the wire yet: the stream appears to the peer with its first WT_STREAM capsule,
  // which carries data when there is any (WebKit drops data on streams opened by an empty one).
  return id;
}

void H2Session::maybe_forget(StreamId id, bool defer) {
  const auto it = records_.find(id);
  if (it == records_.end() || it->second.send == Side::kOpen || it->second.recv == Side::kOpen) return;
  const StreamTable::Entry* entry = streams_.find(id);
  const bool local = entry != nullptr && entry->local;
  const bool bidi = is_bidi(id);
  records_.erase(it);
  streams_.close(id);
  want_writable_.erase(id);
  if (!local) {
    // A peer stream is over: one more of that direction may be opened (§5.6.1 of the HTTP/3 draft).
    if (const auto limit = recv_streams_[bidi ? 0 : 1].consume(1)) {
      if (!put_control(MaxStreamsCapsule{bidi, *limit})) return;
    }
  }
  if (defer) {
    closed_deferred_.push_back(id);
    if (local && want_streams_) {
      want_streams_ = false;
      streams_available_deferred_ = true;
    }
    return;
  }
  if (handler_ != nullptr) handler_->on_stream_closed(id);
  if (is_open() && local && want_streams_ && handler_ != nullptr) {
    want_streams_ = false;
    handler_->on_streams_available();
  }
}

void H2Session::deliver_deferred() {
  while (!closed_deferred_.empty() && is_open() && handler_ != nullptr) {
    const std::vector<StreamId> ids = std::exchange(closed_deferred_, {});
    for (StreamId id : ids) {
      if (!is_open() || handler_ == nullptr) break;
      handler_->on_stream_closed(id);
    }
  }
  if (std::exchange(streams_available_deferred_, false) && is_open() && handler_ != nullptr) {
    handler_->on_streams_available();
  }
}

size_t H2Session::write(StreamId id, std::span<const uint8_t> data, bool fin) {
  if (!is_open()) return 0;
  const auto it = records_.find(id);
  if (it == records_.end() || it->second.send != Side::kOpen) return 0;
  Stream& s = it->second;
  const size_t allowed = static_cast<size_t>(
      std::min<uint64_t>({data.size(), s.send_credit.available(), send_data_.available()}));
  size_t room = data_room();
  size_t taken = 0;
  bool fin_sent = false;
  while (taken < allowed) {
    size_t chunk = std::min(allowed - taken, config_.max_stream_chunk);
    const size_t overhead = wt_stream_overhead(id, chunk);
    if (room <= overhead) break;
    chunk = std::min(chunk, room - overhead);
    const bool last = fin && taken + chunk == data.size();
    append_wt_stream(out_, id, data.subspan(taken, chunk), last, config_.fin_convention);
    room -= std::min(room, wt_stream_overhead(id, chunk) + chunk);
    taken += chunk;
    fin_sent = last;
  }
  if (fin && data.empty() && room > wt_stream_overhead(id, 0)) {
    append_wt_stream(out_, id, {}, true, config_.fin_convention);
    fin_sent = true;
  }
  s.send_credit.take(taken);
  send_data_.take(taken);
  s.sent += taken;
  if (fin_sent) s.send = Side::kFin;
  const bool short_write = taken < data.size() || (fin && !fin_sent);
  if (taken > 0 || fin_sent) notify_output();
  if (short_write && is_open()) {
    // Held up by credit: say so (once per limit), and come back when credit or room arrives.
    if (s.send_credit.available() == 0) {
      if (const auto limit = s.send_credit.blocked()) put_control(WtStreamDataBlockedCapsule{id, *limit});
    }
    if (is_open() && send_data_.available() == 0) {
      if (const auto limit = send_data_.blocked()) put_control(DataBlockedCapsule{*limit});
    }
    if (is_open()) wait_writable(id);
  }
  if (fin_sent) maybe_forget(id, true);
  return taken;
}

size_t H2Session::send_capacity(StreamId id) const {
  if (!is_open()) return 0;
  const auto it = records_.find(id);
  if (it == records_.end() || it->second.send != Side::kOpen) return 0;
  const size_t room = data_room();
  const size_t overhead = wt_stream_overhead(id, room);
  const size_t space = room > overhead ? room - overhead : 0;
  return static_cast<size_t>(
      std::min<uint64_t>({space, it->second.send_credit.available(), send_data_.available()}));
}

void H2Session::consume(StreamId id, size_t n) {
  if (!is_open()) return;
  const auto it = records_.find(id);
  if (it != records_.end() && it->second.recv != Side::kNone) {
    const auto limit = it->second.recv_credit.consume(n);
    // No WT_MAX_STREAM_DATA once the stream's data is over or after our WT_STOP_SENDING (-15 §6.6).
    if (limit && it->second.recv == Side::kOpen && !it->second.stop_sending_sent) {
      if (!put_control(WtMaxStreamDataCapsule{id, *limit})) return;
    }
  }
  // Session credit also for streams already forgotten: the application may consume after a FIN.
  if (const auto limit = recv_data_.consume(n)) put_control(MaxDataCapsule{*limit});
}

void H2Session::reset_stream(StreamId id, uint32_t code) {
  if (!is_open()) return;
  const auto it = records_.find(id);
  if (it == records_.end() || it->second.send != Side::kOpen) return;
  it->second.send = Side::kReset;
  // Reliable Size: every byte we sent, as -15 §6.2 requires over an ordered stream.
  if (!put_control(WtResetStreamCapsule{id, code, it->second.sent})) return;
  maybe_forget(id, true);
}

void H2Session::stop_sending(StreamId id, uint32_t code) {
  if (!is_open()) return;
  const auto it = records_.find(id);
  if (it == records_.end() || it->second.recv != Side::kOpen || it->second.stop_sending_sent) return;
  it->second.stop_sending_sent = true;
  put_control(WtStopSendingCapsule{id, code});
}

size_t H2Session::max_datagram_size() const { return is_open() ? config_.max_datagram_payload : 0; }

bool H2Session::send_datagram(std::span<const uint8_t> payload) {
  if (!is_open() || payload.size() > config_.max_datagram_payload) return false;
  // Datagrams may be dropped (-15 §6.11): only into the room stream data may use, never the reserve.
  if (data_room() < 1 + varint_size(payload.size()) + payload.size()) return false;
  append_varint(out_, kCapsuleDatagram);
  append_varint(out_, payload.size());
  append_bytes(out_, payload);
  notify_output();
  return true;
}

void H2Session::close(uint32_t code, std::string_view reason) {
  switch (state_) {
    case State::kRequested:
      end(code, reason, EndMode::kAbort, H2SessionError::kCancel);
      break;
    case State::kOpen:
      end(code, reason, EndMode::kLocalClose);
      break;
    case State::kClosed:
      break;
  }
}

void H2Session::drain() {
  if (!is_open() || drain_sent_) return;
  drain_sent_ = true;
  put_control(DrainSessionCapsule{});
}

// --- output ---

std::span<const uint8_t> H2Session::output() const {
  return std::span<const uint8_t>(out_).subspan(out_head_);
}

void H2Session::consume_output(size_t n) {
  out_head_ += std::min(n, output_size());
  if (out_head_ == out_.size()) {
    out_.clear();
    out_head_ = 0;
  } else if (out_head_ >= 64 * 1024 && out_head_ * 2 >= out_.size()) {
    out_.erase(out_.begin(), out_.begin() + static_cast<ptrdiff_t>(out_head_));
    out_head_ = 0;
  }
  if (n > 0) notify_writable();
  deliver_deferred();
}

size_t H2Session::data_room() const {
  const size_t limit = config_.max_output_bytes - std::min(config_.max_output_bytes, config_.control_reserve);
  return output_size() >= limit ? 0 : limit - output_size();
}

bool H2Session::put_control_bytes(std::span<const uint8_t> bytes) {
  if (!is_open()) return false;
  if (output_size() + bytes.size() > config_.max_output_bytes) {
    end(kSessionGoneCode, "CANCEL: output buffer full (the peer does not read it)", EndMode::kAbort,
        H2SessionError::kCancel);
    return false;
  }
  append_bytes(out_, bytes);
  notify_output();
  return true;
}

bool H2Session::put_control(const Capsule& capsule) { return put_control_bytes(serialize_capsule(capsule)); }

bool H2Session::put_control(const H2StreamCapsule& capsule) {
  std::vector<uint8_t> bytes;
  serialize_h2_capsule(capsule, bytes);
  return put_control_bytes(bytes);
}

void H2Session::notify_output() {
  if (listener_ != nullptr) listener_->on_output_ready();
}

void H2Session::wait_writable(StreamId id) { want_writable_.insert(id); }

void H2Session::notify_writable() {
  if (in_notify_ || !is_open() || handler_ == nullptr || want_writable_.empty()) return;
  in_notify_ = true;
  std::set<StreamId> waiting = std::exchange(want_writable_, {});
  for (StreamId id : waiting) {
    if (!is_open() || handler_ == nullptr) break;
    if (send_capacity(id) == 0) {
      if (records_.count(id) != 0) want_writable_.insert(id);
      continue;
    }
    handler_->on_stream_writable(id);
  }
  in_notify_ = false;
}

// --- the end ---

bool H2Session::protocol_error(H2SessionError error, std::string_view why) {
  end(kSessionGoneCode, std::string(to_string(error)) + ": " + std::string(why), EndMode::kAbort, error);
  return false;
}

void H2Session::end(uint32_t code, std::string_view reason, EndMode mode, H2SessionError error) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  std::string message =
      mode == EndMode::kLocalClose ? sanitize_utf8(reason, kMaxCloseMessage) : std::string(reason);
  switch (mode) {
    case EndMode::kLocalClose: {
      // Never wait (CVE-2026-21435): the capsule goes behind what is queued if it fits the buffer (the
      // reserve keeps room for it unless control capsules used it up), else the stream is reset.
      const std::vector<uint8_t> capsule = serialize_capsule(CloseSessionCapsule{code, message});
      if (output_size() + capsule.size() <= config_.max_output_bytes) {
        append_bytes(out_, capsule);
        fin_pending_ = true;
      } else {
        out_.clear();
        out_head_ = 0;
        reset_pending_ = h2_error_code(H2SessionError::kCancel);
      }
      break;
    }
    case EndMode::kPeerClosed:  // -15 §6.12: answer with END_STREAM after what is queued
      fin_pending_ = true;
      break;
    case EndMode::kAbort:
      out_.clear();
      out_head_ = 0;
      reset_pending_ = h2_error_code(error);
      if (error != H2SessionError::kCancel || code == kSessionGoneCode) local_error_ = error;
      break;
    case EndMode::kStreamGone:
      out_.clear();
      out_head_ = 0;
      break;
  }
  streams_.take_all();
  records_.clear();
  want_writable_.clear();
  notify_output();
  if (SessionHandler* h = std::exchange(handler_, nullptr)) h->on_closed(code, message);
}

}  // namespace wtmesh::wt
