// The transport-neutral stream manager: stream id numbering (both roles, up to the 2^62 end), the
// per-session table and its caps, the check of peer-named ids, and flow-control credit (bytes and
// stream counts, hostile values included).
#include "wt/stream_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "wt/stream_credit.h"

namespace wtmesh::wt {
namespace {

using PeerId = StreamTable::PeerId;

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();
// The last index of a type: its id is the largest of that type.
constexpr uint64_t kLastIndex = kMaxStreamCount - 1;

// --- stream ids ---

TEST(WtStreamIds, BitsFollowRfc9000) {
  // 0: client bidi, 1: server bidi, 2: client uni, 3: server uni.
  EXPECT_TRUE(is_client_initiated(0));
  EXPECT_TRUE(is_bidi(0));
  EXPECT_FALSE(is_client_initiated(1));
  EXPECT_TRUE(is_bidi(1));
  EXPECT_TRUE(is_client_initiated(2));
  EXPECT_FALSE(is_bidi(2));
  EXPECT_FALSE(is_client_initiated(3));
  EXPECT_FALSE(is_bidi(3));
  EXPECT_EQ(initiator(7), Role::kServer);
  EXPECT_EQ(initiator(8), Role::kClient);
  EXPECT_EQ(stream_index(0), 0u);
  EXPECT_EQ(stream_index(4), 1u);
  EXPECT_EQ(stream_index(kMaxStreamId), kLastIndex);
  EXPECT_TRUE(is_valid_stream_id(0));
  EXPECT_TRUE(is_valid_stream_id(kMaxStreamId));
  EXPECT_FALSE(is_valid_stream_id(kMaxStreamId + 1));
  EXPECT_FALSE(is_valid_stream_id(-1));
}

TEST(WtStreamIds, MakeStreamIdCoversEveryTypeAndStopsAt2To60) {
  EXPECT_EQ(make_stream_id(Role::kClient, true, 0), 0);
  EXPECT_EQ(make_stream_id(Role::kServer, true, 0), 1);
  EXPECT_EQ(make_stream_id(Role::kClient, false, 0), 2);
  EXPECT_EQ(make_stream_id(Role::kServer, false, 0), 3);
  EXPECT_EQ(make_stream_id(Role::kClient, true, 5), 20);
  EXPECT_EQ(make_stream_id(Role::kServer, false, kLastIndex), kMaxStreamId);
  EXPECT_EQ(make_stream_id(Role::kClient, true, kLastIndex), kMaxStreamId - 3);
  EXPECT_EQ(make_stream_id(Role::kClient, true, kMaxStreamCount), std::nullopt);
  EXPECT_EQ(make_stream_id(Role::kServer, false, kU64Max), std::nullopt);
}

TEST(WtStreamIds, ClientAllocatorNumbersInOrderPerDirection) {
  StreamIdAllocator a(Role::kClient);
  EXPECT_EQ(a.next(true), 0);
  EXPECT_EQ(a.next(true), 4);
  EXPECT_EQ(a.next(false), 2);
  EXPECT_EQ(a.next(true), 8);
  EXPECT_EQ(a.next(false), 6);
  EXPECT_EQ(a.used(true), 3u);
  EXPECT_EQ(a.used(false), 2u);
}

TEST(WtStreamIds, ServerAllocatorNumbersInOrderPerDirection) {
  StreamIdAllocator a(Role::kServer);
  EXPECT_EQ(a.next(false), 3);
  EXPECT_EQ(a.next(true), 1);
  EXPECT_EQ(a.next(true), 5);
  EXPECT_EQ(a.next(false), 7);
}

TEST(WtStreamIds, AllocatorFailsPastTheLastId) {
  for (const Role role : {Role::kClient, Role::kServer}) {
    StreamIdAllocator a(role);
    a.note(*make_stream_id(role, false, kLastIndex - 1));  // jump near the end of the uni ids
    EXPECT_EQ(a.next(false), make_stream_id(role, false, kLastIndex));
    EXPECT_EQ(a.next(false), std::nullopt);
    EXPECT_EQ(a.next(false), std::nullopt);  // and stays exhausted
    EXPECT_EQ(a.used(false), kMaxStreamCount);
    // The other direction is independent.
    EXPECT_EQ(a.next(true), make_stream_id(role, true, 0));
  }
}

TEST(WtStreamIds, NoteIgnoresOtherRolesInvalidAndLowerIds) {
  StreamIdAllocator a(Role::kClient);
  a.note(1);   // a server id
  a.note(-4);  // not an id
  a.note(kMaxStreamId + 1);
  EXPECT_EQ(a.used(true), 0u);
  a.note(40);  // client bidi index 10
  a.note(8);   // lower: no change
  EXPECT_EQ(a.used(true), 11u);
  EXPECT_EQ(a.next(true), 44);
}

// --- the table ---

TEST(WtStreamTable, LocalCapRefusesOpenUntilAStreamCloses) {
  StreamTable t(Role::kServer, 2, 5);
  const auto a = t.open_local(true);
  const auto b = t.open_local(false);
  ASSERT_EQ(a, 1);
  ASSERT_EQ(b, 3);
  EXPECT_FALSE(t.local_slot_free());
  EXPECT_EQ(t.open_local(true), std::nullopt);
  EXPECT_EQ(t.local_count(), 2u);
  EXPECT_TRUE(t.close(*a));
  EXPECT_EQ(t.open_local(true), 5);  // numbering continues; the closed id is not reused
  EXPECT_EQ(t.local_count(), 2u);
  EXPECT_EQ(t.peer_count(), 0u);
}

TEST(WtStreamTable, AddLocalRespectsTheCapAndIsIdempotent) {
  StreamTable t(Role::kClient, 1, 1);
  EXPECT_TRUE(t.add_local(0, true));
  EXPECT_TRUE(t.add_local(0, true));  // already there: not counted twice
  EXPECT_EQ(t.local_count(), 1u);
  EXPECT_FALSE(t.add_local(4, true));
  EXPECT_FALSE(t.owns(4));
  ASSERT_NE(t.find(0), nullptr);
  EXPECT_TRUE(t.find(0)->local);
  EXPECT_TRUE(t.find(0)->bidi);
  // An id numbered by the transport advances our own numbering.
  EXPECT_TRUE(t.close(0));
  EXPECT_EQ(t.open_local(true), 4);
}

TEST(WtStreamTable, PeerCapRefusesUntilAStreamCloses) {
  StreamTable t(Role::kServer, 1, 2);
  EXPECT_TRUE(t.accept_peer(0, true));
  EXPECT_TRUE(t.accept_peer(2, false));
  EXPECT_FALSE(t.accept_peer(4, true));  // third peer stream: refused
  EXPECT_FALSE(t.owns(4));
  EXPECT_EQ(t.peer_count(), 2u);
  EXPECT_TRUE(t.close(0));
  EXPECT_TRUE(t.accept_peer(8, true));
  EXPECT_EQ(t.peer_count(), 2u);
  // Local streams have their own cap.
  EXPECT_TRUE(t.open_local(true).has_value());
  EXPECT_EQ(t.size(), 3u);
  ASSERT_NE(t.find(8), nullptr);
  EXPECT_FALSE(t.find(8)->local);
}

TEST(WtStreamTable, ZeroCapsRefuseEverything) {
  StreamTable t(Role::kClient, 0, 0);
  EXPECT_EQ(t.open_local(true), std::nullopt);
  EXPECT_FALSE(t.add_local(0, true));
  EXPECT_FALSE(t.accept_peer(1, true));
  EXPECT_EQ(t.size(), 0u);
}

TEST(WtStreamTable, CloseUnknownAndTwiceIsHarmless) {
  StreamTable t(Role::kClient, 4, 4);
  EXPECT_FALSE(t.close(0));
  EXPECT_TRUE(t.accept_peer(1, true));
  EXPECT_TRUE(t.close(1));
  EXPECT_FALSE(t.close(1));
  EXPECT_EQ(t.peer_count(), 0u);
  EXPECT_EQ(t.size(), 0u);
}

TEST(WtStreamTable, TakeAllEmptiesTheTable) {
  StreamTable t(Role::kClient, 4, 4);
  t.open_local(true);
  t.open_local(false);
  t.accept_peer(1, true);
  std::vector<StreamId> ids = t.take_all();
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<StreamId>{0, 1, 2}));
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.local_count(), 0u);
  EXPECT_EQ(t.peer_count(), 0u);
  EXPECT_TRUE(t.take_all().empty());
  // Ids stay used: numbering does not restart.
  EXPECT_EQ(t.open_local(true), 4);
}

TEST(WtStreamTable, TableDropsToZeroAfterManyStreams) {
  StreamTable t(Role::kServer, 3, 3);
  for (int i = 0; i < 10000; ++i) {
    const auto local = t.open_local(i % 2 == 0);
    ASSERT_TRUE(local.has_value()) << i;
    const StreamId peer = *make_stream_id(Role::kClient, true, static_cast<uint64_t>(i));
    ASSERT_TRUE(t.accept_peer(peer, true)) << i;
    EXPECT_TRUE(t.close(*local));
    EXPECT_TRUE(t.close(peer));
  }
  EXPECT_EQ(t.size(), 0u);
}

// --- ids named by the peer ---

TEST(WtStreamTable, ClassifyPeerIds) {
  StreamTable t(Role::kServer, 8, 8);  // the peer is the client: ids 0, 4, 8 ... and 2, 6, 10 ...
  EXPECT_EQ(t.classify(0, 3), PeerId::kNew);
  EXPECT_TRUE(t.accept_peer(0, true));
  EXPECT_EQ(t.classify(0, 3), PeerId::kOpen);
  EXPECT_EQ(t.classify(4, 3), PeerId::kNew);
  EXPECT_EQ(t.classify(8, 3), PeerId::kNew);         // index 2 < limit 3
  EXPECT_EQ(t.classify(12, 3), PeerId::kOverLimit);  // index 3: the fourth stream, limit 3
  // The peer skips index 1: it counts as used; once 0 closes both are kClosed.
  EXPECT_TRUE(t.accept_peer(8, true));
  EXPECT_EQ(t.classify(4, 3), PeerId::kClosed);
  EXPECT_TRUE(t.close(0));
  EXPECT_EQ(t.classify(0, 3), PeerId::kClosed);
  // Directions are counted apart: uni index 0 is still new.
  EXPECT_EQ(t.classify(2, 3), PeerId::kNew);
  EXPECT_EQ(t.classify(2, 0), PeerId::kOverLimit);  // no uni credit granted
}

TEST(WtStreamTable, RefusedPeerStreamClassifiesAsClosed) {
  StreamTable t(Role::kClient, 8, 1);
  EXPECT_TRUE(t.accept_peer(1, true));
  EXPECT_FALSE(t.accept_peer(5, true));            // over max_peer: refused
  EXPECT_EQ(t.classify(5, 100), PeerId::kClosed);  // its later capsules are ignored, not re-opened
  EXPECT_EQ(t.classify(9, 100), PeerId::kNew);
}

TEST(WtStreamTable, ClassifyOurOwnIds) {
  StreamTable t(Role::kClient, 8, 8);
  EXPECT_EQ(t.classify(0, 100), PeerId::kNotOpened);  // the peer names a stream we never opened
  EXPECT_EQ(t.classify(2, 100), PeerId::kNotOpened);
  const auto a = t.open_local(true);
  ASSERT_EQ(a, 0);
  EXPECT_EQ(t.classify(0, 100), PeerId::kOpen);
  EXPECT_EQ(t.classify(4, 100), PeerId::kNotOpened);
  EXPECT_TRUE(t.close(0));
  EXPECT_EQ(t.classify(0, 100), PeerId::kClosed);
  // The peer's limit does not matter for our ids.
  EXPECT_EQ(t.classify(0, 0), PeerId::kClosed);
}

TEST(WtStreamTable, ClassifyInvalidAndExtremeIds) {
  StreamTable t(Role::kServer, 8, 8);
  EXPECT_EQ(t.classify(-1, kMaxStreamCount), PeerId::kInvalid);
  EXPECT_EQ(t.classify(std::numeric_limits<StreamId>::min(), kMaxStreamCount), PeerId::kInvalid);
  EXPECT_EQ(t.classify(kMaxStreamId + 1, kMaxStreamCount), PeerId::kInvalid);
  EXPECT_EQ(t.classify(std::numeric_limits<StreamId>::max(), kMaxStreamCount), PeerId::kInvalid);
  // The last client uni id: new only if the whole 2^60 were granted.
  const StreamId last = *make_stream_id(Role::kClient, false, kLastIndex);
  EXPECT_EQ(t.classify(last, kMaxStreamCount), PeerId::kNew);
  EXPECT_EQ(t.classify(last, kMaxStreamCount - 1), PeerId::kOverLimit);
  EXPECT_EQ(t.classify(last, kU64Max), PeerId::kNew);
  EXPECT_TRUE(t.accept_peer(last, false));
  EXPECT_EQ(t.classify(last - 4, kMaxStreamCount), PeerId::kClosed);
  EXPECT_EQ(t.classify(kMaxStreamId, 1), PeerId::kNotOpened);  // the last server uni id is ours
}

// --- send credit ---

TEST(WtSendCredit, TakesUpToTheLimit) {
  SendCredit c = SendCredit::bytes(100);
  EXPECT_EQ(c.take(60), 60u);
  EXPECT_EQ(c.take(60), 40u);
  EXPECT_EQ(c.take(1), 0u);
  EXPECT_EQ(c.used(), 100u);
  EXPECT_EQ(c.available(), 0u);
  EXPECT_EQ(c.take(kU64Max), 0u);
}

TEST(WtSendCredit, MaxIsMonotonic) {
  SendCredit c = SendCredit::bytes(100);
  c.take(100);
  EXPECT_EQ(c.on_max(50), MaxUpdate::kIgnored);
  EXPECT_EQ(c.on_max(100), MaxUpdate::kIgnored);
  EXPECT_EQ(c.limit(), 100u);
  EXPECT_EQ(c.available(), 0u);
  EXPECT_EQ(c.on_max(150), MaxUpdate::kRaised);
  EXPECT_EQ(c.available(), 50u);
  EXPECT_EQ(c.on_max(120), MaxUpdate::kIgnored);
  EXPECT_EQ(c.limit(), 150u);
}

TEST(WtSendCredit, HostileLimitsAreInvalidAndChangeNothing) {
  SendCredit b = SendCredit::bytes(10);
  EXPECT_EQ(b.on_max(kMaxCredit + 1), MaxUpdate::kInvalid);
  EXPECT_EQ(b.on_max(kU64Max), MaxUpdate::kInvalid);
  EXPECT_EQ(b.limit(), 10u);
  EXPECT_EQ(b.on_max(kMaxCredit), MaxUpdate::kRaised);
  EXPECT_EQ(b.take(kU64Max), kMaxCredit);
  EXPECT_EQ(b.available(), 0u);

  SendCredit s = SendCredit::streams(1);
  EXPECT_EQ(s.on_max(kMaxStreamCount + 1), MaxUpdate::kInvalid);  // over 2^60: flow-control error
  EXPECT_EQ(s.limit(), 1u);
  EXPECT_EQ(s.on_max(kMaxStreamCount), MaxUpdate::kRaised);
}

TEST(WtSendCredit, HugeInitialValuesAreClamped) {
  EXPECT_EQ(SendCredit::bytes(kU64Max).limit(), kMaxCredit);
  EXPECT_EQ(SendCredit::streams(kU64Max).limit(), kMaxStreamCount);
  EXPECT_EQ(SendCredit::streams(0).available(), 0u);
}

TEST(WtSendCredit, BlockedIsReportedOncePerLimit) {
  SendCredit c = SendCredit::bytes(10);
  EXPECT_EQ(c.blocked(), std::nullopt);  // credit left: not blocked
  c.take(10);
  EXPECT_EQ(c.blocked(), 10u);
  EXPECT_EQ(c.blocked(), std::nullopt);  // already said
  c.on_max(20);
  EXPECT_EQ(c.blocked(), std::nullopt);  // unblocked again
  c.take(20);
  EXPECT_EQ(c.blocked(), 20u);
  EXPECT_EQ(c.blocked(), std::nullopt);
}

TEST(WtSendCredit, StreamCountGatesOpens) {
  SendCredit s = SendCredit::streams(2);
  EXPECT_EQ(s.take(1), 1u);
  EXPECT_EQ(s.take(1), 1u);
  EXPECT_EQ(s.take(1), 0u);    // a third open must wait ...
  EXPECT_EQ(s.blocked(), 2u);  // ... and says WT_STREAMS_BLOCKED(2)
  EXPECT_EQ(s.on_max(3), MaxUpdate::kRaised);
  EXPECT_EQ(s.take(1), 1u);
}

// --- receive credit ---

TEST(WtReceiveCredit, OverLimitIsAnErrorAndRecordsNothing) {
  ReceiveCredit c = ReceiveCredit::bytes(100);
  EXPECT_EQ(c.limit(), 100u);
  EXPECT_TRUE(c.on_received(100));
  EXPECT_FALSE(c.on_received(101));
  EXPECT_EQ(c.received(), 100u);
  EXPECT_TRUE(c.on_received(40));  // lower offset (old data): nothing changes
  EXPECT_EQ(c.received(), 100u);
  EXPECT_FALSE(c.on_received(kU64Max));
  EXPECT_EQ(c.received(), 100u);
}

TEST(WtReceiveCredit, ReceivedMoreIsBoundedAgainstHostileLengths) {
  ReceiveCredit c = ReceiveCredit::bytes(100);
  EXPECT_TRUE(c.on_received_more(30));
  EXPECT_TRUE(c.on_received_more(70));
  EXPECT_FALSE(c.on_received_more(1));
  EXPECT_FALSE(c.on_received_more(kU64Max));  // no wrap-around past the limit
  EXPECT_EQ(c.received(), 100u);
}

TEST(WtReceiveCredit, NewLimitOnceHalfTheWindowIsConsumed) {
  ReceiveCredit c = ReceiveCredit::bytes(100);
  ASSERT_TRUE(c.on_received(100));
  EXPECT_EQ(c.consume(49), std::nullopt);  // less than half: keep quiet
  EXPECT_EQ(c.consume(1), 150u);           // half: limit = consumed + window
  EXPECT_EQ(c.limit(), 150u);
  EXPECT_EQ(c.consume(10), std::nullopt);
  EXPECT_EQ(c.consume(40), 200u);
  EXPECT_FALSE(c.on_received(201));
  EXPECT_TRUE(c.on_received(200));
}

TEST(WtReceiveCredit, ConsumeIsClampedToWhatArrived) {
  ReceiveCredit c = ReceiveCredit::bytes(100);
  ASSERT_TRUE(c.on_received(10));
  EXPECT_EQ(c.consume(kU64Max), std::nullopt);  // only 10 bytes arrived
  EXPECT_EQ(c.consumed(), 10u);
  EXPECT_EQ(c.limit(), 100u);
}

TEST(WtReceiveCredit, LimitsStopAtTheCap) {
  ReceiveCredit c = ReceiveCredit::bytes(kU64Max);
  EXPECT_EQ(c.window(), kMaxCredit);
  EXPECT_EQ(c.limit(), kMaxCredit);
  ASSERT_TRUE(c.on_received(kMaxCredit));
  EXPECT_EQ(c.consume(kMaxCredit), std::nullopt);  // already at the cap: nothing to raise
  EXPECT_EQ(c.limit(), kMaxCredit);

  // Close to the cap, the last small raise is still advertised.
  ReceiveCredit d = ReceiveCredit::bytes(kMaxCredit - 10);
  ASSERT_TRUE(d.on_received(kMaxCredit - 10));
  EXPECT_EQ(d.consume(4), std::nullopt);  // a raise of 4 is less than half the window: wait
  EXPECT_EQ(d.consume(6), kMaxCredit);    // a raise of 10 is too, but it reaches the cap
  EXPECT_EQ(d.consume(100), std::nullopt);
}

TEST(WtReceiveCredit, ZeroWindowGrantsNothing) {
  ReceiveCredit c = ReceiveCredit::bytes(0);
  EXPECT_FALSE(c.on_received_more(1));
  EXPECT_EQ(c.consume(1), std::nullopt);
  EXPECT_EQ(c.limit(), 0u);
}

TEST(WtReceiveCredit, StreamCountRaisesAsStreamsClose) {
  ReceiveCredit s = ReceiveCredit::streams(2);  // the peer may keep 2 streams open
  EXPECT_EQ(s.limit(), 2u);
  EXPECT_TRUE(s.on_received(1));   // stream index 0 opened
  EXPECT_TRUE(s.on_received(2));   // index 1
  EXPECT_FALSE(s.on_received(3));  // index 2: over the cumulative limit
  EXPECT_EQ(s.consume(1), 3u);     // one closed: WT_MAX_STREAMS(3)
  EXPECT_TRUE(s.on_received(3));
  EXPECT_EQ(s.consume(1), 4u);
  EXPECT_EQ(s.consume(1), 5u);
  EXPECT_EQ(s.consume(1), std::nullopt);  // nothing more was opened: nothing more to close
  EXPECT_EQ(s.limit(), 5u);
}

TEST(WtReceiveCredit, StreamCountIsCappedAt2To60) {
  ReceiveCredit s = ReceiveCredit::streams(kU64Max);
  EXPECT_EQ(s.limit(), kMaxStreamCount);
  EXPECT_FALSE(s.on_received(kMaxStreamCount + 1));
  EXPECT_TRUE(s.on_received(kMaxStreamCount));
  EXPECT_EQ(s.consume(kU64Max), std::nullopt);
  EXPECT_EQ(s.limit(), kMaxStreamCount);
}

// --- the pieces together, as the HTTP/2 binding will use them ---

TEST(WtStreamManager, PeerStreamsAgainstTheAdvertisedCount) {
  StreamTable table(Role::kServer, 10, 10);
  ReceiveCredit bidi = ReceiveCredit::streams(2);
  // The client opens bidi 0 and 4 (WT_STREAM capsules); 8 is over the advertised count.
  for (const StreamId id : {StreamId{0}, StreamId{4}}) {
    ASSERT_EQ(table.classify(id, bidi.limit()), PeerId::kNew);
    ASSERT_TRUE(bidi.on_received(stream_index(id) + 1));
    ASSERT_TRUE(table.accept_peer(id, true));
  }
  EXPECT_EQ(table.classify(8, bidi.limit()), PeerId::kOverLimit);
  // Stream 0 finishes: the table forgets it and the peer gets one more.
  ASSERT_TRUE(table.close(0));
  EXPECT_EQ(bidi.consume(1), 3u);
  EXPECT_EQ(table.classify(8, bidi.limit()), PeerId::kNew);
  EXPECT_EQ(table.classify(0, bidi.limit()), PeerId::kClosed);
}

}  // namespace
}  // namespace wtmesh::wt
