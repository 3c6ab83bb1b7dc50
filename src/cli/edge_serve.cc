#include "cli/edge_serve.h"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <iostream>
#include <memory>

#include "edge/admin_listener.h"
#include "edge/edge_workers.h"

namespace wtmesh::cli {

namespace asio = boost::asio;

namespace {

std::string host_text(const asio::ip::address& a) {
  return a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
}

// `first`: the edge alone, or its first worker (every worker listens on the same ports).
void print_edge(edge::EdgeServer& first, const edge::EdgeOptions& opts, unsigned workers,
                std::optional<asio::ip::tcp::endpoint> admin, const EdgePrintout& p) {
  const auto ep = first.local_endpoint();
  const std::string host = host_text(ep.address());
  std::cout << "wtmesh edge listening on udp://" << host << ":" << ep.port() << std::endl;
  std::cout << "  workers: " << workers << (workers == 1 ? " thread" : " threads")
            << " on the same ports (--workers; default: the cores this process may use)" << std::endl;
  std::cout << "  certificate sha256: " << first.certs().sha256_hex << std::endl;
  if (!first.certs().ca_cert.empty())
    std::cout << "  local CA: " << first.certs().ca_cert.string() << std::endl;
  if (p.echo)
    std::cout << "  echo service: https://" << host << ":" << ep.port() << "/echo (WebTransport)"
              << std::endl;
  std::cout << "  tunnels: https://NAME." << p.domain << ":" << ep.port() << "/ (HTTPS on tcp " << host << ":"
            << ep.port() << ")" << std::endl;
  const std::string& public_host = p.public_host.empty() ? host : p.public_host;
  if (first.tcp_tunnels() != nullptr)
    std::cout << "  tcp tunnels: tcp://" << public_host << ":" << p.tcp_ports << std::endl;
  for (const auto& r : opts.routes) {
    std::cout << "  route: " << r.name << "  ->  " << r.target.address().to_string() << ":" << r.target.port()
              << std::endl;
  }
  for (const auto& r : opts.udp_routes) {
    std::cout << "  udp route: " << r.name << "  ->  udp://" << r.target.address().to_string() << ":"
              << r.target.port() << std::endl;
  }
  if (first.udp_tunnels() != nullptr)
    std::cout << "  udp tunnels: udp://" << public_host << ":" << p.udp_ports << std::endl;
  if (auto http = first.http_endpoint()) {
    std::cout << "  plain HTTP: http://NAME." << p.domain << ":" << http->port() << "/" << std::endl;
  }
  if (admin) {
    std::cout << "  admin: http://" << host_text(admin->address()) << ":" << admin->port()
              << "/metrics and /ready" << std::endl;
  }
}

// The first SIGTERM/SIGINT drains (agents move, requests under way finish, at most the drain's grace);
// a second one, or a zero grace, closes at once. `drain_edge(done)` starts the drain; `done` stops `io`.
class SignalHandler {
 public:
  SignalHandler(asio::io_context& io, const edge::DrainPlan::Options& drain, std::function<void()> shutdown,
                std::function<void(std::function<void()>)> drain_edge)
      : io_(io),
        signals_(io, SIGINT, SIGTERM),
        drain_(drain),
        shutdown_(std::move(shutdown)),
        drain_edge_(std::move(drain_edge)),
        stop_timer_(io) {
    wait();
  }

 private:
  void wait() {
    signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (!ec) on_signal(sig);
    });
  }
  void on_signal(int sig) {
    if (draining_ || drain_.grace.count() == 0) {
      spdlog::info("edge: signal {} received{}, closing connections", sig, draining_ ? " again" : "");
      shutdown_();
      // Give peers a moment to see the CONNECTION_CLOSE, then stop regardless.
      stop_timer_.expires_after(std::chrono::milliseconds(500));
      stop_timer_.async_wait([this](const boost::system::error_code&) { io_.stop(); });
      return;
    }
    draining_ = true;
    spdlog::info("edge: signal {} received, draining for at most {} ms (again to close at once)", sig,
                 drain_.grace.count());
    drain_edge_([&io = io_] { asio::post(io, [&io] { io.stop(); }); });
    wait();
  }

  asio::io_context& io_;
  asio::signal_set signals_;
  edge::DrainPlan::Options drain_;
  std::function<void()> shutdown_;
  std::function<void(std::function<void()>)> drain_edge_;
  asio::steady_timer stop_timer_;
  bool draining_ = false;
};

}  // namespace

int serve_edge(const edge::EdgeOptions& opts, unsigned workers, const edge::DrainPlan::Options& drain,
               const EdgePrintout& print) {
  asio::io_context io;
  if (workers <= 1) {
    edge::EdgeServer server(io, opts);
    print_edge(server, opts, 1, server.admin_endpoint(), print);
    SignalHandler signals(
        io, drain, [&server] { server.shutdown(); },
        [&server, drain](std::function<void()> done) { server.drain(drain, std::move(done)); });
    io.run();
    return 0;
  }
  const auto admin_at = opts.admin_listen;
  edge::EdgeWorkers edge(opts, workers);
  std::unique_ptr<edge::AdminListener> admin;  // on this thread: it asks every worker
  if (admin_at) {
    admin = std::make_unique<edge::AdminListener>(
        io, *admin_at,
        edge::AdminSource{[&edge] { return edge.ready(); }, [&edge] { return edge.metrics_text(); }});
  }
  print_edge(edge.worker(0), opts, workers, admin ? std::optional(admin->local_endpoint()) : std::nullopt,
             print);
  edge.start();
  SignalHandler signals(
      io, drain, [&edge] { edge.shutdown(); },
      [&edge, drain](std::function<void()> done) { edge.drain(drain, std::move(done)); });
  io.run();
  return 0;  // the workers stop and join as `edge` goes
}

}  // namespace wtmesh::cli
