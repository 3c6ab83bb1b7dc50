// One public HTTP/2 connection on the edge (RFC 9113), sans-I/O: plaintext bytes from the client in,
// bytes for the client out. nghttp2 does the framing, HPACK and the protocol rules; each request
// stream becomes a version-neutral PublicExchange (edge/public_exchange.h) whose answer is written
// back as HEADERS + DATA. Reached by ALPN "h2" on the TLS listener, and by prior knowledge (the
// client preface) on the plain one.
//
// nghttp2's callbacks only record (header fields, body bytes, END_STREAM, a stream's close) into the
// stream's state; the exchanges run after nghttp2_session_mem_recv() returns, and nothing calls
// into nghttp2 from a callback. The data source callback copies already-buffered response bytes.
//
// Per request: :method, :path, :authority (or Host) and the fields become an ExchangeRequest (cookie
// crumbs joined, Host and Content-Length kept out of the fields as on HTTP/1.1); a plain CONNECT
// gets 405, a bad authority or path 400, a header list over max_header_bytes 431 (all without reaching the
// agent). Trailers of a request are dropped. The response head keeps the agent's fields minus the
// hop-by-hop ones, with names lower-cased; an exchange that ends before the request body does
// resets the stream with NO_ERROR after the response (RFC 9113 §8.1), one whose response body
// broke off resets it with INTERNAL_ERROR. Streams are H2Connection::Stream (edge/h2_stream.h).
//
// WebSocket (RFC 8441): the SETTINGS say ENABLE_CONNECT_PROTOCOL = 1, and an extended CONNECT with
// `:protocol websocket` becomes the RFC 6455 handshake the tunnel keeps (a GET with upgrade: websocket,
// a Sec-WebSocket-Key made up here, Sec-WebSocket-Version 13); the agent's 101 is checked against that
// key (502 and a reset when it does not match) and answered with a 200 carrying the other
// Sec-WebSocket-* fields; any other answer is passed on (a declined upgrade). Then DATA carries the
// WebSocket's bytes both ways within the same flow control as bodies; the client's END_STREAM is the
// FIN to the agent and the agent's FIN our END_STREAM, each direction on its own. Another :protocol
// gets 501 (h2_websocket.cc). upgraded() is true while such a stream runs.
//
// Limits (docs/architecture.md, "Public side limits"):
//  - SETTINGS_MAX_CONCURRENT_STREAMS (h2_max_concurrent_streams; nghttp2 refuses more with
//    REFUSED_STREAM) and SETTINGS_MAX_HEADER_LIST_SIZE (max_header_bytes, counted as RFC 9113 does);
//  - request bodies: flow control is ours (no automatic WINDOW_UPDATE): a stream's window is
//    h2_stream_window and is returned only as the exchange takes the bytes, the connection's window is
//    h2_connection_window, so a slow agent holds the client back and at most that many bytes of
//    request bodies wait here per connection (a client may send 65,535, the protocol's initial
//    window, before it has seen our SETTINGS);
//  - response bodies: at most max_pending_output bytes of frames wait for the client; the agent's
//    bytes are credited back (TunnelDirectory::consume) only once the client took them;
//  - CONTINUATION floods (max_continuations frames per header block) and rapid reset (a token
//    bucket of reset_burst streams refilled at reset_rate per second; beyond it GOAWAY
//    INTERNAL_ERROR, nghttp2's code), by nghttp2's own options (Debian's 1.52.0-1+deb12u3 has both);
//    SETTINGS and outbound-ACK floods likewise;
//  - header bombs: a stream whose header list passes twice max_header_bytes (a large HPACK entry
//    referenced thousands of times, or endless small fields) is reset at that field, nghttp2 skips
//    the rest of the block (no per-field validation: ~64 MB of fields from one 16 KiB frame would
//    cost ~20 ms of CPU), and it counts as one of the edge's own answers (max_local_answers);
//  - the connection preface and first request must arrive within header_timeout (else a silent
//    close), the edge's own answers in a row are capped by max_local_answers (then GOAWAY).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/byte_ring.h"
#include "edge/http_codec.h"
#include "edge/public_connection.h"
#include "edge/public_exchange.h"
#include "edge/tunnel_directory.h"
#include "wt/h2_session.h"

struct nghttp2_session;

namespace wtmesh::edge {

// The HTTP/2 client connection preface; its first bytes tell prior-knowledge h2c from HTTP/1.1.
inline constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct H2Config {
  // The client, the clock and PublicLimits: the exchanges' fields, and header_timeout,
  // max_pending_output, max_local_answers and the h2_* ones for the connection.
  ExchangeConfig exchange;
  size_t max_header_bytes = kMaxPublicHeaderBytes;  // header list size (names + values + 32 per field)
  size_t max_continuations = 8;                     // CONTINUATION frames per header block
  uint64_t reset_burst = 1000;                      // rapid-reset token bucket (nghttp2's defaults)
  uint64_t reset_rate = 33;                         // per second
  std::string alt_svc;                              // "": none; else every response carries Alt-Svc
  // WebTransport over HTTP/2 (h2_webtransport.cc): empty = not offered (no SETTINGS_WT_ENABLED, and
  // `:protocol webtransport` gets 501 like any protocol but websocket). Else it decides on each
  // session request as the HTTP/3 server's acceptor does; the session's limits are `webtransport`'s.
  wt::Acceptor webtransport_acceptor;
  wt::H2SessionConfig webtransport;
  size_t max_webtransport_sessions = 1;  // per connection at once; more get 429
};

class H2Connection final : public PublicConnection {
 public:
  H2Connection(TunnelDirectory& directory, H2Config config, ConnectionHooks hooks);
  ~H2Connection() override;
  H2Connection(const H2Connection&) = delete;
  H2Connection& operator=(const H2Connection&) = delete;

  // PublicConnection
  size_t on_client_bytes(std::span<const uint8_t> data) override;
  void on_client_eof() override;
  void abort(std::string_view why) override;
  std::span<const uint8_t> client_output() const override { return out_.front(); }
  void on_client_written(size_t n) override;
  bool finished() const override { return finished_; }
  // GOAWAY in two steps (RFC 9113 §6.8): 2^31-1 at once, the last stream id taken kDrainNotice later;
  // the connection ends once its streams have.
  void drain() override;
  static constexpr std::chrono::milliseconds kDrainNotice{1000};
  // Output not yet taken by the transport counts even once finished: a drained connection finishes
  // in the same step that serializes its last stream's END_STREAM, and a drain that looked then would
  // close the socket with those frames still here.
  bool busy() const override {
    return !out_.empty() || (!finished_ && streams_.size() > webtransport_sessions());
  }
  std::optional<SteadyTime> next_deadline() const override;
  void on_tick(SteadyTime now) override;
  size_t buffered_output() const override { return out_.size(); }
  size_t buffered_input() const override;
  bool upgraded() const override;
  void on_wake() override;
  std::optional<PublicShed> shed() const override;

  // Introspection (tests, limits).
  size_t stream_count() const { return streams_.size(); }
  uint64_t requests_completed() const { return completed_; }
  // Header fields nghttp2 handed to us, and streams reset as header bombs (a header list over twice
  // max_header_bytes: the rest of its fields are skipped, not validated one by one).
  uint64_t header_fields() const { return header_fields_; }
  uint64_t header_bombs() const { return header_bombs_; }
  // WebTransport sessions open on this connection, and the client's WebTransport SETTINGS.
  size_t webtransport_sessions() const;
  const wt::H2WtSettings& peer_webtransport_settings() const { return peer_wt_; }
  // The nghttp2 error that ended the connection ("" while it runs or after a clean end).
  const std::string& error() const { return error_; }

 private:
  class Stream;
  struct Callbacks;  // nghttp2's callbacks (recording only)
  struct Credit {
    uint64_t end = 0;  // absolute output offset after which `n` bytes of `ref` were written
    StreamRef ref;
    size_t n = 0;
  };

  SteadyTime now() const;
  const PublicLimits& limits() const { return config_.exchange.limits; }
  Stream* find(int32_t id) const;
  // Runs the exchanges on what the callbacks recorded, then writes frames while there is room.
  void process();
  void step();
  void flush();
  void fail(std::string why);
  void bury();
  // GOAWAY: no new streams; the connection ends when the open ones have.
  void goaway();
  void log(const Stream& s, int status, std::string note);

  TunnelDirectory& dir_;
  H2Config config_;
  ConnectionHooks hooks_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, std::unique_ptr<Stream>> streams_;
  // Streams that ended during process(): freed at the glue's next call, never under their own stack.
  std::vector<std::unique_ptr<Stream>> graveyard_;
  SteadyTime started_;
  bool seen_request_ = false;
  bool finished_ = false;
  bool in_process_ = false;
  bool again_ = false;
  bool goaway_sent_ = false;
  bool goaway_for_answers_ = false;  // that GOAWAY was for max_local_answers
  bool draining_ = false;            // drain(): finished once the final GOAWAY is out and no stream is left
  std::optional<SteadyTime> drain_final_at_;  // drain(): when the final GOAWAY goes (after the notice)
  bool step_pending_ = false;                 // a stream was closed, or its response sent, and awaits step()
  std::string error_;
  int recv_error_ = 0;        // nghttp2_session_mem_recv's error, when it failed
  uint32_t goaway_code_ = 0;  // the code of a GOAWAY nghttp2 sent with an error (0: none)
  size_t local_answers_ = 0;
  size_t unowned_ = 0;  // request body bytes of streams already forgotten, to give back to the window
  uint64_t completed_ = 0;
  uint64_t header_fields_ = 0, header_bombs_ = 0;
  wt::H2WtSettings peer_wt_;  // the client's WebTransport SETTINGS (H2WtSettings::apply)
  bool wt_wake_ = false;      // a session's output grew outside process(): run it at on_wake()

  // Output to the client, and the agent's credit owed once the client took it.
  ByteRing out_;
  uint64_t out_base_ = 0;
  std::deque<Credit> credits_;
  std::vector<std::pair<StreamRef, size_t>> copied_;  // credit of bytes the data callback copied
};

}  // namespace wtmesh::edge
