// edge::WorkerDirectory, relayed WebTransport sessions on another worker's tunnel session
// (edge/worker_directory.h, "Relayed WebTransport sessions").
#include <spdlog/spdlog.h>

#include "edge/agent_session.h"
#include "edge/worker_directory.h"
#include "edge/worker_directory_hops.h"
#include "tunnel/wire.h"

namespace wtmesh::edge {

// --- near ----------------------------------------------------------------------------------------

uint64_t WorkerDirectory::add_relay(const RouteLookup& route, WtRelayPeer* peer) {
  if (!remote(route.session)) return local_.add_relay(route, peer);
  const unsigned w = worker_in(route.session);
  if (w >= workers_.size() || w == index_ || near_relays_.size() >= kMaxRemoteRelays) return 0;
  const uint64_t base = uint64_t{index_} * AgentSession::kRelayIdBlock;
  uint64_t id = 0;
  do {  // ends: fewer than kMaxRemoteRelays of the block's ids are taken
    last_relay_ = last_relay_ % (AgentSession::kRelayIdBlock - 1) + 1;
    id = base + last_relay_;
  } while (near_relays_.count(id) != 0);
  near_relays_[id] = NearRelay{peer, w};
  RouteLookup far_route = route;
  far_route.session = serial_in(route.session);
  post_to(w, [far = workers_[w], from = index_, id, far_route] { far->far_add_relay(from, id, far_route); });
  return id;
}

bool WorkerDirectory::add_relay_as(const RouteLookup& route, uint64_t relay_id, WtRelayPeer* peer) {
  return !remote(route.session) && local_.add_relay_as(route, relay_id, peer);
}

void WorkerDirectory::remove_relay(const RouteLookup& route, uint64_t relay_id) {
  if (!remote(route.session)) return local_.remove_relay(route, relay_id);
  auto it = near_relays_.find(relay_id);
  if (it == near_relays_.end()) return;
  const unsigned w = it->second.worker;
  near_relays_.erase(it);
  post_to(w, [far = workers_[w], from = index_, relay_id] { far->far_remove_relay(from, relay_id); });
}

bool WorkerDirectory::send_relay_datagram(const RouteLookup& route, uint64_t relay_id,
                                          std::span<const uint8_t> payload) {
  if (!remote(route.session)) return local_.send_relay_datagram(route, relay_id, payload);
  auto it = near_relays_.find(relay_id);
  if (it == near_relays_.end()) return false;
  const unsigned w = it->second.worker;
  return post_datagram(w, [far = workers_[w], from = index_, relay_id,
                           bytes = std::vector<uint8_t>(payload.begin(), payload.end())] {
    far->far_relay_datagram(from, relay_id, bytes);
  });
}

void WorkerDirectory::on_relay_stream(uint64_t relay_id, unsigned worker, uint64_t hop, StreamRef real,
                                      bool uni) {
  NearHop& h = near_[hop];  // references into an unordered_map stay valid as it grows
  h.worker = worker;
  h.real = real;
  const StreamRef ref{kRemoteBit | hop, 0};
  auto it = near_relays_.find(relay_id);
  RequestStreamEvents* events =
      it == near_relays_.end() ? nullptr : it->second.peer->on_agent_stream(ref, uni);
  if (events == nullptr) return near_end(ref, tunnel::kStreamProtocolError);  // as a session refuses it
  h.events = events;
}

void WorkerDirectory::on_relay_datagram(uint64_t relay_id, const std::vector<uint8_t>& payload) {
  datagrams_in_.fetch_sub(1, std::memory_order_relaxed);
  if (auto it = near_relays_.find(relay_id); it != near_relays_.end())
    it->second.peer->on_relay_datagram(payload);
}

void WorkerDirectory::on_relay_refused(uint64_t relay_id, const std::string& reason) {
  auto it = near_relays_.find(relay_id);
  if (it == near_relays_.end()) return;
  WtRelayPeer* peer = it->second.peer;
  near_relays_.erase(it);
  peer->on_relay_refused(reason);
}

// --- far -----------------------------------------------------------------------------------------

void WorkerDirectory::FarRelay::on_relay_datagram(std::span<const uint8_t> payload) {
  dir.post_datagram(from, [near = dir.workers_[from], relay_id = id,
                           bytes = std::vector<uint8_t>(payload.begin(), payload.end())] {
    near->on_relay_datagram(relay_id, bytes);
  });
}

void WorkerDirectory::far_add_relay(unsigned from, uint64_t relay_id, const RouteLookup& route) {
  auto r = std::make_unique<FarRelay>(*this, from, relay_id, route);
  if (far_relays_.count({from, relay_id}) == 0 && local_.add_relay_as(route, relay_id, r.get())) {
    far_relays_[{from, relay_id}] = std::move(r);
    return;
  }
  post_to(from, [near = workers_[from], relay_id] {
    near->on_relay_refused(relay_id,
                           "the tunnel's session is gone or holds as many WebTransport sessions as it may");
  });
}

void WorkerDirectory::far_remove_relay(unsigned from, uint64_t relay_id) {
  auto it = far_relays_.find({from, relay_id});
  if (it == far_relays_.end()) return;
  local_.remove_relay(it->second->route, relay_id);
  far_relays_.erase(it);
}

void WorkerDirectory::far_relay_datagram(unsigned from, uint64_t relay_id,
                                         const std::vector<uint8_t>& payload) {
  datagrams_in_.fetch_sub(1, std::memory_order_relaxed);
  auto it = far_relays_.find({from, relay_id});
  if (it == far_relays_.end() || !local_.send_relay_datagram(it->second->route, relay_id, payload))
    ++datagrams_dropped_;
}

RequestStreamEvents* WorkerDirectory::far_agent_stream(FarRelay& relay, const StreamRef& ref, bool uni) {
  const uint64_t hop = kFarOpened | (uint64_t{index_} << 40) | (++far_opened_ & ((uint64_t{1} << 40) - 1));
  auto h = std::make_unique<FarHop>(*this, relay.from, hop, relay.route, std::string("wt-relay"));
  h->opened = true;
  h->real = ref;
  FarHop* raw = h.get();
  far_[{relay.from, hop}] = std::move(h);
  post_to(relay.from, [near = workers_[relay.from], relay_id = relay.id, w = index_, hop, ref, uni] {
    near->on_relay_stream(relay_id, w, hop, ref, uni);
  });
  return raw;
}

}  // namespace wtmesh::edge
