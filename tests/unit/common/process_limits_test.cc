#include "common/process_limits.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

namespace wtmesh {
namespace {

TEST(ProcessLimits, RaisesTheSoftOpenFileLimitToTheHardOne) {
  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_max > 256) {
    rlimit low = rl;
    low.rlim_cur = 256;  // a lowered soft limit is always allowed
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  }
  const OpenFileLimit got = raise_open_file_limit();
  EXPECT_EQ(got.soft, got.hard);
  EXPECT_EQ(got.hard, static_cast<uint64_t>(rl.rlim_max));
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  EXPECT_EQ(static_cast<uint64_t>(rl.rlim_cur), got.soft) << "in force, not only reported";
}

}  // namespace
}  // namespace wtmesh
