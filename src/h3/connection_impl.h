// Private state of h3::Connection, shared by connection.cc (receive path, dispatch) and
// connection_send.cc (send path). Not part of the public API.
#pragma once

#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "h3/connection.h"
#include "h3/frames.h"
#include "h3/qpack.h"
#include "h3/settings.h"

namespace wtmesh::h3 {

// Hard cap on framing bytes we queue on one stream when the transport's send buffer is full (an
// encoded HEADERS frame, or SETTINGS/GOAWAY on the control stream).
constexpr size_t kMaxPendingFraming = 256 * 1024;

struct Connection::Impl {
  enum class Kind : uint8_t {
    kPeerUniPending,   // peer uni stream, stream type not read yet
    kPeerBidiPending,  // peer bidi stream, first varint not read yet
    kWtHeader,         // WT stream type read (0x41/0x54), session id not read yet
    kRequest,          // request stream (HEADERS, DATA, trailers)
    kWt,               // WebTransport stream: raw bytes
    kControl,          // peer's control stream
    kQpackEncoder,     // peer's QPACK encoder stream
    kQpackDecoder,     // peer's QPACK decoder stream
    kDiscard,          // unknown uni stream type: STOP_SENDING sent, bytes dropped
    kLocalCritical,    // our control / QPACK streams
  };
  enum class Phase : uint8_t { kHeaders, kBody, kDone };

  struct Stream {
    Kind kind;
    Phase phase = Phase::kHeaders;
    bool local = false;
    bool app_visible = false;    // the handler knows this id (gets reset/closed callbacks)
    bool failed = false;         // receive side abandoned: further bytes are consumed and dropped
    bool fin_delivered = false;  // the handler has seen the end of the peer's data
    bool send_closed = false;    // FIN written or RESET_STREAM sent
    bool fin_pending = false;    // FIN requested but framing still queued
    bool response_started = false;
    bool reset_notified = false;  // on_request_reset delivered (or the app reset it itself)
    bool wt_uni = false;
    bool above_goaway = false;   // a peer bidi stream at or above our GOAWAY's id: only WebTransport goes on
    uint32_t interim_count = 0;  // client: 1xx sections delivered on this request stream
    uint8_t prefix_len = 0;
    uint8_t prefix[8] = {};
    uint64_t session_id = 0;
    uint64_t data_frame_remaining = 0;  // DATA payload owed after a header we wrote
    std::vector<uint8_t> pending_out;   // framing not yet accepted by the transport
    std::unique_ptr<FrameReader> reader;
  };

  Impl(Connection& self, quic::Transport& t, Role r, Config c);

  // --- receive path (connection.cc)
  Stream& new_peer_stream(StreamId id);
  // Collects one varint from `in` into s.prefix; true when complete.
  static bool take_varint(Stream& s, std::span<const uint8_t> in, size_t& pos, uint64_t& value);
  void process(StreamId id, Stream& s, std::span<const uint8_t> in, bool fin);
  void process_uni_type(StreamId id, Stream& s, std::span<const uint8_t> in, size_t pos, bool fin);
  // A request stream at or above our GOAWAY's id: reset and STOP_SENDING with H3_REQUEST_REJECTED.
  void reject_above_goaway(StreamId id, Stream& s);
  void process_bidi_first(StreamId id, Stream& s, std::span<const uint8_t> in, size_t pos, bool fin);
  void process_wt_header(StreamId id, Stream& s, std::span<const uint8_t> in, size_t pos, bool fin);
  void process_control(StreamId id, Stream& s, std::span<const uint8_t> in, bool fin);
  void handle_control_frame(uint64_t type, std::span<const uint8_t> payload);
  void handle_settings(std::span<const uint8_t> payload);
  // Feeds request-stream bytes; `fin` applies at the end of `in`.
  void feed_request(StreamId id, Stream& s, std::span<const uint8_t> in, bool fin);
  void handle_headers_frame(StreamId id, Stream& s, std::span<const uint8_t> payload, bool last);
  void handle_oversized_headers(StreamId id, Stream& s);
  void deliver_wt(StreamId id, Stream& s, std::span<const uint8_t> data, bool fin);
  // Stream error: reset both directions with `code`, tell the handler if it knew the stream.
  void stream_error(StreamId id, Stream& s, uint64_t code);
  void connection_error(uint64_t code, std::string_view reason);
  bool is_local(StreamId id) const { return quic::is_client_initiated(id) == (role == Role::kClient); }
  Stream* find(StreamId id);

  // --- send path (connection_send.cc)
  // Writes `bytes` after any queued framing; what the transport does not take is queued.
  bool write_framing(StreamId id, Stream& s, std::span<const uint8_t> bytes);
  // Flushes queued framing (then a pending FIN). True when nothing is left queued.
  bool flush_pending(StreamId id, Stream& s);
  // Encodes and writes a HEADERS frame. False if it cannot be encoded/queued.
  bool send_headers(StreamId id, Stream& s, const HeaderList& headers, bool fin);
  void write_decoder_stream_bytes();
  std::optional<StreamId> open_local_critical(uint64_t stream_type);

  Connection& self;
  quic::Transport& transport;
  Role role;
  Config config;
  Handler* handler;
  bool started = false;
  bool closed = false;          // closing or closed: input is ignored
  bool close_notified = false;  // handler saw on_connection_closed
  size_t app_bytes = 0;         // payload bytes handed to the handler during the current on_stream_data

  std::optional<StreamId> control_id, decoder_id;  // ours (decoder_id: opened on first use, if ever)
  std::optional<StreamId> peer_control_id, peer_encoder_id, peer_decoder_id;
  bool settings_received = false;
  std::optional<Settings> remembered_settings;  // 0-RTT: the server's from the ticket's connection
  std::optional<Settings> peer_settings;
  std::optional<PeerSettings> peer_settings_full;
  std::optional<uint64_t> goaway_received, goaway_sent, max_push_id_received;
  uint64_t next_peer_bidi = 0;  // one past the highest bidirectional stream id the peer opened

  QpackEncoder encoder;
  QpackDecoder decoder;
  std::unordered_map<StreamId, Stream> streams;
};

}  // namespace wtmesh::h3
