// Test harness for wt::H2Session: a recording SessionHandler, and a client and a server session wired
// back to back in memory (each one's output() is fed to the other's receive(), in pieces of a chosen
// size, as the DATA frames of the CONNECT stream would carry it).
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "wt/errors.h"
#include "wt/h2_session.h"

namespace wtmesh::wt::h2test {

using Bytes = std::vector<uint8_t>;
inline Bytes bytes(std::string_view s) { return {s.begin(), s.end()}; }

struct Recorder : SessionHandler {
  Session* session = nullptr;
  bool ready = false;
  std::optional<ConnectResponse> refused;
  std::vector<std::pair<StreamId, bool>> incoming;  // id, bidi
  std::map<StreamId, std::string> data;
  std::map<StreamId, bool> fin;
  std::map<StreamId, std::optional<uint32_t>> resets;
  std::map<StreamId, std::optional<uint32_t>> stop_sendings;
  std::vector<StreamId> writable;
  std::vector<StreamId> closed_streams;
  std::vector<std::string> datagrams;
  int streams_available = 0;
  int drains = 0;
  std::optional<std::pair<uint32_t, std::string>> closed;
  bool auto_consume = true;  // consume() every byte as it arrives

  void on_attached(Session& s) override { session = &s; }
  void on_ready() override { ready = true; }
  void on_refused(const ConnectResponse& r) override { refused = r; }
  void on_incoming_stream(StreamId id, bool bidi) override { incoming.emplace_back(id, bidi); }
  void on_stream_data(StreamId id, std::span<const uint8_t> d, bool f) override {
    data[id].append(d.begin(), d.end());
    if (f) fin[id] = true;
    if (auto_consume && !d.empty()) session->consume(id, d.size());
  }
  void on_stream_reset(StreamId id, std::optional<uint32_t> code) override { resets[id] = code; }
  void on_stop_sending(StreamId id, std::optional<uint32_t> code) override { stop_sendings[id] = code; }
  void on_stream_writable(StreamId id) override { writable.push_back(id); }
  void on_stream_closed(StreamId id) override { closed_streams.push_back(id); }
  void on_datagram(std::span<const uint8_t> p) override { datagrams.emplace_back(p.begin(), p.end()); }
  void on_streams_available() override { ++streams_available; }
  void on_drain() override { ++drains; }
  void on_closed(uint32_t code, std::string_view reason) override {
    closed.emplace(code, std::string(reason));
  }
};

inline SessionInfo info() {
  SessionInfo i;
  i.authority = "edge.test";
  i.path = "/wt";
  return i;
}

// Two sessions, client and server, with the SETTINGS each would have seen from the other.
struct H2Pair {
  H2SessionConfig client_config;
  H2SessionConfig server_config;
  std::optional<H2Session> client;
  std::optional<H2Session> server;
  Recorder ch;
  Recorder sh;
  size_t piece = 7;   // DATA payload split: odd sizes cut capsules anywhere
  Bytes client_wire;  // everything the client sent, for byte-vector checks
  Bytes server_wire;
  bool client_fin = false, server_fin = false;
  std::optional<uint32_t> client_rst, server_rst;

  explicit H2Pair(H2WtSettings client_settings = H2SessionConfig::default_local(),
                  H2WtSettings server_settings = H2SessionConfig::default_local()) {
    client_config.local = client_settings;
    client_config.peer = server_settings;
    server_config.local = server_settings;
    server_config.peer = client_settings;
  }
  // Creates both; the client's CONNECT is answered 200.
  void open() {
    client.emplace(Role::kClient, client_config, info(), &ch);
    server.emplace(Role::kServer, server_config, info(), &sh);
    server->start(ConnectResponse{200, {}});
    client->on_response(ConnectResponse{200, {}});
  }

  // Moves bytes (at most `budget` per direction and call; 0 = all) until nothing moves.
  void pump(size_t budget = 0) {
    for (int round = 0; round < 100000; ++round) {
      const bool a = move(*client, *server, client_wire, client_fin, client_rst, budget);
      const bool b = move(*server, *client, server_wire, server_fin, server_rst, budget);
      if ((!a && !b) || budget != 0) return;
    }
    FAIL() << "pump did not settle";
  }

 private:
  bool move(H2Session& from, H2Session& to, Bytes& wire, bool& fin_seen, std::optional<uint32_t>& rst_seen,
            size_t budget) {
    bool moved = false;
    size_t sent = 0;
    while (!from.output().empty() && (budget == 0 || sent < budget)) {
      size_t n = std::min(piece, from.output().size());
      if (budget != 0) n = std::min(n, budget - sent);
      const Bytes chunk(from.output().begin(), from.output().begin() + static_cast<ptrdiff_t>(n));
      wire.insert(wire.end(), chunk.begin(), chunk.end());
      from.consume_output(n);
      sent += n;
      to.receive(chunk, false);
      moved = true;
    }
    if (from.output_fin() && !fin_seen) {
      fin_seen = true;
      to.receive({}, true);
      moved = true;
    }
    if (from.output_reset() && !rst_seen) {
      rst_seen = from.output_reset();
      to.on_connect_reset(*rst_seen);
      moved = true;
    }
    return moved;
  }
};

// Finds `needle` in `hay`.
inline bool contains(const Bytes& hay, const Bytes& needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

}  // namespace wtmesh::wt::h2test
