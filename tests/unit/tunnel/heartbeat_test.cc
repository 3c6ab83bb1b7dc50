// The shared heartbeat with a fake clock: PING schedule, silence timeout, probes and round trips.
#include "tunnel/heartbeat.h"

#include <gtest/gtest.h>

namespace wtmesh::tunnel {
namespace {

using namespace std::chrono_literals;

class HeartbeatTest : public ::testing::Test {
 protected:
  SteadyTime t0 = SteadyTime() + 1000s;
  Heartbeat hb{10s, 3, t0};
};

TEST_F(HeartbeatTest, PingsEveryIntervalWithIncreasingSeq) {
  EXPECT_EQ(hb.next_deadline(), t0 + 10s);
  EXPECT_EQ(hb.next_ping_at(), t0 + 10s);
  EXPECT_EQ(hb.timeout_at(), t0 + 30s);
  auto t = hb.on_tick(t0 + 5s);
  EXPECT_FALSE(t.ping);
  EXPECT_FALSE(t.timed_out);
  t = hb.on_tick(t0 + 10s);
  ASSERT_TRUE(t.ping);
  EXPECT_EQ(t.ping->seq, 1u);
  EXPECT_EQ(hb.next_ping_at(), t0 + 20s);
  // A late tick schedules the next PING an interval after it, not after the missed slot.
  t = hb.on_tick(t0 + 23s);
  ASSERT_TRUE(t.ping);
  EXPECT_EQ(t.ping->seq, 2u);
  EXPECT_EQ(hb.next_ping_at(), t0 + 33s);
}

TEST_F(HeartbeatTest, SilenceOfMissedIntervalsTimesOut) {
  hb.on_tick(t0 + 10s);
  hb.on_tick(t0 + 20s);
  hb.on_received(t0 + 25s);  // any control bytes
  EXPECT_EQ(hb.last_received(), t0 + 25s);
  EXPECT_EQ(hb.timeout_at(), t0 + 55s);
  EXPECT_FALSE(hb.on_tick(t0 + 54s).timed_out);
  const auto t = hb.on_tick(t0 + 55s);
  EXPECT_TRUE(t.timed_out);
  EXPECT_FALSE(t.ping) << "a peer that timed out gets no PING";
  EXPECT_TRUE(hb.timed_out(t0 + 55s));
}

TEST_F(HeartbeatTest, DeadlineIsTheEarlierOfPingAndTimeout) {
  Heartbeat slow(20s, 1, t0);  // timeout after one silent interval: both at t0 + 20 s
  EXPECT_EQ(slow.next_deadline(), t0 + 20s);
  Heartbeat h(10s, 3, t0);
  h.on_tick(t0 + 10s);
  h.on_tick(t0 + 25s);  // late: the next PING is due at 35 s
  EXPECT_EQ(h.next_deadline(), t0 + 30s) << "the timeout comes first";
}

TEST_F(HeartbeatTest, PingDueWithoutTimeoutCheckAndProbes) {
  EXPECT_FALSE(hb.ping_due(t0 + 9s));
  // An owner that could not send (no control stream yet) gets the overdue PING once it can.
  auto p = hb.ping_due(t0 + 40s);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->seq, 1u);
  // A probe takes the next seq and leaves the schedule alone.
  EXPECT_EQ(hb.probe(t0 + 41s).seq, 2u);
  EXPECT_EQ(hb.next_ping_at(), t0 + 50s);
  EXPECT_EQ(hb.ping_due(t0 + 50s)->seq, 3u);
}

TEST_F(HeartbeatTest, UnlessHeardSkipsThePingOfAPeerHeardWithinTheInterval) {
  // The edge's side: the agent PINGs every 10 s too, so the edge only answers.
  hb.on_received(t0 + 9s);
  EXPECT_FALSE(hb.ping_due(t0 + 10s, true)) << "heard 1 s ago";
  EXPECT_EQ(hb.next_ping_at(), t0 + 20s) << "the schedule moves on";
  EXPECT_FALSE(hb.ping_due(t0 + 20s, true)) << "heard 11 s ago: the peer's timer fired a little late";
  hb.on_received(t0 + 24500ms);
  EXPECT_FALSE(hb.ping_due(t0 + 30s, true)) << "heard 5.5 s ago";
  // Silent for an interval and a half: a PING (the first one sent: seq 1).
  auto p = hb.ping_due(t0 + 40s, true);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->seq, 1u);
  EXPECT_FALSE(hb.timed_out(t0 + 40s));
  EXPECT_TRUE(hb.timed_out(t0 + 54500ms)) << "silence still times out 3 intervals after the last bytes";
}

TEST_F(HeartbeatTest, PongOfTheLatestPingGivesTheRoundTrip) {
  EXPECT_FALSE(hb.rtt());
  const auto p = hb.on_tick(t0 + 10s).ping;
  ASSERT_TRUE(p);
  hb.on_pong(Pong{p->seq + 7}, t0 + 10s + 5ms);  // not ours
  EXPECT_FALSE(hb.rtt());
  hb.on_pong(Pong{p->seq}, t0 + 10s + 42ms);
  ASSERT_TRUE(hb.rtt());
  EXPECT_EQ(*hb.rtt(), 42ms);
  hb.on_pong(Pong{p->seq}, t0 + 11s);  // a duplicate: measured once
  EXPECT_EQ(*hb.rtt(), 42ms);
  // A probe's PONG counts too; an older PING's PONG does not.
  const auto a = hb.probe(t0 + 12s);
  const auto b = hb.probe(t0 + 13s);
  hb.on_pong(Pong{a.seq}, t0 + 13s + 1ms);
  EXPECT_EQ(*hb.rtt(), 42ms);
  hb.on_pong(Pong{b.seq}, t0 + 13s + 3ms);
  EXPECT_EQ(*hb.rtt(), 3ms);
}

}  // namespace
}  // namespace wtmesh::tunnel
