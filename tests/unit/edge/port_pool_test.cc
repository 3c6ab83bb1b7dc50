// The port rules of tcp and udp tunnels (edge/port_pool.h, docs/protocol.md §3.1): the range, an asked
// port, private, held ports and ports in use on the host (the bind function says).
#include "edge/port_pool.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

#include "tunnel/control.h"

namespace wtmesh::edge {
namespace {

TEST(PortRange, Parses) {
  EXPECT_EQ(parse_port_range("21000-21999"), (std::pair<uint16_t, uint16_t>{21000, 21999}));
  EXPECT_EQ(parse_port_range("5-5"), (std::pair<uint16_t, uint16_t>{5, 5}));
  EXPECT_FALSE(parse_port_range("0-10"));
  EXPECT_FALSE(parse_port_range("10-9"));
  EXPECT_FALSE(parse_port_range("1-65536"));
  EXPECT_FALSE(parse_port_range("none"));
}

TEST(UrlHost, PublicHostOrListenAddressWithIpv6Bracketed) {
  EXPECT_EQ(url_host("", "127.0.0.1"), "127.0.0.1");
  EXPECT_EQ(url_host("", "::1"), "[::1]");
  EXPECT_EQ(url_host("tunnels.example.test", "::"), "tunnels.example.test");
  EXPECT_EQ(url_host("2001:db8::1", "0.0.0.0"), "[2001:db8::1]") << "a v6 literal even on a v4 listener";
  EXPECT_EQ(url_host("[2001:db8::1]", "::"), "[2001:db8::1]");
}

TEST(PortPool, RulesOfAnAskedPort) {
  PortPool pool(21000, 21002, "UDP");
  std::set<uint16_t> in_use = {21001};  // held by another process
  auto bind = [&](uint16_t p, std::string* error) {
    if (in_use.count(p) != 0) {
      *error = "Address already in use";
      return false;
    }
    return true;
  };
  PortPick p = pool.take(21000, false, bind);
  EXPECT_TRUE(p.ok);
  EXPECT_EQ(p.port, 21000);
  p = pool.take(21000, false, bind);
  EXPECT_EQ(p.code, tunnel::refusal::kPortTaken);
  EXPECT_EQ(p.message, "port 21000 is held by another tunnel");
  p = pool.take(21001, false, bind);
  EXPECT_EQ(p.code, tunnel::refusal::kPortTaken);
  EXPECT_EQ(p.message, "port 21001 is in use on the edge's host (Address already in use)");
  p = pool.take(53, false, bind);
  EXPECT_EQ(p.code, tunnel::refusal::kInvalid);
  EXPECT_EQ(p.message, "port 53 is outside the edge's UDP port range 21000-21002");
  EXPECT_EQ(pool.take(tunnel::Register::kBadPort, false, bind).code, tunnel::refusal::kInvalid);
  EXPECT_EQ(pool.take(21002, true, bind).code, tunnel::refusal::kInvalid) << "private with a port";
  p = pool.take(0, true, bind);
  EXPECT_TRUE(p.ok);
  EXPECT_EQ(p.port, 0) << "private: no port";
  // Any port: the one free one (21001 is in use, 21000 held), then none left.
  p = pool.take(0, false, bind);
  EXPECT_EQ(p.port, 21002);
  p = pool.take(0, false, bind);
  EXPECT_EQ(p.code, tunnel::refusal::kLimit);
  EXPECT_EQ(p.message, "no free port in the edge's UDP port range 21000-21002");
  pool.give_back(21000);
  EXPECT_EQ(pool.take(0, false, bind).port, 21000);
}

// The workers of an edge share one pool: they take ports on their own threads, never the same one.
TEST(PortPool, WorkersSharingAPoolNeverTakeTheSamePort) {
  PortPool pool(30000, 30099, "TCP");
  auto bind = [](uint16_t, std::string*) { return true; };
  std::vector<std::vector<uint16_t>> taken(4);
  std::vector<std::thread> workers;
  for (auto& mine : taken) {
    workers.emplace_back([&pool, &mine, &bind] {
      for (int i = 0; i < 25; ++i) mine.push_back(pool.take(0, false, bind).port);
    });
  }
  for (auto& t : workers) t.join();
  std::set<uint16_t> all;
  for (const auto& mine : taken) all.insert(mine.begin(), mine.end());
  EXPECT_EQ(all.size(), 100u);
  EXPECT_EQ(all.count(0), 0u);
  EXPECT_EQ(pool.take(30042, false, bind).message, "port 30042 is held by another tunnel");
}

}  // namespace
}  // namespace wtmesh::edge
