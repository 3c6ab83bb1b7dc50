// What an agent keeps to resume its next QUIC connection to an edge with 0-RTT (docs/protocol.md
// §1.2): the newest session ticket the edge issued, with the edge's transport parameters and HTTP/3
// SETTINGS from that connection, per edge (host:port). In memory only: a restarted agent makes one
// full handshake first. Bounded (kMaxEdges; the oldest entry goes), and an entry is forgotten when
// the edge refuses its early data, so the next dial is a plain one.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>

#include "h3/settings.h"
#include "quic/session_tickets.h"

namespace wtmesh::agent {

struct EdgeResumption {
  quic::ResumptionTicket ticket;
  h3::Settings settings;  // the edge's, as it sent them
};

class ResumptionStore {
 public:
  static constexpr size_t kMaxEdges = 16;

  void put(const std::string& edge, EdgeResumption r) {
    if (entries_.count(edge) == 0 && entries_.size() >= kMaxEdges) {
      auto oldest = entries_.begin();
      for (auto it = entries_.begin(); it != entries_.end(); ++it)
        if (it->second.serial < oldest->second.serial) oldest = it;
      entries_.erase(oldest);
    }
    entries_[edge] = Entry{std::move(r), ++serial_};
  }
  std::optional<EdgeResumption> get(const std::string& edge) const {
    auto it = entries_.find(edge);
    if (it == entries_.end()) return std::nullopt;
    return it->second.value;
  }
  // True when there was an entry to forget.
  bool forget(const std::string& edge) { return entries_.erase(edge) != 0; }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    EdgeResumption value;
    uint64_t serial = 0;  // insertion order, for eviction
  };
  std::map<std::string, Entry> entries_;
  uint64_t serial_ = 0;
};

}  // namespace wtmesh::agent
