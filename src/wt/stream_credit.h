// Flow-control credit of a WebTransport session, transport-neutral and sans-I/O: how much the peer
// lets us send and how much we let the peer send, in bytes (per stream and per session) and in
// streams (cumulative count per direction). The semantics are QUIC's (RFC 9000 §4), which
// WebTransport reuses.
//
// Who uses it:
//  - HTTP/3 (wt/h3_session.*): nothing here. QUIC does the byte and stream credit itself, and we
//    never negotiate WebTransport's session-level flow control (draft-ietf-webtrans-http3 §5: the
//    WT_MAX_* capsules are then ignored).
//  - HTTP/2 (wt/h2_session.*, the fallback issue): there is no QUIC underneath, so the binding keeps
//    one SendCredit + ReceiveCredit per stream (WT_MAX_STREAM_DATA / WT_STREAM_DATA_BLOCKED), one pair
//    per session (WT_MAX_DATA / WT_DATA_BLOCKED) and one pair of stream counts per direction
//    (WT_MAX_STREAMS / WT_STREAMS_BLOCKED, bidi and uni). Initial values come from the peer's and our
//    SETTINGS_WT_INITIAL_* (0x2b61-0x2b66, draft-ietf-webtrans-http2).
//
// Arithmetic is bounded: every value is clamped to its cap, so hostile values cannot overflow.
#pragma once

#include <cstdint>
#include <optional>

namespace wtmesh::wt {

// Largest byte limit or offset (the largest QUIC varint).
inline constexpr uint64_t kMaxCredit = (uint64_t{1} << 62) - 1;
// Largest cumulative stream count of one type: stream ids end at 2^62 - 1 and a type is one id in four.
inline constexpr uint64_t kMaxStreamCount = uint64_t{1} << 60;

// What on_max() did with a limit from the peer.
enum class MaxUpdate {
  kRaised,   // larger than the limit we had: it is the limit now
  kIgnored,  // not larger: limits never shrink (RFC 9000 §4.1, §4.6)
  kInvalid,  // above the cap (a count over 2^60): a flow-control error; nothing changed
};

// Credit the peer granted us: the bytes we may send on a stream or on the session, or the streams
// of one direction we may open in total. Limits only grow.
class SendCredit {
 public:
  // Byte credit (WT_MAX_DATA, WT_MAX_STREAM_DATA). `initial` is clamped to kMaxCredit.
  static SendCredit bytes(uint64_t initial) { return SendCredit(initial, kMaxCredit); }
  // Stream-count credit (WT_MAX_STREAMS). `initial` is clamped to kMaxStreamCount.
  static SendCredit streams(uint64_t initial) { return SendCredit(initial, kMaxStreamCount); }

  uint64_t limit() const { return limit_; }
  uint64_t used() const { return used_; }
  uint64_t available() const { return limit_ - used_; }

  // A new limit from the peer (a WT_MAX_* capsule).
  MaxUpdate on_max(uint64_t limit);
  // Takes up to `n` units (bytes, or 1 per stream opened); returns how many were taken.
  uint64_t take(uint64_t n);
  // The limit to report in a *_BLOCKED capsule when we are out of credit (available() == 0) and
  // have not reported this limit yet; nullopt otherwise. Call it when a send or open came up short.
  std::optional<uint64_t> blocked();

 private:
  SendCredit(uint64_t initial, uint64_t cap);

  uint64_t cap_;
  uint64_t limit_;
  uint64_t used_ = 0;
  std::optional<uint64_t> reported_blocked_at_;
};

// Credit we grant the peer: the bytes it may send on a stream or on the session, or the streams of
// one direction it may open in total. We advertise limit() (in SETTINGS, then WT_MAX_* capsules);
// what the peer sent is received(); what we are done with is consumed() (bytes handed on by the
// application, streams closed). The limit moves to consumed() + window, and only when that raises
// it by the update threshold, so updates are batched.
class ReceiveCredit {
 public:
  // Byte credit: `window` bytes may be outstanding; a new limit is due once half the window was
  // consumed (the window is clamped to kMaxCredit).
  static ReceiveCredit bytes(uint64_t window);
  // Stream-count credit: the peer may keep `concurrent` streams of this direction open; every
  // stream that closes raises the cumulative limit by one (clamped to kMaxStreamCount).
  static ReceiveCredit streams(uint64_t concurrent);

  uint64_t limit() const { return limit_; }
  uint64_t received() const { return received_; }
  uint64_t consumed() const { return consumed_; }
  uint64_t window() const { return window_; }

  // The peer sent up to `end` (byte offset just past its data, or the count of streams it has
  // opened: index + 1). False when that is beyond limit(): a flow-control error, nothing recorded.
  // An `end` at or below received() changes nothing.
  bool on_received(uint64_t end);
  // The same for `n` more units after received() (in-order data, as over HTTP/2).
  bool on_received_more(uint64_t n);
  // `n` more units are done with (clamped to received()). Returns the new limit to advertise when
  // an update is due, else nullopt.
  std::optional<uint64_t> consume(uint64_t n);

 private:
  ReceiveCredit(uint64_t window, uint64_t cap, uint64_t threshold);

  uint64_t cap_;
  uint64_t window_;
  uint64_t threshold_;  // the smallest raise worth advertising
  uint64_t limit_;
  uint64_t received_ = 0;
  uint64_t consumed_ = 0;
};

}  // namespace wtmesh::wt
