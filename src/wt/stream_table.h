// The stream manager of one WebTransport session, shared by every transport binding (issue 10):
// stream id numbering, the table of the session's open streams with its concurrent caps, and the
// check of ids the peer names. Early-stream buffering is wt/pending.h; flow-control credit is
// wt/stream_credit.h. Transport-neutral and sans-I/O: nothing here names HTTP/3, HTTP/2 or QUIC.
//
// Who uses what:
//  - HTTP/3 (wt/h3_session.*): QUIC numbers the streams and enforces the connection's limits. The
//    session keeps its open streams in a StreamTable (add_local, accept_peer, owns, close, take_all)
//    for ownership checks and CommonConfig::max_streams_per_session.
//  - HTTP/2 (wt/h2_session.*, the fallback issue): no QUIC underneath, so the binding also numbers
//    its own streams (open_local), checks every stream id a capsule names (classify) against the
//    cumulative limit it advertised (a ReceiveCredit::streams), and keeps the byte credit.
//
// Stream ids (RFC 9000 §2.1, reused by draft-ietf-webtrans-http2 for WT_STREAM capsules): bit 0 is
// the initiator (0 client, 1 server), bit 1 the direction (0 bidi, 1 uni); the index of a stream
// within its type is id >> 2, and ids run from 0 to 2^62 - 1, so 2^60 streams per type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "wt/session.h"

namespace wtmesh::wt {

enum class Role { kClient, kServer };

inline constexpr StreamId kMaxStreamId = (int64_t{1} << 62) - 1;

constexpr bool is_valid_stream_id(StreamId id) { return id >= 0 && id <= kMaxStreamId; }
constexpr bool is_client_initiated(StreamId id) { return (id & 1) == 0; }
constexpr bool is_bidi(StreamId id) { return (id & 2) == 0; }
constexpr Role initiator(StreamId id) { return is_client_initiated(id) ? Role::kClient : Role::kServer; }
// Position of the stream within its type (0 for the first).
constexpr uint64_t stream_index(StreamId id) { return static_cast<uint64_t>(id) >> 2; }
// The id of stream number `index` of a type; nullopt past the last one (index >= 2^60).
std::optional<StreamId> make_stream_id(Role initiator, bool bidi, uint64_t index);

// Numbers one initiator's streams in order, per direction. Also told about ids numbered elsewhere
// (note()), so that "how many ids of this type are used" holds whoever numbered them.
class StreamIdAllocator {
 public:
  explicit StreamIdAllocator(Role role) : role_(role) {}

  Role role() const { return role_; }
  // The next id of that direction; nullopt once all 2^60 are used (nothing changes then).
  std::optional<StreamId> next(bool bidi);
  // Ids of that direction used so far: one more than the highest index handed out or noted.
  uint64_t used(bool bidi) const { return used_[bidi ? 0 : 1]; }
  // Marks `id` (this role's, valid) and every lower id of its type as used.
  void note(StreamId id);

 private:
  Role role_;
  uint64_t used_[2] = {0, 0};  // [bidi, uni]
};

class StreamTable {
 public:
  struct Entry {
    bool bidi = false;
    bool local = false;  // opened by us
  };
  // What an id named by the peer refers to (classify()).
  enum class PeerId {
    kOpen,       // a stream in the table
    kNew,        // the peer opens a stream: accept_peer() it (or refuse it)
    kClosed,     // was used and is gone (ended, refused, or skipped by the peer): ignore the capsule
    kOverLimit,  // a new peer stream beyond the cumulative limit we advertised: a flow-control error
    kNotOpened,  // one of our ids we have not opened yet: a session error
    kInvalid,    // not a stream id (negative or above 2^62 - 1): a session error
  };

  // `max_local` / `max_peer`: streams open at once, counted per side (both directions together).
  StreamTable(Role role, size_t max_local, size_t max_peer);

  Role role() const { return local_ids_.role(); }

  // --- streams we open ---
  // Room for one more local stream (under max_local)?
  bool local_slot_free() const { return local_ < max_local_; }
  // Numbers and records a new local stream (HTTP/2); nullopt at max_local or past the last id.
  std::optional<StreamId> open_local(bool bidi);
  // Records a local stream numbered by the transport (HTTP/3: QUIC). False at max_local (nothing
  // recorded); true without change for an id already in the table.
  bool add_local(StreamId id, bool bidi);

  // --- streams the peer opens ---
  // Records a peer stream; false at max_peer (the caller refuses it; nothing recorded). The id
  // counts as used either way, so later capsules naming it classify as kClosed. True without change
  // for an id already in the table.
  bool accept_peer(StreamId id, bool bidi);
  // What a stream id named by the peer means; `peer_limit` is the cumulative count of streams of
  // that id's direction we allow the peer (ReceiveCredit::streams().limit()).
  PeerId classify(StreamId id, uint64_t peer_limit) const;

  // --- both ---
  bool owns(StreamId id) const { return streams_.count(id) != 0; }
  const Entry* find(StreamId id) const;
  // Forgets a stream whose both directions are finished; false if it was not in the table.
  bool close(StreamId id);
  // Session end: every open id (the caller resets them); the table is empty afterwards.
  std::vector<StreamId> take_all();
  // Whether `pred(id)` holds for some open stream.
  template <typename Pred>
  bool any_of(Pred&& pred) const {
    for (const auto& kv : streams_) {
      if (pred(kv.first)) return true;
    }
    return false;
  }

  size_t size() const { return streams_.size(); }
  size_t local_count() const { return local_; }
  size_t peer_count() const { return peer_; }

 private:
  void insert(StreamId id, bool bidi, bool local);

  size_t max_local_;
  size_t max_peer_;
  StreamIdAllocator local_ids_;
  StreamIdAllocator peer_ids_;
  std::unordered_map<StreamId, Entry> streams_;
  size_t local_ = 0;
  size_t peer_ = 0;
};

}  // namespace wtmesh::wt
