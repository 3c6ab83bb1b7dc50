#include "edge/udp_connects.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include "edge/route_table.h"
#include "edge/udp_route_flow.h"

namespace wtmesh::edge {

namespace asio = boost::asio;
using tunnel::ConnectStatus;

struct UdpConnects::Flow final : RouteEvents, UdpFlowClient {
  Flow(UdpConnects& o, Handle h, std::string n, UdpConnectEvents* e)
      : owner(o), handle(h), name(std::move(n)), events(e) {}
  void on_route(const RouteLookup& route) override {
    if (alive.expired()) return;
    if (auto self = weak_self.lock()) owner.on_route(self, route);
  }
  void on_udp_packet(std::span<const uint8_t> payload) override { events->on_udp_packet(payload); }
  void on_udp_flow_end(std::string_view why) override {
    if (!alive.expired()) owner.ended(handle, why);
  }
  void on_udp_flow_opened(UdpClientFlows::ClientOpen result) override {
    if (alive.expired()) return;
    if (auto self = weak_self.lock()) owner.on_opened(self, result);
  }
  UdpConnects& owner;
  Handle handle;
  std::string name;
  UdpConnectEvents* events;
  std::weak_ptr<int> alive;
  std::weak_ptr<Flow> weak_self;
  uint64_t ticket = 0;                  // a route lookup under way
  std::optional<UdpClientFlow> flow;    // a tunnel's flow, set once asked for
  bool connected = false;               // the tunnel said kOpened
  std::unique_ptr<UdpRouteFlow> route;  // or an edge route's socket, likewise
};

UdpConnects::UdpConnects(asio::io_context& io, TunnelDirectory& directory, UdpClientFlows* tunnels,
                         UdpRoutes routes)
    : io_(io), directory_(directory), tunnels_(tunnels), routes_(std::move(routes)) {
  if (!routes_.targets.empty()) route_buffer_.resize(UdpRouteFlow::kMaxPayload);
}

UdpConnects::~UdpConnects() {
  if (client_drops_.total() != logged_drops_)
    spdlog::info("connect --udp: dropped on the way back: {}", client_drops_.describe());
  for (const auto& [h, f] : flows_) release(*f, /*close_tunnel_flow=*/true);
}

void UdpConnects::release(Flow& f, bool close_tunnel_flow) {
  if (f.ticket != 0) directory_.cancel_route(f.ticket);
  f.ticket = 0;
  if (f.flow && close_tunnel_flow && tunnels_ != nullptr) tunnels_->close_client_flow(*f.flow);
  f.flow.reset();
  if (f.route) {
    f.route.reset();
    if (auto it = route_flows_.find(f.name); it != route_flows_.end() && --it->second == 0)
      route_flows_.erase(it);
  }
}

size_t UdpConnects::route_flow_count() const {
  size_t n = 0;
  for (const auto& [name, count] : route_flows_) n += count;
  return n;
}

size_t UdpConnects::route_flow_count(const std::string& name) const {
  auto it = route_flows_.find(name);
  return it == route_flows_.end() ? 0 : it->second;
}

UdpConnects::Handle UdpConnects::open(std::string_view name, UdpConnectEvents* events) {
  const Handle h = ++last_;
  auto f = std::make_shared<Flow>(*this, h, std::string(name), events);
  f->alive = alive_;
  f->weak_self = f;
  flows_[h] = f;
  // Looked up from a fresh handler: the answer must not come inside open().
  asio::post(io_, [this, alive = std::weak_ptr<int>(alive_), f] {
    if (alive.expired() || flows_.count(f->handle) == 0) return;  // closed meanwhile
    if (auto r = routes_.targets.find(f->name); r != routes_.targets.end()) return open_route(f, r->second);
    if (tunnels_ == nullptr) return refuse(f, ConnectStatus::kUnknown, "this edge has no UDP tunnels");
    f->ticket = directory_.route_of(kUdp, f->name, f.get());  // 0 when answered inline
  });
  return h;
}

void UdpConnects::on_route(const std::shared_ptr<Flow>& f, const RouteLookup& route) {
  f->ticket = 0;
  if (flows_.count(f->handle) == 0) return;
  if (route.kind == RouteLookup::Kind::kUnknown)
    return refuse(f, ConnectStatus::kUnknown, "no udp tunnel is named " + f->name);
  if (route.kind == RouteLookup::Kind::kOffline)
    return refuse(f, ConnectStatus::kOffline, f->name + ": its agent is not connected");
  UdpClientFlow flow;
  const auto result = tunnels_->open_client_flow(route.session, route.tunnel_id, f.get(), &flow);
  if (result == UdpClientFlows::ClientOpen::kOpened || result == UdpClientFlows::ClientOpen::kLater)
    f->flow = flow;
  if (result != UdpClientFlows::ClientOpen::kLater) on_opened(f, result);
}

void UdpConnects::on_opened(const std::shared_ptr<Flow>& f, UdpClientFlows::ClientOpen result) {
  if (flows_.count(f->handle) == 0) return;
  switch (result) {
    case UdpClientFlows::ClientOpen::kNoTunnel:
      f->flow.reset();
      return refuse(f, ConnectStatus::kOffline, f->name + ": its agent is not connected");
    case UdpClientFlows::ClientOpen::kFlowCap:
      f->flow.reset();
      return refuse(f, ConnectStatus::kLimit, f->name + ": the tunnel has as many flows as it may");
    case UdpClientFlows::ClientOpen::kLater:  // not an answer
      return;
    case UdpClientFlows::ClientOpen::kOpened:
      break;
  }
  f->connected = true;
  f->events->on_udp_open(ConnectStatus::kConnected, "");
}

void UdpConnects::open_route(const std::shared_ptr<Flow>& f, const asio::ip::udp::endpoint& target) {
  if (route_flow_count(f->name) >= routes_.flows.max_flows) {
    ++route_refusals_;
    return refuse(f, ConnectStatus::kLimit, f->name + ": the route has as many flows as it may");
  }
  std::string error;
  f->route = UdpRouteFlow::open(io_, target, routes_.flows.idle_timeout, route_buffer_, f.get(), &error);
  if (!f->route) {
    ++route_refusals_;
    return refuse(f, ConnectStatus::kUnreachable, f->name + ": " + error);
  }
  ++route_flows_[f->name];
  f->events->on_udp_open(ConnectStatus::kConnected, "");
}

void UdpConnects::refuse(const std::shared_ptr<Flow>& f, ConnectStatus status, const std::string& message) {
  spdlog::info("connect --udp {}: refused: {}", f->name, message);
  flows_.erase(f->handle);
  f->events->on_udp_open(status, message);
}

void UdpConnects::ended(Handle h, std::string_view why) {
  auto it = flows_.find(h);
  if (it == flows_.end()) return;
  const auto f = it->second;
  flows_.erase(it);
  release(*f, /*close_tunnel_flow=*/false);  // the tunnel ended it; a route's socket goes here
  spdlog::debug("connect --udp {}: flow ended: {}", f->name, why);
  f->events->on_udp_end(why);
}

UdpConnects::Send UdpConnects::send(Handle h, std::span<const uint8_t> payload) {
  auto it = flows_.find(h);
  if (it == flows_.end()) return Send::kNotOpen;
  if (it->second->route) {
    switch (it->second->route->send(payload)) {
      case UdpRouteFlow::Send::kSent:
        return Send::kSent;
      case UdpRouteFlow::Send::kTooBig:
        return Send::kTooBig;
      case UdpRouteFlow::Send::kNoRoom:
        return Send::kNoRoom;
    }
  }
  if (!it->second->flow || !it->second->connected) return Send::kNotOpen;
  switch (tunnels_->send_client_packet(*it->second->flow, payload)) {
    case UdpClientFlows::ClientSend::kSent:
      return Send::kSent;
    case UdpClientFlows::ClientSend::kTooBig:
      return Send::kTooBig;
    case UdpClientFlows::ClientSend::kNoRoom:
      return Send::kNoRoom;
    case UdpClientFlows::ClientSend::kGone:
      break;
  }
  return Send::kNotOpen;
}

size_t UdpConnects::payload_limit(Handle h) const {
  auto it = flows_.find(h);
  if (it == flows_.end()) return 0;
  if (it->second->route) return UdpRouteFlow::kMaxPayload;
  if (!it->second->flow || !it->second->connected) return 0;
  return tunnels_->client_payload_limit(*it->second->flow);
}

void UdpConnects::count_client_drop(uint64_t tunnel::UdpDropCounters::*which) {
  ++(client_drops_.*which);
  const auto now = std::chrono::steady_clock::now();
  if (logged_at_ && now - *logged_at_ < std::chrono::seconds(1)) return;
  logged_at_ = now;
  logged_drops_ = client_drops_.total();
  spdlog::info("connect --udp: dropped on the way back so far: {}", client_drops_.describe());
}

void UdpConnects::close(Handle h) {
  auto it = flows_.find(h);
  if (it == flows_.end()) return;
  const auto f = it->second;
  flows_.erase(it);
  release(*f, /*close_tunnel_flow=*/true);
}

}  // namespace wtmesh::edge
