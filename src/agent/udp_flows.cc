#include "agent/udp_flows.h"

#include <spdlog/spdlog.h>

#include <vector>

namespace wtmesh::agent {

namespace asio = boost::asio;
using asio::ip::udp;

struct UdpFlows::Flow {
  Flow(asio::io_context& io, uint64_t id, uint32_t tunnel) : socket(io), flow_id(id), tunnel_id(tunnel) {}
  udp::socket socket;
  uint64_t flow_id;
  uint32_t tunnel_id;
  bool closed = false;
};

UdpFlows::UdpFlows(asio::io_context& io, wt::Session& session,
                   std::function<const UdpTarget*(uint32_t)> target, tunnel::UdpFlowOptions options)
    : io_(io), session_(&session), target_(std::move(target)), options_(options), sweep_timer_(io) {}

UdpFlows::~UdpFlows() { close_all(); }

tunnel::UdpDropCounters UdpFlows::drops(uint32_t tunnel_id) const {
  auto it = tunnels_.find(tunnel_id);
  return it == tunnels_.end() ? tunnel::UdpDropCounters{} : it->second.drops;
}

UdpFlows::TunnelFlows& UdpFlows::tunnel_flows(uint32_t tunnel_id) {
  return tunnels_.try_emplace(tunnel_id, options_).first->second;
}

void UdpFlows::count(uint32_t tunnel_id, uint64_t tunnel::UdpDropCounters::*which) {
  ++(tunnel_flows(tunnel_id).drops.*which);
  ++(total_.*which);
}

void UdpFlows::close_all() {
  if (closed_) return;
  closed_ = true;
  session_ = nullptr;
  sweep_timer_.cancel();
  for (auto& [id, flow] : flows_) {
    flow->closed = true;
    boost::system::error_code ec;
    flow->socket.close(ec);
  }
  flows_.clear();
  for (const auto& [id, t] : tunnels_) {
    if (t.drops.total() != 0) spdlog::info("udp tunnel {}: dropped: {}", id, t.drops.describe());
  }
}

void UdpFlows::on_datagram(const tunnel::UdpDatagram& d) {
  if (closed_) return;
  const auto now = std::chrono::steady_clock::now();
  const UdpTarget* target = target_(d.tunnel_id);
  if (target == nullptr) {
    ++total_.unknown_flow;  // not a udp tunnel of ours: counted for the session only
    return;
  }
  TunnelFlows& t = tunnel_flows(d.tunnel_id);
  auto it = flows_.find(d.flow_id);
  if (it != flows_.end() && it->second->tunnel_id != d.tunnel_id)
    return count(d.tunnel_id, &tunnel::UdpDropCounters::unknown_flow);
  if (it == flows_.end()) {
    // Only the edge opens flows toward a udp tunnel (even ids); odd ids are the agent's own.
    if (tunnel::udp_flow_opener(d.flow_id) != tunnel::FlowOpener::kEdge)
      return count(d.tunnel_id, &tunnel::UdpDropCounters::unknown_flow);
    if (t.table.full()) {
      if (t.drops.flow_cap == 0)
        spdlog::info("udp tunnel {}: flow cap of {} reached: new flows are dropped", d.tunnel_id,
                     t.table.options().max_flows);
      return count(d.tunnel_id, &tunnel::UdpDropCounters::flow_cap);
    }
    auto flow = open_flow(d.flow_id, d.tunnel_id, *target);
    if (!flow) return count(d.tunnel_id, &tunnel::UdpDropCounters::queue_full);
    t.table.add(d.flow_id, {}, now);
    it = flows_.emplace(d.flow_id, flow).first;
    receive(flow);
    arm_sweep();
  } else {
    t.table.touch(d.flow_id, now);
  }
  boost::system::error_code ec;
  it->second->socket.send(asio::buffer(d.payload.data(), d.payload.size()), 0, ec);
  // A refused earlier packet (ICMP port unreachable) shows up here as connection_refused: the
  // service is not listening (yet); the payload is lost like any UDP packet, the flow lives on.
  if (ec == asio::error::would_block || ec == asio::error::try_again || ec == asio::error::no_buffer_space)
    count(d.tunnel_id, &tunnel::UdpDropCounters::queue_full);
}

std::shared_ptr<UdpFlows::Flow> UdpFlows::open_flow(uint64_t flow_id, uint32_t tunnel_id,
                                                    const UdpTarget& target) {
  auto flow = std::make_shared<Flow>(io_, flow_id, tunnel_id);
  boost::system::error_code ec;
  flow->socket.open(target.endpoint.protocol(), ec);
  if (!ec) flow->socket.non_blocking(true, ec);
  if (!ec) flow->socket.connect(target.endpoint, ec);
  if (ec) {
    spdlog::warn("udp tunnel {}: cannot open a socket to {}: {}", tunnel_id, target.endpoint.port(),
                 ec.message());
    return nullptr;
  }
  spdlog::debug("udp tunnel {}: flow {} opened", tunnel_id, flow_id);
  return flow;
}

// Waits for the socket to be readable, then reads what is queued into the one buffer every flow shares
// (a pending read per flow would hold 64 KiB per flow: 64 MiB at the default cap of 1024).
void UdpFlows::receive(const std::shared_ptr<Flow>& flow) {
  flow->socket.async_wait(udp::socket::wait_read, [this, flow](boost::system::error_code ec) {
    if (flow->closed || closed_) return;
    if (ec == asio::error::operation_aborted) return;
    for (size_t i = 0; i < kMaxPacketsPerWake && !flow->closed && !closed_; ++i) {
      const size_t n = flow->socket.receive(asio::buffer(buffer_), 0, ec);
      // connection_refused (nothing listens yet) and other reports do not end the flow; idle expiry
      // does. would_block: nothing more queued.
      if (ec) break;
      on_local_packet(*flow, n);
    }
    if (!flow->closed && !closed_) receive(flow);
  });
}

void UdpFlows::on_local_packet(Flow& flow, size_t n) {
  if (session_ == nullptr) return;
  if (auto t = tunnels_.find(flow.tunnel_id); t != tunnels_.end())
    t->second.table.touch(flow.flow_id, std::chrono::steady_clock::now());
  const auto payload = std::span<const uint8_t>(buffer_.data(), n);
  if (tunnel::udp_datagram_overhead(flow.flow_id, flow.tunnel_id) + n > session_->max_datagram_size())
    return count(flow.tunnel_id, &tunnel::UdpDropCounters::too_big);
  if (!session_->send_datagram(tunnel::encode_udp_datagram(flow.flow_id, flow.tunnel_id, payload)))
    count(flow.tunnel_id, &tunnel::UdpDropCounters::queue_full);
}

void UdpFlows::close_flow(uint64_t flow_id) {
  auto it = flows_.find(flow_id);
  if (it == flows_.end()) return;
  it->second->closed = true;
  boost::system::error_code ec;
  it->second->socket.close(ec);
  flows_.erase(it);
}

void UdpFlows::arm_sweep() {
  if (sweep_armed_ || closed_) return;
  sweep_armed_ = true;
  const auto period = std::min<std::chrono::milliseconds>(std::chrono::seconds(1), options_.idle_timeout / 4);
  sweep_timer_.expires_after(std::max(period, std::chrono::milliseconds(10)));
  sweep_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
    if (ec || alive.expired() || closed_) return;
    sweep_armed_ = false;
    sweep();
    if (!flows_.empty()) arm_sweep();
  });
}

void UdpFlows::sweep() {
  const auto now = std::chrono::steady_clock::now();
  for (auto& [id, t] : tunnels_) {
    const auto gone = t.table.expire(now);
    for (const uint64_t flow : gone) close_flow(flow);
    if (!gone.empty())
      spdlog::info("udp tunnel {}: {} idle flow(s) expired, {} open", id, gone.size(), t.table.size());
    if (t.drops.total() != t.logged_drops) {
      t.logged_drops = t.drops.total();
      spdlog::info("udp tunnel {}: dropped so far: {}", id, t.drops.describe());
    }
  }
}

}  // namespace wtmesh::agent
