// The control stream's heartbeat (docs/protocol.md §3), one sans-I/O implementation for the agent,
// the edge and the tests' fake edge: a PING every interval, and a timeout once nothing at all has
// arrived on the control stream for `missed_intervals` intervals. Time is always a parameter.
//
// The owner reports every control byte it receives (on_received), calls on_tick() at next_deadline(),
// sends the PINGs it returns and answers the peer's PINGs itself (Pong{ping.seq}). PONGs that answer
// the latest PING give the round-trip time.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>

#include "common/time.h"
#include "tunnel/control.h"

namespace wtmesh::tunnel {

struct HeartbeatTick {
  std::optional<Ping> ping;  // send this now
  bool timed_out = false;    // the peer has been silent too long: close with kCloseHeartbeatTimeout
};

class Heartbeat {
 public:
  static constexpr std::chrono::milliseconds kDefaultInterval{10000};
  static constexpr int kDefaultMissedIntervals = 3;

  // The first PING is due one interval after `now`; silence is counted from `now`.
  Heartbeat(std::chrono::milliseconds interval, int missed_intervals, SteadyTime now);

  // Control-stream bytes arrived (any frame, known or not, counts).
  void on_received(SteadyTime now) { last_received_ = now; }
  // A PONG arrived; the round trip is measured when it answers the latest PING.
  void on_pong(const Pong& pong, SteadyTime now);

  // Timeout first (a silent peer gets no more PINGs), then the PING that is due.
  HeartbeatTick on_tick(SteadyTime now);
  // The two halves of on_tick, for an owner that cannot send PINGs yet (the edge before the agent
  // opened its control stream) but still times silence out.
  bool timed_out(SteadyTime now) const { return now >= timeout_at(); }
  // The PING that is due, if one is. `unless_heard`: none when the peer was heard within the last
  // interval and a half (the schedule still moves on): a side whose peer PINGs at the same interval
  // then only answers, and an idle session costs one PING and one PONG per interval instead of two
  // of each. The half is slack for the two schedules drifting apart (each timer fires a little late).
  std::optional<Ping> ping_due(SteadyTime now, bool unless_heard = false);
  // A PING outside the schedule (the edge probing a peer it suspects is gone); the schedule stays.
  Ping probe(SteadyTime now) { return next_ping(now); }

  SteadyTime next_deadline() const { return std::min(next_ping_, timeout_at()); }
  SteadyTime next_ping_at() const { return next_ping_; }
  SteadyTime timeout_at() const { return last_received_ + interval_ * missed_intervals_; }
  SteadyTime last_received() const { return last_received_; }
  // Round trip of the latest answered PING, if any was.
  std::optional<SteadyTime::duration> rtt() const { return rtt_; }
  std::chrono::milliseconds interval() const { return interval_; }

 private:
  Ping next_ping(SteadyTime now);

  std::chrono::milliseconds interval_;
  int missed_intervals_;
  SteadyTime last_received_;
  SteadyTime next_ping_;
  uint64_t seq_ = 0;
  std::optional<SteadyTime> sent_at_;  // of PING seq_, until its PONG
  std::optional<SteadyTime::duration> rtt_;
};

}  // namespace wtmesh::tunnel
