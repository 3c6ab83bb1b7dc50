// An in-memory wt::Session for driving the agent's stream logic without QUIC: records what was
// written, consumed, reset and stopped, and lets a test throttle send capacity.
#pragma once

#include <limits>
#include <map>
#include <optional>
#include <vector>

#include "tunnel/wire.h"
#include "wt/session.h"

namespace wtmesh::testing {

class FakeSession final : public wt::Session {
 public:
  struct Stream {
    std::vector<uint8_t> out;
    bool fin = false;
    size_t consumed = 0;
    std::optional<uint32_t> reset, stopped;
  };

  void set_handler(wt::SessionHandler*) override {}
  const wt::SessionInfo& info() const override { return info_; }
  const wt::ConnectResponse& response() const override { return response_; }
  std::optional<wt::StreamId> open_bidi_stream() override { return next_id_ += 4; }
  std::optional<wt::StreamId> open_uni_stream() override { return std::nullopt; }
  size_t write(wt::StreamId id, std::span<const uint8_t> data, bool fin) override {
    auto& s = streams[id];
    if (s.reset || s.fin) return 0;
    const size_t n = std::min(data.size(), capacity);
    capacity -= n;
    s.out.insert(s.out.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
    if (n == data.size() && fin) s.fin = true;
    return n;
  }
  size_t send_capacity(wt::StreamId) const override { return capacity; }
  void consume(wt::StreamId id, size_t n) override { streams[id].consumed += n; }
  void reset_stream(wt::StreamId id, uint32_t code) override { streams[id].reset = code; }
  void stop_sending(wt::StreamId id, uint32_t code) override { streams[id].stopped = code; }
  size_t max_datagram_size() const override { return max_datagram; }
  bool send_datagram(std::span<const uint8_t> d) override {
    if (d.size() > max_datagram) return false;
    datagrams.emplace_back(d.begin(), d.end());
    return true;
  }
  bool delivered() const override { return true; }  // writes are recorded at once
  void close(uint32_t code, std::string_view) override { closed = code; }
  void drain() override {}

  // The response on stream `id`: head + body, if a complete head was written.
  struct Response {
    tunnel::ResponseHead head;
    std::string body;
  };
  std::optional<Response> response(wt::StreamId id) {
    tunnel::HeadReader<tunnel::ResponseHead> r;
    Response out;
    if (r.feed(streams[id].out, out.head) != tunnel::WireError::kNone) return std::nullopt;
    auto body = r.take_body();
    out.body.assign(body.begin(), body.end());
    return out;
  }

  // The edge's answer to the CONNECT (e.g. its wtmesh-features).
  void set_response(wt::ConnectResponse r) { response_ = std::move(r); }

  std::map<wt::StreamId, Stream> streams;
  size_t capacity = std::numeric_limits<size_t>::max();
  size_t max_datagram = 0;  // 0: datagrams unavailable
  std::vector<std::vector<uint8_t>> datagrams;  // sent
  std::optional<uint32_t> closed;

 private:
  wt::SessionInfo info_;
  wt::ConnectResponse response_{200, {}};
  wt::StreamId next_id_ = 0;
};

}  // namespace wtmesh::testing
