// A small HTTP/1.1 server on 127.0.0.1 for the agent's tests: the "local service" a tunnel exposes.
// Blocking Beast on its own threads (one per connection), so it runs beside the test's io_context;
// the destructor shuts every socket down and joins. Paths:
//   /hello              200, "hello" (Content-Length, keep-alive)
//   /headers            200, the request head as received (to check Host and forwarding headers)
//   /echo               streams the request body back, chunked, piece by piece as it arrives
//   /count              reads the body, answers "received N"
//   /download?bytes=N   N bytes of a pattern (Content-Length), written 64 KiB at a time
//   /sse?n=K&gap_ms=M   K events "data: i\n\n", one chunk every M ms
//   /close              200 with Connection: close, then closes
//   /drop               closes without answering
//   /cut                promises 100 bytes, sends 10, then resets the connection
//   /reject             413 at once, without reading the body
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <chrono>
#include <list>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

namespace wtmesh::testing {

class LocalHttpServer {
 public:
  using tcp = boost::asio::ip::tcp;

  LocalHttpServer() : acceptor_(io_, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }
  ~LocalHttpServer() {
    stopping_ = true;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);  // wakes the blocking accept
    accept_thread_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& c : conns_) {
        if (!c->closed) ::shutdown(c->socket.native_handle(), SHUT_RDWR);
      }
    }
    for (auto& c : conns_) c->thread.join();
  }
  uint16_t port() const { return port_; }
  int connections() const { return connections_; }
  int requests() const { return requests_; }
  int open_connections() const { return open_; }
  uint64_t body_bytes_received() const { return body_bytes_; }
  uint64_t bytes_sent() const { return sent_; }
  std::string last_head() {
    std::lock_guard<std::mutex> lock(head_mu_);
    return last_head_;
  }

 private:
  struct Conn {
    explicit Conn(boost::asio::io_context& io) : socket(io) {}
    tcp::socket socket;
    std::thread thread;
    bool closed = false;  // under mu_: the fd is gone, never shut it down again
  };

  void accept_loop() {
    while (!stopping_) {
      auto c = std::make_unique<Conn>(io_);
      boost::system::error_code ec;
      acceptor_.accept(c->socket, ec);
      if (ec || stopping_) return;
      ++connections_;
      ++open_;
      std::lock_guard<std::mutex> lock(mu_);
      Conn* raw = c.get();
      conns_.push_back(std::move(c));
      raw->thread = std::thread([this, raw] {
        serve(raw->socket);
        std::lock_guard<std::mutex> lock(mu_);
        boost::system::error_code ignored;
        raw->socket.close(ignored);
        raw->closed = true;
        --open_;
      });
    }
  }

  static uint64_t query_number(const std::string& target, const std::string& key, uint64_t dflt) {
    const auto at = target.find(key + "=");
    if (at == std::string::npos) return dflt;
    return std::stoull(target.substr(at + key.size() + 1));
  }

  bool send(tcp::socket& s, const std::string& bytes) {
    boost::system::error_code ec;
    boost::asio::write(s, boost::asio::buffer(bytes), ec);
    sent_ += bytes.size();
    return !ec;
  }
  static std::string chunk(const std::string& data) {
    char hex[20];
    std::snprintf(hex, sizeof(hex), "%zx\r\n", data.size());
    return hex + data + "\r\n";
  }

  void serve(tcp::socket& s) {
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buf;
    for (;;) {
      http::request_parser<http::buffer_body> p;
      p.body_limit(boost::none);
      boost::system::error_code ec;
      http::read_header(s, buf, p, ec);
      if (ec) break;
      ++requests_;
      const std::string target(p.get().target());
      {
        std::ostringstream head;
        head << p.get().method_string() << " " << p.get().target() << " HTTP/1.1\r\n";
        for (const auto& f : p.get()) head << f.name_string() << ": " << f.value() << "\r\n";
        std::lock_guard<std::mutex> lock(head_mu_);
        last_head_ = head.str();
      }
      const bool echo = target == "/echo";
      if (target == "/reject") {
        send(s, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n");
        break;
      }
      if (echo) send(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
      uint64_t received = 0;
      char tmp[64 * 1024];
      while (!p.is_done()) {
        p.get().body().data = tmp;
        p.get().body().size = sizeof(tmp);
        http::read_some(s, buf, p, ec);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) return;
        const size_t n = sizeof(tmp) - p.get().body().size;
        received += n;
        body_bytes_ += n;
        if (echo && n > 0 && !send(s, chunk(std::string(tmp, n)))) return;
      }
      if (echo) {
        if (!send(s, "0\r\n\r\n")) return;
        continue;
      }
      if (target == "/hello") {
        if (!send(s, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")) return;
      } else if (target == "/headers") {
        const std::string h = last_head();
        if (!send(s, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(h.size()) + "\r\n\r\n" + h))
          return;
      } else if (target == "/count") {
        const std::string b = "received " + std::to_string(received);
        if (!send(s, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(b.size()) + "\r\n\r\n" + b))
          return;
      } else if (target.rfind("/download", 0) == 0) {
        uint64_t left = query_number(target, "bytes", 1024);
        if (!send(s, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                         std::to_string(left) + "\r\n\r\n")) {
          return;
        }
        std::string piece(64 * 1024, '\0');
        for (size_t i = 0; i < piece.size(); ++i) piece[i] = static_cast<char>('a' + i % 26);
        while (left > 0) {
          const size_t n = static_cast<size_t>(std::min<uint64_t>(left, piece.size()));
          if (!send(s, piece.substr(0, n))) return;
          left -= n;
        }
      } else if (target.rfind("/sse", 0) == 0) {
        const uint64_t n = query_number(target, "n", 3), gap = query_number(target, "gap_ms", 100);
        if (!send(s,
                  "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"))
          return;
        for (uint64_t i = 0; i < n; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(gap));
          if (stopping_ || !send(s, chunk("data: " + std::to_string(i) + "\n\n"))) return;
        }
        if (!send(s, "0\r\n\r\n")) return;
      } else if (target == "/close") {
        send(s, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye");
        break;
      } else if (target == "/drop") {
        break;
      } else if (target == "/cut") {
        send(s, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
        s.set_option(boost::asio::socket_base::linger(true, 0), ec);  // close with RST
        break;
      } else {
        if (!send(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")) return;
      }
      if (!p.keep_alive()) break;
    }
  }

  boost::asio::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::mutex mu_;  // conns_ and their `closed`
  std::mutex head_mu_;
  std::list<std::unique_ptr<Conn>> conns_;
  std::string last_head_;
  std::atomic<int> connections_{0}, requests_{0}, open_{0};
  std::atomic<uint64_t> body_bytes_{0}, sent_{0};
};

}  // namespace wtmesh::testing
