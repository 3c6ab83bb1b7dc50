#include "wt/stream_table.h"

#include <algorithm>

#include "wt/stream_credit.h"

namespace wtmesh::wt {

std::optional<StreamId> make_stream_id(Role initiator, bool bidi, uint64_t index) {
  if (index >= kMaxStreamCount) return std::nullopt;
  const uint64_t type = (initiator == Role::kServer ? 1u : 0u) | (bidi ? 0u : 2u);
  return static_cast<StreamId>((index << 2) | type);
}

std::optional<StreamId> StreamIdAllocator::next(bool bidi) {
  uint64_t& used = used_[bidi ? 0 : 1];
  const auto id = make_stream_id(role_, bidi, used);
  if (id) ++used;
  return id;
}

void StreamIdAllocator::note(StreamId id) {
  if (!is_valid_stream_id(id) || initiator(id) != role_) return;
  uint64_t& used = used_[is_bidi(id) ? 0 : 1];
  used = std::max(used, stream_index(id) + 1);  // index < 2^60: no overflow
}

StreamTable::StreamTable(Role role, size_t max_local, size_t max_peer)
    : max_local_(max_local),
      max_peer_(max_peer),
      local_ids_(role),
      peer_ids_(role == Role::kClient ? Role::kServer : Role::kClient) {}

void StreamTable::insert(StreamId id, bool bidi, bool local) {
  streams_.emplace(id, Entry{bidi, local});
  ++(local ? local_ : peer_);
}

std::optional<StreamId> StreamTable::open_local(bool bidi) {
  if (!local_slot_free()) return std::nullopt;
  const auto id = local_ids_.next(bidi);
  if (id) insert(*id, bidi, true);
  return id;
}

bool StreamTable::add_local(StreamId id, bool bidi) {
  if (owns(id)) return true;
  if (!local_slot_free()) return false;
  local_ids_.note(id);
  insert(id, bidi, true);
  return true;
}

bool StreamTable::accept_peer(StreamId id, bool bidi) {
  if (owns(id)) return true;
  peer_ids_.note(id);
  if (peer_ >= max_peer_) return false;
  insert(id, bidi, false);
  return true;
}

StreamTable::PeerId StreamTable::classify(StreamId id, uint64_t peer_limit) const {
  if (!is_valid_stream_id(id)) return PeerId::kInvalid;
  if (owns(id)) return PeerId::kOpen;
  const bool bidi = is_bidi(id);
  const uint64_t index = stream_index(id);
  if (initiator(id) == role()) return index < local_ids_.used(bidi) ? PeerId::kClosed : PeerId::kNotOpened;
  if (index < peer_ids_.used(bidi)) return PeerId::kClosed;
  return index < peer_limit ? PeerId::kNew : PeerId::kOverLimit;
}

const StreamTable::Entry* StreamTable::find(StreamId id) const {
  const auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : &it->second;
}

bool StreamTable::close(StreamId id) {
  const auto it = streams_.find(id);
  if (it == streams_.end()) return false;
  --(it->second.local ? local_ : peer_);
  streams_.erase(it);
  return true;
}

std::vector<StreamId> StreamTable::take_all() {
  std::vector<StreamId> ids;
  ids.reserve(streams_.size());
  for (const auto& [id, entry] : streams_) ids.push_back(id);
  streams_.clear();
  local_ = peer_ = 0;
  return ids;
}

}  // namespace wtmesh::wt
