#include "common/allocator.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define WTMESH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WTMESH_ASAN 1
#endif
#endif

namespace wtmesh {
namespace {

#if defined(__GLIBC__) && !defined(WTMESH_ASAN)
// Frees more small blocks than the per-thread tcache keeps (7 per size): the rest go to a fast
// bin when fast bins are on.
void churn_small_blocks() {
  std::vector<void*> blocks;
  for (int i = 0; i < 200; ++i) blocks.push_back(std::malloc(48));
  for (void* p : blocks) std::free(p);
}

TEST(Allocator, TuningTurnsGlibcFastBinsOff) {
  ASSERT_EQ(mallopt(M_MXFAST, 128), 1);  // glibc's default on 64-bit, to see the difference
  churn_small_blocks();
  EXPECT_GT(mallinfo2().smblks, 0u) << "with fast bins, small frees beyond the tcache park there";

  ASSERT_TRUE(tune_allocator());
  EXPECT_EQ(mallinfo2().smblks, 0u) << "turning them off consolidates what they held";
  churn_small_blocks();
  EXPECT_EQ(mallinfo2().smblks, 0u) << "and no small free parks in them any more";
}
#else
TEST(Allocator, TuningTurnsGlibcFastBinsOff) {
  GTEST_SKIP() << "not glibc's malloc (or replaced by a sanitizer): nothing to tune";
}
#endif

}  // namespace
}  // namespace wtmesh
