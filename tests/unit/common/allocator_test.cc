#include "common/allocator.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../../support/sanitizers.h"

#if defined(__GLIBC__)
#include <malloc.h>
#include <unistd.h>
#endif

namespace wtmesh {
namespace {

#if defined(__GLIBC__) && !WTMESH_TEST_ASAN
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

size_t resident_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

TEST(Allocator, ReleaseFreeMemoryGivesAFreedBurstBack) {
  constexpr size_t kBlock = 4096, kBlocks = 16 * 1024;  // 64 MiB in heap blocks, below the mmap threshold
  std::vector<void*> blocks;
  for (size_t i = 0; i < kBlocks; ++i) {
    blocks.push_back(std::malloc(kBlock));
    std::memset(blocks.back(), 0x5a, kBlock);  // resident
  }
  // Keep the last block, so the heap cannot simply shrink from its top: the freed pages lie inside.
  for (size_t i = 0; i + 1 < kBlocks; ++i) std::free(blocks[i]);
  EXPECT_FALSE(release_free_memory(size_t{1} << 40)) << "below the threshold nothing is done";
  const size_t before = resident_bytes();
  ASSERT_TRUE(release_free_memory(16u << 20));
  const size_t after = resident_bytes();
  EXPECT_LT(after + (32u << 20), before) << "RSS " << before << " -> " << after;
  std::free(blocks.back());
}
#else
TEST(Allocator, TuningTurnsGlibcFastBinsOff) {
  GTEST_SKIP() << "not glibc's malloc (or replaced by a sanitizer): nothing to tune";
}
#endif

}  // namespace
}  // namespace wtmesh
