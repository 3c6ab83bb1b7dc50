// One `wtmesh connect --udp` flow's connect stream, agent side (docs/protocol.md §4.3 flag `udp`):
// writes the head (the name and the agent's odd flow id), reads the edge's reply, and reports the
// flow's end (the edge's FIN or reset, or the session's end). The flow's packets are datagrams, not
// stream bytes (EdgeSession sends and routes them by flow id). EdgeSession holds it like a request
// stream's driver.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "agent/upstream_driver.h"
#include "tunnel/connect_stream.h"
#include "wt/session.h"

namespace wtmesh::agent {

// Hears about a flow's connect stream (agent/udp_connect.h: the local UDP port of a connect).
class UdpConnectSink {
 public:
  virtual ~UdpConnectSink() = default;
  // The edge's reply: connected (packets may flow), or a refusal (the flow is over).
  virtual void on_udp_reply(uint64_t flow_id, const tunnel::ConnectReply& reply) = 0;
  // A packet the service sent back on the flow (payload valid during the call).
  virtual void on_udp_packet(uint64_t flow_id, std::span<const uint8_t> payload) = 0;
  // The flow ended from the edge's side (FIN, reset, the session gone), before or after a connected
  // reply (not after a refusal: on_udp_reply said it all).
  virtual void on_udp_end(uint64_t flow_id) = 0;
};

class UdpConnectStream final : public UpstreamDriver, public std::enable_shared_from_this<UdpConnectStream> {
 public:
  UdpConnectStream(wt::Session& session, wt::StreamId id, std::string name, uint64_t flow_id,
                   UdpConnectSink* sink, std::function<void()> done);

  // Ends the flow from the agent's side (idle expiry, the local port closing): FIN, no more events.
  void finish();
  uint64_t flow_id() const { return flow_id_; }

  // UpstreamDriver
  void start(std::span<const uint8_t> early_body, bool fin) override;
  void on_body(std::span<const uint8_t> data, bool fin) override;
  void on_writable() override {}
  void on_reset(std::optional<uint32_t> code) override;
  void on_stop_sending(std::optional<uint32_t> code) override;
  void on_stream_closed() override;
  void on_session_gone() override;
  bool finished() const override { return done_called_; }
  wt::StreamId stream_id() const override { return id_; }

 private:
  void end(bool tell_sink);

  wt::Session* session_;
  wt::StreamId id_;
  std::string name_;
  uint64_t flow_id_;
  UdpConnectSink* sink_;
  std::function<void()> done_;
  tunnel::ConnectReplyReader reply_reader_;
  bool replied_ = false;
  bool done_called_ = false;
};

}  // namespace wtmesh::agent
