// Reconnect delays for the tunnel agent (docs/protocol.md §3): exponential backoff from 0.5 s
// doubling to 30 s with ±25 % jitter, reset once a session has proved stable. Pure arithmetic;
// the caller supplies the randomness so tests can pin it.
#pragma once

#include <chrono>
#include <random>

namespace wtmesh::agent {

struct BackoffPolicy {
  std::chrono::milliseconds initial{500};
  std::chrono::milliseconds max{30000};
  double jitter = 0.25;  // each delay is base * (1 ± jitter), then capped at `max`
  // A session that lived longer than this resets the backoff to `initial`.
  std::chrono::milliseconds stable_session{30000};
};

class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy = {}) : policy_(policy), base_(policy.initial) {}

  // The delay before the next attempt for `u` uniform in [0, 1) (0.5 = no jitter); the base
  // doubles for the attempt after it, up to policy.max.
  std::chrono::milliseconds next(double u);
  std::chrono::milliseconds next(std::mt19937_64& rng);
  // Jumps straight to the longest delay (for failures a quick retry cannot fix, e.g. a refused token).
  void saturate() { base_ = policy_.max; }
  void reset() {
    base_ = policy_.initial;
    attempts_ = 0;
  }
  // Tells how long the session that just ended lived; a stable one resets the backoff.
  void on_session_ended(std::chrono::milliseconds lived);

  std::chrono::milliseconds base() const { return base_; }
  int attempts() const { return attempts_; }
  const BackoffPolicy& policy() const { return policy_; }

 private:
  BackoffPolicy policy_;
  std::chrono::milliseconds base_;
  int attempts_ = 0;
};

}  // namespace wtmesh::agent
