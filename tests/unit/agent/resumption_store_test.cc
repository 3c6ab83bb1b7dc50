// ResumptionStore (agent/resumption_store.h): one ticket per edge, the newest; bounded, oldest out.
#include "agent/resumption_store.h"

#include <gtest/gtest.h>

#include <string>

namespace wtmesh::agent {
namespace {

EdgeResumption ticket(uint8_t mark) {
  EdgeResumption r;
  r.ticket.tls_session = {mark};
  r.ticket.transport_params = {mark};
  return r;
}

TEST(ResumptionStore, KeepsTheNewestTicketPerEdgeAndForgets) {
  ResumptionStore store;
  store.put("a:1", ticket(1));
  store.put("a:1", ticket(2));
  ASSERT_TRUE(store.get("a:1"));
  EXPECT_EQ(store.get("a:1")->ticket.tls_session[0], 2);
  EXPECT_EQ(store.size(), 1u);
  EXPECT_FALSE(store.get("b:1"));
  EXPECT_TRUE(store.forget("a:1"));
  EXPECT_FALSE(store.forget("a:1"));
  EXPECT_FALSE(store.get("a:1"));
}

TEST(ResumptionStore, HoldsAtMostMaxEdgesAndTheOldestGoes) {
  ResumptionStore store;
  for (size_t i = 0; i <= ResumptionStore::kMaxEdges; ++i)
    store.put("edge" + std::to_string(i), ticket(static_cast<uint8_t>(i)));
  EXPECT_EQ(store.size(), ResumptionStore::kMaxEdges);
  EXPECT_FALSE(store.get("edge0")) << "the oldest entry made room";
  EXPECT_TRUE(store.get("edge1"));
  EXPECT_TRUE(store.get("edge" + std::to_string(ResumptionStore::kMaxEdges)));
}

}  // namespace
}  // namespace wtmesh::agent
