// wt::Session over HTTP/3: one WebTransport session = one extended-CONNECT request stream on an
// h3::Connection, plus the WT streams and HTTP datagrams that name it. Used by both roles; created
// and owned by wt::H3Server / wt::H3Client (wt/h3_session_registry.h routes h3 events to it).
//
// CONNECT stream: the body is a capsule sequence (wt/capsule.h). CLOSE -> on_closed(code, msg) and
// our FIN; a clean FIN = close(0, ""); DRAIN -> on_drain; a peer reset or a capsule error ends the
// session. Capsules before the 2xx response are ignored.
// Session end (any cause): every stream of the session is reset / stop_sending'd with
// WT_SESSION_GONE, buffered streams for it are refused, and the handler gets on_closed once. That
// also happens after a local close(); call set_handler(nullptr) first to skip it.
// Lifetime: a Session* is valid until on_closed returns. The object is destroyed at the owner's
// next event (never while one of its methods is on the stack).
//
// close() never waits: the close capsule + FIN go out only if the CONNECT stream can take all of it
// now, else the stream is reset with WT_SESSION_GONE (CVE-2026-21435).
// consume(id, n) is forwarded even after the stream was forgotten (credit for bytes the app still
// held must reach the connection-level window); every other call with an unknown id is ignored.
//
// Codes passed to on_closed: the peer's close code; 0 for a clean FIN; 0 when the client's CONNECT
// was refused (after on_refused with the typed answer; reason "HTTP <status>"); otherwise (stream reset,
// connection gone, capsule error, no WebTransport support) kSessionGoneCode with a reason that says what
// happened.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "h3/connection.h"
#include "wt/capsule.h"
#include "wt/errors.h"
#include "wt/pending.h"
#include "wt/session.h"
#include "wt/stream_table.h"

namespace wtmesh::wt {

class H3SessionRegistry;

class H3Session final : public Session {
 public:
  enum class State {
    kUnsent,     // client: waiting for the server's SETTINGS before sending the CONNECT
    kRequested,  // client: CONNECT sent, no final response yet
    kOpen,       // 2xx sent (server) or received (client)
    kClosed,     // over; on_closed delivered
  };

  ~H3Session() override;
  H3Session(const H3Session&) = delete;
  H3Session& operator=(const H3Session&) = delete;

  // Session
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
  std::chrono::nanoseconds smoothed_rtt() const override;
  bool send_datagram(std::span<const uint8_t> payload) override;
  bool delivered() const override;
  void close(uint32_t code, std::string_view reason) override;
  void drain() override;

  // HTTP/3 specifics.
  State state() const { return state_; }
  // The CONNECT stream id (= the session id on the wire); -1 while kUnsent.
  StreamId session_id() const { return id_; }
  // Client: the final response status (0 until it arrives). Server: the status we sent.
  int response_status() const { return response_.status; }
  // Debug: per-stream records held (must drop to 0 once every stream closed; CVE-2026-21438).
  size_t stream_table_size() const { return streams_.size(); }
  size_t open_peer_streams() const { return streams_.peer_count(); }
  size_t open_local_streams() const { return streams_.local_count(); }

 private:
  friend class H3SessionRegistry;
  friend class H3Server;
  friend class H3Client;

  enum class EndMode {
    kLocalClose,  // close(): write the close capsule + FIN (reset if it cannot go out now)
    kPeerClosed,  // close capsule or FIN received: answer with FIN
    kAbort,       // reset our side of the CONNECT stream with `h3_error`
    kStreamGone,  // the CONNECT stream or the connection is already gone: touch nothing
  };

  H3Session(H3SessionRegistry& host, SessionInfo info, SessionHandler* handler);

  // --- from the endpoint ---
  // Tells the handler which session it serves (once).
  void attach();
  // 2xx sent/received: the session is usable; tells the handler (on_attached, on_ready).
  void open();
  void on_connect_data(std::span<const uint8_t> data, bool fin);
  void on_connect_writable();
  // A peer stream for this session; false if it must be refused (over max_streams_per_session).
  bool accept_peer_stream(StreamId id, bool bidi);
  // A stream that was buffered before the session opened; false if it must be refused.
  bool adopt_buffered(PendingBuffer::Stream& s);
  bool owns(StreamId id) const { return streams_.owns(id); }
  void on_stream_data(StreamId id, std::span<const uint8_t> data, bool fin);
  void on_stream_reset(StreamId id, uint64_t h3_error);
  void on_stream_stop_sending(StreamId id, uint64_t h3_error);
  void on_stream_writable(StreamId id);
  void on_stream_closed(StreamId id);
  void on_datagram(std::span<const uint8_t> payload);
  void on_drain_signal();
  // Ends the session (idempotent). `h3_error` only for kAbort.
  void end(uint32_t code, std::string_view reason, EndMode mode, uint64_t h3_error = 0);

  std::optional<StreamId> open_stream(bool bidi);
  void handle_capsule(Capsule& capsule);
  // Queues capsule bytes behind anything not yet taken; false if the queue cap was hit.
  bool write_capsule_bytes(std::span<const uint8_t> bytes);
  bool flush_pending();
  bool is_open() const { return state_ == State::kOpen; }

  H3SessionRegistry& host_;
  h3::Connection& conn_;
  SessionInfo info_;
  SessionHandler* handler_;
  State state_ = State::kUnsent;
  StreamId id_ = -1;
  h3::HeaderList request_headers_;  // client: what connect() sends
  ConnectResponse response_;
  CapsuleParser parser_;
  std::vector<uint8_t> pending_out_;  // capsule bytes the CONNECT stream did not take yet
  bool attached_ = false;
  bool drain_sent_ = false;
  bool drain_received_ = false;
  // The session's open WT streams (QUIC numbers them; the table caps them per side).
  StreamTable streams_;
};

}  // namespace wtmesh::wt
