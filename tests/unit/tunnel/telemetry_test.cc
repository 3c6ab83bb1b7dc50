// Telemetry reports on datagram flow 0 as byte vectors (docs/protocol.md §2.2).
#include "tunnel/telemetry.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/varint.h"
#include "tunnel/wire.h"
#include "wire_bytes.h"

namespace wtmesh::tunnel {
namespace {

using test::bytes;

TEST(Telemetry, EncodesKnownKeysAsBytes) {
  TelemetryReport r;
  r.rtt_us = 1500;  // varint 0x45 0xdc
  r.bytes_sent = 10;
  r.version = "0.1.0";
  EXPECT_EQ(encode_telemetry(r), bytes({0x01,                                    // version 1
                                        0x01, 0x02, 0x45, 0xdc,                  // rtt_us = 1500
                                        0x02, 0x01, 0x0a,                        // bytes_sent = 10
                                        0x07, 0x05, '0', '.', '1', '.', '0'}));  // version "0.1.0"
}

TEST(Telemetry, EmptyReportIsTheVersionAlone) {
  EXPECT_EQ(encode_telemetry({}), bytes({0x01}));
  TelemetryReport out;
  out.rtt_us = 7;
  EXPECT_EQ(decode_telemetry(bytes({0x01}), out), TelemetryError::kNone);
  EXPECT_EQ(out, TelemetryReport{});
}

TEST(Telemetry, RoundTripsEveryKey) {
  TelemetryReport r;
  r.rtt_us = 250;
  r.bytes_sent = 1'000'000'000'000;
  r.bytes_received = 0;
  r.open_streams = 3;
  r.datagrams_dropped = 64;
  r.uptime_s = 86400;
  r.version = "1.2.3-rc1";
  TelemetryReport out;
  ASSERT_EQ(decode_telemetry(encode_telemetry(r), out), TelemetryError::kNone);
  EXPECT_EQ(out, r);
}

TEST(Telemetry, DatagramIsFlowZeroAndDecodesAsADatagram) {
  TelemetryReport r;
  r.open_streams = 2;
  const auto d = encode_telemetry_datagram(r, 1200);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, bytes({0x00, 0x01, 0x04, 0x01, 0x02}));
  const auto dg = decode_datagram(*d);
  ASSERT_TRUE(dg.has_value());
  EXPECT_EQ(dg->flow_id, kTelemetryFlowId);
  TelemetryReport out;
  ASSERT_EQ(decode_telemetry(dg->payload, out), TelemetryError::kNone);
  EXPECT_EQ(out, r);
}

TEST(Telemetry, ReportThatDoesNotFitIsDroppedNotSplit) {
  TelemetryReport r;
  r.version = std::string(kMaxTelemetryVersionText, 'v');
  const size_t full = 1 + encode_telemetry(r).size();
  EXPECT_TRUE(encode_telemetry_datagram(r, full).has_value());
  EXPECT_FALSE(encode_telemetry_datagram(r, full - 1).has_value());
  EXPECT_FALSE(encode_telemetry_datagram(r, 0).has_value());  // datagrams unavailable
}

TEST(Telemetry, EncoderClampsValuesAndVersionText) {
  TelemetryReport r;
  r.bytes_sent = UINT64_MAX;
  r.version = std::string(100, 'x') + "\n";
  TelemetryReport out;
  ASSERT_EQ(decode_telemetry(encode_telemetry(r), out), TelemetryError::kNone);
  EXPECT_EQ(out.bytes_sent, wtmesh::kVarintMax);
  EXPECT_EQ(out.version, std::string(kMaxTelemetryVersionText, 'x'));
  r.version = "a\x01z";
  ASSERT_EQ(decode_telemetry(encode_telemetry(r), out), TelemetryError::kNone);
  EXPECT_EQ(out.version, "a?z");
}

TEST(Telemetry, UnknownKeysAreSkipped) {
  // key 0x40 (2-byte varint 0x40 0x40) with 3 value bytes, then open_streams = 5, then key 0x3f empty.
  TelemetryReport out;
  ASSERT_EQ(
      decode_telemetry(bytes({0x01, 0x40, 0x40, 0x03, 0xff, 0xff, 0xff, 0x04, 0x01, 0x05, 0x3f, 0x00}), out),
      TelemetryError::kNone);
  EXPECT_EQ(out.open_streams, 5u);
  EXPECT_FALSE(out.rtt_us.has_value());
}

TEST(Telemetry, NonMinimalNumberIsAccepted) {
  TelemetryReport out;
  ASSERT_EQ(decode_telemetry(bytes({0x01, 0x01, 0x02, 0x40, 0x05}), out), TelemetryError::kNone);
  EXPECT_EQ(out.rtt_us, 5u);
}

TEST(Telemetry, OtherVersionIsUnsupported) {
  TelemetryReport out;
  EXPECT_EQ(decode_telemetry(bytes({0x02, 0x01, 0x01, 0x05}), out), TelemetryError::kUnsupportedVersion);
}

TEST(Telemetry, TruncationIsMalformed) {
  const std::vector<uint8_t> whole = bytes({0x01, 0x01, 0x02, 0x45, 0xdc, 0x07, 0x02, 'v', '1'});
  TelemetryReport out;
  ASSERT_EQ(decode_telemetry(whole, out), TelemetryError::kNone);
  for (size_t n = 0; n < whole.size(); ++n) {
    const auto cut = std::span<const uint8_t>(whole).first(n);
    const TelemetryError e = decode_telemetry(cut, out);
    // Cut right after a whole entry is a shorter, valid report; anywhere else is malformed.
    if (n == 1 || n == 5) {
      EXPECT_EQ(e, TelemetryError::kNone) << n;
    } else {
      EXPECT_EQ(e, TelemetryError::kMalformed) << n;
    }
  }
}

TEST(Telemetry, BadValuesAreMalformed) {
  TelemetryReport out;
  // A numeric value with a trailing byte, an empty one, a repeated key.
  EXPECT_EQ(decode_telemetry(bytes({0x01, 0x04, 0x02, 0x05, 0x00}), out), TelemetryError::kMalformed);
  EXPECT_EQ(decode_telemetry(bytes({0x01, 0x04, 0x00}), out), TelemetryError::kMalformed);
  EXPECT_EQ(decode_telemetry(bytes({0x01, 0x04, 0x01, 0x05, 0x04, 0x01, 0x06}), out),
            TelemetryError::kMalformed);
  // A version text that is not printable, or too long.
  EXPECT_EQ(decode_telemetry(bytes({0x01, 0x07, 0x02, 'a', 0x0a}), out), TelemetryError::kMalformed);
  std::vector<uint8_t> longer = bytes({0x01, 0x07, static_cast<int>(kMaxTelemetryVersionText + 1)});
  longer.insert(longer.end(), kMaxTelemetryVersionText + 1, 'v');
  EXPECT_EQ(decode_telemetry(longer, out), TelemetryError::kMalformed);
  // A length past the end.
  EXPECT_EQ(decode_telemetry(bytes({0x01, 0x33, 0x05, 0x00}), out), TelemetryError::kMalformed);
}

TEST(Telemetry, SizeAndEntryCapsAreHit) {
  TelemetryReport out;
  std::vector<uint8_t> big = bytes({0x01, 0x30, 0x44, 0x00});  // unknown key, 1024-byte value
  big.resize(4 + 1024, 0);
  EXPECT_EQ(big.size(), kMaxTelemetrySize + 4);
  EXPECT_EQ(decode_telemetry(big, out), TelemetryError::kTooLarge);
  std::vector<uint8_t> many = bytes({0x01});
  for (size_t i = 0; i < kMaxTelemetryEntries; ++i) wtmesh::append_bytes(many, bytes({0x30, 0x00}));
  EXPECT_EQ(decode_telemetry(many, out), TelemetryError::kNone);
  wtmesh::append_bytes(many, bytes({0x30, 0x00}));
  EXPECT_EQ(decode_telemetry(many, out), TelemetryError::kTooLarge);
}

}  // namespace
}  // namespace wtmesh::tunnel
