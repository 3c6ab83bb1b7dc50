// The fixture of edge::WorkerDirectory's tests (worker_directory_test.cc, worker_directory_relay_test.cc):
// two workers' directories over one SharedRouteTable, each in front of a scripted TunnelDirectory
// standing for its TunnelService. The two io_contexts are turned by the test (drive()), so every hop
// between them is seen in order; the threads of a real edge only change when the posts run.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <optional>
#include <string>

#include "edge/shared_route_table.h"
#include "edge/worker_directory.h"
#include "fakes.h"

namespace wtmesh::edge::workers_test {

using test::bytes;
using test::FakeDirectory;
using test::str;

constexpr std::string_view kEdge = "edge-1";

struct Events final : RouteEvents, RequestStreamEvents {
  void on_route(const RouteLookup& r) override { route = r; }
  void on_response_data(std::span<const uint8_t> data, bool f) override {
    response += str(data);
    fin = fin || f;
    if (consume_at_once && dir != nullptr) dir->consume(ref, data.size());
  }
  void on_request_writable() override { ++writable; }
  void on_stream_aborted(std::optional<uint32_t> c, std::string_view why) override {
    aborted = true;
    code = c;
    reason = std::string(why);
  }
  void on_request_stopped(std::optional<uint32_t> c) override { stopped = c; }
  void on_open_refused(OpenStatus s, std::string_view why) override {
    refused = s;
    on_stream_aborted(std::nullopt, why);
  }

  std::optional<RouteLookup> route;
  std::optional<OpenStatus> refused;
  std::string response;
  bool fin = false;
  int writable = 0;
  bool aborted = false;
  std::optional<uint32_t> code, stopped;
  std::string reason;
  bool consume_at_once = false;
  TunnelDirectory* dir = nullptr;
  StreamRef ref;
};

class WorkerDirectoryTest : public ::testing::Test {
 protected:
  WorkerDirectoryTest() {
    env_ = std::make_shared<VisitorEnvironment>();
    for (unsigned i = 0; i < 2; ++i)
      dirs_[i] = std::make_unique<WorkerDirectory>(io_[i], i, std::string(kEdge), fake_[i], table_, env_);
    for (auto& d : dirs_) d->set_workers({dirs_[0].get(), dirs_[1].get()});
  }

  // A tunnel `host` held by a session on worker `w` (its fake answers the route as session 1).
  void hold(const std::string& host, unsigned w) {
    const std::string owner = worker_edge_id(kEdge, w) + "/1";
    const std::string edge_id = worker_edge_id(kEdge, w);
    table_.claim({kHttp, host}, RouteLease{owner, edge_id, std::chrono::seconds(30)}, 7,
                 std::chrono::steady_clock::now(),
                 [](const ClaimReply& r) { ASSERT_EQ(r.result, ClaimResult::kOk); });
    fake_[w].add_route(host);
  }
  // Runs both loops until neither has anything ready.
  void drive() {
    for (int round = 0; round < 100; ++round) {
      size_t n = 0;
      for (auto& io : io_) {
        n += io.poll();
        io.restart();
      }
      if (n == 0) return;
    }
  }
  // A stream from worker 0 to `host` (held on worker 1), opened.
  StreamRef open_remote(const std::string& host, Events& ev) {
    hold(host, 1);
    const uint64_t ticket = dirs_[0]->route(host, &ev);
    EXPECT_NE(ticket, 0u) << "answered by another thread: not inline";
    drive();
    EXPECT_TRUE(ev.route && ev.route->kind == RouteLookup::Kind::kFound);
    StreamRef ref;
    EXPECT_EQ(dirs_[0]->open_request(*ev.route, "203.0.113.9", &ev, &ref),
              TunnelDirectory::OpenStatus::kOpened);
    ev.dir = dirs_[0].get();
    ev.ref = ref;
    return ref;
  }
  FakeDirectory::Stream& far_stream() {
    EXPECT_EQ(fake_[1].streams.size(), 1u);
    return fake_[1].streams.begin()->second;
  }

  std::array<boost::asio::io_context, 2> io_;
  SharedRouteTable table_;
  std::array<FakeDirectory, 2> fake_;
  std::shared_ptr<VisitorEnvironment> env_;
  std::array<std::unique_ptr<WorkerDirectory>, 2> dirs_;
};

}  // namespace wtmesh::edge::workers_test
