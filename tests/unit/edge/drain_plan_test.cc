// DrainPlan: the edge's drain on SIGTERM as a state machine (edge/drain_plan.h).
#include "edge/drain_plan.h"

#include <gtest/gtest.h>

namespace wtmesh::edge {
namespace {

using namespace std::chrono_literals;
using Phase = DrainPlan::Phase;
using Step = DrainPlan::Step;

constexpr SteadyTime kT0{std::chrono::seconds(1000)};

DrainPlan plan() { return DrainPlan({.grace = 30s, .handoff = 10s, .settle = 1500ms}); }

TEST(DrainPlan, ServingDoesNothingUntilStarted) {
  DrainPlan p = plan();
  EXPECT_EQ(p.advance(kT0, {}), Step::kNone);
  EXPECT_EQ(p.phase(), Phase::kServing);
  EXPECT_FALSE(p.next_deadline());
}

TEST(DrainPlan, HandoffWaitsForTheAgentsThenThePublicSideStops) {
  DrainPlan p = plan();
  p.start(kT0);
  EXPECT_EQ(p.phase(), Phase::kHandoff);
  EXPECT_EQ(p.next_deadline(), kT0 + 10s);
  EXPECT_EQ(p.advance(kT0 + 1s, {.agents_to_move = 2, .public_busy = 3, .streams = 5}), Step::kNone);
  EXPECT_EQ(p.advance(kT0 + 2s, {.agents_to_move = 0, .public_busy = 3, .streams = 5}), Step::kStopPublic);
  EXPECT_EQ(p.phase(), Phase::kFinishing);
  EXPECT_EQ(p.next_deadline(), kT0 + 30s);
  // Requests under way finish; the close waits for them, and for the settle time.
  EXPECT_EQ(p.advance(kT0 + 3s, {.public_busy = 1, .streams = 1}), Step::kNone);
  EXPECT_EQ(p.advance(kT0 + 3s, {}), Step::kNone) << "not yet settle (1.5 s) after the public side stopped";
  EXPECT_EQ(p.advance(kT0 + 3500ms, {}), Step::kClose);
  EXPECT_EQ(p.phase(), Phase::kClosed);
  EXPECT_FALSE(p.expired());
  EXPECT_EQ(p.advance(kT0 + 4s, {}), Step::kNone);
}

TEST(DrainPlan, AnAgentThatNeverMovesHoldsTheHandoffOnlyUntilItsLimit) {
  DrainPlan p = plan();
  p.start(kT0);
  EXPECT_EQ(p.advance(kT0 + 9999ms, {.agents_to_move = 1}), Step::kNone);
  EXPECT_EQ(p.advance(kT0 + 10s, {.agents_to_move = 1}), Step::kStopPublic);
}

TEST(DrainPlan, GraceExpiryCutsWhatIsLeft) {
  DrainPlan p = plan();
  p.start(kT0);
  EXPECT_EQ(p.advance(kT0, {}), Step::kStopPublic);
  EXPECT_EQ(p.advance(kT0 + 29s, {.streams = 1}), Step::kNone);
  EXPECT_EQ(p.advance(kT0 + 30s, {.streams = 1}), Step::kClose);
  EXPECT_TRUE(p.expired()) << "a stream was still open";
}

TEST(DrainPlan, HandoffNeverOutlastsTheGrace) {
  DrainPlan p({.grace = 2s, .handoff = 10s, .settle = 1500ms});
  p.start(kT0);
  EXPECT_EQ(p.next_deadline(), kT0 + 2s);
  EXPECT_EQ(p.advance(kT0 + 2s, {.agents_to_move = 1, .streams = 1}), Step::kStopPublic);
  EXPECT_EQ(p.advance(kT0 + 2s, {.agents_to_move = 1, .streams = 1}), Step::kClose);
  EXPECT_TRUE(p.expired());
}

TEST(DrainPlan, StartTwiceKeepsTheFirstStart) {
  DrainPlan p = plan();
  p.start(kT0);
  p.start(kT0 + 5s);
  EXPECT_EQ(p.next_deadline(), kT0 + 10s);
}

// An edge's workers hand off together: a worker with no agents of its own waits for the others'.
TEST(WorkerDrainCounts, TheHandoffWaitsForEveryWorkersAgents) {
  WorkerDrainCounts counts(3);
  EXPECT_EQ(counts.agents_to_move(), 3u) << "a worker that has not published counts as one";
  counts.publish(0, 0);
  counts.publish(1, 2);
  EXPECT_EQ(counts.agents_to_move(), 3u);
  counts.publish(2, 0);
  EXPECT_EQ(counts.agents_to_move(), 2u);
  counts.publish(1, 0);
  EXPECT_EQ(counts.agents_to_move(), 0u);
  counts.publish(7, 5);  // no such worker: nothing
  EXPECT_EQ(counts.agents_to_move(), 0u);
}

}  // namespace
}  // namespace wtmesh::edge
