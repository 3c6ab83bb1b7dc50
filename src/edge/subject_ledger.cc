#include "edge/subject_ledger.h"

namespace wtmesh::edge {

SubjectLedger::Added SubjectLedger::add_session(std::string_view subject, size_t max, size_t max_total,
                                                size_t* held) {
  std::lock_guard lock(mutex_);
  auto it = subjects_.find(subject);
  const size_t n = it == subjects_.end() ? 0 : it->second.sessions;
  if (held != nullptr) *held = n;
  if (total_ >= max_total) return Added::kEdgeFull;
  if (n >= max) return Added::kSubjectFull;
  if (it == subjects_.end()) it = subjects_.emplace(std::string(subject), Entry{}).first;
  ++it->second.sessions;
  ++total_;
  return Added::kAdded;
}

void SubjectLedger::remove_session(std::string_view subject) {
  std::lock_guard lock(mutex_);
  auto it = subjects_.find(subject);
  if (it == subjects_.end()) return;
  if (it->second.sessions > 0) {
    --it->second.sessions;
    --total_;
  }
  if (it->second.sessions == 0) subjects_.erase(it);  // its sessions' tunnels went with them
}

void SubjectLedger::tunnels_changed(std::string_view subject, size_t before, size_t after) {
  std::lock_guard lock(mutex_);
  auto it = subjects_.find(subject);
  if (it == subjects_.end()) return;
  Entry& e = it->second;
  e.tunnels = e.tunnels + after >= before ? e.tunnels + after - before : 0;
}

size_t SubjectLedger::sessions(std::string_view subject) const {
  std::lock_guard lock(mutex_);
  auto it = subjects_.find(subject);
  return it == subjects_.end() ? 0 : it->second.sessions;
}

size_t SubjectLedger::tunnels(std::string_view subject) const {
  std::lock_guard lock(mutex_);
  auto it = subjects_.find(subject);
  return it == subjects_.end() ? 0 : it->second.tunnels;
}

size_t SubjectLedger::subjects() const {
  std::lock_guard lock(mutex_);
  return subjects_.size();
}

size_t SubjectLedger::total_sessions() const {
  std::lock_guard lock(mutex_);
  return total_;
}

}  // namespace wtmesh::edge
