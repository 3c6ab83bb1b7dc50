// Test support: one stream of pattern bytes over a quic::Connection. PatternSource writes `total`
// bytes as fast as the send buffer takes them; PatternSink checks each byte against the pattern and
// consumes it. The sink's counters are atomics so a test thread may watch a sink that runs on a
// worker thread (tests/unit/quic/endpoint_group_test.cc).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "quic/connection.h"

namespace wtmesh::test {

inline uint8_t pattern_at(uint64_t offset) { return static_cast<uint8_t>(offset * 31 + 7); }

struct PatternSink final : quic::TransportHandler, quic::Connection::AppState {
  explicit PatternSink(quic::Transport& t) : t_(t) {}
  void on_stream_data(quic::StreamId id, std::span<const uint8_t> data, bool fin) override {
    uint64_t at = received.load();
    for (uint8_t b : data) {
      if (b != pattern_at(at)) corrupt.fetch_add(1);
      ++at;
    }
    received.store(at);
    t_.consume(id, data.size());
    if (fin) {
      done.store(true);
      if (finished != nullptr) finished->fetch_add(1);
    }
  }
  void on_stream_reset(quic::StreamId, uint64_t) override {}
  void on_stop_sending(quic::StreamId, uint64_t) override {}
  void on_stream_closed(quic::StreamId) override {}
  void on_stream_writable(quic::StreamId) override {}
  void on_datagram(std::span<const uint8_t>) override {}
  void on_connection_closed(uint64_t, bool, std::string_view) override {}

  quic::Transport& t_;
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> corrupt{0};
  std::atomic<bool> done{false};
  std::atomic<size_t>* finished = nullptr;  // counts streams that ended, if set
};

struct PatternSource final : quic::TransportHandler {
  PatternSource(quic::Connection& c, size_t total) : c_(c), total_(total) {}
  void on_handshake_completed() override {
    id_ = *c_.open_bidi_stream();
    pump();
  }
  void on_stream_writable(quic::StreamId) override { pump(); }
  void on_stream_data(quic::StreamId, std::span<const uint8_t>, bool) override {}
  void on_stream_reset(quic::StreamId, uint64_t) override {}
  void on_stop_sending(quic::StreamId, uint64_t) override {}
  void on_stream_closed(quic::StreamId) override {}
  void on_datagram(std::span<const uint8_t>) override {}
  void on_connection_closed(uint64_t, bool, std::string_view why) override {
    closed = true;
    reason = std::string(why);
  }
  void pump() {
    std::array<uint8_t, 16384> chunk;
    while (sent < total_) {
      const size_t len = std::min(chunk.size(), total_ - sent);
      for (size_t i = 0; i < len; ++i) chunk[i] = pattern_at(sent + i);
      const size_t n = c_.write(id_, {chunk.data(), len}, sent + len == total_);
      sent += n;
      if (n < len) return;
    }
  }

  quic::Connection& c_;
  size_t total_;
  quic::StreamId id_ = -1;
  size_t sent = 0;
  bool closed = false;
  std::string reason;
};

}  // namespace wtmesh::test
