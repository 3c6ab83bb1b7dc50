// Wire formats of the WebTransport relay (docs/protocol.md §7): the opening of a session stream (kind
// 0x02, edge → agent: the public extended CONNECT) and of a relayed stream (kind 0x03, either side:
// one WebTransport stream of a relayed session). What follows those openings reuses other codecs: the
// agent's answer is a §4 response head, the session stream then carries RFC 9297 capsules
// (wt/capsule.h: CLOSE_WEBTRANSPORT_SESSION, DRAIN_WEBTRANSPORT_SESSION), a relayed stream raw bytes,
// and datagrams are §2.1 datagrams whose flow id is the relay id. Sans-I/O and bounded.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "tunnel/wire.h"

namespace wtmesh::tunnel {

// Limits of §7, enforced by both sides.
inline constexpr size_t kMaxRelayedSessions = 64;        // live relayed sessions per tunnel session
inline constexpr size_t kMaxRelayedStreams = 256;        // live relayed streams per relayed session
inline constexpr uint64_t kMaxRelayId = (1u << 30) - 1;  // relay ids fit 4-byte varints

// The session stream: kind 0x02, relay_id, then a §4 request head (method CONNECT, target = :path,
// the public CONNECT's headers).
struct WtSessionOpen {
  uint64_t relay_id = 0;  // 1..kMaxRelayId, unique among the tunnel session's live relayed sessions
  RequestHead request;
};
std::vector<uint8_t> encode_wt_session_open(const WtSessionOpen& open);

// A relayed stream: kind 0x03, relay_id, flags. bit 0: the relayed stream is unidirectional (only
// the opener of the tunnel stream sends bytes on it). Other bits are a protocol error.
struct WtStreamOpen {
  uint64_t relay_id = 0;
  bool uni = false;
};
inline constexpr uint64_t kWtStreamFlagUni = 0x01;
std::vector<uint8_t> encode_wt_stream_open(const WtStreamOpen& open);

// Reads `count` varints in any fragmentation, keeping at most 8 bytes of a partial one.
class VarintsReader {
 public:
  explicit VarintsReader(size_t count) : count_(count) {}
  // Takes bytes from the front of `data` until all varints are read; returns how many it took.
  size_t feed(std::span<const uint8_t> data);
  bool done() const { return values_.size() == count_; }
  const std::vector<uint64_t>& values() const { return values_; }

 private:
  size_t count_;
  std::array<uint8_t, 8> buf_{};
  size_t size_ = 0;
  std::vector<uint64_t> values_;
};

// Reads what follows the kind of a session stream (relay_id + head_length + request head). Returns
// kNone with `out` filled (take_rest() then holds the bytes that came after), kNeedMore or an error.
class WtSessionOpenReader {
 public:
  WireError feed(std::span<const uint8_t> data, WtSessionOpen& out);
  std::vector<uint8_t> take_rest() { return head_.take_body(); }

 private:
  VarintsReader relay_{1};
  HeadReader<RequestHead> head_{/*kind_read=*/true};
};

// Reads what follows the kind of a relayed stream (relay_id + flags): at most 16 bytes. Returns
// kNone with `out` filled and `*used` the bytes it took from `data`, kNeedMore (all of `data` taken),
// kMalformed for a relay id of 0 or above kMaxRelayId, kUnknownFlags.
class WtStreamOpenReader {
 public:
  WireError feed(std::span<const uint8_t> data, WtStreamOpen& out, size_t* used);

 private:
  VarintsReader fields_{2};
};

// Decoders on complete openings (after the kind), for tests and fuzzing.
WireError decode_wt_session_open(std::span<const uint8_t> bytes, WtSessionOpen& out, size_t* used);
WireError decode_wt_stream_open(std::span<const uint8_t> bytes, WtStreamOpen& out, size_t* used);

}  // namespace wtmesh::tunnel
