// edge::WorkerDirectory, UDP flows of a udp tunnel held on another worker (edge/worker_directory.h,
// "UDP flows").
#include "edge/worker_directory.h"
#include "edge/worker_directory_hops.h"

namespace wtmesh::edge {

// --- near ----------------------------------------------------------------------------------------

UdpClientFlows::ClientOpen WorkerDirectory::open_client_flow(uint64_t session, uint32_t tunnel_id,
                                                             UdpFlowClient* client, UdpClientFlow* flow) {
  if (!remote(session)) {
    return udp_ == nullptr ? ClientOpen::kNoTunnel : udp_->open_client_flow(session, tunnel_id, client, flow);
  }
  const unsigned w = worker_in(session);
  if (w >= workers_.size() || w == index_) return ClientOpen::kNoTunnel;
  if (near_udp_.size() >= kMaxRemoteUdpFlows) return ClientOpen::kFlowCap;
  const uint64_t id = ++last_udp_;
  near_udp_[id] = NearUdp{client, w};
  *flow = UdpClientFlow{session, tunnel_id, id};
  post_to(w, [far = workers_[w], from = index_, id, serial = serial_in(session), tunnel_id] {
    far->far_open_udp(from, id, serial, tunnel_id);
  });
  ++hops_opened_;
  return ClientOpen::kLater;
}

UdpClientFlows::ClientSend WorkerDirectory::send_client_packet(const UdpClientFlow& flow,
                                                               std::span<const uint8_t> payload) {
  if (!remote(flow.session))
    return udp_ == nullptr ? ClientSend::kGone : udp_->send_client_packet(flow, payload);
  auto it = near_udp_.find(flow.flow_id);
  if (it == near_udp_.end() || !it->second.open) return ClientSend::kGone;
  // The limit the flow opened with: the far tunnel counts what a smaller limit since then drops.
  if (payload.size() > it->second.limit) return ClientSend::kTooBig;
  const unsigned w = it->second.worker;
  const bool posted = post_datagram(w, [far = workers_[w], from = index_, id = flow.flow_id,
                                        bytes = std::vector<uint8_t>(payload.begin(), payload.end())] {
    far->far_udp_packet(from, id, bytes);
  });
  return posted ? ClientSend::kSent : ClientSend::kNoRoom;
}

void WorkerDirectory::close_client_flow(const UdpClientFlow& flow) {
  if (!remote(flow.session)) {
    if (udp_ != nullptr) udp_->close_client_flow(flow);
    return;
  }
  auto it = near_udp_.find(flow.flow_id);
  if (it == near_udp_.end()) return;
  const unsigned w = it->second.worker;
  near_udp_.erase(it);
  post_to(w, [far = workers_[w], from = index_, id = flow.flow_id] { far->far_close_udp(from, id); });
}

size_t WorkerDirectory::client_payload_limit(const UdpClientFlow& flow) const {
  if (!remote(flow.session)) return udp_ == nullptr ? 0 : udp_->client_payload_limit(flow);
  auto it = near_udp_.find(flow.flow_id);
  return it == near_udp_.end() || !it->second.open ? 0 : it->second.limit;
}

void WorkerDirectory::on_udp_opened(uint64_t id, ClientOpen result, size_t limit) {
  auto it = near_udp_.find(id);
  if (it == near_udp_.end()) return;  // closed meanwhile: the far flow is closed by the message after it
  UdpFlowClient* client = it->second.client;
  if (result == ClientOpen::kOpened) {
    it->second.open = true;
    it->second.limit = limit;
  } else {
    near_udp_.erase(it);
  }
  client->on_udp_flow_opened(result);
}

void WorkerDirectory::on_udp_packet(uint64_t id, const std::vector<uint8_t>& payload) {
  datagrams_in_.fetch_sub(1, std::memory_order_relaxed);
  auto it = near_udp_.find(id);
  if (it == near_udp_.end() || !it->second.open) return;
  it->second.client->on_udp_packet(payload);
}

void WorkerDirectory::on_udp_end(uint64_t id, const std::string& why) {
  auto it = near_udp_.find(id);
  if (it == near_udp_.end()) return;
  UdpFlowClient* client = it->second.client;
  near_udp_.erase(it);
  client->on_udp_flow_end(why);  // may destroy the client
}

// --- far -----------------------------------------------------------------------------------------

void WorkerDirectory::FarUdp::on_udp_packet(std::span<const uint8_t> payload) {
  dir.post_datagram(from, [near = dir.workers_[from], flow = id,
                           bytes = std::vector<uint8_t>(payload.begin(), payload.end())] {
    near->on_udp_packet(flow, bytes);
  });
}

void WorkerDirectory::FarUdp::on_udp_flow_end(std::string_view why) {
  dir.post_to(from,
              [near = dir.workers_[from], flow = id, w = std::string(why)] { near->on_udp_end(flow, w); });
  dir.far_udp_.erase({from, id});  // destroys *this (the tunnel allows it): nothing after
}

void WorkerDirectory::far_open_udp(unsigned from, uint64_t id, uint64_t serial, uint32_t tunnel_id) {
  auto f = std::make_unique<FarUdp>(*this, from, id);
  ClientOpen result = ClientOpen::kNoTunnel;
  size_t limit = 0;
  if (udp_ != nullptr && far_udp_.count({from, id}) == 0) {
    result = udp_->open_client_flow(serial, tunnel_id, f.get(), &f->real);
    if (result == ClientOpen::kOpened) {
      limit = udp_->client_payload_limit(f->real);
      far_udp_[{from, id}] = std::move(f);
    }
  }
  post_to(from, [near = workers_[from], id, result, limit] { near->on_udp_opened(id, result, limit); });
}

void WorkerDirectory::far_udp_packet(unsigned from, uint64_t id, const std::vector<uint8_t>& payload) {
  datagrams_in_.fetch_sub(1, std::memory_order_relaxed);
  auto it = far_udp_.find({from, id});
  if (it == far_udp_.end()) return;                     // ended meanwhile: the near side hears it
  udp_->send_client_packet(it->second->real, payload);  // drops are counted per tunnel there
}

void WorkerDirectory::far_close_udp(unsigned from, uint64_t id) {
  auto it = far_udp_.find({from, id});
  if (it == far_udp_.end()) return;
  udp_->close_client_flow(it->second->real);
  far_udp_.erase(it);
}

}  // namespace wtmesh::edge
