#include "common/process_limits.h"

#include <gtest/gtest.h>
#include <sched.h>
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

TEST(ProcessLimits, UsableCoresAreTheAffinityMasksAtMost) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  const unsigned cores = usable_cores();
  EXPECT_GE(cores, 1u);
  EXPECT_LE(cores, static_cast<unsigned>(CPU_COUNT(&set)));
}

TEST(ProcessLimits, UsableCoresFollowANarrowedAffinityMask) {
  cpu_set_t before;
  CPU_ZERO(&before);
  ASSERT_EQ(sched_getaffinity(0, sizeof(before), &before), 0);
  int first = 0;
  while (!CPU_ISSET(first, &before)) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);  // like `taskset -c N`
  const unsigned cores = usable_cores();
  ASSERT_EQ(sched_setaffinity(0, sizeof(before), &before), 0);
  EXPECT_EQ(cores, 1u);
}

TEST(ProcessLimits, ACgroupQuotaIsRoundedUpToWholeCores) {
  EXPECT_EQ(cores_from_cpu_max("200000 100000\n"), 2u);
  EXPECT_EQ(cores_from_cpu_max("150000 100000"), 2u) << "1.5 cores: two threads, neither starved";
  EXPECT_EQ(cores_from_cpu_max("50000 100000"), 1u);
  EXPECT_EQ(cores_from_cpu_max("max 100000\n"), std::nullopt) << "no quota";
  EXPECT_EQ(cores_from_cpu_max(""), std::nullopt);
  EXPECT_EQ(cores_from_cpu_max("12x 100000"), std::nullopt);
  EXPECT_EQ(cores_from_cpu_max("100000 0"), std::nullopt);
  EXPECT_EQ(cores_from_cfs("-1\n", "100000\n"), std::nullopt) << "v1: no quota";
  EXPECT_EQ(cores_from_cfs("400000\n", "100000\n"), 4u);
  EXPECT_EQ(cores_from_cfs("", "100000"), std::nullopt);
}

}  // namespace
}  // namespace wtmesh
