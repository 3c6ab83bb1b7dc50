#include "tunnel/heartbeat.h"

namespace wtmesh::tunnel {

Heartbeat::Heartbeat(std::chrono::milliseconds interval, int missed_intervals, SteadyTime now)
    : interval_(interval),
      missed_intervals_(missed_intervals),
      last_received_(now),
      next_ping_(now + interval) {}

Ping Heartbeat::next_ping(SteadyTime now) {
  sent_at_ = now;
  return Ping{++seq_};
}

void Heartbeat::on_pong(const Pong& pong, SteadyTime now) {
  if (!sent_at_ || pong.seq != seq_) return;  // an old or unsolicited PONG: still a sign of life
  rtt_ = now - *sent_at_;
  sent_at_.reset();
}

std::optional<Ping> Heartbeat::ping_due(SteadyTime now, bool unless_heard) {
  if (now < next_ping_) return std::nullopt;
  next_ping_ = now + interval_;
  if (unless_heard && now - last_received_ < interval_ + interval_ / 2) return std::nullopt;
  return next_ping(now);
}

HeartbeatTick Heartbeat::on_tick(SteadyTime now) {
  if (timed_out(now)) return {std::nullopt, true};
  return {ping_due(now), false};
}

}  // namespace wtmesh::tunnel
