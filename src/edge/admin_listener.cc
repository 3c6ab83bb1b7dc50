#include "edge/admin_listener.h"

#include <spdlog/spdlog.h>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace wtmesh::edge {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

AdminReply admin_reply(std::string_view method, std::string_view target, const AdminSource& source) {
  const std::string_view path = target.substr(0, target.find('?'));
  AdminReply r;
  if (path != "/metrics" && path != "/ready") {
    r.status = 404;
    r.body = "not found: the admin listener serves GET /metrics and GET /ready\n";
    return r;
  }
  if (method != "GET") {
    r.status = 405;
    r.allow = "GET";
    r.body = "method not allowed: only GET\n";
    return r;
  }
  if (path == "/ready") {
    const bool ready = source.ready && source.ready();
    r.status = ready ? 200 : 503;
    r.body = ready ? "ready\n" : "not ready\n";
    return r;
  }
  r.status = 200;
  r.content_type = std::string(kMetricsContentType);
  r.body = source.metrics ? source.metrics() : std::string();
  return r;
}

class AdminListener::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(AdminListener& owner, tcp::socket socket) : owner_(&owner), stream_(std::move(socket)) {
    parser_.header_limit(kMaxRequestHead);
  }

  void start() {
    stream_.expires_after(kTimeout);
    // The head only: no admin endpoint takes a body, and one is refused before any of it is parsed
    // (Beast 1.83 asserts on an empty chunked body that comes in pieces: common/beast_chunked.h).
    http::async_read_header(stream_, buffer_, parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void detach() {
    owner_ = nullptr;
    beast::error_code ec;
    stream_.socket().close(ec);
  }

 private:
  void on_read(beast::error_code ec) {
    if (owner_ == nullptr) return;
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      return reply(AdminReply{431, "text/plain; charset=utf-8", "request head too large\n", ""});
    }
    if (ec && ec.category() == http::make_error_code(http::error::bad_target).category()) {
      return reply(AdminReply{400, "text/plain; charset=utf-8", "bad request\n", ""});
    }
    if (ec) return done();  // timeout, or the client left
    if (!parser_.is_done()) {  // a body follows (Content-Length > 0 or chunked)
      return reply(AdminReply{413, "text/plain; charset=utf-8", "a request body is not accepted here\n", ""});
    }
    const auto& req = parser_.get();
    reply(
        admin_reply(std::string_view(req.method_string()), std::string_view(req.target()), owner_->source_));
  }

  void reply(const AdminReply& r) {
    res_.result(static_cast<unsigned>(r.status));
    res_.version(11);
    res_.set(http::field::content_type, r.content_type);
    res_.set(http::field::cache_control, "no-store");
    if (!r.allow.empty()) res_.set(http::field::allow, r.allow);
    res_.body() = r.body;
    res_.keep_alive(false);
    res_.prepare_payload();
    stream_.expires_after(kTimeout);
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code, size_t) {
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      self->done();
    });
  }

  void done() {
    beast::error_code ec;
    stream_.socket().close(ec);
    if (owner_ == nullptr) return;
    AdminListener* owner = std::exchange(owner_, nullptr);
    owner->conns_.erase(shared_from_this());
  }

  AdminListener* owner_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{kMaxRequestHead};
  http::request_parser<http::empty_body> parser_;
  http::response<http::string_body> res_;
};

AdminListener::AdminListener(asio::io_context& io, const tcp::endpoint& bind, AdminSource source)
    : source_(std::move(source)), acceptor_(io), retry_timer_(io) {
  try {
    acceptor_.open(bind.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(bind);
    acceptor_.listen();
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error("cannot listen for the admin listener on tcp " + bind.address().to_string() +
                             ":" + std::to_string(bind.port()) + ": " + e.code().message());
  }
  local_ = acceptor_.local_endpoint();
  start_accept();
}

AdminListener::~AdminListener() { close(); }

void AdminListener::close() {
  if (closed_) return;
  closed_ = true;
  beast::error_code ec;
  acceptor_.close(ec);
  retry_timer_.cancel();
  auto conns = std::move(conns_);
  conns_.clear();
  for (const auto& c : conns) c->detach();
}

void AdminListener::start_accept() {
  acceptor_.async_accept(
      [this, alive = std::weak_ptr<int>(alive_)](beast::error_code ec, tcp::socket socket) {
        if (alive.expired() || closed_) return;
        if (!ec) {
          if (conns_.size() >= kMaxConnections) {
            beast::error_code ignored;
            socket.close(ignored);  // a scraper gets a reset, never a queue
          } else {
            auto c = std::make_shared<Connection>(*this, std::move(socket));
            conns_.insert(c);
            c->start();
          }
        } else if (ec == asio::error::operation_aborted) {
          return;
        } else {
          // Out of descriptors or the like: try again shortly instead of spinning on the error.
          spdlog::warn("edge: admin accept failed: {}", ec.message());
          retry_timer_.expires_after(std::chrono::milliseconds(100));
          retry_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](beast::error_code e) {
            if (!e && !alive.expired() && !closed_) start_accept();
          });
          return;
        }
        start_accept();
      });
}

}  // namespace wtmesh::edge
