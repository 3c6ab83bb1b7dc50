// SETTINGS parse/serialize tests (byte vectors).
#include "h3/settings.h"

#include <gtest/gtest.h>

#include "h3/frames.h"

namespace wtmesh::h3 {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes pairs(std::initializer_list<std::pair<uint64_t, uint64_t>> kv) {
  Bytes b;
  for (auto [k, v] : kv) {
    append_varint(b, k);
    append_varint(b, v);
  }
  return b;
}

TEST(Settings, EmptyPayloadGivesDefaults) {
  auto r = parse_settings({});
  ASSERT_TRUE(r.settings);
  EXPECT_EQ(r.settings->settings.max_field_section_size, kVarintMax);  // absent = unlimited
  EXPECT_EQ(r.settings->settings.qpack_max_table_capacity, 0u);
  EXPECT_FALSE(r.settings->settings.enable_connect_protocol);
  EXPECT_FALSE(r.settings->settings.h3_datagram);
  EXPECT_FALSE(r.settings->settings.webtransport);
  EXPECT_EQ(r.settings->settings.wt_max_sessions, 0u);
}

TEST(Settings, ChromiumLikeSettings) {
  // What Chromium sends: QPACK, 0x33, draft-02 ENABLE_WEBTRANSPORT, the old datagram id, GREASE.
  const Bytes in = pairs({{0x01, 65536},
                          {0x06, 262144},
                          {0x07, 100},
                          {0x33, 1},
                          {0xffd277, 1},
                          {0x2b603742, 1},
                          {0x1f * 3 + 0x21, 12345}});
  auto r = parse_settings(in);
  ASSERT_TRUE(r.settings) << r.reason;
  const PeerSettings& p = *r.settings;
  EXPECT_EQ(p.settings.qpack_max_table_capacity, 65536u);
  EXPECT_EQ(p.settings.max_field_section_size, 262144u);
  EXPECT_EQ(p.settings.qpack_blocked_streams, 100u);
  EXPECT_TRUE(p.settings.h3_datagram);
  EXPECT_TRUE(p.settings.webtransport);
  EXPECT_TRUE(p.wt_draft02);
  EXPECT_FALSE(p.wt_draft07);
  EXPECT_EQ(p.settings.wt_max_sessions, 1u);
}

TEST(Settings, OldDatagramCodepointAloneEnablesDatagrams) {
  auto r = parse_settings(pairs({{0xffd277, 1}}));
  ASSERT_TRUE(r.settings);
  EXPECT_TRUE(r.settings->settings.h3_datagram);
}

TEST(Settings, NewerWebTransportCodepointsAndFlowControl) {
  auto r = parse_settings(pairs({{0x08, 1},
                                 {0xc671706a, 4},
                                 {0x14e9cd29, 1},
                                 {0x2c7cf000, 1},
                                 {0x2b61, 1000},
                                 {0x2b64, 5},
                                 {0x2b65, 6}}));
  ASSERT_TRUE(r.settings);
  const PeerSettings& p = *r.settings;
  EXPECT_TRUE(p.settings.enable_connect_protocol);
  EXPECT_TRUE(p.settings.webtransport);
  EXPECT_TRUE(p.wt_draft07 && p.wt_draft13 && p.wt_draft15);
  EXPECT_EQ(p.settings.wt_max_sessions, 4u);
  EXPECT_EQ(p.wt_initial_max_data, 1000u);
  EXPECT_EQ(p.wt_initial_max_streams_uni, 5u);
  EXPECT_EQ(p.wt_initial_max_streams_bidi, 6u);
}

TEST(Settings, ZeroWebTransportValuesMeanDisabled) {
  auto r = parse_settings(pairs({{0x2b603742, 0}, {0xc671706a, 0}}));
  ASSERT_TRUE(r.settings);
  EXPECT_FALSE(r.settings->settings.webtransport);
}

TEST(Settings, Errors) {
  struct Case {
    Bytes in;
    uint64_t error;
  };
  const Case cases[] = {
      {pairs({{0x06, 1}, {0x06, 2}}), kH3SettingsError},  // duplicate
      {pairs({{0x21, 1}, {0x21, 2}}), kH3SettingsError},  // duplicate GREASE too
      {pairs({{0x02, 0}}), kH3SettingsError},             // HTTP/2 ENABLE_PUSH
      {pairs({{0x03, 100}}), kH3SettingsError},           // MAX_CONCURRENT_STREAMS
      {pairs({{0x04, 100}}), kH3SettingsError},           // INITIAL_WINDOW_SIZE
      {pairs({{0x05, 16384}}), kH3SettingsError},         // MAX_FRAME_SIZE
      {pairs({{0x08, 2}}), kH3SettingsError},             // bool > 1
      {pairs({{0x33, 2}}), kH3SettingsError},
      {pairs({{0xffd277, 5}}), kH3SettingsError},
      {pairs({{0x2b603742, 2}}), kH3SettingsError},
      {Bytes{0x06}, kH3FrameError},        // value missing
      {Bytes{0x06, 0x40}, kH3FrameError},  // value truncated
      {Bytes{0x80, 0x00}, kH3FrameError},  // id truncated
  };
  for (const Case& tc : cases) {
    auto r = parse_settings(tc.in);
    EXPECT_FALSE(r.settings);
    EXPECT_EQ(r.error, tc.error);
    EXPECT_FALSE(r.reason.empty());
  }
}

TEST(Settings, TooManyPairs) {
  Bytes in;
  for (uint64_t i = 0; i < kMaxSettingsPairs + 1; ++i) {
    append_varint(in, 0x1000 + i);  // unknown, distinct
    append_varint(in, 0);
  }
  auto r = parse_settings(in);
  EXPECT_FALSE(r.settings);
  EXPECT_EQ(r.error, kH3ExcessiveLoad);
  Bytes ok;
  for (uint64_t i = 0; i < kMaxSettingsPairs; ++i) {
    append_varint(ok, 0x1000 + i);
    append_varint(ok, 0);
  }
  EXPECT_TRUE(parse_settings(ok).settings);
}

TEST(Settings, SerializeExactBytes) {
  Settings s;
  s.max_field_section_size = 16384;
  s.enable_connect_protocol = true;
  s.h3_datagram = true;
  s.webtransport = true;
  s.wt_max_sessions = 1;
  const Bytes payload = serialize_settings_payload(s, 0);
  Bytes expect = pairs({{0x01, 0},
                        {0x06, 16384},
                        {0x07, 0},
                        {0x08, 1},
                        {0x33, 1},
                        {0x2b603742, 1},
                        {0xc671706a, 1},
                        {0x14e9cd29, 1},
                        {0x2c7cf000, 1},
                        {0x21, 0}});
  EXPECT_EQ(payload, expect);
  Bytes frame{0x04};
  append_varint(frame, expect.size());
  append_bytes(frame, expect);
  EXPECT_EQ(serialize_settings_frame(s, 0), frame);
}

TEST(Settings, SerializeWithoutExtensionsHasOneGreaseAndRoundTrips) {
  Settings s;
  const Bytes payload = serialize_settings_payload(s, 77);
  auto r = parse_settings(payload);
  ASSERT_TRUE(r.settings);
  EXPECT_EQ(r.settings->settings.max_field_section_size, 16u * 1024);
  EXPECT_FALSE(r.settings->settings.webtransport);
  EXPECT_FALSE(r.settings->settings.enable_connect_protocol);
  // The last pair is GREASE: 0x1f * 77 + 0x21.
  Bytes grease;
  append_varint(grease, 0x1f * 77 + 0x21);
  append_varint(grease, 77);
  ASSERT_GE(payload.size(), grease.size());
  EXPECT_TRUE(
      std::equal(grease.begin(), grease.end(), payload.end() - static_cast<ptrdiff_t>(grease.size())));
  EXPECT_TRUE(is_reserved_codepoint(0x1f * 77 + 0x21));
}

TEST(Settings, RoundTripWebTransport) {
  Settings s;
  s.enable_connect_protocol = true;
  s.h3_datagram = true;
  s.webtransport = true;
  s.wt_max_sessions = 8;
  auto r = parse_settings(serialize_settings_payload(s, 3));
  ASSERT_TRUE(r.settings);
  EXPECT_TRUE(r.settings->settings.webtransport);
  EXPECT_TRUE(r.settings->settings.h3_datagram);
  EXPECT_TRUE(r.settings->settings.enable_connect_protocol);
  EXPECT_EQ(r.settings->settings.wt_max_sessions, 8u);
  EXPECT_TRUE(r.settings->wt_draft02 && r.settings->wt_draft07 && r.settings->wt_draft13 &&
              r.settings->wt_draft15);
}

}  // namespace
}  // namespace wtmesh::h3
