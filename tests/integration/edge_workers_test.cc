// edge::EdgeWorkers on 127.0.0.1 (issue 15 item 3): the workers take the same UDP, HTTPS and HTTP
// ports, answer /metrics as one edge, are ready together, drain together; and merge_metrics_texts()
// adds the workers' series. (Requests across workers, with real peers: tests/peers/edge_workers.sh;
// NAT rebinding onto another worker's socket: tests/net/nat_rebinding_workers.sh.)
#include "edge/edge_workers.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "../support/temp_dir.h"

namespace wtmesh::edge {
namespace {

namespace asio = boost::asio;

TEST(MergeMetricsTexts, AddsTheSameSeriesAndKeepsTheRest) {
  const std::string a =
      "# HELP wtmesh_agent_sessions Agent tunnel sessions open now.\n"
      "# TYPE wtmesh_agent_sessions gauge\n"
      "wtmesh_agent_sessions 2\n"
      "# HELP wtmesh_requests_total Requests.\n"
      "# TYPE wtmesh_requests_total counter\n"
      "wtmesh_requests_total{tunnel=\"app\",class=\"2xx\"} 10\n"
      "wtmesh_agent_rtt_seconds{agent=\"a#1\"} 0.0015\n";
  const std::string b =
      "# HELP wtmesh_agent_sessions Agent tunnel sessions open now.\n"
      "# TYPE wtmesh_agent_sessions gauge\n"
      "wtmesh_agent_sessions 1\n"
      "# HELP wtmesh_requests_total Requests.\n"
      "# TYPE wtmesh_requests_total counter\n"
      "wtmesh_requests_total{tunnel=\"app\",class=\"2xx\"} 5\n"
      "wtmesh_requests_total{tunnel=\"api\",class=\"2xx\"} 7\n";
  const std::string m = merge_metrics_texts({a, b});
  EXPECT_EQ(m,
            "# HELP wtmesh_agent_sessions Agent tunnel sessions open now.\n"
            "# TYPE wtmesh_agent_sessions gauge\n"
            "wtmesh_agent_sessions 3\n"
            "# HELP wtmesh_requests_total Requests.\n"
            "# TYPE wtmesh_requests_total counter\n"
            "wtmesh_requests_total{tunnel=\"app\",class=\"2xx\"} 15\n"
            "wtmesh_requests_total{tunnel=\"api\",class=\"2xx\"} 7\n"
            "wtmesh_agent_rtt_seconds{agent=\"a#1\"} 0.0015\n");
  EXPECT_EQ(merge_metrics_texts({}), "");
}

class EdgeWorkersTest : public ::testing::Test {
 protected:
  EdgeOptions options() {
    EdgeOptions o;
    o.listen = asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
    o.http_listen = asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
    o.state_dir = dir_.path();
    return o;
  }
  test::TempDir dir_{"wtmesh-workers"};
};

TEST_F(EdgeWorkersTest, WorkersShareThePortsAndAnswerAsOneEdge) {
  EdgeWorkers edge(options(), 3);
  ASSERT_EQ(edge.size(), 3u);
  for (unsigned i = 1; i < edge.size(); ++i) {
    EXPECT_EQ(edge.worker(i).local_endpoint(), edge.local_endpoint()) << "worker " << i;
    EXPECT_EQ(edge.worker(i).https_endpoint(), edge.https_endpoint());
    EXPECT_EQ(edge.worker(i).http_endpoint(), edge.http_endpoint());
    EXPECT_NE(edge.worker(i).worker_directory(), nullptr);
  }
  edge.start();
  EXPECT_TRUE(edge.ready());
  const std::string m = edge.metrics_text();
  EXPECT_NE(m.find("\nwtmesh_agent_sessions 0\n"), std::string::npos) << m.substr(0, 2000);
  EXPECT_NE(m.find("\nwtmesh_worker_hops_total 0\n"), std::string::npos);
  const std::string one = edge.on_worker(0, [&] { return edge.worker(0).metrics_text(); });
  EXPECT_EQ(std::count(m.begin(), m.end(), '\n'), std::count(one.begin(), one.end(), '\n'))
      << "one line per series, not one per worker";

  std::atomic<bool> drained{false};
  DrainPlan::Options d;
  d.grace = std::chrono::milliseconds(500);
  d.handoff = std::chrono::milliseconds(0);
  edge.drain(d, [&] { drained = true; });
  for (int i = 0; i < 200 && !drained; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(drained) << "the last worker's drain reports";
  EXPECT_FALSE(edge.ready());
}

TEST_F(EdgeWorkersTest, OneWorkerIsNotAGroup) { EXPECT_THROW(EdgeWorkers(options(), 1), std::runtime_error); }

}  // namespace
}  // namespace wtmesh::edge
