// A wt::Session that counts what goes through it: the tunnel session as the agent's own code sees it,
// so the bytes the agent sends (every stream write and datagram, whoever makes it) are counted once,
// for its telemetry reports (docs/protocol.md §2.2). Everything else is passed through unchanged.
#pragma once

#include <cstdint>

#include "wt/session.h"

namespace wtmesh::agent {

class CountingSession final : public wt::Session {
 public:
  explicit CountingSession(wt::Session& inner) : inner_(inner) {}

  uint64_t bytes_sent() const { return bytes_sent_; }

  void set_handler(wt::SessionHandler* handler) override { inner_.set_handler(handler); }
  const wt::SessionInfo& info() const override { return inner_.info(); }
  const wt::ConnectResponse& response() const override { return inner_.response(); }
  std::optional<wt::StreamId> open_bidi_stream() override { return inner_.open_bidi_stream(); }
  std::optional<wt::StreamId> open_uni_stream() override { return inner_.open_uni_stream(); }
  size_t write(wt::StreamId id, std::span<const uint8_t> data, bool fin) override {
    const size_t n = inner_.write(id, data, fin);
    bytes_sent_ += n;
    return n;
  }
  size_t send_capacity(wt::StreamId id) const override { return inner_.send_capacity(id); }
  void consume(wt::StreamId id, size_t n) override { inner_.consume(id, n); }
  void reset_stream(wt::StreamId id, uint32_t code) override { inner_.reset_stream(id, code); }
  void stop_sending(wt::StreamId id, uint32_t code) override { inner_.stop_sending(id, code); }
  size_t max_datagram_size() const override { return inner_.max_datagram_size(); }
  bool send_datagram(std::span<const uint8_t> payload) override {
    const bool sent = inner_.send_datagram(payload);
    if (sent) bytes_sent_ += payload.size();
    return sent;
  }
  std::chrono::nanoseconds smoothed_rtt() const override { return inner_.smoothed_rtt(); }
  bool delivered() const override { return inner_.delivered(); }
  void close(uint32_t code, std::string_view reason) override { inner_.close(code, reason); }
  void drain() override { inner_.drain(); }

 private:
  wt::Session& inner_;
  uint64_t bytes_sent_ = 0;
};

}  // namespace wtmesh::agent
