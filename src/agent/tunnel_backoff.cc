#include "agent/tunnel_backoff.h"

#include <algorithm>

namespace wtmesh::agent {

std::chrono::milliseconds Backoff::next(double u) {
  u = std::clamp(u, 0.0, 1.0);
  const double factor = 1.0 + policy_.jitter * (2.0 * u - 1.0);
  const double ms = static_cast<double>(base_.count()) * factor;
  const auto delay = std::chrono::milliseconds(
      std::clamp<long long>(static_cast<long long>(ms), 0, static_cast<long long>(policy_.max.count())));
  base_ = std::min(policy_.max, base_ * 2);
  ++attempts_;
  return delay;
}

std::chrono::milliseconds Backoff::next(std::mt19937_64& rng) {
  return next(std::uniform_real_distribution<double>(0.0, 1.0)(rng));
}

void Backoff::on_session_ended(std::chrono::milliseconds lived) {
  if (lived > policy_.stable_session) reset();
}

}  // namespace wtmesh::agent
