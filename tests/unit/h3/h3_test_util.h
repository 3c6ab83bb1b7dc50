// Shared helpers for h3 connection tests: a recording h3::Handler, a raw-bytes transport handler
// (to play a hand-written peer), and byte builders.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "../../support/memory_transport.h"
#include "common/varint.h"
#include "h3/connection.h"
#include "h3/error_codes.h"
#include "h3/frames.h"
#include "h3/qpack.h"
#include "h3/settings.h"

namespace wtmesh::h3::test {

using Bytes = std::vector<uint8_t>;
using testing::MemoryPair;
using testing::MemoryPairConfig;

inline Bytes bytes(std::string_view s) { return {s.begin(), s.end()}; }
inline std::string str(const Bytes& b) { return {b.begin(), b.end()}; }

// Records every h3::Handler callback; consumes body/WT bytes at once unless told not to.
struct Events : Handler {
  struct Headers {
    StreamId id;
    HeaderList headers;
    bool fin;
  };
  Connection* conn = nullptr;
  bool auto_consume = true;
  std::optional<Settings> settings;
  std::vector<Headers> headers;
  std::vector<Headers> interim;  // on_interim_headers (fin always false)
  std::map<StreamId, Bytes> body;
  std::map<StreamId, bool> body_fin;
  std::map<StreamId, uint64_t> request_resets;
  std::vector<StreamId> request_closed, request_writable;
  std::map<StreamId, uint64_t> wt_streams;  // id -> session id
  std::map<StreamId, Bytes> wt_data;
  std::map<StreamId, bool> wt_fin;
  std::map<StreamId, uint64_t> wt_resets, wt_stops;
  std::vector<StreamId> wt_closed, wt_writable;
  std::vector<std::pair<uint64_t, Bytes>> datagrams;
  std::vector<uint64_t> goaways;
  std::optional<uint64_t> close_code;
  std::string close_reason;
  size_t body_calls = 0;

  void on_peer_settings(const Settings& s) override { settings = s; }
  void on_headers(StreamId id, HeaderList h, bool fin) override {
    headers.push_back({id, std::move(h), fin});
  }
  void on_interim_headers(StreamId id, HeaderList h) override { interim.push_back({id, std::move(h), false}); }
  void on_body(StreamId id, std::span<const uint8_t> d, bool fin) override {
    ++body_calls;
    body[id].insert(body[id].end(), d.begin(), d.end());
    if (fin) body_fin[id] = true;
    if (auto_consume && conn != nullptr) conn->consume(id, d.size());
  }
  void on_request_reset(StreamId id, uint64_t e) override { request_resets[id] = e; }
  void on_request_writable(StreamId id) override { request_writable.push_back(id); }
  void on_request_closed(StreamId id) override { request_closed.push_back(id); }
  void on_wt_stream(StreamId id, uint64_t session) override { wt_streams[id] = session; }
  void on_wt_data(StreamId id, std::span<const uint8_t> d, bool fin) override {
    wt_data[id].insert(wt_data[id].end(), d.begin(), d.end());
    if (fin) wt_fin[id] = true;
    if (auto_consume && conn != nullptr) conn->consume(id, d.size());
  }
  void on_wt_reset(StreamId id, uint64_t e) override { wt_resets[id] = e; }
  void on_wt_stop_sending(StreamId id, uint64_t e) override { wt_stops[id] = e; }
  void on_wt_writable(StreamId id) override { wt_writable.push_back(id); }
  void on_wt_closed(StreamId id) override { wt_closed.push_back(id); }
  void on_datagram(uint64_t q, std::span<const uint8_t> p) override {
    datagrams.emplace_back(q, Bytes(p.begin(), p.end()));
  }
  void on_goaway(uint64_t id) override { goaways.push_back(id); }
  void on_connection_closed(uint64_t code, bool, std::string_view reason) override {
    close_code = code;
    close_reason = std::string(reason);
  }
  const Headers* find(StreamId id) const {
    for (const auto& h : headers) {
      if (h.id == id) return &h;
    }
    return nullptr;
  }
};

// A peer written by hand: records raw transport events.
struct RawPeer : quic::TransportHandler {
  std::map<StreamId, Bytes> data;
  std::map<StreamId, bool> fin;
  std::map<StreamId, uint64_t> resets, stops;
  std::vector<StreamId> closed;
  std::vector<Bytes> datagrams;
  std::optional<uint64_t> close_code;
  std::string close_reason;
  void on_stream_data(StreamId id, std::span<const uint8_t> d, bool f) override {
    data[id].insert(data[id].end(), d.begin(), d.end());
    if (f) fin[id] = true;
  }
  void on_stream_reset(StreamId id, uint64_t e) override { resets[id] = e; }
  void on_stop_sending(StreamId id, uint64_t e) override { stops[id] = e; }
  void on_stream_closed(StreamId id) override { closed.push_back(id); }
  void on_stream_writable(StreamId) override {}
  void on_datagram(std::span<const uint8_t> p) override { datagrams.emplace_back(p.begin(), p.end()); }
  void on_connection_closed(uint64_t code, bool, std::string_view reason) override {
    close_code = code;
    close_reason = std::string(reason);
  }
};

inline Config wt_config() {
  Config c;
  c.local.enable_connect_protocol = true;
  c.local.h3_datagram = true;
  c.local.webtransport = true;
  return c;
}

inline HeaderList get_request(std::string path = "/") {
  return {
      {":method", "GET"}, {":scheme", "https"}, {":authority", "example.com"}, {":path", std::move(path)}};
}

inline HeaderList wt_connect() {
  return {{":method", "CONNECT"},         {":protocol", "webtransport"},
          {":scheme", "https"},           {":authority", "localhost:4433"},
          {":path", "/tunnel"},           {"sec-webtransport-http3-draft02", "1"},
          {"origin", "https://localhost"}};
}

// A control stream: type 0x00 then a SETTINGS frame.
inline Bytes control_stream(const Bytes& settings_payload) {
  Bytes b{0x00};
  append_frame(b, kFrameSettings, settings_payload);
  return b;
}

inline Bytes settings_pairs(std::initializer_list<std::pair<uint64_t, uint64_t>> kv) {
  Bytes b;
  for (auto [k, v] : kv) {
    append_varint(b, k);
    append_varint(b, v);
  }
  return b;
}

// A HEADERS frame for `headers`, QPACK-encoded with a fresh encoder.
inline Bytes headers_frame(const HeaderList& headers, StreamId id = 0) {
  QpackEncoder enc;
  Bytes block;
  EXPECT_TRUE(enc.encode(id, headers, block));
  Bytes out;
  append_frame(out, kFrameHeaders, block);
  return out;
}

inline Bytes data_frame(std::string_view payload) {
  Bytes out;
  append_frame(out, kFrameData, bytes(payload));
  return out;
}

inline Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Client and server h3::Connections over a MemoryPair, started and settled.
struct H3Pair {
  explicit H3Pair(MemoryPairConfig pc = {}, Config cc = wt_config(), Config sc = wt_config())
      : pair(pc), client(pair.client(), Role::kClient, cc), server(pair.server(), Role::kServer, sc) {
    pair.set_handler(MemoryPair::kClient, &client);
    pair.set_handler(MemoryPair::kServer, &server);
    client.set_handler(&ce);
    server.set_handler(&se);
    ce.conn = &client;
    se.conn = &server;
    client.start();
    server.start();
  }
  bool run() { return pair.run(); }

  MemoryPair pair;
  Connection client;
  Connection server;
  Events ce, se;
};

// A server h3::Connection facing a RawPeer client (or the reverse with `raw_is_server`).
struct RawPair {
  explicit RawPair(MemoryPairConfig pc = {}, Config cfg = wt_config(), bool raw_is_server = false)
      : pair(pc),
        conn(raw_is_server ? pair.client() : pair.server(), raw_is_server ? Role::kClient : Role::kServer,
             cfg),
        raw_side(raw_is_server ? MemoryPair::kServer : MemoryPair::kClient) {
    pair.set_handler(raw_side, &raw);
    pair.set_handler(raw_side == MemoryPair::kClient ? MemoryPair::kServer : MemoryPair::kClient, &conn);
    conn.set_handler(&ev);
    ev.conn = &conn;
    conn.start();
    pair.run();
  }
  quic::Transport& peer() { return pair.side(raw_side); }
  // Opens a uni stream on the raw side and writes `b` (+fin).
  StreamId uni(const Bytes& b, bool fin = false) {
    StreamId id = *peer().open_uni_stream();
    send(id, b, fin);
    return id;
  }
  StreamId bidi(const Bytes& b, bool fin = false) {
    StreamId id = *peer().open_bidi_stream();
    send(id, b, fin);
    return id;
  }
  void send(StreamId id, const Bytes& b, bool fin = false) {
    EXPECT_EQ(peer().write(id, b, fin), b.size());
    pair.run();
  }
  // Writes all of `b`, running the pair whenever the send buffer is full.
  void send_all(StreamId id, const Bytes& b, bool fin = false) {
    size_t off = 0;
    for (int i = 0; i < 100000 && off < b.size(); ++i) {
      off += peer().write(id, std::span<const uint8_t>(b).subspan(off), false);
      pair.run();
    }
    ASSERT_EQ(off, b.size());
    if (fin) send(id, {}, true);
  }
  // The usual handshake: a control stream with the given SETTINGS payload.
  StreamId control(const Bytes& settings_payload) { return uni(control_stream(settings_payload)); }
  StreamId default_control() { return control(settings_pairs({{0x08, 1}, {0x33, 1}, {0x2b603742, 1}})); }

  MemoryPair pair;
  Connection conn;
  MemoryPair::Side raw_side;
  RawPeer raw;
  Events ev;
};

}  // namespace wtmesh::h3::test
