// Fuzzes the edge's public HTTP/3 requests: H3Requests behind wt::H3Server on a server
// h3::Connection, driven by our client h3::Connection over the in-memory transport (so the input
// reaches request mapping, body flow control, RFC 9220 WebSocket, resets and GOAWAY instead of dying in
// QPACK), plus raw bytes on streams of their own for malformed framing; a scripted tunnel directory
// plays the agent. Invariants: every request head written to an agent's stream decodes; request bytes
// held never pass the cap; once the connection closed, no stream is held.
//
// Input: byte 0 = mode (bit 0: the host has a tunnel, bit 1: the agent answers each complete request
// with 200, bit 2: the agent answers WebSocket handshakes with 101 and echoes, bit 3: with a wrong
// Sec-WebSocket-Accept), then records [op][len][bytes...].
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "../tests/support/memory_transport.h"
#include "../tests/unit/edge/fakes.h"
#include "edge/h3_requests.h"
#include "wt/h3_config.h"
#include "wt/h3_server.h"

namespace {

[[noreturn]] void broken(int line) {
  std::fprintf(stderr, "%s:%d: invariant broken\n", __FILE__, line);
  std::abort();
}

using namespace wtmesh;
using edge::test::FakeDirectory;

// The client consumes whatever arrives.
struct Client : h3::NullHandler {
  h3::Connection* conn = nullptr;
  void on_body(h3::StreamId id, std::span<const uint8_t> d, bool) override { conn->consume(id, d.size()); }
};

std::string pick(uint8_t b, std::initializer_list<const char*> options) {
  return *(options.begin() + b % options.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 64 * 1024) return 0;
  const bool found = data[0] & 1;
  const bool answer = data[0] & 2;
  const bool upgrades = data[0] & 4;
  const bool bad_accept = data[0] & 8;

  testing::MemoryPairConfig pc;
  pc.stream_send_buffer = 4096;
  testing::MemoryPair pair(pc);
  edge::test::FakeClock clock;
  FakeDirectory dir;
  if (found) dir.add_route("app.localhost");
  h3::Connection client(pair.client(), h3::Role::kClient, wt::webtransport_h3_config(h3::Role::kClient));
  h3::Connection server(pair.server(), h3::Role::kServer, wt::webtransport_h3_config(h3::Role::kServer));
  edge::H3RequestsConfig cfg;
  cfg.exchange.client = {"192.0.2.1", true};
  cfg.exchange.clock = clock.fn();
  cfg.exchange.limits.max_local_answers = 8;
  cfg.max_buffered_body = 16 * 1024;
  auto requests = std::make_unique<edge::H3Requests>(dir, server, cfg, edge::ConnectionHooks{});
  auto h3server = std::make_unique<wt::H3Server>(server, wt::ServerConfig{}, wt::Acceptor{});
  h3server->set_request_handler(requests.get());
  Client view;
  view.conn = &client;
  client.set_handler(&view);
  pair.set_handler(testing::MemoryPair::kClient, &client);
  pair.set_handler(testing::MemoryPair::kServer, &server);
  client.start();
  server.start();
  pair.run(100000);

  std::vector<h3::StreamId> streams;
  std::vector<wt::StreamId> answered;
  std::map<wt::StreamId, edge::test::UpgradeEcho> echoes;
  size_t opened = 0;
  size_t pos = 1;
  while (pos + 2 <= size) {
    const uint8_t op = data[pos];
    const size_t len = std::min<size_t>(data[pos + 1], size - pos - 2);
    const std::span<const uint8_t> body(data + pos + 2, len);
    pos += 2 + len;
    const auto nth = [&](uint8_t b) { return streams[b % streams.size()]; };
    switch (op % 8) {
      case 0: {  // a request; its fields chosen by the record's bytes
        const uint8_t b0 = len > 0 ? body[0] : 0, b1 = len > 1 ? body[1] : 0, b2 = len > 2 ? body[2] : 0;
        h3::HeaderList h{{":method", pick(b0, {"GET", "POST", "CONNECT", "HEAD", "PUT"})},
                         {":scheme", "https"},
                         {":authority", pick(b1, {"app.localhost", "nobody.localhost", "app.localhost:4433", "%"})},
                         {":path", pick(b2, {"/", "/chat", "/x?y=1", "*"})}};
        if (b0 & 0x10) h.push_back({":protocol", pick(b1 >> 2, {"websocket", "webtransport", "chat"})});
        if (b0 & 0x20) h.push_back({"content-length", pick(b2 >> 2, {"0", "5", "100000", "x"})});
        if (b0 & 0x40) h.push_back({"expect", "100-continue"});
        if (len > 3) h.push_back({"x-fuzz", std::string(body.begin() + 3, body.end())});
        if (auto id = client.send_request(h, (op & 0x80) != 0)) {
          streams.push_back(*id);
          ++opened;
        }
        break;
      }
      case 1:
        if (!streams.empty()) client.send_body(nth(op >> 3), body, (op & 0x80) != 0);
        break;
      case 2:
        if (!streams.empty()) client.reset_request(nth(op >> 3), 0x10c);
        break;
      case 3:  // the agent: answers, echoes, or breaks a stream
        if (answer) edge::test::answer_complete_requests(dir, answered);
        if (upgrades) edge::test::answer_upgrades(dir, echoes, bad_accept);
        if ((op & 0x80) && !dir.streams.empty()) {
          auto it = dir.streams.begin();
          std::advance(it, (op >> 3) % dir.streams.size());
          if (it->second.events && !it->second.cancelled && !it->second.released) {
            it->second.cancelled = 1;  // the directory forgets an aborted stream
            it->second.events->on_stream_aborted(std::nullopt, "fuzz");
          }
        }
        break;
      case 4:  // time passes
        clock.t += std::chrono::seconds(1 + (op >> 3));
        requests->on_tick(clock.t);
        break;
      case 5:  // the agent's streams take more (or nothing)
        for (auto& [id, s] : dir.streams) {
          s.capacity = (op & 0x80) ? 0 : s.capacity + 4096u * (1 + (op >> 3));
          if (s.events && !s.cancelled && !s.released) s.events->on_request_writable();
        }
        break;
      case 6:  // raw bytes on a bidi stream of their own: malformed framing
        if (auto id = pair.client().open_bidi_stream()) {
          pair.client().write(*id, body, (op & 0x80) != 0);
          ++opened;
        }
        break;
      case 7:
        if (op & 0x80) client.close(0x100, "fuzz");
        break;
    }
    pair.run(100000);
    if (requests->stream_count() > opened) broken(__LINE__);
  }
  pair.run(100000);
  for (auto& [id, s] : dir.streams) {
    if (s.written.empty()) continue;
    tunnel::HeadReader<tunnel::RequestHead> reader;
    tunnel::RequestHead head;
    const auto err = reader.feed(s.written, head);
    if (err != tunnel::WireError::kNone && err != tunnel::WireError::kNeedMore) broken(__LINE__);
  }
  client.close(0x100, "done");
  pair.run(100000);
  if (requests->stream_count() != 0) broken(__LINE__);
  h3server.reset();  // before the handler it points to
  requests.reset();
  return 0;
}
