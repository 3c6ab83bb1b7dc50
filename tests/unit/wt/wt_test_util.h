// Test harness for wt/ over HTTP/3: a MemoryPair, two h3::Connections, an H3Server and an H3Client,
// a recording SessionHandler, a transport decorator that can hold back or block a stream (to
// reorder the CONNECT behind WT streams, or withhold credit), and a spy on RESET/STOP_SENDING.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "../../support/memory_transport.h"
#include "h3/connection.h"
#include "h3/error_codes.h"
#include "wt/errors.h"
#include "wt/h3_client.h"
#include "wt/h3_server.h"

namespace wtmesh::wt::test {

using testing::MemoryPair;
using testing::MemoryPairConfig;
using Bytes = std::vector<uint8_t>;

inline Bytes bytes(std::string_view s) { return {s.begin(), s.end()}; }
inline std::string str(std::span<const uint8_t> b) { return {b.begin(), b.end()}; }

// Forwards to a real transport, except: writes to "held" streams are queued here until release();
// "blocked" streams accept nothing (the peer withholds credit).
class ControlledTransport final : public quic::Transport {
 public:
  explicit ControlledTransport(quic::Transport& inner) : inner_(inner) {}

  void hold(StreamId id) { held_[id]; }
  void release(StreamId id) {
    auto it = held_.find(id);
    if (it == held_.end()) return;
    Held h = std::move(it->second);
    held_.erase(it);
    if (!h.data.empty() || h.fin) inner_.write(id, h.data, h.fin);
  }
  void block(StreamId id) { blocked_.insert(id); }
  void unblock(StreamId id) { blocked_.erase(id); }

  bool is_server() const override { return inner_.is_server(); }
  std::optional<StreamId> open_bidi_stream() override { return inner_.open_bidi_stream(); }
  std::optional<StreamId> open_uni_stream() override { return inner_.open_uni_stream(); }
  size_t write(StreamId id, std::span<const uint8_t> data, bool fin) override {
    if (blocked_.count(id)) return 0;
    if (auto it = held_.find(id); it != held_.end()) {
      it->second.data.insert(it->second.data.end(), data.begin(), data.end());
      it->second.fin = it->second.fin || fin;
      return data.size();
    }
    return inner_.write(id, data, fin);
  }
  size_t send_capacity(StreamId id) const override {
    return blocked_.count(id) ? 0 : inner_.send_capacity(id);
  }
  uint64_t unacked_bytes(StreamId id) const override {
    auto it = held_.find(id);
    const uint64_t held = it == held_.end() ? 0 : it->second.data.size() + (it->second.fin ? 1 : 0);
    return held + inner_.unacked_bytes(id);
  }
  void reset_stream(StreamId id, uint64_t e) override {
    held_.erase(id);
    inner_.reset_stream(id, e);
  }
  void stop_sending(StreamId id, uint64_t e) override { inner_.stop_sending(id, e); }
  void consume(StreamId id, size_t n) override { inner_.consume(id, n); }
  size_t max_datagram_payload() const override { return inner_.max_datagram_payload(); }
  bool send_datagram(std::span<const uint8_t> p) override { return inner_.send_datagram(p); }
  void close(uint64_t e, std::string_view r) override { inner_.close(e, r); }

 private:
  struct Held {
    Bytes data;
    bool fin = false;
  };
  quic::Transport& inner_;
  std::map<StreamId, Held> held_;
  std::set<StreamId> blocked_;
};

// Sits between the MemoryPair and an h3::Connection and records RESET_STREAM / STOP_SENDING codes.
class SpyHandler final : public quic::TransportHandler {
 public:
  explicit SpyHandler(quic::TransportHandler& inner) : inner_(inner) {}
  std::map<StreamId, uint64_t> resets, stops;

  void on_handshake_completed() override { inner_.on_handshake_completed(); }
  void on_stream_data(StreamId id, std::span<const uint8_t> d, bool fin) override {
    inner_.on_stream_data(id, d, fin);
  }
  void on_stream_reset(StreamId id, uint64_t e) override {
    resets[id] = e;
    inner_.on_stream_reset(id, e);
  }
  void on_stop_sending(StreamId id, uint64_t e) override {
    stops[id] = e;
    inner_.on_stop_sending(id, e);
  }
  void on_stream_closed(StreamId id) override { inner_.on_stream_closed(id); }
  void on_stream_writable(StreamId id) override { inner_.on_stream_writable(id); }
  void on_streams_available() override { inner_.on_streams_available(); }
  void on_datagram(std::span<const uint8_t> p) override { inner_.on_datagram(p); }
  void on_connection_closed(uint64_t c, bool a, std::string_view r) override {
    inner_.on_connection_closed(c, a, r);
  }

 private:
  quic::TransportHandler& inner_;
};

// Records everything; optionally echoes (bidi: same stream; uni: a new uni stream per peer stream).
struct Recorder : SessionHandler {
  Session* session = nullptr;
  bool ready = false;
  bool echo = false;
  bool auto_consume = true;
  std::vector<std::pair<StreamId, bool>> incoming;
  std::map<StreamId, std::string> data;
  std::set<StreamId> fins;
  std::map<StreamId, std::optional<uint32_t>> resets, stops;
  std::vector<StreamId> closed_streams;
  std::vector<std::string> datagrams;
  int drains = 0;
  std::optional<std::pair<uint32_t, std::string>> closed;
  std::optional<ConnectResponse> refused;
  std::map<StreamId, StreamId> uni_echo;  // peer uni -> our uni

  void on_attached(Session& s) override { session = &s; }
  void on_ready() override { ready = true; }
  void on_refused(const ConnectResponse& r) override { refused = r; }
  void on_incoming_stream(StreamId id, bool bidi) override { incoming.emplace_back(id, bidi); }
  void on_stream_data(StreamId id, std::span<const uint8_t> d, bool fin) override {
    data[id].append(d.begin(), d.end());
    if (fin) fins.insert(id);
    if (session == nullptr) return;
    if (auto_consume) session->consume(id, d.size());
    if (!echo) return;
    StreamId out = id;
    if (quic::is_uni(id)) {
      auto it = uni_echo.find(id);
      if (it == uni_echo.end()) {
        const auto opened = session->open_uni_stream();
        if (!opened) return;
        it = uni_echo.emplace(id, *opened).first;
      }
      out = it->second;
    }
    EXPECT_EQ(session->write(out, d, fin), d.size());
  }
  void on_stream_reset(StreamId id, std::optional<uint32_t> code) override { resets[id] = code; }
  void on_stop_sending(StreamId id, std::optional<uint32_t> code) override { stops[id] = code; }
  void on_stream_closed(StreamId id) override { closed_streams.push_back(id); }
  void on_datagram(std::span<const uint8_t> p) override {
    datagrams.push_back(str(p));
    if (echo && session != nullptr) session->send_datagram(p);
  }
  void on_drain() override { ++drains; }
  void on_closed(uint32_t code, std::string_view reason) override {
    closed = std::make_pair(code, std::string(reason));
    session = nullptr;
  }
};

// Client and server h3 + wt over one MemoryPair. The server accepts "/echo" (echoing) and
// "/record" (recording only); anything else gets 404.
struct Harness {
  explicit Harness(ServerConfig server_config = {}, ClientConfig client_config = {},
                   MemoryPairConfig pair_config = {})
      : pair(pair_config),
        client_transport(pair.client()),
        server_transport(pair.server()),
        client_conn(client_transport, h3::Role::kClient, webtransport_h3_config(h3::Role::kClient)),
        server_conn(server_transport, h3::Role::kServer, webtransport_h3_config(h3::Role::kServer)),
        client_spy(client_conn),
        server_spy(server_conn) {
    server_config.clock = client_config.clock = [this] { return now; };
    server = std::make_unique<H3Server>(server_conn, server_config, [this](const SessionInfo& info) {
      infos.push_back(info);
      if (info.path == "/echo") return Accept{200, &server_echo, {}};
      if (info.path == "/record") return Accept{200, &server_rec, {{"wt-protocol", "\"x\""}}};
      if (info.path == "/later") return Accept::later();  // the test answers with server->answer()
      return Accept{404, nullptr, {}};
    });
    client = std::make_unique<H3Client>(client_conn, client_config);
    pair.set_handler(MemoryPair::kClient, &client_spy);
    pair.set_handler(MemoryPair::kServer, &server_spy);
    server_echo.echo = true;
  }

  void start() {
    client_conn.start();
    server_conn.start();
    run();
  }
  void run() { ASSERT_TRUE(pair.run()); }

  // Connects and runs until the response is in.
  H3Session* connect(Recorder& rec, std::string_view path = "/echo", h3::HeaderList extra = {}) {
    H3Session* s = client->connect("example.com:443", path, extra, &rec);
    run();
    return s;
  }

  std::chrono::steady_clock::time_point now{std::chrono::seconds(1000)};
  MemoryPair pair;
  ControlledTransport client_transport;
  ControlledTransport server_transport;
  h3::Connection client_conn;
  h3::Connection server_conn;
  SpyHandler client_spy;
  SpyHandler server_spy;
  Recorder server_echo;
  Recorder server_rec;
  std::vector<SessionInfo> infos;
  std::unique_ptr<H3Server> server;
  std::unique_ptr<H3Client> client;
};

}  // namespace wtmesh::wt::test
