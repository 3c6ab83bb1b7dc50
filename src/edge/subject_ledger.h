// How many tunnel sessions the edge holds, and how many sessions and tunnels each token subject holds
// on it, counted across the workers of a multi-worker edge (one ledger for all of them,
// edge/edge_workers.h; a single-worker edge's TunnelService has its own): the caps
// (TunnelServiceConfig::max_sessions, max_sessions_per_subject, max_tunnels_per_subject) are the
// edge's, whichever worker a session landed on. Thread-safe; a subject has an entry only while it
// holds a session.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace wtmesh::edge {

class SubjectLedger {
 public:
  enum class Added { kAdded, kEdgeFull, kSubjectFull };
  // Takes one session for `subject` unless the edge holds `max_total` or the subject `max` already;
  // `*held`: how many the subject holds.
  Added add_session(std::string_view subject, size_t max, size_t max_total, size_t* held = nullptr);
  void remove_session(std::string_view subject);
  // One of `subject`'s sessions went from `before` to `after` tunnels.
  void tunnels_changed(std::string_view subject, size_t before, size_t after);
  size_t sessions(std::string_view subject) const;
  size_t tunnels(std::string_view subject) const;
  size_t subjects() const;
  size_t total_sessions() const;

 private:
  struct Entry {
    size_t sessions = 0;
    size_t tunnels = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Entry, std::less<>> subjects_;
  size_t total_ = 0;  // sessions of all subjects
};

}  // namespace wtmesh::edge
