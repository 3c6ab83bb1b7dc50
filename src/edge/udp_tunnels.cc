#include "edge/udp_tunnels.h"

#include <spdlog/spdlog.h>

#include <array>
#include <utility>
#include <vector>

#include "tunnel/control.h"

namespace wtmesh::edge {

namespace asio = boost::asio;
using asio::ip::udp;

namespace {

// A client address as a flow-table key: the address bytes and the port.
std::string endpoint_key(const udp::endpoint& ep) {
  std::string key;
  if (ep.address().is_v4()) {
    const auto b = ep.address().to_v4().to_bytes();
    key.assign(b.begin(), b.end());
  } else {
    const auto b = ep.address().to_v6().to_bytes();
    key.assign(b.begin(), b.end());
  }
  key.push_back(static_cast<char>(ep.port() >> 8));
  key.push_back(static_cast<char>(ep.port() & 0xff));
  return key;
}

// The client address back from its key (the flow table keeps it: no second map).
udp::endpoint endpoint_of_key(const std::string& key) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(key[i]); };
  const size_t n = key.size() - 2;
  const auto port = static_cast<uint16_t>(byte(n) << 8 | byte(n + 1));
  if (n == 4) return {asio::ip::address_v4({byte(0), byte(1), byte(2), byte(3)}), port};
  asio::ip::address_v6::bytes_type b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = byte(i);
  return {asio::ip::address_v6(b), port};
}

}  // namespace

struct UdpTunnels::Tunnel {
  Tunnel(asio::io_context& io, UdpPublishRequest r, tunnel::UdpFlowOptions flow_options)
      : socket(io), request(std::move(r)), flows(flow_options) {}
  udp::socket socket;
  UdpPublishRequest request;
  uint16_t port = 0;  // 0: private (no socket)
  bool closed = false;
  tunnel::UdpFlowTable flows;  // flow id ↔ client address (endpoint_key); "" for a client flow
  std::map<uint64_t, UdpFlowClient*> clients;  // flows of clients that are not socket addresses
  tunnel::UdpDropCounters drops;
  uint64_t logged_drops = 0;  // drops.total() when last logged
};

UdpTunnels::UdpTunnels(asio::io_context& io, std::function<UdpFlowLink*(uint64_t)> link,
                       UdpTunnelOptions options)
    : io_(io),
      link_(std::move(link)),
      options_(std::move(options)),
      ports_(options_.ports ? options_.ports
                            : std::make_shared<PortPool>(options_.port_min, options_.port_max, "UDP")),
      sweep_timer_(io) {
  options_.public_host = url_host(options_.public_host, options_.listen_address.to_string());
}

UdpTunnels::~UdpTunnels() {
  for (auto& [key, t] : tunnels_) {
    t->closed = true;
    boost::system::error_code ec;
    t->socket.close(ec);
  }
}

size_t UdpTunnels::flow_count() const {
  size_t n = 0;
  for (const auto& [key, t] : tunnels_) n += t->flows.size();
  return n;
}

const tunnel::UdpDropCounters* UdpTunnels::drops(uint64_t session, uint32_t tunnel_id) const {
  auto it = tunnels_.find({session, tunnel_id});
  return it == tunnels_.end() ? nullptr : &it->second->drops;
}

void UdpTunnels::count(Tunnel& t, uint64_t tunnel::UdpDropCounters::*which) {
  ++(t.drops.*which);
  ++(total_.*which);
}

bool UdpTunnels::bind(Tunnel& t, uint16_t port, std::string* error) {
  // No SO_REUSEADDR: on Linux it would let two UDP sockets share the port.
  boost::system::error_code ec;
  const udp::endpoint ep(options_.listen_address, port);
  t.socket.open(ep.protocol(), ec);
  if (!ec) t.socket.bind(ep, ec);
  if (!ec) t.socket.non_blocking(true, ec);
  if (ec) {
    boost::system::error_code ignored;
    t.socket.close(ignored);
    *error = ec.message();
    return false;
  }
  t.port = port;
  return true;
}

UdpPublishResult UdpTunnels::publish(const UdpPublishRequest& request) {
  UdpPublishResult r;
  const auto key = std::make_pair(request.session, request.tunnel_id);
  if (tunnels_.count(key) != 0) {
    r.code = tunnel::refusal::kDuplicateId;
    r.message = "tunnel id " + std::to_string(request.tunnel_id) + " has a port";
    return r;
  }
  auto t = std::make_shared<Tunnel>(io_, request, options_.flows);
  const PortPick pick =
      ports_->take(request.remote_port, request.private_only,
                   [&](uint16_t port, std::string* error) { return bind(*t, port, error); });
  if (!pick.ok) {
    r.code = pick.code;
    r.message = pick.message;
    return r;
  }
  tunnels_[key] = t;
  r.ok = true;
  if (t->port == 0) {
    r.url = "udp://" + request.hostname;
  } else {
    r.url = "udp://" + options_.public_host + ":" + std::to_string(t->port);
    receive(t);
  }
  spdlog::info("udp {}: published {}", request.hostname, r.url);
  arm_sweep();
  return r;
}

void UdpTunnels::unpublish(uint64_t session, uint32_t tunnel_id) {
  auto it = tunnels_.find({session, tunnel_id});
  if (it == tunnels_.end()) return;
  auto t = it->second;
  tunnels_.erase(it);
  if (t->port != 0) ports_->give_back(t->port);
  t->closed = true;
  boost::system::error_code ec;
  t->socket.close(ec);
  spdlog::info("udp {}: unpublished ({} flow(s) open; dropped: {})", t->request.hostname, t->flows.size(),
               t->drops.describe());
  for (const auto& [flow, client] : std::exchange(t->clients, {}))
    ending_[{session, tunnel_id, flow}] = client;
  tell_ended("the tunnel " + t->request.hostname + " ended");
}

// Tells the clients in ending_ their flow ended, one at a time: each may call back into us, even close
// another one's flow (close_client_flow takes it out of ending_, so it is not told).
void UdpTunnels::tell_ended(const std::string& why) {
  while (!ending_.empty()) {
    UdpFlowClient* client = ending_.begin()->second;
    ending_.erase(ending_.begin());
    client->on_udp_flow_end(why);
  }
}

// Waits for the tunnel's socket to be readable, then reads what is queued into the one buffer every
// tunnel shares (a pending read per tunnel would hold 64 KiB each).
void UdpTunnels::receive(const std::shared_ptr<Tunnel>& t) {
  t->socket.async_wait(udp::socket::wait_read, [this, alive = std::weak_ptr<int>(alive_),
                                                t](boost::system::error_code ec) {
    if (alive.expired() || t->closed) return;
    if (ec == asio::error::operation_aborted) return;
    udp::endpoint from;
    for (size_t i = 0; i < kMaxPacketsPerWake && !t->closed; ++i) {
      const size_t n = t->socket.receive_from(asio::buffer(buffer_), from, 0, ec);
      // would_block: nothing more queued; another error (an ICMP report, ...) does not end the tunnel.
      if (ec) break;
      on_client_packet(*t, std::span<const uint8_t>(buffer_.data(), n), from);
    }
    if (!t->closed) receive(t);
  });
}

void UdpTunnels::on_client_packet(Tunnel& t, std::span<const uint8_t> payload, const udp::endpoint& from) {
  const auto now = std::chrono::steady_clock::now();
  const std::string key = endpoint_key(from);
  std::optional<uint64_t> flow = t.flows.find(key, now);
  if (!flow) {
    if (t.flows.full()) {
      if (t.drops.flow_cap == 0)
        spdlog::info("udp {}: flow cap of {} reached: packets of new clients are dropped", t.request.hostname,
                     t.flows.options().max_flows);
      return count(t, &tunnel::UdpDropCounters::flow_cap);
    }
    flow = tunnel::udp_flow_id(tunnel::FlowOpener::kEdge, flows_opened_++);
    if (!flow || !t.flows.add(*flow, key, now)) return count(t, &tunnel::UdpDropCounters::flow_cap);
    spdlog::debug("udp {}: flow {} opened for {}:{}", t.request.hostname, *flow, from.address().to_string(),
                  from.port());
  }
  UdpFlowLink* link = link_(t.request.session);
  const size_t size = tunnel::udp_datagram_overhead(*flow, t.request.tunnel_id) + payload.size();
  if (link == nullptr) return count(t, &tunnel::UdpDropCounters::queue_full);
  if (size > link->max_datagram_size()) return count(t, &tunnel::UdpDropCounters::too_big);
  if (!link->send_datagram(tunnel::encode_udp_datagram(*flow, t.request.tunnel_id, payload)))
    count(t, &tunnel::UdpDropCounters::queue_full);
}

void UdpTunnels::on_agent_datagram(uint64_t session, const tunnel::UdpDatagram& d) {
  auto it = tunnels_.find({session, d.tunnel_id});
  if (it == tunnels_.end()) {
    ++total_.unknown_flow;
    return;
  }
  Tunnel& t = *it->second;
  const std::string* key = t.flows.key_of(d.flow_id);
  if (key == nullptr) return count(t, &tunnel::UdpDropCounters::unknown_flow);
  t.flows.touch(d.flow_id, std::chrono::steady_clock::now());
  if (auto c = t.clients.find(d.flow_id); c != t.clients.end()) return c->second->on_udp_packet(d.payload);
  boost::system::error_code ec;
  t.socket.send_to(asio::buffer(d.payload.data(), d.payload.size()), endpoint_of_key(*key), 0, ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again || ec == asio::error::no_buffer_space)
    count(t, &tunnel::UdpDropCounters::queue_full);
}

void UdpTunnels::arm_sweep() {
  if (sweep_armed_ || tunnels_.empty()) return;
  sweep_armed_ = true;
  // Often enough that a flow outlives its idle timeout by at most a quarter of it (and 1 s).
  const auto period =
      std::min<std::chrono::milliseconds>(std::chrono::seconds(1), options_.flows.idle_timeout / 4);
  sweep_timer_.expires_after(std::max(period, std::chrono::milliseconds(10)));
  sweep_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
    if (ec || alive.expired()) return;
    sweep_armed_ = false;
    sweep();
    arm_sweep();
  });
}

void UdpTunnels::sweep() {
  const auto now = std::chrono::steady_clock::now();
  for (auto& [key, t] : tunnels_) {
    const auto gone = t->flows.expire(now);
    for (const uint64_t flow : gone) {
      if (auto c = t->clients.find(flow); c != t->clients.end()) {
        ending_[{key.first, key.second, flow}] = c->second;  // told once the sweep is done
        t->clients.erase(c);
      }
    }
    if (!gone.empty())
      spdlog::info("udp {}: {} idle flow(s) expired, {} open", t->request.hostname, gone.size(),
                   t->flows.size());
    if (t->drops.total() != t->logged_drops) {
      t->logged_drops = t->drops.total();
      spdlog::info("udp {}: dropped so far: {}", t->request.hostname, t->drops.describe());
    }
  }
  tell_ended("idle for the tunnel's idle timeout");
}

// --- clients that are not socket addresses --------------------------------------------------------

UdpTunnels::ClientOpen UdpTunnels::open_client_flow(uint64_t session, uint32_t tunnel_id,
                                                    UdpFlowClient* client, UdpClientFlow* out) {
  auto it = tunnels_.find({session, tunnel_id});
  if (it == tunnels_.end() || link_(session) == nullptr) return ClientOpen::kNoTunnel;
  Tunnel& t = *it->second;
  const auto flow =
      t.flows.full() ? std::nullopt : tunnel::udp_flow_id(tunnel::FlowOpener::kEdge, flows_opened_++);
  if (!flow || !t.flows.add(*flow, {}, std::chrono::steady_clock::now())) {
    if (t.drops.flow_cap == 0)
      spdlog::info("udp {}: flow cap of {} reached: new clients are dropped", t.request.hostname,
                   t.flows.options().max_flows);
    count(t, &tunnel::UdpDropCounters::flow_cap);
    return ClientOpen::kFlowCap;
  }
  t.clients[*flow] = client;
  *out = UdpClientFlow{session, tunnel_id, *flow};
  spdlog::debug("udp {}: flow {} opened for a client that is no socket", t.request.hostname, *flow);
  return ClientOpen::kOpened;
}

UdpTunnels::ClientSend UdpTunnels::send_client_packet(const UdpClientFlow& f,
                                                      std::span<const uint8_t> payload) {
  auto it = tunnels_.find({f.session, f.tunnel_id});
  if (it == tunnels_.end() || it->second->clients.count(f.flow_id) == 0) return ClientSend::kGone;
  Tunnel& t = *it->second;
  t.flows.touch(f.flow_id, std::chrono::steady_clock::now());
  UdpFlowLink* link = link_(f.session);
  if (link == nullptr) {
    count(t, &tunnel::UdpDropCounters::queue_full);
    return ClientSend::kNoRoom;
  }
  if (tunnel::udp_datagram_overhead(f.flow_id, f.tunnel_id) + payload.size() > link->max_datagram_size()) {
    count(t, &tunnel::UdpDropCounters::too_big);
    return ClientSend::kTooBig;
  }
  if (!link->send_datagram(tunnel::encode_udp_datagram(f.flow_id, f.tunnel_id, payload))) {
    count(t, &tunnel::UdpDropCounters::queue_full);
    return ClientSend::kNoRoom;
  }
  return ClientSend::kSent;
}

void UdpTunnels::close_client_flow(const UdpClientFlow& f) {
  ending_.erase({f.session, f.tunnel_id, f.flow_id});
  auto it = tunnels_.find({f.session, f.tunnel_id});
  if (it == tunnels_.end() || it->second->clients.erase(f.flow_id) == 0) return;
  it->second->flows.remove(f.flow_id);
}

size_t UdpTunnels::client_payload_limit(const UdpClientFlow& f) const {
  auto it = tunnels_.find({f.session, f.tunnel_id});
  if (it == tunnels_.end() || it->second->clients.count(f.flow_id) == 0) return 0;
  const UdpFlowLink* link = link_(f.session);
  const size_t overhead = tunnel::udp_datagram_overhead(f.flow_id, f.tunnel_id);
  const size_t max = link == nullptr ? 0 : link->max_datagram_size();
  return max > overhead ? max - overhead : 0;
}

size_t UdpTunnels::client_flow_count() const {
  size_t n = 0;
  for (const auto& [key, t] : tunnels_) n += t->clients.size();
  return n;
}

}  // namespace wtmesh::edge
