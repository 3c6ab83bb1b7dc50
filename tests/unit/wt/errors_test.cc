// WebTransport <-> HTTP/3 error code mapping.
#include "wt/errors.h"

#include <gtest/gtest.h>

#include <random>

namespace wtmesh::wt {
namespace {

TEST(WtErrors, KnownValues) {
  EXPECT_EQ(wt_to_h3_error(0), 0x52e4a40fa8dbu);
  EXPECT_EQ(wt_to_h3_error(1), 0x52e4a40fa8dcu);
  EXPECT_EQ(wt_to_h3_error(0x1d), 0x52e4a40fa8dbu + 0x1d);
  // n = 0x1e skips the GREASE code 0x52e4a40fa8db + 0x1e.
  EXPECT_TRUE(is_h3_grease_error(0x52e4a40fa8dbu + 0x1e));
  EXPECT_EQ(wt_to_h3_error(0x1e), 0x52e4a40fa8dbu + 0x1f);
  EXPECT_EQ(wt_to_h3_error(0x1f), 0x52e4a40fa8dbu + 0x20);
  EXPECT_EQ(wt_to_h3_error(255), 0x52e4a40fa8dbu + 255 + 8);
  EXPECT_EQ(wt_to_h3_error(0xffffffff), kWtAppErrorLast);
}

TEST(WtErrors, ReverseOfKnownValues) {
  for (uint32_t n : {0u, 1u, 0x1du, 0x1eu, 0x1fu, 255u, 0xffffffffu}) {
    EXPECT_EQ(h3_to_wt_error(wt_to_h3_error(n)), n) << n;
  }
}

TEST(WtErrors, OutOfRangeAndGreaseRejected) {
  EXPECT_EQ(h3_to_wt_error(0), std::nullopt);
  EXPECT_EQ(h3_to_wt_error(0x100), std::nullopt);  // H3_NO_ERROR
  EXPECT_EQ(h3_to_wt_error(0x10f), std::nullopt);  // H3_CONNECT_ERROR (Chromium's session-gone)
  EXPECT_EQ(h3_to_wt_error(kWtSessionGone), std::nullopt);
  EXPECT_EQ(h3_to_wt_error(kWtAppErrorFirst - 1), std::nullopt);
  EXPECT_EQ(h3_to_wt_error(kWtAppErrorLast + 1), std::nullopt);
  // Every GREASE code inside the first stretch of the range is rejected, everything else maps.
  int grease = 0;
  for (uint64_t h = kWtAppErrorFirst; h < kWtAppErrorFirst + 0x1f * 40; ++h) {
    if (is_h3_grease_error(h)) {
      ++grease;
      EXPECT_EQ(h3_to_wt_error(h), std::nullopt) << std::hex << h;
    } else {
      const auto n = h3_to_wt_error(h);
      ASSERT_TRUE(n.has_value()) << std::hex << h;
      EXPECT_EQ(wt_to_h3_error(*n), h);
    }
  }
  EXPECT_EQ(grease, 40);
  // The last GREASE code below the end of the range.
  uint64_t last_grease = kWtAppErrorLast;
  while (!is_h3_grease_error(last_grease)) --last_grease;
  EXPECT_EQ(h3_to_wt_error(last_grease), std::nullopt);
}

TEST(WtErrors, RoundTripSampleNeverHitsGrease) {
  std::mt19937 rng(12345);
  for (int i = 0; i < 100000; ++i) {
    const uint32_t n = static_cast<uint32_t>(rng());
    const uint64_t h = wt_to_h3_error(n);
    ASSERT_FALSE(is_h3_grease_error(h)) << n;
    ASSERT_GE(h, kWtAppErrorFirst);
    ASSERT_LE(h, kWtAppErrorLast);
    ASSERT_EQ(h3_to_wt_error(h), n);
  }
  // Consecutive codes map to strictly increasing H3 codes.
  for (uint32_t n = 0; n < 10000; ++n) ASSERT_LT(wt_to_h3_error(n), wt_to_h3_error(n + 1));
}

}  // namespace
}  // namespace wtmesh::wt
