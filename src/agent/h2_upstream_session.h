// One HTTP/2 client connection to a local upstream, sans-I/O, on nghttp2 (the per-connection session
// beside the pool that upstream_codec.h describes): bytes in (feed), bytes out (output), many request
// streams multiplexed on it. As in edge/h2_connection.cc, nghttp2's callbacks only record what
// happened in per-stream state; nothing calls back into nghttp2 from a callback, and the caller reads
// the recorded state after feed()/send()/... returned (changed() lists the streams to look at).
//
// Flow control is ours: nghttp2's automatic WINDOW_UPDATE is off, and a stream's received bytes are
// credited back (consume) only when the exchange took them, i.e. when the tunnel stream had room, so a
// slow public client slows the upstream through HTTP/2's windows. Windows are sized for throughput on
// loopback: 1 MiB per stream, 16 MiB per connection (a 64 KiB window caps a stream at 64 KiB per RTT).
// Request bodies: send() takes bytes only up to the stream's send buffer cap; DATA frames follow the
// upstream's windows.
//
// Bounded: received bytes per stream by our stream window, per connection by the connection window;
// the output buffer by max_output (output is produced only when there is room); header sections by
// max_header_bytes; streams by min(the upstream's SETTINGS_MAX_CONCURRENT_STREAMS, max_streams).
// Interim (1xx) heads and trailers are kept per stream (take_interim, take_trailers) for the tunnel's
// `trailers` feature (docs/protocol.md §4.1); the trailer section has the head's size cap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tunnel/wire.h"

struct nghttp2_session;

namespace wtmesh::agent {

struct H2UpstreamLimits {
  uint32_t max_streams = 100;            // our cap on concurrent streams per connection
  int32_t stream_window = 1 << 20;       // what the upstream may send ahead per stream
  int32_t connection_window = 16 << 20;  // ... and per connection
  size_t max_header_bytes = 60 * 1024;   // a response header section (as the HTTP/1.1 decoder)
  size_t max_send_buffer = 256 * 1024;   // request body bytes held per stream before DATA frames
  size_t max_output = 256 * 1024;        // encoded frames held for the socket
};

class H2UpstreamSession {
 public:
  struct Head {
    int status = 0;
    tunnel::HeaderPairs headers;  // regular fields, lower-case, pseudo-headers removed
    bool end_stream = false;      // the HEADERS ended the stream (no body)
  };

  explicit H2UpstreamSession(H2UpstreamLimits limits = {});
  ~H2UpstreamSession();
  H2UpstreamSession(const H2UpstreamSession&) = delete;
  H2UpstreamSession& operator=(const H2UpstreamSession&) = delete;

  // --- the connection ---
  // Upstream bytes; false once the session failed (error() says why).
  bool feed(std::span<const uint8_t> data);
  // The upstream closed the connection.
  void feed_eof();
  // Frames to write; produced on demand, at most max_output bytes held.
  std::span<const uint8_t> output();
  void consume_output(size_t n);
  bool want_read() const;
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  // The upstream sent GOAWAY: streams above its last stream id were refused (safe to retry).
  bool goaway() const { return goaway_; }
  // Sends GOAWAY (NO_ERROR): no new streams; open ones finish.
  void shutdown();
  // The upstream's SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441).
  bool connect_protocol() const;
  bool settings_received() const { return settings_received_; }

  // --- streams ---
  size_t open_streams() const { return streams_.size(); }
  bool can_open() const;
  // HEADERS for a request: `fields` are sent as given (pseudo-headers first). 0 with `error` when
  // nghttp2 refuses them (e.g. an invalid field).
  int32_t open(const tunnel::HeaderPairs& fields, bool end_stream, std::string* error);
  // Request body bytes: takes at most send_room(id); `fin` (only once everything was taken) ends the
  // stream.
  size_t send_room(int32_t id) const;
  size_t send(int32_t id, std::span<const uint8_t> data, bool fin);
  // Response.
  static constexpr size_t kMaxInterim = tunnel::kMaxInterimHeads;
  // Interim (1xx) heads received before the final head, oldest first (at most kMaxInterim kept).
  std::vector<Head> take_interim(int32_t id);
  std::optional<Head> take_head(int32_t id);
  // The trailer section (regular fields), complete once finished(id).
  tunnel::HeaderPairs take_trailers(int32_t id);
  std::span<const uint8_t> received(int32_t id) const;
  // The exchange took `n` received bytes: WINDOW_UPDATE credit.
  void consume(int32_t id, size_t n);
  // END_STREAM arrived and every received byte was consumed.
  bool finished(int32_t id) const;
  // The stream closed without END_STREAM from the upstream (RST_STREAM, GOAWAY, connection failure):
  // why, as a sentence; `refused`: the upstream did not process it (REFUSED_STREAM or above GOAWAY's
  // last stream id), so it may be replayed.
  std::optional<std::string> failure(int32_t id, bool* refused = nullptr) const;
  // Cancels a stream still open (RST_STREAM CANCEL) and forgets it. Unknown ids are ignored.
  void cancel(int32_t id);
  // Forgets a finished stream.
  void forget(int32_t id);
  // Streams whose state changed since the last call (head, data, end, reset, send room).
  std::vector<int32_t> take_changed();

  // --- recorded by nghttp2's callbacks (public for the C trampolines) ---
  struct Stream {
    std::vector<std::pair<std::string, std::string>> fields;
    size_t header_bytes = 0;
    bool too_large = false;
    int status = 0;
    bool head_ready = false;
    bool head_taken = false;
    bool head_end_stream = false;
    bool in_trailers = false;
    std::vector<Head> interim;
    tunnel::HeaderPairs trailers;
    std::vector<uint8_t> in;  // received body bytes not yet consumed
    size_t in_pos = 0;
    bool ended = false;  // END_STREAM received
    bool closed = false;
    uint32_t close_code = 0;
    std::vector<uint8_t> out;  // request body bytes not yet framed
    size_t out_pos = 0;
    bool out_fin = false;
    bool deferred = false;
    bool forgotten = false;
  };
  Stream* stream(int32_t id);
  void mark(int32_t id) { changed_.push_back(id); }
  void set_error(std::string why);
  void on_goaway(int32_t last_stream_id);
  void on_settings() { settings_received_ = true; }
  void discard(size_t n) { discard_ += n; }  // DATA for a forgotten stream: credited after the call
  const H2UpstreamLimits& limits() const { return limits_; }

 private:
  void fill_output();
  void check_over();
  const Stream* find(int32_t id) const;

  H2UpstreamLimits limits_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, std::unique_ptr<Stream>> streams_;
  std::vector<int32_t> changed_;
  std::vector<uint8_t> out_;
  size_t out_pos_ = 0;
  std::string error_;
  bool goaway_ = false;
  int32_t goaway_last_ = 0;
  bool settings_received_ = false;
  bool eof_ = false;
  size_t discard_ = 0;
};

}  // namespace wtmesh::agent
