#include "edge/drain_plan.h"

#include <algorithm>

namespace wtmesh::edge {

void DrainPlan::start(SteadyTime now) {
  if (phase_ != Phase::kServing) return;
  phase_ = Phase::kHandoff;
  started_ = now;
}

DrainPlan::Step DrainPlan::advance(SteadyTime now, const DrainCounts& counts) {
  switch (phase_) {
    case Phase::kServing:
    case Phase::kClosed:
      return Step::kNone;
    case Phase::kHandoff:
      if (counts.agents_to_move > 0 && now < started_ + std::min(options_.handoff, options_.grace))
        return Step::kNone;
      phase_ = Phase::kFinishing;
      finishing_since_ = now;
      return Step::kStopPublic;
    case Phase::kFinishing: {
      const bool idle = counts.public_busy == 0 && counts.streams == 0;
      const bool settled = now >= finishing_since_ + options_.settle;
      if (now >= started_ + options_.grace) {
        expired_ = !idle;
        phase_ = Phase::kClosed;
        return Step::kClose;
      }
      if (!idle || !settled) return Step::kNone;
      expired_ = !idle;
      phase_ = Phase::kClosed;
      return Step::kClose;
    }
  }
  return Step::kNone;
}

std::optional<SteadyTime> DrainPlan::next_deadline() const {
  switch (phase_) {
    case Phase::kHandoff:
      return started_ + std::min(options_.handoff, options_.grace);
    case Phase::kFinishing:
      return started_ + options_.grace;  // (the settle time is met by the caller's polling)
    default:
      return std::nullopt;
  }
}

const char* to_string(DrainPlan::Phase phase) {
  switch (phase) {
    case DrainPlan::Phase::kServing:
      return "serving";
    case DrainPlan::Phase::kHandoff:
      return "handoff";
    case DrainPlan::Phase::kFinishing:
      return "finishing";
    case DrainPlan::Phase::kClosed:
      return "closed";
  }
  return "?";
}

WorkerDrainCounts::WorkerDrainCounts(size_t workers)
    : size_(workers), counts_(std::make_unique<std::atomic<size_t>[]>(workers)) {
  for (size_t i = 0; i < size_; ++i) counts_[i].store(kUnknown, std::memory_order_relaxed);
}

void WorkerDrainCounts::publish(size_t worker, size_t agents_to_move) {
  if (worker < size_) counts_[worker].store(agents_to_move, std::memory_order_relaxed);
}

size_t WorkerDrainCounts::agents_to_move() const {
  size_t n = 0;
  for (size_t i = 0; i < size_; ++i) {
    const size_t c = counts_[i].load(std::memory_order_relaxed);
    n += c == kUnknown ? 1 : c;
  }
  return n;
}

}  // namespace wtmesh::edge
