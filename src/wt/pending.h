// Bounded buffer for WebTransport streams and datagrams whose session is not known yet (the stream
// overtook its CONNECT request, or the CONNECT is still being decided / answered).
// Pure bookkeeping, sans-I/O: the owner (wt/h3_session_registry.*) decides what to reset and when; time
// comes in as a parameter.
//
// Caps (all from CommonConfig): number of streams, early bytes per stream, number and total bytes
// of datagrams, and a deadline per entry.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include "wt/config.h"
#include "wt/session.h"

namespace wtmesh::wt {

class PendingBuffer {
 public:
  struct Stream {
    StreamId id = 0;
    StreamId session_id = 0;
    bool bidi = false;
    std::vector<uint8_t> data;  // early bytes, not yet consume()d at the transport
    bool fin = false;
    std::optional<uint64_t> reset;         // peer RESET_STREAM (H3 code)
    std::optional<uint64_t> stop_sending;  // peer STOP_SENDING (H3 code)
    bool closed = false;                   // transport already forgot the stream
    SteadyTime deadline;
  };
  struct Datagram {
    StreamId session_id = 0;
    std::vector<uint8_t> payload;
    SteadyTime deadline;
  };

  explicit PendingBuffer(const CommonConfig& config) : config_(config) {}

  // False when max_buffered_streams are already held (the caller refuses the stream).
  bool add_stream(StreamId id, StreamId session_id, bool bidi, SteadyTime now);
  Stream* find(StreamId id);
  // Appends early bytes. False when the stream would exceed max_buffered_stream_bytes.
  bool append(Stream& s, std::span<const uint8_t> data, bool fin);
  void remove(StreamId id);
  // False (and nothing stored) when a datagram cap is reached.
  bool add_datagram(StreamId session_id, std::span<const uint8_t> payload, SteadyTime now);

  // Removes and returns everything buffered for `session_id`, in arrival order.
  std::vector<Stream> take_streams(StreamId session_id);
  std::vector<Datagram> take_datagrams(StreamId session_id);
  // Removes entries whose deadline is <= now; returns the expired streams (datagrams are dropped).
  std::vector<Stream> expire(SteadyTime now);
  std::optional<SteadyTime> next_deadline() const;

  size_t stream_count() const { return streams_.size(); }
  size_t datagram_count() const { return datagrams_.size(); }
  size_t datagram_bytes() const { return datagram_bytes_; }
  void clear();

 private:
  const CommonConfig& config_;
  std::vector<Stream> streams_;  // small (max_buffered_streams), so linear search is fine
  std::deque<Datagram> datagrams_;
  size_t datagram_bytes_ = 0;
};

}  // namespace wtmesh::wt
