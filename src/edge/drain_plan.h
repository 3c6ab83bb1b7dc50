// The edge's graceful drain (SIGTERM; docs/protocol.md §3.6) as a sans-I/O state machine: the
// EdgeServer feeds it counts and the time, and it says when to take the next step.
//
//   serving ──start()──▶ handoff ──▶ finishing ──▶ closed
//
// - handoff: agents were sent DRAIN (and GOAWAY on their QUIC connections); new agent sessions are
//   refused (503). The public side still serves, because the names are held here until each agent
//   has registered them on another edge and said so (its own DRAIN). Ends when no session with
//   tunnels is left to move, or after `handoff` (bounded by `grace`).
// - finishing: the public side takes no new work (listeners closed, HTTP/2 and HTTP/3 GOAWAY,
//   HTTP/1.1 Connection: close, idle keep-alive connections closed, no new QUIC connections); the
//   requests under way finish. Ends when none is left, or `grace` after start().
// - closed: what is left is cut: tunnel sessions close with code 4 (reconnect elsewhere), then every
//   connection.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>

#include "common/time.h"

namespace wtmesh::edge {

struct DrainCounts {
  size_t agents_to_move = 0;  // live sessions with tunnels whose agent has not said it moved
  size_t public_busy = 0;     // public TCP connections with work under way
  size_t streams = 0;         // streams on agent sessions (requests, tcp connections, relays)
};

class DrainPlan {
 public:
  enum class Phase { kServing, kHandoff, kFinishing, kClosed };
  enum class Step { kNone, kStopPublic, kClose };

  struct Options {
    std::chrono::milliseconds grace{30'000};    // from start() to the cut (--drain-grace)
    std::chrono::milliseconds handoff{10'000};  // the longest handoff (at most grace)
    // The shortest finishing phase: connections accepted just before the listeners closed bring
    // their first request (and HTTP/2 clients get their final GOAWAY) before the cut.
    std::chrono::milliseconds settle{1'500};
  };

  explicit DrainPlan(Options options) : options_(options) {}

  // SIGTERM: the handoff begins (the caller has sent DRAIN to the agents).
  void start(SteadyTime now);
  // The next step due at `now` given `counts` (kNone: nothing yet); the phase has moved when it is
  // not kNone. Call again until kNone: a handoff with nothing to wait for goes through both steps.
  Step advance(SteadyTime now, const DrainCounts& counts);
  // When advance() must be called at the latest (a phase's time limit); nullopt when not draining.
  std::optional<SteadyTime> next_deadline() const;
  Phase phase() const { return phase_; }
  bool started() const { return phase_ != Phase::kServing; }
  // Whether the grace period ran out with work still under way (the close cut it).
  bool expired() const { return expired_; }

 private:
  Options options_;
  Phase phase_ = Phase::kServing;
  SteadyTime started_{};
  SteadyTime finishing_since_{};
  bool expired_ = false;
};

const char* to_string(DrainPlan::Phase phase);

// The workers of one edge drain together (edge/edge_workers.h): each publishes how many of its
// agent sessions are still to move, and each worker's handoff waits for the edge's sum, so no
// worker's public side stops taking work while another still holds names there. A worker that has
// not published yet counts as one to move. Thread-safe.
class WorkerDrainCounts {
 public:
  explicit WorkerDrainCounts(size_t workers);
  void publish(size_t worker, size_t agents_to_move);
  size_t agents_to_move() const;

 private:
  static constexpr size_t kUnknown = static_cast<size_t>(-1);
  size_t size_;
  std::unique_ptr<std::atomic<size_t>[]> counts_;
};

}  // namespace wtmesh::edge
