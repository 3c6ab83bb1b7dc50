// An edge on several cores (`wtmesh edge --workers N`, issue 15 item 3; docs/architecture.md,
// "Workers"): N EdgeServers, each on its own thread and io_context, on the same UDP and TCP ports
// (SO_REUSEPORT: the kernel spreads QUIC flows and TCP connections over them by a hash of the
// client's address). Nothing of a connection crosses threads except through three narrow seams:
//   - QUIC packets that reach another worker's socket (migration, NAT rebinding) are handed to the
//     worker whose connection ids they carry (quic/endpoint_group.h);
//   - a public exchange for a tunnel whose agent session is on another worker relays its request
//     stream there (edge/worker_directory.h), all workers sharing one route table
//     (edge/shared_route_table.h);
//   - a new public TCP connection is handed, before TLS, to the worker whose agent holds the name its
//     first bytes ask for (edge/listener_steering.h), so most requests need not cross at all.
// Shared as well: the session-token replay cache, the visitor challenge's key, the QUIC session
// tickets and 0-RTT replay store, the public TLS ticket key, one leaf per tunnel name, the per-address
// limits (QUIC connections and handshakes, public connections, failed tokens and visitor credentials),
// a token subject's sessions and tunnels, the edge-wide totals (public connections per port, QUIC
// connections, tunnel sessions), and the agents that came back to the draining edge. Per
// worker: the agent sessions that landed on it with their TCP and UDP tunnels' ports (bound by the
// owning worker; the kernel keeps them unique) and the public connections. Everything reaches a
// tunnel on another worker through the WorkerDirectory: public exchanges, mesh and /connect streams,
// relayed WebTransport sessions and UDP flows to a name.
//
// /metrics sums every worker's series (counters and additive gauges add up; an agent's gauges exist
// on its worker only); /ready is every worker's. A drain runs on every worker at once and completes
// when the last one is done.
//
// Threads: construct, start(), then the public methods from one thread that is no worker's (the
// CLI's main thread); they post to the workers and wait for their answers.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "edge/edge_server.h"
#include "edge/jti_cache.h"
#include "edge/shared_route_table.h"
#include "quic/endpoint_group.h"

namespace wtmesh::edge {

// The sum of several Prometheus texts: samples with the same name and labels are added, HELP and TYPE
// kept once, families in the order they first appear.
std::string merge_metrics_texts(const std::vector<std::string>& texts);

class EdgeWorkers {
 public:
  static constexpr unsigned kMaxWorkers = 64;
  // How long metrics_text() and ready() wait for a worker's answer.
  static constexpr std::chrono::seconds kAskTimeout{2};

  // Builds `count` workers (2..kMaxWorkers) and binds their sockets; throws std::runtime_error with a
  // sentence, as EdgeServer does. `options.admin_listen` is not opened here (see admin_source()).
  EdgeWorkers(EdgeOptions options, unsigned count);
  // Stops the workers (if running) and joins them.
  ~EdgeWorkers();
  EdgeWorkers(const EdgeWorkers&) = delete;
  EdgeWorkers& operator=(const EdgeWorkers&) = delete;

  void start();
  // Waits until every worker's loop has returned (after shutdown or stop()).
  void join();
  // Stops every loop now.
  void stop();

  unsigned size() const { return static_cast<unsigned>(workers_.size()); }
  EdgeServer& worker(unsigned i) { return *workers_[i]->server; }
  boost::asio::io_context& io(unsigned i) { return workers_[i]->io; }
  // Runs `fn` on worker `i`'s thread and waits for its result (or runs it here when not started).
  template <typename Fn>
  auto on_worker(unsigned i, Fn fn) -> decltype(fn());

  boost::asio::ip::udp::endpoint local_endpoint() const { return workers_[0]->server->local_endpoint(); }
  std::optional<boost::asio::ip::tcp::endpoint> https_endpoint() const {
    return workers_[0]->server->https_endpoint();
  }
  std::optional<boost::asio::ip::tcp::endpoint> http_endpoint() const {
    return workers_[0]->server->http_endpoint();
  }
  const quic::CertFiles& certs() const { return workers_[0]->server->certs(); }

  bool ready();
  std::string metrics_text();
  // Every worker drains (EdgeServer::drain); `done` runs once the last has, on that worker's thread.
  void drain(DrainPlan::Options options, std::function<void()> done);
  void shutdown();

 private:
  struct Worker {
    boost::asio::io_context io{1};
    std::unique_ptr<EdgeServer> server;
    std::thread thread;
  };

  SharedRouteTable routes_;
  std::unique_ptr<quic::EndpointGroup> quic_;
  std::vector<std::unique_ptr<Worker>> workers_;  // destroyed first: their servers use the above
  bool started_ = false;
};

template <typename Fn>
auto EdgeWorkers::on_worker(unsigned i, Fn fn) -> decltype(fn()) {
  if (!started_) return fn();
  std::packaged_task<decltype(fn())()> task(std::move(fn));
  auto result = task.get_future();
  boost::asio::post(workers_[i]->io, [&task] { task(); });
  return result.get();
}

}  // namespace wtmesh::edge
