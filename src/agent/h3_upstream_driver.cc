#include "agent/h3_upstream_driver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "h3/error_codes.h"

namespace wtmesh::agent {

namespace asio = boost::asio;
using asio::ip::udp;

// The per-connection protocol stack, owned by the quic::Connection (destroyed with it).
struct H3UpstreamConn::Stack final : quic::Connection::AppState {
  Stack(quic::Connection& quic, const H3ClientLimits& limits)
      : h3(quic, h3::Role::kClient, h3_upstream_config(limits.session)), session(h3, limits.session) {}
  h3::Connection h3;
  H3UpstreamSession session;
};

// --- H3UpstreamConn ---------------------------------------------------------------------------------------

H3UpstreamConn::H3UpstreamConn(H3UpstreamClient& client, quic::Connection& quic, const H3ClientLimits& limits)
    : client_(client), client_alive_(client.token()), quic_(&quic) {
  auto stack = std::make_unique<Stack>(quic, limits);
  stack_ = stack.get();
  quic.set_handler(&stack_->h3);
  stack_->h3.set_handler(&stack_->session);
  stack_->session.set_streams_left([q = &quic] { return q->local_bidi_streams_left(); });
  stack_->session.set_on_event([this] { post_dispatch(); });
  quic.set_app_state(std::move(stack));
  // h3 starts itself (control stream, SETTINGS) when the handshake completes.
}

H3UpstreamConn::~H3UpstreamConn() {
  if (stack_ != nullptr) {
    stack_->session.set_on_event(nullptr);
    stack_->h3.set_handler(nullptr);
    stack_->h3.close(h3::kH3NoError, "");
  }
}

H3UpstreamSession& H3UpstreamConn::session() const { return stack_->session; }

std::string H3UpstreamConn::why_failed() const {
  if (stack_ != nullptr && session().failed()) return session().error();
  if (!gone_.empty()) return gone_;
  return "the connection closed";
}

void H3UpstreamConn::drop_stack(std::string why) {
  if (stack_ != nullptr) {
    if (session().failed()) why = session().error();
    stack_->session.set_on_event(nullptr);
    stack_->h3.set_handler(nullptr);
  }
  if (gone_.empty()) gone_ = std::move(why);
  stack_ = nullptr;
  quic_ = nullptr;
}

void H3UpstreamConn::on_removed() {
  drop_stack(quic_ && !quic_->close_reason().empty() ? quic_->close_reason() : "connection closed");
  if (closed_) return;
  closed_ = true;
  // Inside the endpoint's own processing: the rest runs after it returned.
  asio::post(client_.io(), [self = shared_from_this()] {
    if (self->client_alive_.expired()) return;
    self->notify_all();
    self->client_.on_gone(self.get());
  });
}

bool H3UpstreamConn::usable() const { return !closed_ && stack_ != nullptr && session().can_open(); }

void H3UpstreamConn::shutdown_and_close() {
  if (stack_ != nullptr) session().shutdown();
  close();
}

void H3UpstreamConn::close() {
  if (closed_) return;
  closed_ = true;
  auto keep = shared_from_this();
  if (stack_ != nullptr) {
    if (!session().failed()) session().set_error("the upstream connection was closed");
    gone_ = session().error();
    stack_->h3.close(h3::kH3NoError, "");
  }
  notify_all();
  client_.on_gone(this);
}

std::optional<int64_t> H3UpstreamConn::open(const tunnel::HeaderPairs& fields, bool end_stream,
                                            std::string* error) {
  if (stack_ == nullptr || closed_) {
    if (error) *error = why_failed();
    return std::nullopt;
  }
  return session().open(fields, end_stream, error);
}

size_t H3UpstreamConn::send(int64_t id, std::span<const uint8_t> data, bool fin) {
  return stack_ == nullptr ? 0 : session().send(id, data, fin);
}

bool H3UpstreamConn::send_trailers(int64_t id, const tunnel::HeaderPairs& trailers) {
  return stack_ != nullptr && session().send_trailers(id, trailers);
}

std::optional<MuxHead> H3UpstreamConn::take_head(int64_t id) {
  return stack_ == nullptr ? std::nullopt : session().take_head(id);
}

std::vector<MuxHead> H3UpstreamConn::take_interim(int64_t id) {
  return stack_ == nullptr ? std::vector<MuxHead>{} : session().take_interim(id);
}

tunnel::HeaderPairs H3UpstreamConn::take_trailers(int64_t id) {
  return stack_ == nullptr ? tunnel::HeaderPairs{} : session().take_trailers(id);
}

std::span<const uint8_t> H3UpstreamConn::received(int64_t id) const {
  return stack_ == nullptr ? std::span<const uint8_t>{} : session().received(id);
}

void H3UpstreamConn::consume(int64_t id, size_t n) {
  if (stack_ != nullptr) session().consume(id, n);
}

bool H3UpstreamConn::finished(int64_t id) const { return stack_ != nullptr && session().finished(id); }

std::optional<std::string> H3UpstreamConn::failure(int64_t id) const {
  if (stack_ == nullptr) return why_failed();
  return session().failure(id);
}

bool H3UpstreamConn::refused(int64_t id) const {
  bool refused = false;
  if (stack_ != nullptr) session().failure(id, &refused);
  return refused;
}

void H3UpstreamConn::detach(int64_t id, bool cancel) {
  forget_stream(id);
  if (stack_ != nullptr) {
    if (cancel) {
      session().cancel(id);
    } else {
      session().forget(id);
    }
  }
  client_.serve_waiters();
}

void H3UpstreamConn::pump() { post_dispatch(); }

// Events are recorded inside the endpoint's packet processing; streams hear of them afterwards.
void H3UpstreamConn::post_dispatch() {
  if (dispatch_posted_) return;
  dispatch_posted_ = true;
  asio::post(client_.io(), [self = weak_from_this()] {
    if (auto c = self.lock()) c->dispatch();
  });
}

void H3UpstreamConn::dispatch() {
  dispatch_posted_ = false;
  if (stack_ == nullptr) return;  // on_removed told everyone
  auto keep = shared_from_this();
  for (int64_t id : session().take_changed()) {
    auto it = streams_.find(id);
    if (it != streams_.end()) it->second->on_stream_event();
    if (stack_ == nullptr) return;
  }
  if (session().take_connection_changed() && !closed_) {
    if (!announced_ && session().settings_received()) {
      announced_ = true;
      client_.on_ready(this);
    } else {
      client_.serve_waiters();
    }
  }
  if (stack_ != nullptr && session().failed() && !closed_) {
    spdlog::debug("tunnel: HTTP/3 upstream connection to {} ended: {}", client_.name(), session().error());
    close();
  }
}

// --- H3UpstreamClient -------------------------------------------------------------------------------------

H3UpstreamClient::H3UpstreamClient(asio::io_context& io, H3UpstreamTarget target, H3ClientLimits limits)
    : MuxUpstreamClient(io, static_cast<const MuxClientLimits&>(limits), limits.session.max_streams),
      target_(std::move(target)),
      limits_(limits) {
  // Our timer words the 502; ngtcp2's own handshake timeout is only the backstop.
  limits_.transport.handshake_timeout = limits_.handshake_timeout + std::chrono::seconds(2);
}

H3UpstreamClient::~H3UpstreamClient() {
  auto opening = std::move(opening_);
  opening_.clear();
  for (auto& o : opening) o.conn->close();
  clear();
  if (endpoint_) endpoint_->set_on_removed(nullptr);
  for (auto& w : live_) {
    if (auto c = w.lock()) c->drop_stack("the agent is shutting down");
  }
}

std::string H3UpstreamClient::name() const {
  return endpoint_text(target_.endpoint.address(), target_.endpoint.port());
}

void H3UpstreamClient::open_connection() {
  std::string error;
  if (!endpoint_) {
    const udp::endpoint local(target_.endpoint.address().is_v4()
                                  ? asio::ip::address(asio::ip::address_v4::any())
                                  : asio::ip::address(asio::ip::address_v6::any()),
                              0);
    try {
      endpoint_ = std::make_unique<quic::Endpoint>(io(), local);
    } catch (const std::exception& e) {
      return connection_failed(std::string("upstream HTTP/3 socket failed: ") + e.what(), false);
    }
    endpoint_->set_on_removed([this](quic::Connection& q) {
      // The quic connection (and its stack) is about to go: find its conn.
      for (auto& o : opening_) {
        if (o.conn->quic() == &q) return o.conn->on_removed();
      }
      for (auto& w : live_) {
        auto c = w.lock();
        if (c && c->quic() == &q) return c->on_removed();
      }
    });
  }
  quic::Connection* q =
      endpoint_->connect(target_.endpoint, target_.tls_name, *target_.tls, limits_.transport, &error);
  if (q == nullptr) return connection_failed("upstream HTTP/3 connect failed: " + error, false);
  auto conn = std::make_shared<H3UpstreamConn>(*this, *q, limits_);
  live_.erase(std::remove_if(live_.begin(), live_.end(), [](const auto& w) { return w.expired(); }),
              live_.end());
  live_.push_back(conn);
  auto timer = std::make_unique<asio::steady_timer>(io());
  timer->expires_after(limits_.handshake_timeout);
  timer->async_wait(
      [this, alive = alive(), c = std::weak_ptr<H3UpstreamConn>(conn)](boost::system::error_code ec) {
        if (ec || alive.expired()) return;
        if (auto conn = c.lock()) on_handshake_timeout(conn.get());
      });
  opening_.push_back({conn, std::move(timer)});
}

void H3UpstreamClient::on_ready(H3UpstreamConn* conn) {
  auto it =
      std::find_if(opening_.begin(), opening_.end(), [&](const auto& o) { return o.conn.get() == conn; });
  if (it == opening_.end()) return serve_waiters();
  auto c = std::move(it->conn);
  opening_.erase(it);
  spdlog::debug("tunnel: HTTP/3 upstream connection to {} ready", name());
  connection_ready(std::move(c));
}

void H3UpstreamClient::on_gone(H3UpstreamConn* conn) {
  auto it =
      std::find_if(opening_.begin(), opening_.end(), [&](const auto& o) { return o.conn.get() == conn; });
  if (it == opening_.end()) return on_conn_closed(conn);
  auto keep = std::move(it->conn);
  opening_.erase(it);
  asio::post(io(), [keep] {});
  connection_failed("upstream HTTP/3 handshake failed: " + keep->why_failed(), false);
}

void H3UpstreamClient::on_handshake_timeout(H3UpstreamConn* conn) {
  auto it =
      std::find_if(opening_.begin(), opening_.end(), [&](const auto& o) { return o.conn.get() == conn; });
  if (it == opening_.end()) return;
  auto keep = std::move(it->conn);
  opening_.erase(it);
  connection_failed("upstream HTTP/3 handshake timed out after " +
                        std::to_string(limits_.handshake_timeout.count()) +
                        " ms (is anything listening on UDP?)",
                    false);
  keep->close();
  asio::post(io(), [keep] {});
}

}  // namespace wtmesh::agent
