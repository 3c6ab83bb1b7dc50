// h3::Connection: stream dispatch and the receive path (control, QPACK, request and WebTransport
// streams, datagrams). The send path is in connection_send.cc.
#include "h3/connection.h"

#include <algorithm>

#include "common/varint.h"
#include "h3/connection_impl.h"
#include "h3/error_codes.h"
#include "h3/headers.h"

namespace wtmesh::h3 {
namespace {

NullHandler null_handler;

Config normalize(Config c) {
  // What we advertise must match what we enforce: the decoder runs with a zero-capacity table.
  c.local.max_field_section_size = c.max_field_section_size;
  c.local.qpack_max_table_capacity = 0;
  c.local.qpack_blocked_streams = 0;
  return c;
}

}  // namespace

Connection::Impl::Impl(Connection& s, quic::Transport& t, Role r, Config c)
    : self(s),
      transport(t),
      role(r),
      config(normalize(c)),
      handler(&null_handler),
      decoder(config.max_field_section_size) {}

Connection::Impl::Stream* Connection::Impl::find(StreamId id) {
  auto it = streams.find(id);
  return it == streams.end() ? nullptr : &it->second;
}

Connection::Impl::Stream& Connection::Impl::new_peer_stream(StreamId id) {
  Stream& s = streams[id];
  s.kind = quic::is_uni(id) ? Kind::kPeerUniPending : Kind::kPeerBidiPending;
  if (quic::is_uni(id)) s.send_closed = true;
  if (quic::is_bidi(id) && static_cast<uint64_t>(id) + 4 > next_peer_bidi)
    next_peer_bidi = static_cast<uint64_t>(id) + 4;
  // After our GOAWAY, requests at or above its id are refused (RFC 9114 §5.2); a WebTransport stream
  // of a session already accepted is no request and goes on (draft-ietf-webtrans-http3 §4.6: sessions
  // finish after a GOAWAY), so the stream is judged by its first varint (process_bidi_first).
  if (role == Role::kServer && quic::is_bidi(id) && goaway_sent && static_cast<uint64_t>(id) >= *goaway_sent)
    s.above_goaway = true;
  return s;
}

void Connection::Impl::reject_above_goaway(StreamId id, Stream& s) {
  s.kind = Kind::kDiscard;
  s.failed = true;
  if (!s.send_closed) {
    s.send_closed = true;
    transport.reset_stream(id, kH3RequestRejected);
  }
  transport.stop_sending(id, kH3RequestRejected);
}

bool Connection::Impl::take_varint(Stream& s, std::span<const uint8_t> in, size_t& pos, uint64_t& value) {
  while (pos < in.size()) {
    s.prefix[s.prefix_len++] = in[pos++];
    const size_t need = size_t{1} << (s.prefix[0] >> 6);
    if (s.prefix_len == need) {
      value = read_varint(std::span<const uint8_t>(s.prefix, need))->value;
      return true;
    }
  }
  return false;
}

void Connection::Impl::connection_error(uint64_t code, std::string_view reason) {
  if (closed) return;
  closed = true;
  transport.close(code, reason);
}

void Connection::Impl::stream_error(StreamId id, Stream& s, uint64_t code) {
  s.failed = true;
  if (!s.send_closed) {
    transport.reset_stream(id, code);
    s.send_closed = true;
    s.fin_pending = false;
    s.pending_out.clear();
  }
  if (!s.fin_delivered) transport.stop_sending(id, code);
  if (s.app_visible && !s.reset_notified) {
    s.reset_notified = true;
    handler->on_request_reset(id, code);
  }
}

void Connection::Impl::process(StreamId id, Stream& s, std::span<const uint8_t> in, bool fin) {
  switch (s.kind) {
    case Kind::kPeerUniPending:
      process_uni_type(id, s, in, 0, fin);
      break;
    case Kind::kPeerBidiPending:
      process_bidi_first(id, s, in, 0, fin);
      break;
    case Kind::kWtHeader:
      process_wt_header(id, s, in, 0, fin);
      break;
    case Kind::kRequest:
      if (!s.failed) feed_request(id, s, in, fin);
      break;
    case Kind::kWt:
      deliver_wt(id, s, in, fin);
      break;
    case Kind::kControl:
      process_control(id, s, in, fin);
      break;
    case Kind::kQpackEncoder:
      if (const uint64_t err = decoder.read_encoder_stream(in))
        return connection_error(err, "QPACK encoder stream");
      if (fin) connection_error(kH3ClosedCriticalStream, "QPACK encoder stream closed");
      break;
    case Kind::kQpackDecoder:
      if (const uint64_t err = encoder.read_decoder_stream(in))
        return connection_error(err, "QPACK decoder stream");
      if (fin) connection_error(kH3ClosedCriticalStream, "QPACK decoder stream closed");
      break;
    case Kind::kDiscard:
    case Kind::kLocalCritical:
      break;
  }
}

void Connection::Impl::process_uni_type(StreamId id, Stream& s, std::span<const uint8_t> in, size_t pos,
                                        bool fin) {
  uint64_t type = 0;
  if (!take_varint(s, in, pos, type)) {
    if (fin) s.kind = Kind::kDiscard;  // closed before its type: tolerated (RFC 9114 §6.2)
    return;
  }
  s.prefix_len = 0;
  const auto rest = in.subspan(pos);
  switch (type) {
    case kStreamControl:
      if (peer_control_id) return connection_error(kH3StreamCreationError, "second control stream");
      peer_control_id = id;
      s.kind = Kind::kControl;
      s.reader = std::make_unique<FrameReader>(classify_first_control_frame, config.max_control_frame_size);
      return process(id, s, rest, fin);
    case kStreamQpackEncoder:
      if (peer_encoder_id) return connection_error(kH3StreamCreationError, "second QPACK encoder stream");
      peer_encoder_id = id;
      s.kind = Kind::kQpackEncoder;
      return process(id, s, rest, fin);
    case kStreamQpackDecoder:
      if (peer_decoder_id) return connection_error(kH3StreamCreationError, "second QPACK decoder stream");
      peer_decoder_id = id;
      s.kind = Kind::kQpackDecoder;
      return process(id, s, rest, fin);
    case kStreamPush:
      // We never send MAX_PUSH_ID, so no push id is valid; a server never receives push streams.
      return connection_error(role == Role::kServer ? kH3StreamCreationError : kH3IdError, "push stream");
    default:
      if (type == kStreamWebTransport && config.local.webtransport) {
        s.kind = Kind::kWtHeader;
        s.wt_uni = true;
        return process_wt_header(id, s, in, pos, fin);
      }
      // Unknown or reserved stream type: ask the peer to stop, drop what arrives.
      s.kind = Kind::kDiscard;
      s.failed = true;
      if (!fin) transport.stop_sending(id, kH3StreamCreationError);
      return;
  }
}

void Connection::Impl::process_bidi_first(StreamId id, Stream& s, std::span<const uint8_t> in, size_t pos,
                                          bool fin) {
  uint64_t first = 0;
  if (!take_varint(s, in, pos, first)) {
    if (!fin) return;
    if (s.above_goaway) return reject_above_goaway(id, s);
    if (role == Role::kClient)
      return connection_error(kH3StreamCreationError, "server-initiated bidi stream");
    s.kind = Kind::kRequest;
    return stream_error(id, s, kH3RequestIncomplete);
  }
  if (first == kWtBidiSignal && config.local.webtransport) {
    s.prefix_len = 0;
    s.kind = Kind::kWtHeader;
    return process_wt_header(id, s, in, pos, fin);
  }
  if (role == Role::kClient) return connection_error(kH3StreamCreationError, "server-initiated bidi stream");
  if (s.above_goaway) return reject_above_goaway(id, s);
  s.kind = Kind::kRequest;
  s.reader = std::make_unique<FrameReader>(classify_request_frame, config.max_field_section_size);
  uint8_t prefix[8];
  const size_t prefix_len = s.prefix_len;
  std::copy(s.prefix, s.prefix + prefix_len, prefix);
  s.prefix_len = 0;
  feed_request(id, s, std::span<const uint8_t>(prefix, prefix_len), false);
  if (!s.failed && !closed) feed_request(id, s, in.subspan(pos), fin);
}

void Connection::Impl::process_wt_header(StreamId id, Stream& s, std::span<const uint8_t> in, size_t pos,
                                         bool fin) {
  uint64_t session_id = 0;
  if (!take_varint(s, in, pos, session_id)) {
    if (!fin) return;
    // Ended inside its header: nothing the application ever saw.
    s.kind = Kind::kDiscard;
    s.failed = true;
    if (!s.send_closed) {
      transport.reset_stream(id, kH3FrameError);
      s.send_closed = true;
    }
    return;
  }
  s.prefix_len = 0;
  if (session_id % 4 != 0)
    return connection_error(kH3IdError, "WebTransport session id is not a request stream");
  s.kind = Kind::kWt;
  s.session_id = session_id;
  s.app_visible = true;
  handler->on_wt_stream(id, session_id);
  if (closed) return;
  const auto rest = in.subspan(pos);
  if (!rest.empty() || fin) deliver_wt(id, s, rest, fin);
}

void Connection::Impl::deliver_wt(StreamId id, Stream& s, std::span<const uint8_t> data, bool fin) {
  if (s.failed || s.fin_delivered || (data.empty() && !fin)) return;
  app_bytes += data.size();
  if (fin) s.fin_delivered = true;
  handler->on_wt_data(id, data, fin);
}

void Connection::Impl::process_control(StreamId /*id*/, Stream& s, std::span<const uint8_t> in, bool fin) {
  size_t pos = 0;
  while (!closed) {
    size_t used = 0;
    const FrameEvent ev = s.reader->next(in.subspan(pos), used);
    pos += used;
    if (ev.kind == FrameEvent::Kind::kNeedMore) break;
    if (ev.kind == FrameEvent::Kind::kError) {
      return connection_error(ev.error, ev.error == kH3ExcessiveLoad ? "control frame too large"
                                        : ev.error == kH3MissingSettings
                                            ? "first control frame is not SETTINGS"
                                            : "unexpected frame on control stream");
    }
    if (ev.kind == FrameEvent::Kind::kFrame) handle_control_frame(ev.type, ev.payload);
    if (settings_received) s.reader->set_classifier(classify_control_frame);
  }
  if (fin) connection_error(kH3ClosedCriticalStream, "control stream closed");
}

void Connection::Impl::handle_control_frame(uint64_t type, std::span<const uint8_t> payload) {
  if (type == kFrameSettings) {
    if (settings_received) return connection_error(kH3FrameUnexpected, "second SETTINGS");
    return handle_settings(payload);
  }
  const auto value = parse_varint_payload(payload);
  if (!value) return connection_error(kH3FrameError, "malformed control frame");
  switch (type) {
    case kFrameGoaway:
      // From a server, GOAWAY carries a client bidi stream id, and it may only shrink.
      if (role == Role::kClient && *value % 4 != 0) return connection_error(kH3IdError, "GOAWAY stream id");
      if (goaway_received && *value > *goaway_received)
        return connection_error(kH3IdError, "GOAWAY id increased");
      goaway_received = *value;
      handler->on_goaway(*value);
      return;
    case kFrameMaxPushId:
      if (role == Role::kClient) return connection_error(kH3FrameUnexpected, "MAX_PUSH_ID from server");
      if (max_push_id_received && *value < *max_push_id_received) {
        return connection_error(kH3IdError, "MAX_PUSH_ID decreased");
      }
      max_push_id_received = *value;
      return;
    default:  // CANCEL_PUSH: we never push, nothing to cancel
      return;
  }
}

void Connection::Impl::handle_settings(std::span<const uint8_t> payload) {
  SettingsParseResult r = parse_settings(payload);
  if (!r.settings) return connection_error(r.error, r.reason);
  settings_received = true;
  PeerSettings p = *r.settings;
  // WebTransport needs HTTP datagrams, and from a server also extended CONNECT; without them the
  // peer is treated as not supporting WebTransport (draft-ietf-webtrans-http3 §3.1).
  if (p.settings.webtransport &&
      (!p.settings.h3_datagram || (role == Role::kClient && !p.settings.enable_connect_protocol))) {
    p.settings.webtransport = false;
  }
  if (remembered_settings) {
    const Settings& r = *remembered_settings;
    if ((r.webtransport && !p.settings.webtransport) || (r.h3_datagram && !p.settings.h3_datagram) ||
        (r.enable_connect_protocol && !p.settings.enable_connect_protocol)) {
      return connection_error(kH3SettingsError,
                              "SETTINGS take back what 0-RTT relied on (RFC 9114 §7.2.4.2)");
    }
  }
  peer_settings_full = p;
  peer_settings = p.settings;
  handler->on_peer_settings(*peer_settings);
}

void Connection::Impl::feed_request(StreamId id, Stream& s, std::span<const uint8_t> in, bool fin) {
  size_t pos = 0;
  while (!closed && !s.failed) {
    size_t used = 0;
    const FrameEvent ev = s.reader->next(in.subspan(pos), used);
    pos += used;
    if (ev.kind == FrameEvent::Kind::kNeedMore) break;
    if (ev.kind == FrameEvent::Kind::kError) {
      if (ev.type == kFrameHeaders && ev.error == kH3ExcessiveLoad) return handle_oversized_headers(id, s);
      return connection_error(ev.error, "unexpected frame on request stream");
    }
    const bool last = fin && pos == in.size() && s.reader->at_frame_boundary();
    if (ev.kind == FrameEvent::Kind::kFrame) {
      handle_headers_frame(id, s, ev.payload, last);
      continue;
    }
    // DATA payload, streamed.
    if (s.phase != Phase::kBody) return connection_error(kH3FrameUnexpected, "DATA outside a message body");
    if (ev.payload.empty() && !last) continue;
    app_bytes += ev.payload.size();
    if (last) s.fin_delivered = true;
    handler->on_body(id, ev.payload, last);
  }
  if (!fin || closed || s.failed || s.fin_delivered) return;
  if (!s.reader->at_frame_boundary())
    return connection_error(kH3FrameError, "truncated frame on request stream");
  switch (s.phase) {
    case Phase::kHeaders:
      return stream_error(id, s, role == Role::kServer ? kH3RequestIncomplete : kH3MessageError);
    case Phase::kBody:
      s.fin_delivered = true;
      handler->on_body(id, {}, true);
      return;
    case Phase::kDone:
      s.fin_delivered = true;
      return;
  }
}

void Connection::Impl::handle_headers_frame(StreamId id, Stream& s, std::span<const uint8_t> payload,
                                            bool last) {
  DecodedHeaders d = decoder.decode(id, payload);
  write_decoder_stream_bytes();
  if (d.status == DecodedHeaders::Status::kTooLarge) return handle_oversized_headers(id, s);
  if (d.status == DecodedHeaders::Status::kError) return connection_error(d.error, d.reason);
  switch (s.phase) {
    case Phase::kHeaders: {
      const auto bad = role == Role::kServer
                           ? validate_request_headers(d.headers, config.local.enable_connect_protocol)
                           : validate_response_headers(d.headers);
      if (bad) return stream_error(id, s, kH3MessageError);
      if (role == Role::kClient && is_informational_response(d.headers)) {
        if (last) return stream_error(id, s, kH3MessageError);  // a 1xx must be followed by a final response
        if (s.interim_count < config.max_interim_responses) {   // more are dropped
          ++s.interim_count;
          s.app_visible = true;
          handler->on_interim_headers(id, std::move(d.headers));
        }
        return;
      }
      s.phase = Phase::kBody;
      s.app_visible = true;
      if (last) s.fin_delivered = true;
      handler->on_headers(id, std::move(d.headers), last);
      return;
    }
    case Phase::kBody:
      if (validate_trailers(d.headers)) return stream_error(id, s, kH3MessageError);
      s.phase = Phase::kDone;
      s.fin_delivered = true;
      handler->on_headers(id, std::move(d.headers), true);
      return;
    case Phase::kDone:
      return connection_error(kH3FrameUnexpected, "HEADERS after trailers");
  }
}

void Connection::Impl::handle_oversized_headers(StreamId id, Stream& s) {
  if (role == Role::kServer && s.phase == Phase::kHeaders && !s.response_started && !s.send_closed) {
    // Answer 431 on our side, stop reading theirs (RFC 9114 §4.2.2).
    s.failed = true;
    const bool sent = send_headers(id, s, HeaderList{{":status", "431"}}, true);
    if (!s.fin_delivered) transport.stop_sending(id, kH3ExcessiveLoad);
    if (!sent && !s.send_closed) {
      transport.reset_stream(id, kH3ExcessiveLoad);
      s.send_closed = true;
      s.pending_out.clear();
    }
    return;
  }
  stream_error(id, s, kH3ExcessiveLoad);
}

// --- Connection: construction, accessors, transport callbacks

Connection::Connection(quic::Transport& transport, Role role, Config config)
    : impl_(std::make_unique<Impl>(*this, transport, role, std::move(config))) {}

Connection::~Connection() = default;

void Connection::set_handler(Handler* handler) {
  impl_->handler = handler != nullptr ? handler : &null_handler;
}
Role Connection::role() const { return impl_->role; }
const std::optional<Settings>& Connection::peer_settings() const { return impl_->peer_settings; }
void Connection::remember_peer_settings(const Settings& remembered) {
  Impl& I = *impl_;
  if (I.role != Role::kClient || I.settings_received) return;
  I.remembered_settings = remembered;
  I.peer_settings = remembered;
}
quic::Transport& Connection::transport() { return impl_->transport; }
size_t Connection::stream_state_count() const { return impl_->streams.size(); }

// The handshake is the earliest point both sides can open streams: start HTTP/3 then if the
// application has not already.
void Connection::on_handshake_completed() { start(); }
// A server's SETTINGS go out as 0.5-RTT data with its handshake flight: the client has them when its
// handshake completes and sends its first request at once (a WebTransport client waits for them).
void Connection::on_application_keys() {
  if (impl_->role == Role::kServer) start();
}

void Connection::on_stream_data(StreamId id, std::span<const uint8_t> data, bool fin) {
  Impl& I = *impl_;
  Impl::Stream* s = I.closed ? nullptr : I.find(id);
  if (s == nullptr && !I.closed && !I.is_local(id)) s = &I.new_peer_stream(id);
  I.app_bytes = 0;
  if (s != nullptr) I.process(id, *s, data, fin);
  // Everything not handed to the application as body/WT bytes is framing: credit it now.
  const size_t framing = data.size() - std::min(I.app_bytes, data.size());
  if (framing > 0) I.transport.consume(id, framing);
}

void Connection::on_stream_reset(StreamId id, uint64_t app_error) {
  Impl& I = *impl_;
  Impl::Stream* s = I.closed ? nullptr : I.find(id);
  if (s == nullptr) {
    // A peer bidi stream reset before its first byte reached us: nobody will answer it, so finish
    // our side, or it never closes and the peer's stream credit is gone (HTTP/3 rapid reset).
    if (!I.closed && quic::is_bidi(id) && quic::is_client_initiated(id) == I.transport.is_server()) {
      I.transport.reset_stream(id, kH3RequestCancelled);
    }
    return;
  }
  using Kind = Impl::Kind;
  if (s->kind == Kind::kControl || s->kind == Kind::kQpackEncoder || s->kind == Kind::kQpackDecoder) {
    return I.connection_error(kH3ClosedCriticalStream, "critical stream reset");
  }
  const bool was_open = !s->fin_delivered;
  s->fin_delivered = true;
  s->failed = true;
  if (!s->app_visible && !s->send_closed) {
    // Nobody will ever answer a stream the application never saw: finish our side too so the
    // transport can close it and this record goes away.
    I.transport.reset_stream(id, kH3RequestCancelled);
    s->send_closed = true;
    s->pending_out.clear();
  }
  if (!was_open || !s->app_visible) return;
  if (s->kind == Kind::kRequest && !s->reset_notified) {
    s->reset_notified = true;
    I.handler->on_request_reset(id, app_error);
  } else if (s->kind == Kind::kWt) {
    I.handler->on_wt_reset(id, app_error);
  }
}

void Connection::on_stop_sending(StreamId id, uint64_t app_error) {
  Impl& I = *impl_;
  Impl::Stream* s = I.closed ? nullptr : I.find(id);
  if (s == nullptr) return;
  using Kind = Impl::Kind;
  if (s->kind == Kind::kLocalCritical)
    return I.connection_error(kH3ClosedCriticalStream, "critical stream stopped");
  const bool was_open = !s->send_closed;
  s->send_closed = true;
  s->fin_pending = false;
  s->pending_out.clear();
  if (!was_open || !s->app_visible) return;
  // STOP_SENDING(H3_NO_ERROR) is a peer that has all it needs (e.g. response sent early): benign.
  if (s->kind == Kind::kRequest && app_error != kH3NoError && !s->reset_notified) {
    s->reset_notified = true;
    I.handler->on_request_reset(id, app_error);
  } else if (s->kind == Kind::kWt) {
    I.handler->on_wt_stop_sending(id, app_error);
  }
}

void Connection::on_stream_closed(StreamId id) {
  Impl& I = *impl_;
  auto it = I.streams.find(id);
  if (it == I.streams.end()) return;
  const Impl::Kind kind = it->second.kind;
  const bool visible = it->second.app_visible;
  I.streams.erase(it);
  if (!visible || I.close_notified) return;
  if (kind == Impl::Kind::kRequest) I.handler->on_request_closed(id);
  if (kind == Impl::Kind::kWt) I.handler->on_wt_closed(id);
}

void Connection::on_stream_writable(StreamId id) {
  Impl& I = *impl_;
  Impl::Stream* s = I.closed ? nullptr : I.find(id);
  if (s == nullptr || !I.flush_pending(id, *s) || s->send_closed || !s->app_visible) return;
  if (s->kind == Impl::Kind::kRequest) I.handler->on_request_writable(id);
  if (s->kind == Impl::Kind::kWt) I.handler->on_wt_writable(id);
}

void Connection::on_streams_available() {
  if (!impl_->closed && impl_->handler) impl_->handler->on_streams_available();
}

void Connection::on_datagram(std::span<const uint8_t> payload) {
  Impl& I = *impl_;
  if (I.closed || !I.config.local.h3_datagram) return;
  const auto q = read_varint(payload);
  // Malformed, or a quarter stream id no stream id can have: dropped (datagrams are unreliable).
  if (!q || q->value > (kVarintMax >> 2)) return;
  I.handler->on_datagram(q->value, payload.subspan(q->length));
}

void Connection::on_connection_closed(uint64_t error_code, bool is_application, std::string_view reason) {
  Impl& I = *impl_;
  if (I.close_notified) return;
  I.closed = true;
  I.close_notified = true;
  I.handler->on_connection_closed(error_code, is_application, reason);
  I.streams.clear();
}

}  // namespace wtmesh::h3
