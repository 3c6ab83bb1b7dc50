// Tests of the in-memory transport pair used by h3/ and wt/ tests.
#include "../../support/memory_transport.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace wtmesh::testing {
namespace {

using quic::StreamId;

struct Recorder : quic::TransportHandler {
  std::map<StreamId, std::vector<uint8_t>> data;
  std::map<StreamId, bool> fin;
  std::map<StreamId, uint64_t> resets, stops;
  std::vector<StreamId> closed, writable;
  std::vector<std::vector<uint8_t>> datagrams;
  int streams_available = 0, handshakes = 0;
  std::optional<uint64_t> close_code;
  std::string close_reason;
  size_t deliveries = 0;

  void on_handshake_completed() override { ++handshakes; }
  void on_stream_data(StreamId id, std::span<const uint8_t> d, bool f) override {
    ++deliveries;
    data[id].insert(data[id].end(), d.begin(), d.end());
    if (f) fin[id] = true;
  }
  void on_stream_reset(StreamId id, uint64_t e) override { resets[id] = e; }
  void on_stop_sending(StreamId id, uint64_t e) override { stops[id] = e; }
  void on_stream_closed(StreamId id) override { closed.push_back(id); }
  void on_stream_writable(StreamId id) override { writable.push_back(id); }
  void on_streams_available() override { ++streams_available; }
  void on_datagram(std::span<const uint8_t> p) override { datagrams.emplace_back(p.begin(), p.end()); }
  void on_connection_closed(uint64_t code, bool, std::string_view reason) override {
    close_code = code;
    close_reason = std::string(reason);
  }
};

std::vector<uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }

class MemoryPairTest : public ::testing::Test {
 protected:
  void attach(MemoryPair& p) {
    p.set_handler(MemoryPair::kClient, &c);
    p.set_handler(MemoryPair::kServer, &s);
  }
  Recorder c, s;
};

TEST_F(MemoryPairTest, StreamIdsByRole) {
  MemoryPair pair;
  EXPECT_EQ(pair.client().open_bidi_stream(), 0);
  EXPECT_EQ(pair.client().open_bidi_stream(), 4);
  EXPECT_EQ(pair.server().open_bidi_stream(), 1);
  EXPECT_EQ(pair.server().open_bidi_stream(), 5);
  EXPECT_EQ(pair.client().open_uni_stream(), 2);
  EXPECT_EQ(pair.client().open_uni_stream(), 6);
  EXPECT_EQ(pair.server().open_uni_stream(), 3);
  EXPECT_TRUE(pair.server().is_server());
  EXPECT_FALSE(pair.client().is_server());
}

TEST_F(MemoryPairTest, DataFinAndCloseBothWays) {
  MemoryPair pair;
  attach(pair);
  StreamId id = *pair.client().open_bidi_stream();
  EXPECT_EQ(pair.client().write(id, bytes("hello"), true), 5u);
  ASSERT_TRUE(pair.run());
  EXPECT_EQ(c.handshakes, 1);
  EXPECT_EQ(s.data[id], bytes("hello"));
  EXPECT_TRUE(s.fin[id]);
  EXPECT_TRUE(s.closed.empty());  // server's send side still open
  EXPECT_EQ(pair.server().write(id, bytes("bye"), true), 3u);
  ASSERT_TRUE(pair.run());
  EXPECT_EQ(c.data[id], bytes("bye"));
  EXPECT_EQ(c.closed, std::vector<StreamId>{id});
  EXPECT_EQ(s.closed, std::vector<StreamId>{id});
  EXPECT_EQ(pair.stream_count(MemoryPair::kClient), 0u);
  EXPECT_EQ(pair.stream_count(MemoryPair::kServer), 0u);
  EXPECT_EQ(pair.client().write(id, bytes("x"), false), 0u);  // gone
}

TEST_F(MemoryPairTest, SendBufferCapAndWritableOnConsume) {
  MemoryPairConfig cfg;
  cfg.stream_send_buffer = 10;
  MemoryPair pair(cfg);
  attach(pair);
  StreamId id = *pair.client().open_uni_stream();
  EXPECT_EQ(pair.client().write(id, bytes("0123456789abc"), true), 10u);  // fin not taken
  EXPECT_EQ(pair.client().send_capacity(id), 0u);
  ASSERT_TRUE(pair.run());
  EXPECT_FALSE(s.fin[id]);
  EXPECT_TRUE(c.writable.empty());
  pair.server().consume(id, 4);
  ASSERT_TRUE(pair.run());
  EXPECT_EQ(c.writable, std::vector<StreamId>{id});
  EXPECT_EQ(pair.client().send_capacity(id), 4u);
  EXPECT_EQ(pair.client().write(id, bytes("abc"), true), 3u);
  ASSERT_TRUE(pair.run());
  EXPECT_EQ(s.data[id], bytes("0123456789abc"));
  EXPECT_TRUE(s.fin[id]);
  EXPECT_EQ(c.closed, std::vector<StreamId>{id});
}

TEST_F(MemoryPairTest, StreamLimitAndCreditReturn) {
  MemoryPairConfig cfg;
  cfg.max_bidi_streams = 2;
  MemoryPair pair(cfg);
  attach(pair);
  StreamId a = *pair.client().open_bidi_stream();
  ASSERT_TRUE(pair.client().open_bidi_stream());
  EXPECT_FALSE(pair.client().open_bidi_stream());
  pair.client().write(a, {}, true);
  pair.run();
  pair.server().write(a, {}, true);
  pair.run();
  EXPECT_EQ(c.streams_available, 1);
  EXPECT_EQ(pair.client().open_bidi_stream(), 8);
}

TEST_F(MemoryPairTest, ResetAndStopSending) {
  MemoryPair pair;
  attach(pair);
  StreamId id = *pair.client().open_bidi_stream();
  pair.client().write(id, bytes("abc"), false);
  pair.client().reset_stream(id, 7);  // queued data is discarded
  pair.run();
  EXPECT_TRUE(s.data[id].empty());
  EXPECT_EQ(s.resets[id], 7u);
  pair.client().stop_sending(id, 9);
  pair.run();
  EXPECT_EQ(s.stops[id], 9u);
  EXPECT_EQ(c.resets[id], 9u);  // the server transport reset its side for it
  EXPECT_EQ(c.closed, std::vector<StreamId>{id});
  EXPECT_EQ(s.closed, std::vector<StreamId>{id});
}

TEST_F(MemoryPairTest, ChunkedDelivery) {
  MemoryPairConfig cfg;
  cfg.max_delivery_chunk = 1;
  MemoryPair pair(cfg);
  attach(pair);
  StreamId id = *pair.client().open_uni_stream();
  pair.client().write(id, bytes("abcd"), true);
  pair.run();
  EXPECT_EQ(s.deliveries, 4u);
  EXPECT_EQ(s.data[id], bytes("abcd"));
  EXPECT_TRUE(s.fin[id]);
}

TEST_F(MemoryPairTest, DatagramsAndClose) {
  MemoryPairConfig cfg;
  cfg.max_datagram_payload = 4;
  cfg.max_queued_datagrams = 2;
  MemoryPair pair(cfg);
  attach(pair);
  EXPECT_TRUE(pair.client().send_datagram(bytes("abcd")));
  EXPECT_FALSE(pair.client().send_datagram(bytes("abcde")));
  EXPECT_TRUE(pair.client().send_datagram(bytes("x")));
  EXPECT_FALSE(pair.client().send_datagram(bytes("y")));  // queue full
  pair.run();
  ASSERT_EQ(s.datagrams.size(), 2u);
  EXPECT_EQ(s.datagrams[0], bytes("abcd"));
  pair.server().close(0x100, "bye");
  pair.run();
  EXPECT_EQ(s.close_code, 0x100u);
  EXPECT_EQ(c.close_code, 0x100u);
  EXPECT_EQ(c.close_reason, "bye");
  EXPECT_FALSE(pair.client().open_bidi_stream());
  EXPECT_EQ(pair.client().max_datagram_payload(), 0u);
}

}  // namespace
}  // namespace wtmesh::testing
