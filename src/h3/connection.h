// HTTP/3 connection (RFC 9114) with extended CONNECT (RFC 9220), HTTP datagrams (RFC 9297) and the
// WebTransport stream/SETTINGS extensions, on top of a quic::Transport.
//
// Sans-I/O: bytes arrive through quic::TransportHandler callbacks; output goes to quic::Transport.
// Our own framing (see docs/architecture.md: nghttp3 1.8 cannot send WebTransport SETTINGS and breaks
// on WT stream types); QPACK is nghttp3's encoder/decoder, used with a zero-capacity dynamic table.
//
// Stream dispatch:
//  - peer uni streams: 0x00 control, 0x02 QPACK encoder, 0x03 QPACK decoder, 0x54 WebTransport,
//    reserved/unknown types get STOP_SENDING(H3_STREAM_CREATION_ERROR) and are discarded.
//  - bidi streams: a first frame type of 0x41 makes the stream a WebTransport stream; anything else
//    is a request stream (HEADERS, DATA*, trailing HEADERS).
// Caps: every frame on the control stream and every HEADERS frame is bounded
// (Config::max_field_section_size); an oversized header section fails the stream with
// H3_EXCESSIVE_LOAD (server: answers 431 first); decoded header bytes are counted while decoding.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quic/transport.h"

namespace wtmesh::h3 {

using quic::StreamId;

struct Header {
  std::string name;
  std::string value;
};
using HeaderList = std::vector<Header>;

// Returns the value of the first header named `name` (lower-case), or nullptr.
const std::string* find_header(const HeaderList& headers, std::string_view name);

enum class Role { kClient, kServer };

// SETTINGS we send, and what we parsed from the peer. Codepoints in h3/settings.h.
struct Settings {
  uint64_t max_field_section_size = 16 * 1024;
  uint64_t qpack_max_table_capacity = 0;
  uint64_t qpack_blocked_streams = 0;
  bool enable_connect_protocol = false;  // 0x08
  bool h3_datagram = false;              // 0x33
  // WebTransport: sends 0x2b603742=1 (draft-02), 0xc671706a=N (draft-07..), 0x14e9cd29=1 (draft-13),
  // 0x2c7cf000=1 (draft-15+). When parsed from a peer: true if any of those is non-zero.
  bool webtransport = false;
  uint64_t wt_max_sessions = 1;
};

struct Config {
  Settings local;
  // Largest HEADERS frame / decoded header section we accept (bytes). Also sent as
  // SETTINGS_MAX_FIELD_SECTION_SIZE.
  size_t max_field_section_size = 16 * 1024;
  // Largest frame on the control stream other than DATA (SETTINGS, GOAWAY, unknown ones).
  size_t max_control_frame_size = 4096;
  // Client: interim (1xx) responses delivered per request stream (on_interim_headers); later ones
  // before the final response are decoded and dropped.
  size_t max_interim_responses = 8;
};

class Handler {
 public:
  virtual ~Handler() = default;

  virtual void on_peer_settings(const Settings& /*peer*/) {}
  // Server: a request header section. Client: a response header section. `fin`: no body follows.
  // Trailers are delivered as a second on_headers call with fin=true.
  virtual void on_headers(StreamId id, HeaderList headers, bool fin) = 0;
  // Client: an interim (1xx) response section before the final one (RFC 9114 §4.1), at most
  // Config::max_interim_responses per stream. A 1xx that ends the stream is a stream error instead.
  virtual void on_interim_headers(StreamId /*id*/, HeaderList /*headers*/) {}
  // DATA frame payload bytes, in order. The application must consume() them.
  virtual void on_body(StreamId id, std::span<const uint8_t> data, bool fin) = 0;
  // The request stream failed (peer reset, or a protocol error we detected and reset it for).
  virtual void on_request_reset(StreamId id, uint64_t h3_error) = 0;
  virtual void on_request_writable(StreamId /*id*/) {}
  virtual void on_request_closed(StreamId id) = 0;

  // A WebTransport stream (bidi 0x41 or uni 0x54) whose header has been read.
  virtual void on_wt_stream(StreamId id, uint64_t session_id) = 0;
  // Bytes after the WT stream header. The application must consume() them.
  virtual void on_wt_data(StreamId id, std::span<const uint8_t> data, bool fin) = 0;
  virtual void on_wt_reset(StreamId id, uint64_t h3_error) = 0;
  virtual void on_wt_stop_sending(StreamId id, uint64_t h3_error) = 0;
  virtual void on_wt_writable(StreamId /*id*/) {}
  virtual void on_wt_closed(StreamId id) = 0;

  // An HTTP datagram (RFC 9297): quarter stream id = request stream id / 4.
  virtual void on_datagram(uint64_t quarter_stream_id, std::span<const uint8_t> payload) = 0;
  virtual void on_goaway(uint64_t /*id*/) {}
  // The peer raised MAX_STREAMS: send_request / open_wt_stream may succeed again.
  virtual void on_streams_available() {}
  virtual void on_connection_closed(uint64_t error_code, bool is_application, std::string_view reason) = 0;
};

// A Handler that ignores every event: what a connection without a handler reports to, and a base
// for handlers (tests, probes) that care about a few events only.
class NullHandler : public Handler {
 public:
  void on_headers(StreamId, HeaderList, bool) override {}
  void on_body(StreamId, std::span<const uint8_t>, bool) override {}
  void on_request_reset(StreamId, uint64_t) override {}
  void on_request_closed(StreamId) override {}
  void on_wt_stream(StreamId, uint64_t) override {}
  void on_wt_data(StreamId, std::span<const uint8_t>, bool) override {}
  void on_wt_reset(StreamId, uint64_t) override {}
  void on_wt_stop_sending(StreamId, uint64_t) override {}
  void on_wt_closed(StreamId) override {}
  void on_datagram(uint64_t, std::span<const uint8_t>) override {}
  void on_connection_closed(uint64_t, bool, std::string_view) override {}
};

class Connection final : public quic::TransportHandler {
 public:
  Connection(quic::Transport& transport, Role role, Config config);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void set_handler(Handler* handler);
  // Opens the control and QPACK streams and sends SETTINGS. Call once the handshake is done (or
  // earlier on the client).
  void start();

  Role role() const;
  // The peer's SETTINGS, once received (or remembered, below).
  const std::optional<Settings>& peer_settings() const;
  // Client, for 0-RTT: the server's SETTINGS from the connection the ticket came from stand in until
  // this server's arrive (RFC 9114 §7.2.4.2), so requests can go before the handshake. SETTINGS that
  // then take back anything remembered (WebTransport, HTTP datagrams, extended CONNECT) are a
  // connection error H3_SETTINGS_ERROR. Ignored once SETTINGS were received.
  void remember_peer_settings(const Settings& remembered);
  quic::Transport& transport();

  // Client: opens a request stream and sends its HEADERS. nullopt when out of stream credit.
  std::optional<StreamId> send_request(const HeaderList& headers, bool fin);
  // Server: sends response HEADERS on a request stream. False if the stream is unknown/gone.
  bool send_response(StreamId id, const HeaderList& headers, bool fin);
  // Either role: ends our side of a request stream with a trailing HEADERS (`trailers`: regular fields)
  // after the DATA sent so far. False if the stream is unknown, already ended, or the section cannot
  // be encoded or queued.
  bool send_trailers(StreamId id, const HeaderList& trailers);
  // Sends body bytes as DATA frames. Returns how many bytes of `data` were taken (0..size);
  // fewer than offered means the stream's send buffer is full: wait for on_request_writable. `fin`
  // counts once every byte was taken (an empty `data` with `fin` always ends the stream).
  size_t send_body(StreamId id, std::span<const uint8_t> data, bool fin);
  // Returns flow-control credit for request-body or WT bytes the application has consumed.
  void consume(StreamId id, size_t n);
  // Aborts a request stream both ways with an HTTP/3 error code.
  void reset_request(StreamId id, uint64_t h3_error);
  // Server: the request body is not wanted (STOP_SENDING; H3_NO_ERROR once the whole response is
  // out, RFC 9114 §4.1). What still arrives is dropped and a reset of it is not reported; the
  // response goes on.
  void stop_request_body(StreamId id, uint64_t h3_error);

  // WebTransport streams: opens a stream and writes its header (0x41/0x54 + session id).
  std::optional<StreamId> open_wt_stream(uint64_t session_id, bool bidi);
  size_t wt_write(StreamId id, std::span<const uint8_t> data, bool fin);
  size_t wt_send_capacity(StreamId id) const;
  // Bytes of a WebTransport stream not yet acknowledged by the peer: its queued header, a FIN
  // waiting behind it, and what QUIC holds unacked (quic::Transport::unacked_bytes).
  uint64_t wt_unacked_bytes(StreamId id) const;
  void wt_reset(StreamId id, uint64_t h3_error);
  void wt_stop_sending(StreamId id, uint64_t h3_error);

  // HTTP datagram for the request stream `session_id`. False if dropped.
  bool send_datagram(StreamId session_id, std::span<const uint8_t> payload);
  // Largest payload send_datagram accepts for `session_id` now (0 if datagrams are unavailable).
  size_t max_datagram_payload(StreamId session_id) const;

  // GOAWAY (RFC 9114 §5.2): the peer's requests at `id` and above are refused from now on
  // (H3_REQUEST_REJECTED); WebTransport streams of sessions already accepted are not requests and
  // still open.
  void send_goaway(uint64_t id);
  // One past the highest bidirectional stream id the peer opened (requests, sessions, WebTransport
  // streams): the GOAWAY id that lets everything already started finish.
  uint64_t next_peer_bidi_id() const;
  // Debug/leak checks: per-stream records currently held (includes our 3 critical streams and the
  // peer's, once opened).
  size_t stream_state_count() const;
  // Closes the QUIC connection with an HTTP/3 error code (H3_NO_ERROR = 0x100).
  void close(uint64_t h3_error, std::string_view reason);

  // quic::TransportHandler
  void on_handshake_completed() override;
  void on_application_keys() override;
  void on_stream_data(StreamId id, std::span<const uint8_t> data, bool fin) override;
  void on_stream_reset(StreamId id, uint64_t app_error) override;
  void on_stop_sending(StreamId id, uint64_t app_error) override;
  void on_stream_closed(StreamId id) override;
  void on_stream_writable(StreamId id) override;
  void on_datagram(std::span<const uint8_t> payload) override;
  void on_streams_available() override;
  void on_connection_closed(uint64_t error_code, bool is_application, std::string_view reason) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wtmesh::h3
