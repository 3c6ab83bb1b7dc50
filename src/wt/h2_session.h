// wt::Session over HTTP/2 (draft-ietf-webtrans-http2-15): one WebTransport session = the capsule
// sequence on one extended-CONNECT stream (RFC 8441, `:protocol webtransport`). Sans-I/O: the HTTP/2
// glue (nghttp2, later) feeds the CONNECT stream's DATA payload in with receive() and writes what
// output() holds as DATA, then END_STREAM when output_fin() or RST_STREAM when output_reset() says so.
// The session never blocks, reads a clock or does I/O; tests wire two of them back to back in memory.
//
// What it does on top of the capsule codec (wt/h2_capsules.h):
//  - WebTransport streams: ids numbered and checked with wt::StreamTable (client/server, bidi/uni,
//    RFC 9000 §2.1; §5.2 of the draft); a peer stream opened above the lowest unopened id opens the
//    ones below it too (§6.7).
//  - Flow control with wt::SendCredit / ReceiveCredit (§4): per stream (WT_MAX_STREAM_DATA), per session
//    (WT_MAX_DATA) and stream counts (WT_MAX_STREAMS), initial values from the SETTINGS of both sides
//    (H2SessionConfig::local, H2SessionConfig::peer); *_BLOCKED capsules when we are held up; credit
//    returned as the application consume()s. A peer that exceeds a limit closes the session with
//    WT_FLOW_CONTROL_ERROR; a capsule for a stream in the wrong state with WT_STREAM_STATE_ERROR; a bad
//    capsule with WT_ERROR (§3.4; see H2SessionError for the HTTP/2 codes used while they are TBD).
//  - WT_RESET_STREAM (with Reliable Size = bytes sent), WT_STOP_SENDING (answered with a reset if the
//    application did not end the stream itself, RFC 9000 §3.5), FIN, DATAGRAM capsules,
//    WT_CLOSE_SESSION and WT_DRAIN_SESSION.
//
// Contract: that of wt/session.h. Reads are pushed (on_stream_data) and their credit returns with
// consume(); write() takes what stream credit, session credit and room in the output buffer allow and
// on_stream_writable follows when more is possible; close() never waits (the close capsule goes into
// the output buffer, which always keeps room for it, or the CONNECT stream is reset).
// Caps: the output buffer (max_output_bytes); data per WT_STREAM capsule sent; the peer's capsules
// (the parser's limits); streams open at once per side (the advertised stream credit for the peer,
// max_local_streams for ours). A session object may be called from inside its handler's callbacks but
// must not be destroyed there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "wt/h2_capsules.h"
#include "wt/session.h"
#include "wt/stream_credit.h"
#include "wt/stream_table.h"

namespace wtmesh::wt {

// Session errors of -15 §3.4. Their HTTP/2 error codes are "0xTBD" in -15; until they are assigned the
// CONNECT stream is reset with the closest HTTP/2 code (RFC 9113 §7), see h2_error_code().
enum class H2SessionError {
  kWtError,           // WT_ERROR: bad capsule, bad error code, bad close message
  kStreamStateError,  // WT_STREAM_STATE_ERROR
  kFlowControlError,  // WT_FLOW_CONTROL_ERROR
  kCancel,            // not a protocol error: we abandon the session (e.g. the output buffer is full)
};
// PROTOCOL_ERROR (0x1) for WT_ERROR, STREAM_CLOSED (0x5) for WT_STREAM_STATE_ERROR, FLOW_CONTROL_ERROR
// (0x3) for WT_FLOW_CONTROL_ERROR, CANCEL (0x8) for kCancel.
uint32_t h2_error_code(H2SessionError error);
const char* to_string(H2SessionError error);

struct H2SessionConfig {
  // Our WebTransport SETTINGS: what the glue sends in its SETTINGS frame (H2WtSettings::entries())
  // and therefore the initial limits we grant the peer. Defaults: 1 MiB per session, 256 KiB per stream,
  // 100 streams of each direction open at once.
  H2WtSettings local = default_local();
  // The peer's SETTINGS as they stood when the session was created (-15 §4.3.1: for the client, those
  // acknowledged before the CONNECT was sent; for the server, before the 2xx).
  H2WtSettings peer;
  // Streams we open at once (open_*_stream returns nullopt beyond).
  size_t max_local_streams = 256;
  // Capsule bytes written and not yet taken by the glue. Stream data stops at max_output_bytes minus
  // control_reserve, so control capsules (credit, resets, the close capsule) always fit.
  size_t max_output_bytes = 256 * 1024;
  size_t control_reserve = 8 * 1024;
  // Data per WT_STREAM capsule we send (the peer buffers nothing of it, but keeps capsules short).
  size_t max_stream_chunk = 16 * 1024;
  // Largest DATAGRAM payload we send and accept.
  size_t max_datagram_payload = 65535 - 16;
  // Largest WT_STREAM capsule we accept (its data is streamed through, not buffered).
  uint64_t max_stream_capsule = uint64_t{1} << 20;
  WtStreamFin fin_convention = WtStreamFin::kDraft15;

  static H2WtSettings default_local();
};

// Told that output() grew, or output_fin()/output_reset() became true: the glue resumes its DATA source.
// Called from inside the session's methods: only schedule work there (e.g. nghttp2_session_resume_data),
// never call back into the session.
class H2OutputListener {
 public:
  virtual ~H2OutputListener() = default;
  virtual void on_output_ready() = 0;
};

class H2Session final : public Session, private H2CapsuleVisitor {
 public:
  enum class State {
    kRequested,  // client: CONNECT sent, no response yet
    kOpen,       // 2xx sent (server) or received (client)
    kClosed,     // over; on_closed delivered
  };

  // Client: created when the CONNECT is sent; on_response() follows. Server: created when the acceptor
  // accepted the request and the 2xx goes out; call start() once the handler may be told.
  H2Session(Role role, H2SessionConfig config, SessionInfo info, SessionHandler* handler);
  ~H2Session() override;
  H2Session(const H2Session&) = delete;
  H2Session& operator=(const H2Session&) = delete;

  // --- Session ---
  void set_handler(SessionHandler* handler) override { handler_ = handler; }
  const SessionInfo& info() const override { return info_; }
  const ConnectResponse& response() const override { return response_; }
  std::optional<StreamId> open_bidi_stream() override { return open_stream(true); }
  std::optional<StreamId> open_uni_stream() override { return open_stream(false); }
  size_t write(StreamId id, std::span<const uint8_t> data, bool fin) override;
  size_t send_capacity(StreamId id) const override;
  void consume(StreamId id, size_t n) override;
  void reset_stream(StreamId id, uint32_t code) override;
  void stop_sending(StreamId id, uint32_t code) override;
  size_t max_datagram_size() const override;
  bool send_datagram(std::span<const uint8_t> payload) override;
  bool delivered() const override { return !is_open() || output_size() == 0; }
  void close(uint32_t code, std::string_view reason) override;
  void drain() override;

  // --- from the HTTP/2 glue ---
  // Client: the peer's WebTransport SETTINGS, when they arrived after the session was created (the
  // glue calls it just before the CONNECT goes out, -15 §4.3.1). Ignored once a stream was opened or
  // the session is no longer kRequested.
  void set_peer_settings(const H2WtSettings& peer);
  // Server: the session is accepted (`response` is what was sent): on_attached, on_ready.
  void start(ConnectResponse response);
  // Client: the final response arrived. 2xx opens the session; anything else refuses it.
  void on_response(ConnectResponse response);
  // DATA payload of the CONNECT stream, and END_STREAM.
  void receive(std::span<const uint8_t> data, bool fin);
  // The CONNECT stream was reset (by the peer, or the connection died).
  void on_connect_reset(uint32_t h2_error);

  // --- to the HTTP/2 glue ---
  void set_output_listener(H2OutputListener* listener) { listener_ = listener; }
  std::span<const uint8_t> output() const;
  void consume_output(size_t n);
  // Send END_STREAM now (output() is empty and our side is done).
  bool output_fin() const { return fin_pending_ && output().empty(); }
  // Reset the CONNECT stream with this HTTP/2 error code (output() is then empty).
  std::optional<uint32_t> output_reset() const { return reset_pending_; }

  // --- inspection (tests, metrics) ---
  State state() const { return state_; }
  Role role() const { return streams_.role(); }
  size_t open_streams() const { return streams_.size(); }
  size_t stream_records() const { return records_.size(); }
  size_t output_size() const { return out_.size() - out_head_; }
  size_t parser_buffered_bytes() const { return parser_.buffered_bytes(); }
  // The last session error we raised (why output_reset() is set), if any.
  std::optional<H2SessionError> local_error() const { return local_error_; }

 private:
  enum class Side : uint8_t { kNone, kOpen, kFin, kReset };
  struct Stream {
    Side send = Side::kNone;  // kNone: a stream we only receive on (peer uni)
    Side recv = Side::kNone;  // kNone: a stream we only send on (our uni)
    SendCredit send_credit = SendCredit::bytes(0);
    ReceiveCredit recv_credit = ReceiveCredit::bytes(0);
    uint64_t sent = 0;                   // stream data bytes sent (WT_RESET_STREAM's Reliable Size)
    bool stop_sending_sent = false;      // we asked the peer to stop: its data is discarded
    bool stop_sending_received = false;  // the peer asked us to stop
  };
  enum class EndMode { kLocalClose, kPeerClosed, kAbort, kStreamGone };

  // H2CapsuleVisitor (h2_session_receive.cc)
  bool on_capsule(Capsule& capsule) override;
  bool on_stream_capsule(const H2StreamCapsule& capsule) override;
  bool on_stream_data(StreamId id, std::span<const uint8_t> data, bool fin) override;
  bool on_reset_received(const WtResetStreamCapsule& c);
  bool on_stop_sending_received(const WtStopSendingCapsule& c);
  bool on_max_stream_data(const WtMaxStreamDataCapsule& c);

  // Finds the stream a peer's capsule names, opening it (and the ids below it) when it is new. nullptr
  // when the capsule is to be ignored (a stream that is gone) or after a session error (`error` set).
  Stream* peer_stream(StreamId id, bool& error);
  void add_stream(StreamId id, bool bidi, bool local);
  // Forgets the stream once both directions are over; returns stream credit to the peer. From the
  // application's own calls (write, reset_stream) `defer` holds on_stream_closed / on_streams_available
  // back until the glue's next call (deliver_deferred): the application is inside its write there, and
  // hearing its stream closed under it would end an exchange whose write has not returned.
  void maybe_forget(StreamId id, bool defer = false);
  void deliver_deferred();
  std::optional<StreamId> open_stream(bool bidi);

  // Output. put_control() fails the session (kCancel) when even the reserve is used up.
  bool put_control(const Capsule& capsule);
  bool put_control(const H2StreamCapsule& capsule);
  bool put_control_bytes(std::span<const uint8_t> bytes);
  size_t data_room() const;
  void notify_output();
  void notify_writable();
  void wait_writable(StreamId id);

  bool is_open() const { return state_ == State::kOpen; }
  bool protocol_error(H2SessionError error, std::string_view why);
  void end(uint32_t code, std::string_view reason, EndMode mode,
           H2SessionError error = H2SessionError::kCancel);

  H2SessionConfig config_;
  SessionInfo info_;
  SessionHandler* handler_;
  H2OutputListener* listener_ = nullptr;
  State state_ = State::kRequested;
  bool attached_ = false;
  ConnectResponse response_;
  H2CapsuleParser parser_;

  StreamTable streams_;
  std::unordered_map<StreamId, Stream> records_;
  SendCredit send_data_;                   // WT_MAX_DATA from the peer
  ReceiveCredit recv_data_;                // WT_MAX_DATA we grant
  SendCredit send_streams_[2];             // WT_MAX_STREAMS from the peer [bidi, uni]
  ReceiveCredit recv_streams_[2];          // WT_MAX_STREAMS we grant [bidi, uni]
  std::set<StreamId> want_writable_;       // write() came up short
  bool want_streams_ = false;              // open_*_stream came up short
  std::vector<StreamId> closed_deferred_;  // on_stream_closed owed (maybe_forget with defer)
  bool streams_available_deferred_ = false;

  std::vector<uint8_t> out_;
  size_t out_head_ = 0;
  bool fin_pending_ = false;
  std::optional<uint32_t> reset_pending_;
  std::optional<H2SessionError> local_error_;
  bool drain_sent_ = false;
  bool drain_received_ = false;
  bool in_notify_ = false;
};

}  // namespace wtmesh::wt
