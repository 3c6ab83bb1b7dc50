// libFuzzer target: a server h3::Connection fed arbitrary peer streams and datagrams over the
// in-memory transport. Input: a sequence of records [op][len][bytes...].
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "../tests/support/memory_transport.h"
#include "h3/connection.h"

using namespace wtmesh;

namespace {

// Answers requests and consumes everything; checks the close path: the handler hears of the
// connection's end once, and nothing after it.
struct Sink : h3::Handler {
  h3::Connection* conn = nullptr;
  int closes = 0;
  void alive() {
    if (closes > 0) {
      std::fprintf(stderr, "h3 handler called after on_connection_closed\n");
      std::abort();
    }
  }
  void on_headers(h3::StreamId id, h3::HeaderList, bool) override {
    alive();
    conn->send_response(id, {{":status", "200"}}, false);
  }
  void on_body(h3::StreamId id, std::span<const uint8_t> d, bool) override {
    alive();
    conn->consume(id, d.size());
  }
  void on_request_reset(h3::StreamId, uint64_t) override { alive(); }
  void on_request_closed(h3::StreamId) override { alive(); }
  void on_wt_stream(h3::StreamId, uint64_t) override { alive(); }
  void on_wt_data(h3::StreamId id, std::span<const uint8_t> d, bool) override {
    alive();
    conn->consume(id, d.size());
  }
  void on_wt_reset(h3::StreamId, uint64_t) override { alive(); }
  void on_wt_stop_sending(h3::StreamId, uint64_t) override { alive(); }
  void on_wt_closed(h3::StreamId) override { alive(); }
  void on_datagram(uint64_t, std::span<const uint8_t>) override { alive(); }
  void on_connection_closed(uint64_t, bool, std::string_view) override {
    alive();
    ++closes;
  }
};

struct Quiet : quic::TransportHandler {
  void on_stream_data(quic::StreamId, std::span<const uint8_t>, bool) override {}
  void on_stream_reset(quic::StreamId, uint64_t) override {}
  void on_stop_sending(quic::StreamId, uint64_t) override {}
  void on_stream_closed(quic::StreamId) override {}
  void on_stream_writable(quic::StreamId) override {}
  void on_datagram(std::span<const uint8_t>) override {}
  void on_connection_closed(uint64_t, bool, std::string_view) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  testing::MemoryPairConfig pc;
  pc.max_delivery_chunk = size > 0 ? 1 + data[0] % 7 : 0;
  testing::MemoryPair pair(pc);
  h3::Config cfg;
  cfg.local.enable_connect_protocol = cfg.local.h3_datagram = cfg.local.webtransport = true;
  cfg.max_field_section_size = 512;
  cfg.max_control_frame_size = 256;
  h3::Connection server(pair.server(), h3::Role::kServer, cfg);
  Sink sink;
  sink.conn = &server;
  server.set_handler(&sink);
  Quiet raw;
  pair.set_handler(testing::MemoryPair::kClient, &raw);
  pair.set_handler(testing::MemoryPair::kServer, &server);
  server.start();
  std::vector<quic::StreamId> streams;
  size_t pos = 1;
  while (pos + 2 <= size) {
    const uint8_t op = data[pos];
    const size_t len = std::min<size_t>(data[pos + 1], size - pos - 2);
    const std::span<const uint8_t> body(data + pos + 2, len);
    pos += 2 + len;
    quic::Transport& t = pair.client();
    switch (op % 6) {
      case 0:
        if (auto id = t.open_uni_stream()) streams.push_back(*id);
        break;
      case 1:
        if (auto id = t.open_bidi_stream()) streams.push_back(*id);
        break;
      case 2:
      case 3:
        if (!streams.empty()) t.write(streams[(op >> 3) % streams.size()], body, op & 4);
        break;
      case 4:
        if (!streams.empty()) t.reset_stream(streams[(op >> 3) % streams.size()], op);
        break;
      case 5:
        t.send_datagram(body);
        break;
    }
    pair.run(100000);
  }
  pair.run(100000);
  // A protocol error closed the transport (the close path): the h3 layer must have said so.
  if (pair.is_closed(testing::MemoryPair::kServer) && sink.closes != 1) {
    std::fprintf(stderr, "server transport closed, h3 handler told %d times\n", sink.closes);
    std::abort();
  }
  (void)server.stream_state_count();
  return 0;
}
