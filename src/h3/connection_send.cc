// h3::Connection: the send path (critical streams, HEADERS, DATA framing, WebTransport streams,
// datagrams, GOAWAY, close).
#include <algorithm>

#include "common/varint.h"
#include "h3/connection.h"
#include "h3/connection_impl.h"
#include "h3/error_codes.h"

namespace wtmesh::h3 {
namespace {

// Field-section size as RFC 9114 §4.2.2 counts it.
uint64_t field_section_size(const HeaderList& headers) {
  uint64_t n = 0;
  for (const Header& h : headers) n += h.name.size() + h.value.size() + 32;
  return n;
}

// Payload of the small DATA frame queued when the send buffer is full (see send_body).
constexpr size_t kBlockedFramePayload = 16;

// Fixed GREASE seed: deterministic output (tests compare bytes); the peer must ignore it anyway.
constexpr uint64_t kGreaseSeed = 0x2a;

}  // namespace

bool Connection::Impl::write_framing(StreamId id, Stream& s, std::span<const uint8_t> bytes) {
  if (s.send_closed || s.pending_out.size() + bytes.size() > kMaxPendingFraming) return false;
  if (s.pending_out.empty()) {
    const size_t n = transport.write(id, bytes, false);
    if (n < bytes.size()) s.pending_out.assign(bytes.begin() + static_cast<ptrdiff_t>(n), bytes.end());
    return true;
  }
  s.pending_out.insert(s.pending_out.end(), bytes.begin(), bytes.end());
  flush_pending(id, s);
  return true;
}

bool Connection::Impl::flush_pending(StreamId id, Stream& s) {
  if (s.send_closed) return true;
  if (!s.pending_out.empty()) {
    const size_t n = transport.write(id, s.pending_out, false);
    s.pending_out.erase(s.pending_out.begin(), s.pending_out.begin() + static_cast<ptrdiff_t>(n));
    if (!s.pending_out.empty()) return false;
  }
  if (s.fin_pending && s.data_frame_remaining == 0) {
    transport.write(id, {}, true);
    s.fin_pending = false;
    s.send_closed = true;
  }
  return true;
}

bool Connection::Impl::send_headers(StreamId id, Stream& s, const HeaderList& headers, bool fin) {
  if (s.send_closed || s.fin_pending || s.data_frame_remaining > 0) return false;
  // Do not send what the peer said it would refuse (SETTINGS_MAX_FIELD_SECTION_SIZE).
  if (peer_settings && field_section_size(headers) > peer_settings->max_field_section_size) return false;
  std::vector<uint8_t> block;
  if (!encoder.encode(id, headers, block)) return false;
  std::vector<uint8_t> frame;
  frame.reserve(block.size() + 16);
  append_frame(frame, kFrameHeaders, block);
  if (!write_framing(id, s, frame)) return false;
  s.response_started = true;
  if (fin) {
    s.fin_pending = true;
    flush_pending(id, s);
  }
  return true;
}

void Connection::Impl::write_decoder_stream_bytes() {
  std::vector<uint8_t> bytes = decoder.take_decoder_stream_bytes();
  if (bytes.empty() || closed) return;
  if (!decoder_id) {
    // Opened on first use (start()); with a dynamic table of capacity 0 nothing needs it so far.
    decoder_id = open_local_critical(kStreamQpackDecoder);
    if (!decoder_id) return connection_error(kH3StreamCreationError, "cannot open the QPACK decoder stream");
  }
  if (Stream* s = find(*decoder_id)) {
    if (!write_framing(*decoder_id, *s, bytes))
      connection_error(kH3ExcessiveLoad, "QPACK decoder stream backlog");
  }
}

std::optional<StreamId> Connection::Impl::open_local_critical(uint64_t stream_type) {
  const auto id = transport.open_uni_stream();
  if (!id) return std::nullopt;
  Stream& s = streams[*id];
  s.kind = Kind::kLocalCritical;
  s.local = true;
  s.fin_delivered = true;  // no receive side
  std::vector<uint8_t> type;
  append_varint(type, stream_type);
  write_framing(*id, s, type);
  return id;
}

void Connection::start() {
  Impl& I = *impl_;
  if (I.started || I.closed) return;
  I.started = true;
  I.control_id = I.open_local_critical(kStreamControl);
  if (!I.control_id) return I.connection_error(kH3StreamCreationError, "cannot open control stream");
  // SETTINGS must be the first frame on the control stream.
  const std::vector<uint8_t> settings = serialize_settings_frame(I.config.local, kGreaseSeed);
  I.write_framing(*I.control_id, I.streams[*I.control_id], settings);
  // No QPACK encoder or decoder stream (RFC 9204 §4.2 lets an endpoint skip both): our encoder never
  // uses the dynamic table (QpackEncoder refuses to emit encoder-stream bytes) and our decoder allows
  // it a capacity of 0, so neither stream would ever carry a byte. Each would cost both ends a
  // stream's state for the connection's life (ngtcp2 keeps a gap tracker per stream sent on), per
  // idle agent session on the edge (issue 15 item 4). The decoder stream is opened should the
  // decoder ever have something to say (write_decoder_stream_bytes).
}

std::optional<StreamId> Connection::send_request(const HeaderList& headers, bool fin) {
  Impl& I = *impl_;
  if (I.role != Role::kClient || I.closed) return std::nullopt;
  const auto id = I.transport.open_bidi_stream();
  if (!id) return std::nullopt;
  Impl::Stream& s = I.streams[*id];
  s.kind = Impl::Kind::kRequest;
  s.local = true;
  s.reader = std::make_unique<FrameReader>(classify_request_frame, I.config.max_field_section_size);
  if (!I.send_headers(*id, s, headers, fin)) {
    // Never seen by the application: its record goes when the transport closes the stream.
    I.transport.reset_stream(*id, kH3RequestCancelled);
    I.transport.stop_sending(*id, kH3RequestCancelled);
    s.send_closed = s.failed = true;
    return std::nullopt;
  }
  s.app_visible = true;
  return id;
}

bool Connection::send_response(StreamId id, const HeaderList& headers, bool fin) {
  Impl& I = *impl_;
  Impl::Stream* s = I.closed ? nullptr : I.find(id);
  if (I.role != Role::kServer || s == nullptr || s->kind != Impl::Kind::kRequest) return false;
  return I.send_headers(id, *s, headers, fin);
}

bool Connection::send_trailers(StreamId id, const HeaderList& trailers) {
  Impl& I = *impl_;
  Impl::Stream* s = I.closed ? nullptr : I.find(id);
  if (s == nullptr || s->kind != Impl::Kind::kRequest || s->send_closed || s->fin_pending) return false;
  if (s->data_frame_remaining > 0) return false;  // inside a DATA frame whose payload is still owed
  if (I.role == Role::kServer && !s->response_started) return false;
  for (const Header& h : trailers) {
    if (h.name.empty() || h.name[0] == ':') return false;
  }
  return I.send_headers(id, *s, trailers, true);
}

size_t Connection::send_body(StreamId id, std::span<const uint8_t> data, bool fin) {
  Impl& I = *impl_;
  Impl::Stream* s = I.closed ? nullptr : I.find(id);
  if (s == nullptr || s->kind != Impl::Kind::kRequest || s->send_closed || s->fin_pending) return 0;
  if (!I.flush_pending(id, *s)) {  // earlier framing still queued
    if (data.empty() && fin) s->fin_pending = true;
    return 0;
  }
  size_t taken = 0;
  while (taken < data.size()) {
    if (s->data_frame_remaining > 0) {  // finish a frame whose header is already written
      const size_t n = static_cast<size_t>(std::min<uint64_t>(s->data_frame_remaining, data.size() - taken));
      const size_t w = I.transport.write(id, data.subspan(taken, n), false);
      taken += w;
      s->data_frame_remaining -= w;
      if (w < n) return taken;
      continue;
    }
    // Size the next DATA frame so that header and payload both fit in the send buffer now; payload
    // is never accepted unless its header went out with it.
    const size_t cap = I.transport.send_capacity(id);
    const size_t rest = data.size() - taken;
    const size_t header = frame_header_size(kFrameData, std::min(rest, cap));
    if (cap <= header) {
      // No room for header + payload. Queue one small complete frame ourselves: its write comes up
      // short, so the transport reports on_stream_writable when space frees (a write that is never
      // short would never be followed by one).
      const size_t len = std::min(rest, kBlockedFramePayload);
      std::vector<uint8_t> frame;
      append_frame(frame, kFrameData, data.subspan(taken, len));
      if (!I.write_framing(id, *s, frame)) break;
      taken += len;
      break;
    }
    const size_t len = std::min(rest, cap - header);
    uint8_t hdr[16];
    size_t hl = write_varint(hdr, kFrameData);
    hl += write_varint(hdr + hl, len);
    const size_t w = I.transport.write(id, std::span<const uint8_t>(hdr, hl), false);
    s->data_frame_remaining = len;
    if (w < hl) {  // cannot happen with an honest send_capacity(); keep the stream consistent anyway
      s->pending_out.assign(hdr + w, hdr + hl);
      return taken;
    }
  }
  if (taken == data.size() && fin) {
    s->fin_pending = true;
    I.flush_pending(id, *s);
  }
  return taken;
}

void Connection::consume(StreamId id, size_t n) {
  if (!impl_->closed && n > 0) impl_->transport.consume(id, n);
}

void Connection::reset_request(StreamId id, uint64_t h3_error) {
  Impl& I = *impl_;
  Impl::Stream* s = I.closed ? nullptr : I.find(id);
  if (s == nullptr || s->kind != Impl::Kind::kRequest) return;
  s->reset_notified = true;  // the application asked for it
  s->failed = true;
  if (!s->send_closed) {
    I.transport.reset_stream(id, h3_error);
    s->send_closed = true;
    s->fin_pending = false;
    s->pending_out.clear();
  }
  if (!s->fin_delivered) I.transport.stop_sending(id, h3_error);
}

void Connection::stop_request_body(StreamId id, uint64_t h3_error) {
  Impl& I = *impl_;
  Impl::Stream* s = I.closed ? nullptr : I.find(id);
  if (s == nullptr || s->kind != Impl::Kind::kRequest || s->fin_delivered || s->failed) return;
  s->failed = true;
  s->reset_notified = true;
  I.transport.stop_sending(id, h3_error);
}

std::optional<StreamId> Connection::open_wt_stream(uint64_t session_id, bool bidi) {
  Impl& I = *impl_;
  if (I.closed) return std::nullopt;
  const auto id = bidi ? I.transport.open_bidi_stream() : I.transport.open_uni_stream();
  if (!id) return std::nullopt;
  Impl::Stream& s = I.streams[*id];
  s.kind = Impl::Kind::kWt;
  s.local = true;
  s.app_visible = true;
  s.session_id = session_id;
  s.wt_uni = !bidi;
  s.fin_delivered = !bidi;  // a uni stream we opened has no receive side
  std::vector<uint8_t> header;
  append_varint(header, bidi ? kWtBidiSignal : kStreamWebTransport);
  append_varint(header, session_id);
  I.write_framing(*id, s, header);
  return id;
}

size_t Connection::wt_write(StreamId id, std::span<const uint8_t> data, bool fin) {
  Impl& I = *impl_;
  Impl::Stream* s = I.closed ? nullptr : I.find(id);
  if (s == nullptr || s->kind != Impl::Kind::kWt || s->send_closed || s->fin_pending) return 0;
  if (!I.flush_pending(id, *s)) {  // stream header still queued
    if (data.empty() && fin) s->fin_pending = true;
    return 0;
  }
  const size_t n = I.transport.write(id, data, fin);
  if (fin && n == data.size()) s->send_closed = true;
  return n;
}

size_t Connection::wt_send_capacity(StreamId id) const {
  const Impl& I = *impl_;
  auto it = I.streams.find(id);
  if (I.closed || it == I.streams.end()) return 0;
  const Impl::Stream& s = it->second;
  if (s.kind != Impl::Kind::kWt || s.send_closed || s.fin_pending) return 0;
  const size_t cap = I.transport.send_capacity(id);
  return cap > s.pending_out.size() ? cap - s.pending_out.size() : 0;
}

uint64_t Connection::wt_unacked_bytes(StreamId id) const {
  const Impl& I = *impl_;
  auto it = I.streams.find(id);
  if (I.closed || it == I.streams.end() || it->second.kind != Impl::Kind::kWt) return 0;
  const Impl::Stream& s = it->second;
  return s.pending_out.size() + (s.fin_pending ? 1 : 0) + I.transport.unacked_bytes(id);
}

void Connection::wt_reset(StreamId id, uint64_t h3_error) {
  Impl& I = *impl_;
  Impl::Stream* s = I.closed ? nullptr : I.find(id);
  if (s == nullptr || s->kind != Impl::Kind::kWt || s->send_closed) return;
  I.transport.reset_stream(id, h3_error);
  s->send_closed = true;
  s->fin_pending = false;
  s->pending_out.clear();
}

void Connection::wt_stop_sending(StreamId id, uint64_t h3_error) {
  Impl& I = *impl_;
  Impl::Stream* s = I.closed ? nullptr : I.find(id);
  if (s == nullptr || s->kind != Impl::Kind::kWt || s->fin_delivered || s->failed) return;
  s->failed = true;  // drop whatever still arrives; the peer's RESET_STREAM is still reported
  I.transport.stop_sending(id, h3_error);
}

bool Connection::send_datagram(StreamId session_id, std::span<const uint8_t> payload) {
  Impl& I = *impl_;
  if (I.closed || session_id < 0 || !I.config.local.h3_datagram || !I.peer_settings ||
      !I.peer_settings->h3_datagram) {
    return false;
  }
  const uint64_t quarter = static_cast<uint64_t>(session_id) / 4;
  if (varint_size(quarter) + payload.size() > I.transport.max_datagram_payload()) return false;
  std::vector<uint8_t> buf;
  buf.reserve(varint_size(quarter) + payload.size());
  append_varint(buf, quarter);
  append_bytes(buf, payload);
  return I.transport.send_datagram(buf);
}

size_t Connection::max_datagram_payload(StreamId session_id) const {
  const Impl& I = *impl_;
  if (I.closed || session_id < 0 || !I.config.local.h3_datagram || !I.peer_settings ||
      !I.peer_settings->h3_datagram) {
    return 0;
  }
  const size_t max = I.transport.max_datagram_payload();
  const size_t prefix = varint_size(static_cast<uint64_t>(session_id) / 4);
  return max > prefix ? max - prefix : 0;
}

uint64_t Connection::next_peer_bidi_id() const { return impl_->next_peer_bidi; }

void Connection::send_goaway(uint64_t id) {
  Impl& I = *impl_;
  if (I.closed || !I.control_id || id > kVarintMax) return;
  Impl::Stream* s = I.find(*I.control_id);
  if (s == nullptr) return;
  if (I.goaway_sent && id > *I.goaway_sent) return;  // GOAWAY ids may only shrink
  std::vector<uint8_t> frame;
  append_varint_frame(frame, kFrameGoaway, id);
  if (I.write_framing(*I.control_id, *s, frame)) I.goaway_sent = id;
}

void Connection::close(uint64_t h3_error, std::string_view reason) {
  impl_->connection_error(h3_error, reason);
}

}  // namespace wtmesh::h3
