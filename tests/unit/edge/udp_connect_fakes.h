// The fakes of the UDP connect tests (udp_connects_test.cc, agent_session_udp_connect_test.cc): a
// serving agent's session as UdpTunnels sees it (its max datagram size, its room, what it was sent),
// and a route directory that answers `udp` lookups from a map, at once or when answer() is called.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "edge/route_table.h"
#include "edge/tunnel_directory.h"
#include "edge/udp_publisher.h"

namespace wtmesh::edge::test {

struct FakeLink final : UdpFlowLink {
  size_t max_datagram_size() const override { return max; }
  bool send_datagram(std::span<const uint8_t> d) override {
    if (sent.size() >= room) return false;
    sent.emplace_back(d.begin(), d.end());
    return true;
  }
  size_t max = 1200;
  size_t room = 1000;
  std::vector<std::vector<uint8_t>> sent;
};

// Answers route_of("udp", ...) from `routes`; with `later`, only when answer() is called.
struct UdpDirectory final : TunnelDirectory {
  uint64_t route(std::string_view, RouteEvents* events) override {
    events->on_route({});
    return 0;
  }
  uint64_t route_of(std::string_view type, std::string_view host, RouteEvents* events) override {
    EXPECT_EQ(type, kUdp);
    if (later) {
      waiting[++last] = {std::string(host), events};
      return last;
    }
    events->on_route(lookup(host));
    return 0;
  }
  void cancel_route(uint64_t ticket) override { waiting.erase(ticket); }
  OpenStatus open_request(const RouteLookup&, std::string_view, RequestStreamEvents*, StreamRef*) override {
    ADD_FAILURE() << "a udp connect opens no stream";
    return OpenStatus::kGone;
  }
  size_t write(const StreamRef&, std::span<const uint8_t>, bool) override { return 0; }
  size_t send_capacity(const StreamRef&) override { return 0; }
  void consume(const StreamRef&, size_t) override {}
  void cancel(const StreamRef&, uint32_t) override {}
  void release(const StreamRef&) override {}

  RouteLookup lookup(std::string_view host) const {
    auto it = routes.find(std::string(host));
    return it == routes.end() ? RouteLookup{} : it->second;
  }
  void answer() {
    for (auto& [ticket, w] : std::exchange(waiting, {})) w.second->on_route(lookup(w.first));
  }
  std::map<std::string, RouteLookup> routes;
  bool later = false;
  uint64_t last = 0;
  std::map<uint64_t, std::pair<std::string, RouteEvents*>> waiting;
};

}  // namespace wtmesh::edge::test
