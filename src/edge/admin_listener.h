// The edge's admin listener (`wtmesh edge --admin-listen ADDR:PORT`, off by default): plain HTTP/1.1
// on its own address for operators and their scrapers, never on a public port. Two routes:
//   GET /metrics  the edge's metrics as Prometheus text format 0.0.4 (edge/metrics.h)
//   GET /ready    200 while the edge serves; 503 before its listeners are up and while it drains
// Any other path is 404, another method on those two 405. One request per connection (the answer
// carries Connection: close). Bounded: a request head over kMaxRequestHead bytes is refused with 431,
// a request with a body with 413, at most kMaxConnections at once (more are closed at accept), and a
// connection has kTimeout to send its request and take the answer.
//
// admin_reply() is the routing, sans-I/O; AdminListener is the Asio + Boost.Beast glue around it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>

namespace wtmesh::edge {

struct AdminSource {
  std::function<bool()> ready;
  std::function<std::string()> metrics;  // the /metrics body
};

struct AdminReply {
  int status = 404;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string allow;  // 405: the Allow header
};

inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// The answer to `method target` (target in origin-form; a query is ignored).
AdminReply admin_reply(std::string_view method, std::string_view target, const AdminSource& source);

class AdminListener {
 public:
  static constexpr size_t kMaxRequestHead = 8 * 1024;
  static constexpr size_t kMaxConnections = 16;
  static constexpr std::chrono::seconds kTimeout{5};

  // Binds and listens; throws std::runtime_error naming the address.
  AdminListener(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& bind, AdminSource source);
  ~AdminListener();
  AdminListener(const AdminListener&) = delete;
  AdminListener& operator=(const AdminListener&) = delete;

  boost::asio::ip::tcp::endpoint local_endpoint() const { return local_; }
  size_t connection_count() const { return conns_.size(); }
  // Stops accepting and closes every connection.
  void close();

 private:
  class Connection;
  void start_accept();

  AdminSource source_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::ip::tcp::endpoint local_;
  boost::asio::steady_timer retry_timer_;  // after a failed accept (e.g. out of descriptors)
  std::set<std::shared_ptr<Connection>> conns_;
  bool closed_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::edge
