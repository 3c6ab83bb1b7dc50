// Runs a real EdgeServer on its own thread and io_context, as in production (one thread per
// process), for the integration tests that drive it over sockets.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <thread>

#include "edge/edge_server.h"

namespace wtmesh::test {

class EdgeThread {
 public:
  // At destruction the edge shuts down; with a `stop_grace` it gets that long to say goodbye to
  // connected agents (their CLOSE_SESSION, the QUIC close) before its io_context is stopped.
  explicit EdgeThread(edge::EdgeOptions opts, std::chrono::milliseconds stop_grace = {})
      : stop_grace_(stop_grace) {
    server_ = std::make_unique<edge::EdgeServer>(io_, std::move(opts));
    guard_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
  }
  ~EdgeThread() {
    boost::asio::post(io_, [this] {
      server_->shutdown();
      guard_.reset();
    });
    std::future<void> stop;
    if (stop_grace_.count() > 0) {
      stop = std::async(std::launch::async, [this] {
        std::this_thread::sleep_for(stop_grace_);
        io_.stop();
      });
    } else {
      boost::asio::post(io_, [this] { io_.stop(); });
    }
    thread_.join();
    server_.reset();
  }
  EdgeThread(const EdgeThread&) = delete;
  EdgeThread& operator=(const EdgeThread&) = delete;

  edge::EdgeServer& server() { return *server_; }
  // Runs `fn` on the edge's thread and waits for it (the edge is single-threaded by design).
  template <typename Fn>
  auto on_edge(Fn fn) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    boost::asio::post(io_, [&task] { task(); });
    return result.get();
  }
  uint16_t port() const { return server_->local_endpoint().port(); }

 private:
  boost::asio::io_context io_;
  std::chrono::milliseconds stop_grace_;
  std::unique_ptr<edge::EdgeServer> server_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;
  std::thread thread_;
};

}  // namespace wtmesh::test
