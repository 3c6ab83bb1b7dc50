// WebTransport-over-HTTP/2 capsule codec (wt/h2_capsules.h): byte vectors written from the text of
// draft-ietf-webtrans-http2-15 (§6 formats, §11.2 SETTINGS codepoints, §11.4 capsule types), streaming of
// WT_STREAM data, caps and errors.
#include "wt/h2_capsules.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/varint.h"

namespace wtmesh::wt {
namespace {

using Bytes = std::vector<uint8_t>;

// A 4-byte varint of 0x190B4Dxx is 0x99 0x0b 0x4d 0xxx (2-bit prefix 10).
Bytes type4(uint8_t low) { return {0x99, 0x0b, 0x4d, low}; }
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

struct Recorder : H2CapsuleVisitor {
  std::vector<Capsule> capsules;
  std::vector<H2StreamCapsule> stream_capsules;
  struct Piece {
    StreamId id;
    std::string data;
    bool fin;
  };
  std::vector<Piece> pieces;
  int stop_after = -1;  // stop the parser after this many callbacks
  int calls = 0;

  bool next() { return stop_after < 0 || ++calls < stop_after; }
  bool on_capsule(Capsule& c) override {
    capsules.push_back(c);
    return next();
  }
  bool on_stream_capsule(const H2StreamCapsule& c) override {
    stream_capsules.push_back(c);
    return next();
  }
  bool on_stream_data(StreamId id, std::span<const uint8_t> data, bool fin) override {
    pieces.push_back({id, std::string(data.begin(), data.end()), fin});
    return next();
  }
  // Stream data joined per capsule boundary is not kept; this joins everything for one id.
  std::string data_of(StreamId id) const {
    std::string s;
    for (const auto& p : pieces) {
      if (p.id == id) s += p.data;
    }
    return s;
  }
};

CapsuleError feed_bytewise(H2CapsuleParser& p, const Bytes& bytes, Recorder& r) {
  for (uint8_t b : bytes) {
    if (const CapsuleError e = p.feed(std::span<const uint8_t>(&b, 1), r); e != CapsuleError::kNone) return e;
  }
  return CapsuleError::kNone;
}

TEST(H2Settings, CodepointsFromTheDraft) {
  // -15 §11.2.
  EXPECT_EQ(kSettingsWtEnabled, 0x2b60);
  EXPECT_EQ(kSettingsWtInitialMaxData, 0x2b61);
  EXPECT_EQ(kSettingsWtInitialMaxStreamDataUni, 0x2b62);
  EXPECT_EQ(kSettingsWtInitialMaxStreamDataBidiLocal, 0x2b63);
  EXPECT_EQ(kSettingsWtInitialMaxStreamsUni, 0x2b64);
  EXPECT_EQ(kSettingsWtInitialMaxStreamsBidi, 0x2b65);
  EXPECT_EQ(kSettingsWtInitialMaxStreamDataBidiRemote, 0x2b66);
  EXPECT_EQ(kSettingsEnableConnectProtocol, 0x08);  // RFC 8441 §3
}

TEST(H2Settings, EntriesAndApplyRoundTrip) {
  H2WtSettings s;
  EXPECT_TRUE(s.entries().empty());  // every default is 0 and is not sent
  s.wt_enabled = 1;
  s.initial_max_data = 1000;
  s.initial_max_streams_bidi = 5;
  s.initial_max_stream_data_bidi_remote = 300;
  const auto e = s.entries();
  const std::vector<std::pair<uint16_t, uint32_t>> expected = {
      {0x2b60, 1}, {0x2b61, 1000}, {0x2b65, 5}, {0x2b66, 300}};
  EXPECT_EQ(e, expected);
  H2WtSettings back;
  for (const auto& [id, v] : e) EXPECT_TRUE(back.apply(id, v));
  EXPECT_EQ(back, s);
  EXPECT_FALSE(back.apply(0x08, 1));  // not WebTransport's
  EXPECT_FALSE(back.apply(0x2b67, 1));
}

TEST(H2CapsuleSerialize, WtStreamFinBitPerDraft15) {
  // -15 §6.4: the type's least significant bit is FIN: 0x190B4D3B ends the stream, 0x190B4D3C does not.
  // Stream ID 0, data "hi": Length = 1 (id) + 2.
  Bytes fin, more;
  append_wt_stream(fin, 0, Bytes{'h', 'i'}, true, WtStreamFin::kDraft15);
  append_wt_stream(more, 0, Bytes{'h', 'i'}, false, WtStreamFin::kDraft15);
  EXPECT_EQ(fin, cat({type4(0x3b), {0x03, 0x00, 'h', 'i'}}));
  EXPECT_EQ(more, cat({type4(0x3c), {0x03, 0x00, 'h', 'i'}}));
  // Drafts -00..-14 (and quiche) used the opposite pair.
  Bytes old_fin;
  append_wt_stream(old_fin, 0, Bytes{'h', 'i'}, true, WtStreamFin::kDraft14);
  EXPECT_EQ(old_fin, cat({type4(0x3c), {0x03, 0x00, 'h', 'i'}}));
  // A 2-byte stream id (server bidi 65 = 0x41 -> 0x40 0x41) and the overhead figure.
  Bytes two;
  append_wt_stream(two, 65, {}, true, WtStreamFin::kDraft15);
  EXPECT_EQ(two, cat({type4(0x3b), {0x02, 0x40, 0x41}}));
  EXPECT_EQ(wt_stream_overhead(65, 0), two.size());
  EXPECT_EQ(wt_stream_overhead(0, 62), 4u + 1 + 1);
  EXPECT_EQ(wt_stream_overhead(0, 63), 4u + 2 + 1);  // Length 64 needs two bytes
}

TEST(H2CapsuleSerialize, StreamCapsuleVectors) {
  Bytes out;
  // WT_RESET_STREAM (§6.2): Stream ID 4, code 0x101 (2 bytes: 0x41 0x01), Reliable Size 10.
  serialize_h2_capsule(WtResetStreamCapsule{4, 0x101, 10}, out);
  EXPECT_EQ(out, cat({type4(0x39), {0x04, 0x04, 0x41, 0x01, 0x0a}}));
  out.clear();
  // WT_STOP_SENDING (§6.3): Stream ID 1, code 7.
  serialize_h2_capsule(WtStopSendingCapsule{1, 7}, out);
  EXPECT_EQ(out, cat({type4(0x3a), {0x02, 0x01, 0x07}}));
  out.clear();
  // WT_MAX_STREAM_DATA (§6.6): Stream ID 1, 65536 (4 bytes: 0x80 0x01 0x00 0x00).
  serialize_h2_capsule(WtMaxStreamDataCapsule{1, 65536}, out);
  EXPECT_EQ(out, cat({type4(0x3e), {0x05, 0x01, 0x80, 0x01, 0x00, 0x00}}));
  out.clear();
  // WT_STREAM_DATA_BLOCKED (§6.9): Stream ID 2, 100 (0x40 0x64).
  serialize_h2_capsule(WtStreamDataBlockedCapsule{2, 100}, out);
  EXPECT_EQ(out, cat({type4(0x42), {0x03, 0x02, 0x40, 0x64}}));
  // The session capsules keep their wt/capsule.h codec: WT_MAX_DATA (§6.5) 0x190B4D3D, WT_MAX_STREAMS
  // (§6.7) 0x..3F/0x..40, WT_DATA_BLOCKED (§6.8) 0x..41, WT_STREAMS_BLOCKED (§6.10) 0x..43/0x..44.
  EXPECT_EQ(serialize_capsule(MaxDataCapsule{5}), cat({type4(0x3d), {0x01, 0x05}}));
  EXPECT_EQ(serialize_capsule(MaxStreamsCapsule{true, 5}), cat({type4(0x3f), {0x01, 0x05}}));
  EXPECT_EQ(serialize_capsule(MaxStreamsCapsule{false, 5}), cat({type4(0x40), {0x01, 0x05}}));
  EXPECT_EQ(serialize_capsule(DataBlockedCapsule{5}), cat({type4(0x41), {0x01, 0x05}}));
  EXPECT_EQ(serialize_capsule(StreamsBlockedCapsule{true, 5}), cat({type4(0x43), {0x01, 0x05}}));
  EXPECT_EQ(serialize_capsule(StreamsBlockedCapsule{false, 5}), cat({type4(0x44), {0x01, 0x05}}));
  EXPECT_EQ(kCapsulePadding, 0x190b4d38u);  // §6.1
}

Bytes sample_sequence() {
  Bytes wire;
  append_wt_stream(wire, 0, Bytes{'a', 'b', 'c'}, false, WtStreamFin::kDraft15);
  serialize_h2_capsule(WtMaxStreamDataCapsule{0, 9000}, wire);
  wire.insert(wire.end(), {0x99, 0x0b, 0x4d, 0x38, 0x03, 0, 0, 0});  // PADDING, 3 bytes
  serialize_capsule(DatagramCapsule{{1, 2, 3}}, wire);
  append_wt_stream(wire, 0, Bytes{'d'}, true, WtStreamFin::kDraft15);
  serialize_h2_capsule(WtResetStreamCapsule{3, 0xffffffff, 0}, wire);
  serialize_capsule(CloseSessionCapsule{9, "done"}, wire);
  return wire;
}

void check_sample(const Recorder& r) {
  EXPECT_EQ(r.data_of(0), "abcd");
  ASSERT_FALSE(r.pieces.empty());
  EXPECT_TRUE(r.pieces.back().fin);
  for (size_t i = 0; i + 1 < r.pieces.size(); ++i) EXPECT_FALSE(r.pieces[i].fin);
  ASSERT_EQ(r.stream_capsules.size(), 2u);
  EXPECT_EQ(r.stream_capsules[0], H2StreamCapsule(WtMaxStreamDataCapsule{0, 9000}));
  EXPECT_EQ(r.stream_capsules[1], H2StreamCapsule(WtResetStreamCapsule{3, 0xffffffff, 0}));
  ASSERT_EQ(r.capsules.size(), 2u);
  EXPECT_EQ(r.capsules[0], Capsule(DatagramCapsule{{1, 2, 3}}));
  EXPECT_EQ(r.capsules[1], Capsule(CloseSessionCapsule{9, "done"}));
}

TEST(H2CapsuleParser, WholeAndBytewiseGiveTheSameCapsules) {
  const Bytes wire = sample_sequence();
  {
    H2CapsuleParser p;
    Recorder r;
    EXPECT_EQ(p.feed(wire, r), CapsuleError::kNone);
    EXPECT_EQ(p.finish(), CapsuleError::kNone);
    check_sample(r);
    EXPECT_EQ(p.skipped_bytes(), 3u);
  }
  {
    H2CapsuleParser p;
    Recorder r;
    EXPECT_EQ(feed_bytewise(p, wire, r), CapsuleError::kNone);
    EXPECT_EQ(p.finish(), CapsuleError::kNone);
    check_sample(r);
  }
}

TEST(H2CapsuleParser, Draft14ConventionReadsFinFrom3c) {
  Bytes wire;
  append_wt_stream(wire, 4, Bytes{'x'}, true, WtStreamFin::kDraft14);
  H2CapsuleParser p(H2CapsuleLimits{65535, 1 << 20, WtStreamFin::kDraft14});
  Recorder r;
  ASSERT_EQ(p.feed(wire, r), CapsuleError::kNone);
  ASSERT_EQ(r.pieces.size(), 1u);
  EXPECT_TRUE(r.pieces[0].fin);
  // The same bytes read as -15 carry no FIN.
  H2CapsuleParser p15;
  Recorder r15;
  ASSERT_EQ(p15.feed(wire, r15), CapsuleError::kNone);
  EXPECT_FALSE(r15.pieces[0].fin);
}

TEST(H2CapsuleParser, EmptyStreamCapsulesGiveOneCall) {
  Bytes wire;
  append_wt_stream(wire, 8, {}, false, WtStreamFin::kDraft15);  // opens stream 8
  append_wt_stream(wire, 8, {}, true, WtStreamFin::kDraft15);   // ends it
  H2CapsuleParser p;
  Recorder r;
  ASSERT_EQ(feed_bytewise(p, wire, r), CapsuleError::kNone);
  ASSERT_EQ(r.pieces.size(), 2u);
  EXPECT_EQ(r.pieces[0].id, 8);
  EXPECT_FALSE(r.pieces[0].fin);
  EXPECT_TRUE(r.pieces[1].fin);
}

TEST(H2CapsuleParser, StreamDataIsNotBuffered) {
  // A 200 KB WT_STREAM capsule fed in 1000-byte pieces: nothing but the header is ever held.
  const Bytes data(200 * 1000, 0x5a);
  Bytes wire;
  append_wt_stream(wire, 0, data, true, WtStreamFin::kDraft15);
  H2CapsuleParser p;
  Recorder r;
  size_t max_buffered = 0;
  for (size_t at = 0; at < wire.size(); at += 1000) {
    const size_t n = std::min<size_t>(1000, wire.size() - at);
    ASSERT_EQ(p.feed(std::span<const uint8_t>(wire).subspan(at, n), r), CapsuleError::kNone);
    max_buffered = std::max(max_buffered, p.buffered_bytes());
  }
  EXPECT_LE(max_buffered, 16u);
  EXPECT_EQ(r.data_of(0).size(), data.size());
  EXPECT_TRUE(r.pieces.back().fin);
}

TEST(H2CapsuleParser, CapsAreCheckedFromTheHeader) {
  Recorder r;
  {
    H2CapsuleParser p(H2CapsuleLimits{100, 1000, WtStreamFin::kDraft15});
    Bytes h = type4(0x3c);
    append_varint(h, 1001);
    EXPECT_EQ(p.feed(h, r), CapsuleError::kTooLarge);
    EXPECT_EQ(p.buffered_bytes(), 0u);
  }
  {
    H2CapsuleParser p(H2CapsuleLimits{100, 1000, WtStreamFin::kDraft15});
    Bytes h{0x00};
    append_varint(h, 101);  // DATAGRAM over max_datagram
    EXPECT_EQ(p.feed(h, r), CapsuleError::kTooLarge);
  }
  {
    H2CapsuleParser p;
    Bytes h = type4(0x39);
    append_varint(h, 25);  // WT_RESET_STREAM holds at most three 8-byte varints
    EXPECT_EQ(p.feed(h, r), CapsuleError::kTooLarge);
  }
  {
    H2CapsuleParser p;  // a close message over 1024 bytes (§6.12): WT_ERROR
    Bytes h{0x68, 0x43};
    append_varint(h, 4 + 1025);
    EXPECT_EQ(p.feed(h, r), CapsuleError::kMessageTooLong);
  }
  {
    H2CapsuleParser p;  // PADDING and unknown types of any length are skipped, never held
    Bytes h = type4(0x38);
    append_varint(h, kVarintMax);
    EXPECT_EQ(p.feed(h, r), CapsuleError::kNone);
    EXPECT_EQ(p.feed(Bytes(5000, 0), r), CapsuleError::kNone);
    EXPECT_EQ(p.buffered_bytes(), 0u);
    EXPECT_EQ(p.skipped_bytes(), 5000u);
  }
}

TEST(H2CapsuleParser, MalformedValuesAreErrors) {
  const auto parse = [](const Bytes& wire) {
    H2CapsuleParser p;
    Recorder r;
    return p.feed(wire, r);
  };
  EXPECT_EQ(parse(cat({type4(0x3b), {0x00}})), CapsuleError::kMalformed);  // no stream id
  EXPECT_EQ(parse(cat({type4(0x3b), {0x01, 0x40, 0x41}})),
            CapsuleError::kMalformed);  // id longer than the capsule
  EXPECT_EQ(parse(cat({type4(0x39), {0x03, 0x00, 0x00, 0x00, 0x00}})), CapsuleError::kNone);
  EXPECT_EQ(parse(cat({type4(0x39), {0x04, 0x00, 0x00, 0x00, 0x00}})),
            CapsuleError::kMalformed);                                                 // trailing byte
  EXPECT_EQ(parse(cat({type4(0x3a), {0x02, 0x00, 0x40}})), CapsuleError::kMalformed);  // cut varint
  EXPECT_EQ(parse(cat({type4(0x3e), {0x01, 0x00}})), CapsuleError::kMalformed);        // one field of two
  EXPECT_EQ(parse(cat({type4(0x3d), {0x00}})), CapsuleError::kMalformed);              // empty WT_MAX_DATA
  EXPECT_EQ(parse({0x80, 0x00, 0x78, 0xae, 0x01, 0x00}), CapsuleError::kMalformed);    // DRAIN with a value
  // §6.2/§6.3: an application error code above 0xffffffff is a WT_ERROR.
  EXPECT_EQ(parse(cat({type4(0x3a), {0x09, 0x00, 0xc0, 0, 0, 0x01, 0, 0, 0, 0}})),
            CapsuleError::kBadErrorCode);
  EXPECT_EQ(parse(cat({type4(0x39), {0x0a, 0x00, 0xc0, 0, 0, 0x01, 0, 0, 0, 0, 0x00}})),
            CapsuleError::kBadErrorCode);
  // After an error the parser stays failed.
  H2CapsuleParser p;
  Recorder r;
  EXPECT_EQ(p.feed(cat({type4(0x3b), {0x00}}), r), CapsuleError::kMalformed);
  EXPECT_EQ(p.feed(serialize_capsule(DrainSessionCapsule{}), r), CapsuleError::kMalformed);
  EXPECT_TRUE(r.capsules.empty());
}

TEST(H2CapsuleParser, TruncatedAtTheEnd) {
  Bytes wire;
  append_wt_stream(wire, 0, Bytes{'a', 'b'}, true, WtStreamFin::kDraft15);
  wire.pop_back();
  H2CapsuleParser p;
  Recorder r;
  EXPECT_EQ(p.feed(wire, r), CapsuleError::kNone);
  EXPECT_EQ(p.finish(), CapsuleError::kTruncated);
}

TEST(H2CapsuleParser, VisitorCanStopTheParser) {
  const Bytes wire = sample_sequence();
  H2CapsuleParser p;
  Recorder r;
  r.stop_after = 2;
  EXPECT_EQ(p.feed(wire, r), CapsuleError::kNone);
  EXPECT_EQ(r.calls, 2);
  EXPECT_EQ(p.feed(wire, r), CapsuleError::kNone);  // ignored
  EXPECT_EQ(r.calls, 2);
  EXPECT_EQ(p.finish(), CapsuleError::kNone);
}

}  // namespace
}  // namespace wtmesh::wt
