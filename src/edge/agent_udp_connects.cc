#include "edge/agent_udp_connects.h"

#include <spdlog/spdlog.h>

#include "edge/agent_session.h"
#include "tunnel/connect_stream.h"
#include "tunnel/wire.h"

namespace wtmesh::edge {

using tunnel::ConnectStatus;

struct AgentUdpConnects::Stream final : RequestStreamEvents, UdpConnectEvents {
  Stream(AgentUdpConnects& o, wt::StreamId i, uint64_t f, std::string n)
      : owner(o), id(i), flow_id(f), name(std::move(n)) {}

  // --- UdpConnectEvents: the flow toward the service ---
  void on_udp_open(ConnectStatus status, std::string_view message) override {
    const auto reply = tunnel::encode_connect_reply(status, message);
    const bool refused = status != ConnectStatus::kConnected;
    if (refused) handle = 0;  // UdpConnects forgot it
    if (owner.session_.write(id, reply, refused) < reply.size()) return end(tunnel::kStreamCancelled);
    if (refused) {
      spdlog::info("tunnel {}: connect --udp {} refused: {} ({})", owner.session_.owner(), name, message,
                   tunnel::to_string(status));
      return end(std::nullopt);
    }
    open = true;
  }
  void on_udp_packet(std::span<const uint8_t> payload) override {
    if (tunnel::udp_datagram_overhead(flow_id, 0) + payload.size() > owner.session_.max_datagram_size())
      return owner.connects_.count_client_drop(&tunnel::UdpDropCounters::too_big);
    if (!owner.session_.send_datagram(tunnel::encode_udp_datagram(flow_id, 0, payload)))
      owner.connects_.count_client_drop(&tunnel::UdpDropCounters::queue_full);
  }
  void on_udp_end(std::string_view why) override {
    handle = 0;
    spdlog::debug("tunnel {}: connect --udp {} flow {} ended: {}", owner.session_.owner(), name, flow_id,
                  why);
    owner.session_.write(id, {}, true);  // FIN: the flow is over
    end(std::nullopt);
  }

  // --- RequestStreamEvents: the connect stream, as its session hands it over ---
  void on_response_data(std::span<const uint8_t> data, bool fin) override {
    owner.session_.consume(id, data.size());  // nothing is expected after the head: dropped
    if (!fin) return;
    if (open) owner.session_.write(id, {}, true);  // the agent ended the flow: FIN back
    end(open ? std::nullopt : std::optional<uint32_t>(tunnel::kStreamCancelled));
  }
  void on_request_writable() override {}
  void on_stream_aborted(std::optional<uint32_t>, std::string_view) override {
    released = true;  // the session has forgotten the stream already
    end(std::nullopt);
  }
  void on_request_stopped(std::optional<uint32_t>) override { end(tunnel::kStreamCancelled); }

  // Closes the flow and the stream (reset with `code`, or released), then forgets this object: the last
  // thing any caller does.
  void end(std::optional<uint32_t> code) {
    if (handle != 0 && !owner.connects_alive_.expired()) owner.connects_.close(handle);
    handle = 0;
    if (!released) {
      if (code) {
        owner.session_.cancel(id, *code);
      } else {
        owner.session_.release(id);
      }
    }
    owner.forget(flow_id);
  }

  AgentUdpConnects& owner;
  wt::StreamId id;
  uint64_t flow_id;
  std::string name;
  UdpConnects::Handle handle = 0;
  bool open = false;      // connected
  bool released = false;  // the session no longer holds the stream
};

AgentUdpConnects::AgentUdpConnects(AgentSession& session, UdpConnects& connects)
    : session_(session), connects_(connects), connects_alive_(connects.lifetime()) {}

AgentUdpConnects::~AgentUdpConnects() {
  if (connects_alive_.expired()) return;
  for (const auto& [flow, s] : flows_) {
    if (s->handle != 0) connects_.close(s->handle);
  }
}

RequestStreamEvents* AgentUdpConnects::open(wt::StreamId id, uint64_t flow_id, const std::string& name) {
  if (flows_.count(flow_id) != 0) return nullptr;
  auto s = std::make_unique<Stream>(*this, id, flow_id, name);
  Stream* raw = s.get();
  flows_[flow_id] = std::move(s);
  raw->handle = connects_.open(name, raw);
  return raw;
}

void AgentUdpConnects::on_datagram(const tunnel::UdpDatagram& d) {
  auto it = flows_.find(d.flow_id);
  if (it == flows_.end() || !it->second->open || d.tunnel_id != 0) {
    return connects_.count_client_drop(&tunnel::UdpDropCounters::unknown_flow);
  }
  connects_.send(it->second->handle, d.payload);  // too big / no room: counted by the serving tunnel
}

void AgentUdpConnects::forget(uint64_t flow_id) { flows_.erase(flow_id); }

}  // namespace wtmesh::edge
